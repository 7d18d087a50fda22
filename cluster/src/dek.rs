//! Data encryption keys and the block cipher that uses them.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

pub const DEK_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;

/// A filesystem's 256-bit data key. It lives only in backend memory: it is not
/// `Serialize`, its `Debug` prints nothing of it, and it is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Dek(Zeroizing<[u8; DEK_LEN]>);

impl Dek {
    /// Draws a fresh key from the node's seeded RNG.
    pub fn generate(rng: &mut impl RngCore) -> Self {
        let mut key = Zeroizing::new([0u8; DEK_LEN]);
        rng.fill_bytes(key.as_mut());
        Dek(key)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; DEK_LEN] = bytes.try_into().ok()?;
        Some(Dek(Zeroizing::new(arr)))
    }

    /// The raw key, for the cipher and for the KMS wrap request. Oracles also use it to
    /// search stored bytes for leaks.
    pub fn expose(&self) -> &[u8; DEK_LEN] {
        &self.0
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

/// A nonce that is never reused under one DEK: the writing node's id and that node's
/// durable write counter (persisted before use, so a restart cannot repeat it).
pub fn block_nonce(node: u64, seq: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..4].copy_from_slice(&(node as u32).to_be_bytes());
    nonce[4..].copy_from_slice(&seq.to_be_bytes());
    nonce
}

/// The associated data binds a ciphertext to its filesystem and block, so a block moved
/// elsewhere fails authentication instead of decrypting to the wrong place.
pub fn block_aad(fs_id: u32, block: u64) -> [u8; 12] {
    let mut aad = [0u8; 12];
    aad[..4].copy_from_slice(&fs_id.to_be_bytes());
    aad[4..].copy_from_slice(&block.to_be_bytes());
    aad
}

pub fn seal(dek: &Dek, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new_from_slice(dek.expose()).expect("DEK is 32 bytes");
    cipher
        .encrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("AES-GCM encryption of an in-memory buffer cannot fail")
}

/// `None` when the ciphertext, nonce, AAD or key do not match.
pub fn open(dek: &Dek, nonce: &[u8; NONCE_LEN], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    let cipher = Aes256Gcm::new_from_slice(dek.expose()).ok()?;
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let dek = Dek::generate(&mut rng);
        let nonce = block_nonce(3, 9);
        let ct = seal(&dek, &nonce, &block_aad(1, 2), b"hello");
        assert_eq!(open(&dek, &nonce, &block_aad(1, 2), &ct).unwrap(), b"hello");
        assert!(open(&dek, &nonce, &block_aad(1, 3), &ct).is_none());
        let other = Dek::generate(&mut rng);
        assert!(open(&other, &nonce, &block_aad(1, 2), &ct).is_none());
    }

    #[test]
    fn debug_hides_key() {
        let dek = Dek::from_bytes(&[0xAB; 32]).unwrap();
        assert_eq!(format!("{dek:?}"), "Dek(<redacted>)");
    }

    #[test]
    fn nonces_differ_per_node_and_seq() {
        assert_ne!(block_nonce(1, 1), block_nonce(2, 1));
        assert_ne!(block_nonce(1, 1), block_nonce(1, 2));
    }
}
