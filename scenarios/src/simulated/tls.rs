//! TLS that replays by seed: a rustls crypto provider whose every random byte comes from a
//! seeded ChaCha stream, a clock that reads simulated time, and a PKI (CA, server and
//! client certificates) generated from the seed.
//!
//! rustls with ring draws from the OS in three places during a handshake: the provider's
//! `secure_random` (hello randoms, session ids), the key exchange's ephemeral secrets, and
//! ECDSA signing (ring's ECDSA takes a random nonce). The provider here replaces all three:
//! `secure_random` and P-256 ECDH ephemerals draw from the seeded stream, and signing is
//! ECDSA P-256 with RFC 6979 nonces (derived from the key and the message, no randomness).
//! The record layer (AES-GCM / ChaCha20-Poly1305 keyed from the handshake, nonces from
//! sequence numbers) and signature verification stay ring's: both are deterministic.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster::secret::Secret;
use cluster::tls::TlsEnv;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyPair, KeyUsagePurpose, RemoteKeyPair, SerialNumber,
};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::sign::{Signer, SigningKey};
use rustls::time_provider::TimeProvider;
use rustls::{Error, NamedGroup, PeerMisbehaved, SignatureAlgorithm, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::runner::{lock, pinned_epoch};

/// The TLS environment of a seeded run: the seeded provider and simulated time.
pub fn sim_env(seed: u64) -> TlsEnv {
    TlsEnv {
        provider: seeded_provider(seed),
        time: Arc::new(SimTime),
    }
}

/// rustls's ring cipher suites and verifiers, with randomness, key exchange and signing
/// that are functions of `seed` (see the module doc for why each is replaced).
///
/// rustls wants these pieces as `&'static`: each call leaks one small RNG and one key
/// exchange group (well under a kilobyte), so build it once per run, not per connection.
pub fn seeded_provider(seed: u64) -> Arc<CryptoProvider> {
    let ring = rustls::crypto::ring::default_provider();
    let random: &'static SeededRandom = Box::leak(Box::new(SeededRandom(Mutex::new(
        ChaCha20Rng::seed_from_u64(seed),
    ))));
    let p256: &'static SeededP256 = Box::leak(Box::new(SeededP256 { random }));
    Arc::new(CryptoProvider {
        cipher_suites: ring.cipher_suites,
        kx_groups: vec![p256],
        signature_verification_algorithms: ring.signature_verification_algorithms,
        secure_random: random,
        key_provider: &Rfc6979Keys,
    })
}

/// The provider's one source of randomness: a ChaCha20 stream from the seed. Every draw
/// (hello randoms, session ids, ephemeral secrets) takes the next bytes, in the order the
/// simulation's scheduler runs the handshakes, which the seed also fixes.
struct SeededRandom(Mutex<ChaCha20Rng>);

impl fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeededRandom")
    }
}

impl SecureRandom for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        lock(&self.0).fill_bytes(buf);
        Ok(())
    }
}

/// ECDHE on P-256 (secp256r1) with ephemeral secrets from the seeded stream. ring's own
/// groups generate their secrets from the OS, so the provider offers only this one.
#[derive(Debug)]
struct SeededP256 {
    random: &'static SeededRandom,
}

