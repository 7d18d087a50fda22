//! The crypto-history checker: what the cluster did with its keys, judged from what it
//! left at rest rather than from its own account of it.
//!
//! After every step it reads each block version that appeared on a backend's disk since
//! the last check (its nonce and ciphertext, and the filesystem the disk's config table
//! says it belongs to), with the DEKs the backends hold in memory, and keeps the history
//! of the whole run. Three properties hold over that history:
//! - **no (DEK, nonce) pair seals two different things**: AES-GCM under a repeated nonce
//!   gives away the XOR of the two plaintexts and the key that authenticates them;
//! - **a block authenticates at its own place and nowhere else**: it opens as its own
//!   block of its own data, and not as the next block or as another filesystem's;
//! - **one DEK, one filesystem's data**: no DEK serves two filesystems unless one's data
//!   came from the other (a download from a snapshot keeps its source's data and DEK),
//!   so a DEK drawn twice shows up here even where every read still succeeds.
//!
//! A block written and overwritten within one step is not seen; every block version that
//! survives a step is. Violations name the places involved, never a key.

use std::collections::{BTreeMap, BTreeSet};

use cluster::dek::{self, Dek, NONCE_LEN};
use cluster::disk::StoredBlock;
use sha2::{Digest, Sha256};

use crate::oracle::{DiskView, Key, Violation};

/// A DEK's name in the history: a hash of it, never the key itself.
type Fingerprint = [u8; 8];

/// What one (DEK, nonce) pair sealed, and where it was first seen.
struct Sealing {
    data_id: u32,
    block: u64,
    digest: [u8; 32],
    at: String,
}

/// The data a DEK encrypts, and the filesystem it was first seen with.
struct Owner {
    data_id: u32,
    fs: String,
}

#[derive(Default)]
pub struct CryptoHistory {
    /// Each block version already judged, by (backend, fs id, block): skipped until the
    /// disk holds another.
    judged: BTreeMap<(u64, u32, u64), StoredBlock>,
    sealed: BTreeMap<(Fingerprint, [u8; NONCE_LEN]), Sealing>,
    /// Whether some DEK has sealed two block versions (for [`CryptoHistory::reach`]).
    dek_sealed_twice: bool,
    deks: BTreeMap<Fingerprint, Owner>,
    /// Filesystems (`cluster/fs`) whose DEK was judged by [`CryptoHistory::owner`]: a
    /// filesystem's DEK and data never change once known, so once is enough.
    owners_judged: BTreeSet<String>,
}

/// The filesystem a disk's config table names for a block's fs id.
struct FsView {
    name: String,
    data_id: u32,
    encrypted: bool,
}

