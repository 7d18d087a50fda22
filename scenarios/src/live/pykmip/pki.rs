//! The certificates a live PyKMIP run needs, made fresh at run time so that no private key
//! is ever committed: a CA, the server's ECDSA P-256 certificate, a client certificate per
//! tenant, and two that must be refused (a client of an unknown CA, a server certificate for
//! another name).
//!
//! Keys come from the OS's randomness through ring: a live run is not seeded. rcgen builds
//! and signs the certificates through a [`RemoteKeyPair`], so this needs none of rcgen's own
//! crypto features (the seeded PKI of simulated runs signs another way, and must stay the
//! same bytes whatever this module asks of rcgen).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use cluster::secret::Secret;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyPair, KeyUsagePurpose, RemoteKeyPair, SanType, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use sha2::{Digest, Sha256};

/// The names the server certificate is good for: PyKMIP listens on loopback.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::LOCALHOST;
pub const SERVER_DNS: &str = "localhost";
/// The only name the wrong-name server certificate carries.
pub const WRONG_SERVER_DNS: &str = "not-this-kms.invalid";

/// A certificate and its private key (PKCS#8, PEM). The key prints as `<redacted>`.
#[derive(Clone)]
pub struct Identity {
    /// The subject's Common Name (PyKMIP's owner of the objects a client creates).
    pub cn: String,
    pub cert_pem: String,
    pub key_pem: Secret,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("cn", &self.cn)
            .field("key_pem", &self.key_pem)
            .finish_non_exhaustive()
    }
}

/// Every certificate of one live PyKMIP run.
#[derive(Debug, Clone)]
pub struct LivePki {
    /// The CA PyKMIP trusts for clients and the clients trust for PyKMIP.
    pub ca_pem: String,
    /// ECDSA P-256 (with an RSA certificate PyKMIP offers only CBC suites, which rustls
    /// refuses), SAN IP:127.0.0.1 and DNS:localhost, serverAuth.
    pub server: Identity,
    /// clientAuth certificates of the CA, by CN.
    pub clients: BTreeMap<String, Identity>,
    /// A clientAuth certificate with the first client's CN, signed by a CA nobody trusts.
    pub unknown_ca_client: Identity,
    /// A serverAuth certificate of the right CA for [`WRONG_SERVER_DNS`] only.
    pub wrong_name_server: Identity,
}

impl LivePki {
    /// A fresh CA and its certificates; `client_cns` must name at least one client.
    pub fn generate(client_cns: &[&str]) -> Result<LivePki, String> {
        let Some(first) = client_cns.first() else {
            return Err("a live PKI needs at least one client CN".into());
        };
        let ca = Ca::new("wekasim live KMIP CA")?;
        let server = ca.issue(
            "wekasim live KMIP server",
            vec![SanType::IpAddress(IpAddr::V4(SERVER_IP)), dns(SERVER_DNS)?],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let mut clients = BTreeMap::new();
        for cn in client_cns {
            let id = ca.issue(cn, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)?;
            if clients.insert(cn.to_string(), id).is_some() {
                return Err(format!("client CN {cn:?} is named twice"));
            }
        }
        let stranger = Ca::new("wekasim unknown CA")?;
        let unknown_ca_client =
            stranger.issue(first, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)?;
        let wrong_name_server = ca.issue(
            "wekasim wrong-name server",
            vec![dns(WRONG_SERVER_DNS)?],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        Ok(LivePki {
            ca_pem: ca.cert.pem(),
            server,
            clients,
            unknown_ca_client,
            wrong_name_server,
        })
    }
}

fn dns(name: &str) -> Result<SanType, String> {
    Ok(SanType::DnsName(
        name.try_into()
            .map_err(|e| format!("DNS name {name:?}: {e}"))?,
    ))
}

/// A certificate authority: its certificate and key, for signing.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(cn: &str) -> Result<Ca, String> {
        let (key, _) = new_key()?;
        let mut params = params(cn, &key);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|e| format!("self-signing the CA {cn:?}: {e}"))?;
        Ok(Ca { cert, key })
    }

    fn issue(
        &self,
        cn: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<Identity, String> {
        let (key, pkcs8) = new_key()?;
        let mut params = params(cn, &key);
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| format!("signing the certificate of {cn:?}: {e}"))?;
        Ok(Identity {
            cn: cn.to_string(),
            cert_pem: cert.pem(),
            key_pem: Secret::new(pem("PRIVATE KEY", &pkcs8)),
        })
    }
}

/// The parameters every certificate here shares: its CN, a random serial, and a subject
/// key identifier from its public key (rcgen's default for it depends on its features).
fn params(cn: &str, key: &KeyPair) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let mut serial = [0u8; 16];
    // A failure here would have failed the key generation just before.
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut serial);
    serial[0] &= 0x7F; // a positive serial
    params.serial_number = Some(serial.to_vec().into());
    let id = Sha256::digest(key.public_key_raw());
    params.key_identifier_method = KeyIdMethod::PreSpecified(id[..20].to_vec());
    params
}

/// A fresh P-256 key from the OS's randomness: rcgen's handle on it and its PKCS#8 DER.
fn new_key() -> Result<(KeyPair, Vec<u8>), String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "cannot generate a P-256 key (the OS's randomness failed)".to_string())?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|e| format!("ring refused the P-256 key it just made: {e}"))?;
    let key = KeyPair::from_remote(Box::new(RingP256 { pair, rng }))
        .map_err(|e| format!("rcgen refused a P-256 key: {e}"))?;
    Ok((key, pkcs8.as_ref().to_vec()))
}

/// An ECDSA P-256 key held by ring, signing for rcgen.
struct RingP256 {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl RemoteKeyPair for RingP256 {
    fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.pair
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// PEM armour, 64 columns.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_parse_and_keys_stay_out_of_debug() {
        let pki = LivePki::generate(&["tenant-a", "tenant-b"]).unwrap();
        assert_eq!(
            pki.clients.keys().collect::<Vec<_>>(),
            ["tenant-a", "tenant-b"]
        );
        assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = &pki.clients["tenant-a"].key_pem;
        assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
        let dbg = format!("{pki:?}");
        assert!(
            !dbg.contains("PRIVATE KEY") && dbg.contains("tenant-b"),
            "{dbg}"
        );
        // Every key and certificate is one rustls can load.
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        for id in pki.clients.values().chain([
            &pki.server,
            &pki.unknown_ca_client,
            &pki.wrong_name_server,
        ]) {
            CertificateDer::from_pem_slice(id.cert_pem.as_bytes()).unwrap();
            let k = PrivateKeyDer::from_pem_slice(id.key_pem.expose().as_bytes()).unwrap();
            assert!(matches!(k, PrivateKeyDer::Pkcs8(_)), "{}", id.cn);
        }
    }

    #[test]
    fn no_client_is_an_error() {
        assert!(LivePki::generate(&[]).unwrap_err().contains("client CN"));
        assert!(LivePki::generate(&["a", "a"])
            .unwrap_err()
            .contains("named twice"));
    }
}