impl SupportedKxGroup for SeededP256 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = p256::ecdh::EphemeralSecret::random(&mut *lock(&self.random.0));
        // TLS sends P-256 shares as uncompressed SEC1 points.
        let public = p256::EncodedPoint::from(secret.public_key())
            .as_bytes()
            .to_vec();
        Ok(Box::new(P256Exchange { secret, public }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

struct P256Exchange {
    secret: p256::ecdh::EphemeralSecret,
    public: Vec<u8>,
}

impl ActiveKeyExchange for P256Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        // RFC 8446 4.2.8.2: uncompressed points only; from_sec1_bytes checks the point is
        // on the curve and not the identity.
        if peer.first() != Some(&4) {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = p256::PublicKey::from_sec1_bytes(peer)
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self.secret.diffie_hellman(&peer);
        Ok(SharedSecret::from(shared.raw_secret_bytes().as_slice()))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

/// Loads ECDSA P-256 keys (PKCS#8 or SEC1) as RFC 6979 signers. The seeded PKI makes
/// only such keys; anything else is refused rather than signed with OS randomness.
#[derive(Debug)]
struct Rfc6979Keys;

impl KeyProvider for Rfc6979Keys {
    fn load_private_key(&self, key: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, Error> {
        let secret = match &key {
            PrivateKeyDer::Pkcs8(k) => p256::SecretKey::from_pkcs8_der(k.secret_pkcs8_der()).ok(),
            PrivateKeyDer::Sec1(k) => p256::SecretKey::from_sec1_der(k.secret_sec1_der()).ok(),
            _ => {
                return Err(Error::General(
                    "the simulation's TLS signs with ECDSA P-256 keys only".into(),
                ))
            }
        }
        .ok_or_else(|| Error::General("not an ECDSA P-256 private key".into()))?;
        Ok(Arc::new(P256Key(Arc::new(secret.into()))))
    }
}

struct P256Key(Arc<p256::ecdsa::SigningKey>);

impl fmt::Debug for P256Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P256Key(<redacted>)")
    }
}

impl SigningKey for P256Key {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(P256Signer(self.0.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let der = p256::PublicKey::from(self.0.verifying_key())
            .to_public_key_der()
            .ok()?;
        Some(SubjectPublicKeyInfoDer::from(der.into_vec()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

struct P256Signer(Arc<p256::ecdsa::SigningKey>);

impl fmt::Debug for P256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("P256Signer(<redacted>)")
    }
}

impl Signer for P256Signer {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        // SHA-256 of the message, nonce by RFC 6979; TLS carries ECDSA signatures in DER.
        let signature: p256::ecdsa::Signature = self.0.sign(message);
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// "Now" for certificate checks: turmoil's pinned epoch plus simulated elapsed time.
/// Outside a simulation there is no such time: rustls then fails the handshake
/// ("failed to get current time") rather than reading the real clock.
#[derive(Debug, Clone, Copy)]
pub struct SimTime;

impl TimeProvider for SimTime {
    fn current_time(&self) -> Option<UnixTime> {
        turmoil::since_epoch().map(UnixTime::since_unix_epoch)
    }
}

/// A certificate with its private key (PKCS#8 PEM, redacted in every print).
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate's Common Name.
    pub name: String,
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// A CA, one server certificate and client certificates, all from one seed: the same seed
/// gives the same bytes (keys from a seeded stream, RFC 6979 signatures, fixed dates and
/// serials).
pub struct Pki {
    seed: u64,
    ca_key: Arc<p256::ecdsa::SigningKey>,
    /// The issuer rcgen signs leaves with.
    ca: rcgen::Certificate,
    pub ca_pem: String,
    pub server: Identity,
    /// One per requested client CN, in the order asked.
    pub clients: Vec<Identity>,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("seed", &self.seed)
            .field("server", &self.server.name)
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

/// Why the PKI could not be made: a name rcgen will not put in a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seeded PKI: {0}")]
pub struct PkiError(String);

impl Pki {
    /// The CA's Common Name: it names the seed, so two seeds' CAs are told apart by name
    /// (a certificate from another seed's CA is then an unknown issuer, not a bad signature).
    pub fn ca_name(seed: u64) -> String {
        format!("wekasim CA {seed:016x}")
    }

    /// A CA, a server certificate for `server_names` (DNS names or IPs; the first is its
    /// CN) with serverAuth, and one clientAuth certificate per CN, all valid from a day
    /// before the simulation's epoch to ten years after.
    pub fn from_seed(
        seed: u64,
        server_names: &[&str],
        client_cns: &[&str],
    ) -> Result<Pki, PkiError> {
        let (not_before, not_after) = Pki::usual_validity();
        let ca_key = Arc::new(seeded_key(seed, "ca"));
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, Pki::ca_name(seed));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        describe(&mut ca_params, seed, "ca", &ca_key, not_before, not_after)?;
        let ca_pair = remote(&ca_key)?;
        let ca = ca_params.self_signed(&ca_pair).map_err(pki)?;
        let mut this = Pki {
            seed,
            ca_key,
            ca_pem: ca.pem(),
            ca,
            server: Identity {
                name: String::new(),
                cert_pem: String::new(),
                key_pem: Secret::new(""),
            },
            clients: Vec::new(),
        };
        let names: Vec<String> = server_names.iter().map(|n| n.to_string()).collect();
        let cn = names.first().cloned().unwrap_or_default();
        let mut params = CertificateParams::new(names).map_err(pki)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        this.server = this.issue(params, "server", &cn, not_before, not_after)?;
        for cn in client_cns {
            let client = this.client(cn, not_before, not_after)?;
            this.clients.push(client);
        }
        Ok(this)
    }

    /// The validity of every certificate `from_seed` makes: from a day before the
    /// simulation's epoch to ten years (of 365 days) after it.
    pub fn usual_validity() -> (SystemTime, SystemTime) {
        let day = Duration::from_secs(24 * 3600);
        (pinned_epoch() - day, pinned_epoch() + 3650 * day)
    }

    /// Another clientAuth certificate from this CA, valid from `not_before` to
    /// `not_after`: one that has expired, or is not yet valid, at some simulated instant.
    /// Its key depends on the seed, the CN and the dates.
    pub fn client(
        &self,
        cn: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Identity, PkiError> {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let label = format!(
            "client {cn} {}..{}",
            unix_secs(not_before),
            unix_secs(not_after)
        );
        self.issue(params, &label, cn, not_before, not_after)
    }

    /// Signs a leaf for `cn` with the CA, its key drawn from (seed, `label`).
    fn issue(
        &self,
        mut params: CertificateParams,
        label: &str,
        cn: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Identity, PkiError> {
        let key = Arc::new(seeded_key(self.seed, label));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        describe(&mut params, self.seed, label, &key, not_before, not_after)?;
        let cert = params
            .signed_by(&remote(&key)?, &self.ca, &remote(&self.ca_key)?)
            .map_err(pki)?;
        let key_pem = p256::SecretKey::from(key.as_nonzero_scalar())
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| PkiError("could not encode a private key as PKCS#8".into()))?;
        Ok(Identity {
            name: cn.to_string(),
            cert_pem: cert.pem(),
            key_pem: Secret::new(key_pem.as_str()),
        })
    }
}

fn pki(e: rcgen::Error) -> PkiError {
    PkiError(e.to_string())
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The parts of a certificate that rcgen would otherwise fill from its own crypto: the
/// serial (a hash of seed and label) and the key identifier (a hash of the public key),
/// plus the validity window.
fn describe(
    params: &mut CertificateParams,
    seed: u64,
    label: &str,
    key: &p256::ecdsa::SigningKey,
    not_before: SystemTime,
    not_after: SystemTime,
) -> Result<(), PkiError> {
    let mut serial = label_hash(seed, label)[..16].to_vec();
    // Positive and 16 bytes long in DER.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let spki = p256::PublicKey::from(key.verifying_key())
        .to_public_key_der()
        .map_err(|_| PkiError("could not encode a public key".into()))?;
    params.key_identifier_method =
        KeyIdMethod::PreSpecified(Sha256::digest(spki.as_bytes())[..20].to_vec());
    params.not_before = date(not_before)?;
    params.not_after = date(not_after)?;
    Ok(())
}

fn date(t: SystemTime) -> Result<time::OffsetDateTime, PkiError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError("a validity date before 1970".into()))?
        .as_secs();
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| PkiError("a validity date out of range".into()))
}

fn label_hash(seed: u64, label: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(label.as_bytes());
    h.finalize().into()
}

/// A P-256 key that is a function of (seed, label) only.
fn seeded_key(seed: u64, label: &str) -> p256::ecdsa::SigningKey {
    let mut rng = ChaCha20Rng::from_seed(label_hash(seed, label));
    p256::ecdsa::SigningKey::random(&mut rng)
}

/// `key` as rcgen's signer: rcgen (without its ring feature) hands us the bytes to sign.
fn remote(key: &Arc<p256::ecdsa::SigningKey>) -> Result<KeyPair, PkiError> {
    KeyPair::from_remote(Box::new(RcgenSigner {
        public: p256::EncodedPoint::from(key.verifying_key())
            .as_bytes()
            .to_vec(),
        key: key.clone(),
    }))
    .map_err(pki)
}

struct RcgenSigner {
    key: Arc<p256::ecdsa::SigningKey>,
    /// Uncompressed SEC1 point, the form rcgen writes into SubjectPublicKeyInfo.
    public: Vec<u8>,
}

impl RemoteKeyPair for RcgenSigner {
    fn public_key(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature: p256::ecdsa::Signature = self.key.sign(msg);
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use kms_sim::tls::{accept, peer_common_name, server_config};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

    use rustls::ProtocolVersion;

    use super::*;

    /// A stream that keeps a copy of every byte written through it.
    struct Tap<S> {
        inner: S,
        wrote: Arc<Mutex<Vec<u8>>>,
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let written = Pin::new(&mut self.inner).poll_write(cx, buf);
            if let Poll::Ready(Ok(n)) = written {
                lock(&self.wrote).extend_from_slice(&buf[..n]);
            }
            written
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A clock stopped at one instant.
    #[derive(Debug)]
    struct FixedTime(UnixTime);

    impl TimeProvider for FixedTime {
        fn current_time(&self) -> Option<UnixTime> {
            Some(self.0)
        }
    }

    fn at(t: SystemTime) -> Arc<dyn TimeProvider> {
        Arc::new(FixedTime(UnixTime::since_unix_epoch(
            t.duration_since(UNIX_EPOCH).unwrap(),
        )))
    }

    /// What each side of one exchange saw and wrote.
    #[derive(Debug)]
    struct Outcome {
        /// The echo the client read back, or why it failed.
        client: Result<Vec<u8>, String>,
        /// The client's CN as the server read it, or why the server failed.
        server: Result<Option<String>, String>,
        /// The protocol version the server negotiated.
        version: Option<ProtocolVersion>,
        client_wrote: Vec<u8>,
        server_wrote: Vec<u8>,
    }

    /// A mutual-TLS handshake and a "ping" echoed back, over an in-memory pipe, with both
    /// sides on `provider` and a clock stopped at `now`. The client trusts `pki`'s CA and
    /// presents `client`; the server presents `pki`'s server certificate and trusts its CA.
    /// The client offers TLS 1.3 and 1.2, or 1.2 alone if `tls12_only` (PyKMIP's).
    fn exchange(
        provider: Arc<CryptoProvider>,
        now: SystemTime,
        pki: &Pki,
        client: &Identity,
        server_name: &str,
        tls12_only: bool,
    ) -> Outcome {
        let env = TlsEnv {
            provider: provider.clone(),
            time: at(now),
        };
        let client_config = if tls12_only {
            let roots = cluster::tls::roots("CA certificate", &pki.ca_pem).unwrap();
            let chain = cluster::tls::certificates("client certificate", &client.cert_pem);
            let key = cluster::tls::private_key("client key", client.key_pem.expose());
            let config =
                rustls::ClientConfig::builder_with_details(env.provider.clone(), env.time.clone())
                    .with_protocol_versions(&[&rustls::version::TLS12])
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_client_auth_cert(chain.unwrap(), key.unwrap())
                    .unwrap();
            Arc::new(config)
        } else {
            cluster::tls::client_config(
                &env,
                Some(&pki.ca_pem),
                &client.cert_pem,
                client.key_pem.expose(),
            )
            .unwrap()
        };
        let server_config = server_config(
            provider,
            env.time.clone(),
            &pki.ca_pem,
            &pki.server.cert_pem,
            pki.server.key_pem.expose(),
        )
        .unwrap();
        let (a, b) = tokio::io::duplex(1 << 16);
        let (client_wrote, server_wrote) = (Arc::default(), Arc::default());
        let version = Arc::new(Mutex::new(None));
        let negotiated = Arc::clone(&version);
        let a = Tap {
            inner: a,
            wrote: Arc::clone(&client_wrote),
        };
        let b = Tap {
            inner: b,
            wrote: Arc::clone(&server_wrote),
        };
        let client = async move {
            let mut s = cluster::tls::connect(client_config, server_name, Box::new(a)).await?;
            s.write_all(b"ping").await?;
            s.flush().await?;
            let mut echo = vec![0; 4];
            s.read_exact(&mut echo).await?;
            Ok::<_, std::io::Error>(echo)
        };
        let server = async move {
            let mut s = accept(server_config, b).await?;
            let cn = peer_common_name(s.get_ref().1);
            *lock(&negotiated) = s.get_ref().1.protocol_version();
            let mut buf = [0; 4];
            s.read_exact(&mut buf).await?;
            s.write_all(&buf).await?;
            s.flush().await?;
            Ok::<_, std::io::Error>(cn)
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (client, server) = rt.block_on(async { tokio::join!(client, server) });
        let taken = |w: Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *lock(&w));
        let version = lock(&version).take();
        Outcome {
            client: client.map_err(|e| e.to_string()),
            server: server.map_err(|e| e.to_string()),
            version,
            client_wrote: taken(client_wrote),
            server_wrote: taken(server_wrote),
        }
    }

    const SERVER_NAMES: &[&str] = &["kms.sim", "10.0.0.5"];

    fn pki(seed: u64) -> Pki {
        Pki::from_seed(seed, SERVER_NAMES, &["node-1", "node-2"]).unwrap()
    }

    fn an_hour_in() -> SystemTime {
        pinned_epoch() + Duration::from_secs(3600)
    }

    fn handshake(seed: u64, server_name: &str, tls12_only: bool) -> Outcome {
        let pki = pki(seed);
        exchange(
            seeded_provider(seed),
            an_hour_in(),
            &pki,
            &pki.clients[0],
            server_name,
            tls12_only,
        )
    }

    /// Both sides' bytes replay for a seed and change with it: nothing in the handshake
    /// (hello randoms, key shares, signatures, record encryption) reads the OS.
    fn replays(tls12_only: bool, version: ProtocolVersion) {
        let first = handshake(7, "kms.sim", tls12_only);
        assert_eq!(first.client.as_deref(), Ok(&b"ping"[..]), "{first:?}");
        assert_eq!(first.server, Ok(Some("node-1".to_string())));
        assert_eq!(first.version, Some(version));
        assert!(first.client_wrote.len() > 100 && first.server_wrote.len() > 100);

        let again = handshake(7, "kms.sim", tls12_only);
        assert!(again.client.is_ok() && again.server.is_ok(), "{again:?}");
        assert_eq!(first.client_wrote, again.client_wrote);
        assert_eq!(first.server_wrote, again.server_wrote);

        let other = handshake(8, "kms.sim", tls12_only);
        assert!(other.client.is_ok() && other.server.is_ok(), "{other:?}");
        assert_ne!(first.client_wrote, other.client_wrote);
        assert_ne!(first.server_wrote, other.server_wrote);
    }

    #[test]
    fn a_tls13_handshake_replays_byte_for_byte_by_seed() {
        replays(false, ProtocolVersion::TLSv1_3);
    }

    #[test]
    fn a_tls12_handshake_replays_byte_for_byte_by_seed() {
        replays(true, ProtocolVersion::TLSv1_2);
    }

    #[test]
    fn the_server_may_be_named_by_its_ip() {
        let outcome = handshake(7, "10.0.0.5", false);
        assert_eq!(outcome.client.as_deref(), Ok(&b"ping"[..]), "{outcome:?}");
    }

    #[test]
    fn the_pki_is_a_function_of_its_seed() {
        let (a, b, c) = (pki(7), pki(7), pki(8));
        let everything = |p: &Pki| {
            let mut all = vec![p.ca_pem.clone()];
            for id in std::iter::once(&p.server).chain(&p.clients) {
                all.push(id.cert_pem.clone());
                all.push(id.key_pem.expose().to_string());
            }
            all
        };
        assert_eq!(everything(&a), everything(&b));
        for (x, y) in everything(&a).iter().zip(everything(&c)) {
            assert_ne!(*x, y);
        }
        let (from, to) = (pinned_epoch(), an_hour_in());
        let late = |p: &Pki| p.client("node-1", from, to).unwrap();
        assert_eq!(late(&a).cert_pem, late(&b).cert_pem);
        assert_ne!(late(&a).cert_pem, a.clients[0].cert_pem);
        assert!(a.clients[0]
            .key_pem
            .expose()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    #[test]
    fn certificates_carry_their_names() {
        let p = pki(7);
        let der = |pem: &str| cluster::tls::certificates("test", pem).unwrap().remove(0);
        assert_eq!(
            kms_sim::tls::common_name(&der(&p.ca_pem)).as_deref(),
            Some(Pki::ca_name(7).as_str())
        );
        assert_eq!(
            kms_sim::tls::common_name(&der(&p.server.cert_pem)).as_deref(),
            Some("kms.sim")
        );
        assert_eq!(
            kms_sim::tls::common_name(&der(&p.clients[1].cert_pem)).as_deref(),
            Some("node-2")
        );
    }

    #[test]
    fn nothing_prints_a_private_key() {
        let p = pki(7);
        let printed = format!("{p:?} {:?} {:?}", p.server, p.clients);
        assert!(!printed.contains("PRIVATE KEY"), "{printed}");
        let env = sim_env(7);
        assert!(!format!("{env:?}").contains("PRIVATE KEY"));
    }

    /// Asserts one side failed naming `cause`, and that no message shows a key.
    fn refused(outcome: &Outcome, server_side: bool, cause: &str) {
        let message = if server_side {
            outcome.server.clone().err()
        } else {
            outcome.client.clone().err()
        };
        let message = message.unwrap_or_else(|| panic!("expected a refusal: {outcome:?}"));
        assert!(message.contains(cause), "{message}");
        for m in [&outcome.client.clone().err(), &outcome.server.clone().err()]
            .into_iter()
            .flatten()
        {
            assert!(!m.contains("PRIVATE KEY"), "{m}");
        }
    }

    #[test]
    fn a_client_certificate_from_another_ca_is_refused() {
        let (ours, theirs) = (pki(7), pki(8));
        let outcome = exchange(
            seeded_provider(7),
            an_hour_in(),
            &ours,
            &theirs.clients[0],
            "kms.sim",
            false,
        );
        refused(&outcome, true, "UnknownIssuer");
        assert!(outcome.client.is_err(), "{outcome:?}");
    }

    #[test]
    fn an_expired_or_not_yet_valid_client_certificate_is_refused() {
        let p = pki(7);
        let day = Duration::from_secs(24 * 3600);
        let expired = p
            .client("node-1", pinned_epoch() - 2 * day, pinned_epoch())
            .unwrap();
        let outcome = exchange(
            seeded_provider(7),
            an_hour_in(),
            &p,
            &expired,
            "kms.sim",
            false,
        );
        refused(&outcome, true, "certificate expired");
        // The same certificate was fine while it was valid.
        let earlier = pinned_epoch() - day;
        let outcome = exchange(seeded_provider(7), earlier, &p, &expired, "kms.sim", false);
        assert!(outcome.server.is_ok(), "{outcome:?}");

        let early = p
            .client("node-1", pinned_epoch() + day, pinned_epoch() + 2 * day)
            .unwrap();
        let outcome = exchange(
            seeded_provider(7),
            an_hour_in(),
            &p,
            &early,
            "kms.sim",
            false,
        );
        refused(&outcome, true, "not valid yet");
    }

    #[test]
    fn a_server_certificate_for_another_name_is_refused() {
        let outcome = handshake(7, "other.sim", false);
        refused(
            &outcome,
            false,
            "certificate not valid for name \"other.sim\"",
        );
        assert!(outcome.server.is_err(), "{outcome:?}");
    }

    #[test]
    fn sim_time_is_the_simulation_epoch_plus_elapsed_time() {
        // Outside a simulation there is no simulated time, and no real time either.
        assert!(SimTime.current_time().is_none());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut sim = turmoil::Builder::new()
            .epoch(pinned_epoch())
            .tick_duration(Duration::from_secs(1))
            .simulation_duration(Duration::from_secs(2 * 3600))
            .build();
        let record = Arc::clone(&seen);
        sim.client("clock", async move {
            lock(&record).push(SimTime.current_time());
            tokio::time::sleep(Duration::from_secs(3600)).await;
            lock(&record).push(SimTime.current_time());
            Ok(())
        });
        sim.run().unwrap();
        let epoch = pinned_epoch().duration_since(UNIX_EPOCH).unwrap();
        let seen: Vec<_> = lock(&seen)
            .iter()
            .map(|t| t.map(|t| t.as_secs() - epoch.as_secs()))
            .collect();
        assert_eq!(seen, [Some(0), Some(3600)]);
    }

    #[test]
    fn a_client_certificate_expires_in_simulated_time() {
        let p = pki(7);
        let client = p.client("node-1", pinned_epoch(), an_hour_in()).unwrap();
        let env = sim_env(derive(7));
        let client_config = cluster::tls::client_config(
            &env,
            Some(&p.ca_pem),
            &client.cert_pem,
            client.key_pem.expose(),
        )
        .unwrap();
        let server_config = server_config(
            env.provider.clone(),
            env.time.clone(),
            &p.ca_pem,
            &p.server.cert_pem,
            p.server.key_pem.expose(),
        )
        .unwrap();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let mut sim = turmoil::Builder::new()
            .epoch(pinned_epoch())
            .tick_duration(Duration::from_secs(1))
            .simulation_duration(Duration::from_secs(3 * 3600))
            .build();
        let log = Arc::clone(&accepted);
        sim.host("kms", move || {
            let (config, log) = (server_config.clone(), Arc::clone(&log));
            async move {
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", 5696)).await?;
                loop {
                    let (stream, _) = listener.accept().await?;
                    let result = match accept(config.clone(), stream).await {
                        Ok(mut s) => s.write_all(b"ok").await.map(|()| "accepted".to_string()),
                        Err(e) => Ok(e.to_string()),
                    };
                    lock(&log).push(result.unwrap_or_else(|e| e.to_string()));
                }
            }
        });
        sim.client("node-1", async move {
            for round in 0..2 {
                if round > 0 {
                    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
                }
                let tcp = turmoil::net::TcpStream::connect("kms:5696").await?;
                if let Ok(mut s) =
                    cluster::tls::connect(client_config.clone(), "kms.sim", Box::new(tcp)).await
                {
                    let mut buf = Vec::new();
                    // A refused client reads the server's alert here, not "ok".
                    let _ = s.read_to_end(&mut buf).await;
                }
            }
            Ok(())
        });
        sim.run().unwrap();
        let accepted = lock(&accepted).clone();
        assert_eq!(accepted.len(), 2, "{accepted:?}");
        assert_eq!(accepted[0], "accepted");
        assert!(accepted[1].contains("certificate expired"), "{accepted:?}");
    }

    fn derive(seed: u64) -> u64 {
        crate::runner::derive_seed(seed, "tls")
    }
}