impl CryptoHistory {
    /// Judges what appeared on `disks` since the last call, with `keys` the DEKs known so
    /// far by `cluster/fs`.
    pub fn check(
        &mut self,
        disks: &[DiskView<'_>],
        keys: &BTreeMap<String, Key>,
    ) -> Result<(), Violation> {
        for view in disks {
            let state = view.applied.state();
            let disk = view.disk.lock();
            let filesystems: BTreeMap<u32, FsView> = state
                .filesystems
                .values()
                .map(|f| {
                    let fs = FsView {
                        name: f.name.clone(),
                        data_id: f.data_id,
                        encrypted: f.encrypted(),
                    };
                    (f.id, fs)
                })
                .collect();
            for fs in filesystems.values().filter(|f| f.encrypted) {
                let name = format!("{}/{}", view.cluster, fs.name);
                if self.owners_judged.contains(&name) {
                    continue;
                }
                if let Some(key) = keys.get(&name) {
                    self.owner(key, fs.data_id, &name)?;
                    self.owners_judged.insert(name);
                }
            }
            for (&(fs_id, block), stored) in &disk.blocks {
                let place = (view.node, fs_id, block);
                if self.judged.get(&place) == Some(stored) {
                    continue;
                }
                // A copy that fails its checksum is the disk's damage (bit rot, a write
                // that landed on the wrong block), not a sealing by the cluster: the
                // checksum marks it, and no read may serve it (the read-back checks see
                // to that). A sealing is judged where its checksum says it belongs.
                if !stored.verify(fs_id, block) {
                    continue;
                }
                // A block of a filesystem this disk's table does not show yet, or whose
                // key no backend has held yet, waits for a later check.
                let Some(fs) = filesystems.get(&fs_id) else {
                    continue;
                };
                if fs.encrypted {
                    let name = format!("{}/{}", view.cluster, fs.name);
                    let Some(key) = keys.get(&name) else {
                        continue;
                    };
                    let at = format!("backend{}'s block {block} of {name}", view.node);
                    self.judge(key, fs.data_id, block, stored, at)?;
                }
                self.judged.insert(place, stored.clone());
            }
        }
        Ok(())
    }

    /// Whether the history holds what its checks need to mean something: a DEK that
    /// sealed two block versions (a nonce could repeat), and two DEKs (one could repeat).
    pub fn reach(&self) -> (bool, bool) {
        (self.dek_sealed_twice, self.deks.len() >= 2)
    }

    /// One DEK, one filesystem's data.
    fn owner(&mut self, key: &Key, data_id: u32, fs: &str) -> Result<(), Violation> {
        let owner = self.deks.entry(fingerprint(key)).or_insert_with(|| Owner {
            data_id,
            fs: fs.to_string(),
        });
        if owner.data_id != data_id {
            return Err(Violation {
                oracle: "one-dek-per-filesystem",
                detail: format!(
                    "{fs} holds the same DEK as {}, and neither's data came from the other",
                    owner.fs
                ),
            });
        }
        Ok(())
    }

    /// One block version: its nonce is its own under its DEK, and it authenticates at its
    /// own place only.
    fn judge(
        &mut self,
        key: &Key,
        data_id: u32,
        block: u64,
        stored: &StoredBlock,
        at: String,
    ) -> Result<(), Violation> {
        let digest: [u8; 32] = Sha256::digest(&stored.ciphertext).into();
        let pair = (fingerprint(key), stored.nonce);
        match self.sealed.get(&pair) {
            // The same sealing again: a replica of it, or a copy made by a download.
            Some(s) if s.digest == digest && s.data_id == data_id && s.block == block => {}
            Some(s) => {
                return Err(Violation {
                    oracle: "nonce-never-reused",
                    detail: format!(
                        "{at} and {} were sealed under one DEK with the same nonce {} \
                         (different ciphertexts)",
                        s.at,
                        hex(&stored.nonce)
                    ),
                })
            }
            None => {
                let (dek, _) = pair;
                self.dek_sealed_twice = self.dek_sealed_twice
                    || self
                        .sealed
                        .range((dek, [0; NONCE_LEN])..=(dek, [0xff; NONCE_LEN]))
                        .next()
                        .is_some();
                self.sealed.insert(
                    pair,
                    Sealing {
                        data_id,
                        block,
                        digest,
                        at: at.clone(),
                    },
                );
            }
        }
        let dek = Dek::from_bytes(key).expect("a DEK is 32 bytes");
        let opens_as = |data_id: u32, block: u64| {
            dek::open(
                &dek,
                &stored.nonce,
                &dek::block_aad(data_id, block),
                &stored.ciphertext,
            )
            .is_some()
        };
        if !opens_as(data_id, block) {
            return Err(Violation {
                oracle: "block-bound-to-its-place",
                detail: format!("{at} does not authenticate as itself under its DEK"),
            });
        }
        let elsewhere = [
            (data_id, block.wrapping_add(1), "the next block"),
            (data_id.wrapping_add(1), block, "another filesystem's block"),
        ];
        for (other_data, other_block, what) in elsewhere {
            if opens_as(other_data, other_block) {
                return Err(Violation {
                    oracle: "block-bound-to-its-place",
                    detail: format!(
                        "{at} also authenticates as {what}: its associated data does not \
                         bind it to its place"
                    ),
                });
            }
        }
        Ok(())
    }
}

fn fingerprint(key: &Key) -> Fingerprint {
    Sha256::digest(key)[..8].try_into().expect("8 bytes")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = [7; 32];

    fn block(key: &Key, nonce: [u8; 12], data_id: u32, block: u64, data: &[u8]) -> StoredBlock {
        let dek = Dek::from_bytes(key).unwrap();
        StoredBlock::new(
            1,
            block,
            nonce,
            dek::seal(&dek, &nonce, &dek::block_aad(data_id, block), data),
        )
    }

    #[test]
    fn replicas_of_one_sealing_pass_and_a_reused_nonce_fails() {
        let mut h = CryptoHistory::default();
        let b = block(&KEY, [1; 12], 1, 0, b"one");
        h.judge(&KEY, 1, 0, &b, "a".into()).unwrap();
        h.judge(&KEY, 1, 0, &b, "a replica".into()).unwrap();
        let again = block(&KEY, [1; 12], 1, 0, b"two");
        let v = h.judge(&KEY, 1, 0, &again, "b".into()).unwrap_err();
        assert_eq!(v.oracle, "nonce-never-reused");
        assert!(v.detail.contains("b and a were sealed"), "{}", v.detail);
        // Another key may use the same nonce.
        let other = [8; 32];
        h.judge(
            &other,
            1,
            0,
            &block(&other, [1; 12], 1, 0, b"two"),
            "c".into(),
        )
        .unwrap();
    }

    #[test]
    fn a_block_sealed_without_its_place_fails() {
        let mut h = CryptoHistory::default();
        let dek = Dek::from_bytes(&KEY).unwrap();
        let loose = StoredBlock::new(1, 0, [2; 12], dek::seal(&dek, &[2; 12], b"", b"data"));
        let v = h.judge(&KEY, 1, 0, &loose, "x".into()).unwrap_err();
        assert_eq!(v.oracle, "block-bound-to-its-place");
    }

    #[test]
    fn one_dek_for_two_filesystems_fails_unless_they_share_data() {
        let mut h = CryptoHistory::default();
        h.owner(&KEY, 1, "main/a").unwrap();
        h.owner(&KEY, 1, "dr/a-copy").unwrap();
        let v = h.owner(&KEY, 2, "main/b").unwrap_err();
        assert_eq!(v.oracle, "one-dek-per-filesystem");
        assert!(v.detail.contains("main/b") && v.detail.contains("main/a"));
    }
}
