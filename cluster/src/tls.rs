//! TLS for the KMIP connector: the crypto and clock a connection runs on, the mutual-TLS
//! client configuration built from PEM, and the handshake over a [`BoxStream`].
//!
//! Live runs use ring and the system clock ([`TlsEnv::real`]); a seeded run hands the
//! cluster, through its [`crate::net::Dialer`], a provider whose randomness is the seed
//! and a clock that reads simulated time, so a handshake replays byte for byte.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::time_provider::{DefaultTimeProvider, TimeProvider};
use rustls::RootCertStore;

use crate::net::BoxStream;

/// The crypto and the clock TLS runs on: everything in a handshake that is not the peer.
#[derive(Clone)]
pub struct TlsEnv {
    /// Cipher suites, key exchange, signing and randomness.
    pub provider: Arc<CryptoProvider>,
    /// The "now" certificates are checked against.
    pub time: Arc<dyn TimeProvider>,
}

impl TlsEnv {
    /// ring and the system clock, for live runs against real peers.
    pub fn real() -> TlsEnv {
        TlsEnv {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            time: Arc::new(DefaultTimeProvider),
        }
    }
}

impl fmt::Debug for TlsEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsEnv")
            .field("cipher_suites", &self.provider.cipher_suites.len())
            .field("time", &self.time)
            .finish()
    }
}

/// Why a TLS configuration could not be built. Names the input that was wrong and never
/// carries key material: a key that fails to parse is reported by what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("KMIP needs --ca-cert: without a CA there is nothing to verify the KMS's certificate against")]
    NoCa,
    #[error("{what}: {problem}")]
    Input {
        /// Which input: "CA certificate", "client certificate", "client key", ...
        what: &'static str,
        problem: String,
    },
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl TlsError {
    fn input(what: &'static str, problem: impl Into<String>) -> TlsError {
        TlsError::Input {
            what,
            problem: problem.into(),
        }
    }
}

/// Every certificate in `pem`, in order (the leaf first for a chain).
pub fn certificates(
    what: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        // pki-types' PEM errors name the section and position, never the contents.
        .map_err(|e| TlsError::input(what, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::input(what, "no PEM certificate found"));
    }
    Ok(certs)
}

/// The first private key in `pem`: PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY") or
/// PKCS#1 ("RSA PRIVATE KEY"). Whether the provider can sign with it is checked later.
pub fn private_key(what: &'static str, pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::Error;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        Error::NoItemsFound => TlsError::input(what, "no PEM private key found"),
        // Only the kind of failure: the text around it may be key material.
        _ => TlsError::input(what, "bad PEM private key"),
    })
}

/// A root store holding every certificate in `ca_pem`.
pub fn roots(what: &'static str, ca_pem: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(what, ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::input(what, format!("not a usable trust anchor: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// A mutual-TLS client configuration: the KMS's certificate must chain to `ca_pem`, and
/// the client presents `client_cert_pem` (leaf first) signed with `client_key_pem`.
/// TLS 1.2 and 1.3 are offered (PyKMIP speaks 1.2).
pub fn client_config(
    env: &TlsEnv,
    ca_pem: Option<&str>,
    client_cert_pem: &str,
    client_key_pem: &str,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = roots("CA certificate", ca_pem.ok_or(TlsError::NoCa)?)?;
    let chain = certificates("client certificate", client_cert_pem)?;
    let key = private_key("client key", client_key_pem)?;
    let config = ClientConfig::builder_with_details(env.provider.clone(), env.time.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        // rustls reports a key it cannot load or that does not match the certificate by
        // kind, never by contents.
        .map_err(|e| TlsError::input("client key", e.to_string()))?;
    Ok(Arc::new(config))
}

/// Runs the client handshake over `stream` and returns the encrypted stream. `server_name`
/// is what the KMS's certificate must name: a DNS name or an IP address.
pub async fn connect(
    config: Arc<ClientConfig>,
    server_name: &str,
    stream: BoxStream,
) -> io::Result<BoxStream> {
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TLS server name {server_name:?} is neither a DNS name nor an IP address"),
        )
    })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await?;
    Ok(Box::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> TlsEnv {
        TlsEnv::real()
    }

    #[test]
    fn a_client_without_a_ca_is_told_to_give_one() {
        let err = client_config(&env(), None, "", "").unwrap_err();
        assert_eq!(err, TlsError::NoCa);
        assert!(err.to_string().contains("--ca-cert"), "{err}");
    }

    #[test]
    fn a_missing_certificate_is_named() {
        let err = certificates("client certificate", "nothing here").unwrap_err();
        assert_eq!(
            err.to_string(),
            "client certificate: no PEM certificate found"
        );
    }

    #[test]
    fn a_bad_key_is_named_without_its_contents() {
        let junk =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==@@\n-----END PRIVATE KEY-----\n";
        let err = private_key("client key", junk).unwrap_err().to_string();
        assert!(err.starts_with("client key: "), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
        let err = private_key("client key", "").unwrap_err().to_string();
        assert_eq!(err, "client key: no PEM private key found");
    }

    #[test]
    fn a_name_that_is_no_name_is_refused_before_any_byte_is_sent() {
        let (a, _b) = tokio::io::duplex(64);
        let config = Arc::new(
            ClientConfig::builder_with_provider(env().provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(connect(config, "not a name!", Box::new(a)))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
