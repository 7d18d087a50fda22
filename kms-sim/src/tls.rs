//! The server half of the KMIP KMS's mutual TLS: a configuration that requires a client
//! certificate chaining to the CA, the handshake, and the client's Common Name (KMIP maps
//! it to a principal that owns keys).
//!
//! The crypto provider and the clock are parameters: a seeded run passes a provider whose
//! randomness is the seed and a clock that reads simulated time, a live run passes ring
//! and the system clock. kms-sim does not import the cluster, so this small PEM handling
//! stands beside the cluster's client half (`cluster::tls`) rather than sharing it.

use std::io;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    NoServerSessionStorage, ServerConfig, ServerConnection, WebPkiClientVerifier,
};
use rustls::time_provider::TimeProvider;
use rustls::RootCertStore;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Tag, Tagged};

/// Why the server's TLS configuration could not be built. Names the input; never carries
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {problem}")]
pub struct TlsError {
    /// Which input: "CA certificate", "server certificate", "server key", ...
    pub what: &'static str,
    pub problem: String,
}

fn error(what: &'static str, problem: impl Into<String>) -> TlsError {
    TlsError {
        what,
        problem: problem.into(),
    }
}

fn certificates(what: &'static str, pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(what, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(error(what, "no PEM certificate found"));
    }
    Ok(certs)
}

fn private_key(what: &'static str, pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::Error;
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        Error::NoItemsFound => error(what, "no PEM private key found"),
        // Only the kind of failure: the text around it may be key material.
        _ => error(what, "bad PEM private key"),
    })
}

/// A server configuration that presents `server_cert_pem` (leaf first) signed with
/// `server_key_pem`, and accepts only clients whose certificate chains to `ca_pem` and is
/// valid at `time`'s now, at every connection (no session resumption). TLS 1.2 and 1.3.
pub fn server_config(
    provider: Arc<CryptoProvider>,
    time: Arc<dyn TimeProvider>,
    ca_pem: &str,
    server_cert_pem: &str,
    server_key_pem: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("CA certificate", ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| error("CA certificate", format!("not a usable trust anchor: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| error("client verifier", e.to_string()))?;
    let chain = certificates("server certificate", server_cert_pem)?;
    let key = private_key("server key", server_key_pem)?;
    let mut config = ServerConfig::builder_with_details(provider, time)
        .with_safe_default_protocol_versions()
        .map_err(|e| error("TLS configuration", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        // By kind (unsupported key, key does not match certificate), never by contents.
        .map_err(|e| error("server key", e.to_string()))?;
    // No resumption: a resumed session skips the client certificate check, so a
    // certificate that expired (or a CA that changed) since the first connection would
    // still be let in. Every connection is a full handshake and is checked afresh.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// Runs the server handshake over `stream`. A client without an acceptable certificate
/// fails here.
pub async fn accept<S>(config: Arc<ServerConfig>, stream: S) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio_rustls::TlsAcceptor::from(config).accept(stream).await
}

/// Serves one accepted connection of `kmip` over mutual TLS: the handshake, the client's
/// Common Name (the owner of the keys it makes), then KMIP until the client closes. A
/// handshake that fails, or a certificate that names no CN, closes the connection
/// unanswered: without a CN there is nobody to own keys. Returns why it closed early, if
/// it did (for the caller's debug log; it names no key material).
pub async fn serve_kmip<S>(
    kmip: crate::KmipSim,
    config: Arc<ServerConfig>,
    stream: S,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let tls = accept(config, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let cn =
        peer_common_name(tls.get_ref().1).ok_or("the client certificate names no Common Name")?;
    kmip.serve_connection(tls, cn).await;
    Ok(())
}

/// X.520 commonName.
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The Common Name in the subject of the client's certificate, once the handshake has
/// verified it; `None` before that, or if the certificate names no CN. The first CN wins,
/// as with PyKMIP.
pub fn peer_common_name(conn: &ServerConnection) -> Option<String> {
    common_name(conn.peer_certificates()?.first()?)
}

/// The first subject Common Name of a DER certificate.
pub fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    let subject = &cert.tbs_certificate.subject;
    subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .find(|atv| atv.oid == COMMON_NAME)
        .and_then(|atv| match atv.value.tag() {
            // The string types a CN is written in; all are ASCII or UTF-8.
            Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
                std::str::from_utf8(atv.value.value())
                    .ok()
                    .map(str::to_string)
            }
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (Arc<CryptoProvider>, Arc<dyn TimeProvider>) {
        (
            Arc::new(rustls::crypto::ring::default_provider()),
            Arc::new(rustls::time_provider::DefaultTimeProvider),
        )
    }

    #[test]
    fn each_missing_input_is_named() {
        let (p, t) = ring();
        let err = server_config(p.clone(), t.clone(), "", "", "").unwrap_err();
        assert_eq!(err.to_string(), "CA certificate: no PEM certificate found");
        let junk = "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n";
        let err = server_config(p, t, junk, "", "").unwrap_err();
        assert!(err.to_string().starts_with("CA certificate: "), "{err}");
    }

    #[test]
    fn a_bad_key_is_named_without_its_contents() {
        let junk =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==@@\n-----END PRIVATE KEY-----\n";
        let err = private_key("server key", junk).unwrap_err().to_string();
        assert_eq!(err, "server key: bad PEM private key");
    }

    #[test]
    fn garbage_has_no_common_name() {
        assert_eq!(common_name(&CertificateDer::from(vec![0x30, 0x00])), None);
    }
}
