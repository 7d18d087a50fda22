//! Checks before a live run against a KMIP server, in the order a connection meets them:
//! is the server there, does the TLS handshake pass both ways (the server's certificate
//! against the CA given and the server's name; the client's certificate at the server),
//! does the server speak KMIP 1.2 or later (what the cluster's connector needs), and is the
//! key UID the user named one this certificate sees, in state Active.
//!
//! Each failure is a [`KmipPreflightError`] naming the server and the cause (the CLI exits
//! 2 with it); nothing has been created on the server. No private key is ever part of a
//! message.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster::secret::Secret;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use ttlv::enums::{result_reason, state};
use ttlv::ProtocolVersion;

use crate::kms::kmip::{KmipAdmin, KmipError};

/// Bound on the TCP connect and on the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The newest version the harness's admin client speaks (it encodes KMIP 1.x attributes).
const ADMIN_NEWEST: ProtocolVersion = ProtocolVersion::V1_4;

/// Why a KMIP server is not fit for a live run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmipPreflightError {
    /// The certificates or key given do not load.
    BadCertificates(String),
    /// Nothing accepts a connection at the address (or it does not resolve).
    Unreachable { address: String, why: String },
    /// This side refused the server's certificate: another CA, another name, expired.
    ServerCertificate { address: String, why: String },
    /// The server refused this side's certificate.
    ClientRejected { address: String, why: String },
    /// The handshake failed some other way.
    Tls { address: String, why: String },
    /// The server speaks no version the cluster can use.
    Version { address: String, why: String },
    /// The key UID given is no Active key of this certificate's.
    Key { address: String, why: String },
    /// The server answered Discover Versions in a way that is not KMIP.
    Protocol { address: String, why: String },
}

impl fmt::Display for KmipPreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KmipPreflightError::*;
        match self {
            BadCertificates(why) => write!(f, "KMIP certificates: {why}"),
            Unreachable { address, why } => {
                write!(f, "the KMIP server at {address} is unreachable: {why}")
            }
            ServerCertificate { address, why } => write!(
                f,
                "TLS with the KMIP server at {address} failed: its certificate is refused: {why}"
            ),
            ClientRejected { address, why } => write!(
                f,
                "TLS with the KMIP server at {address} failed: the server rejected the client \
                 certificate (--client-cert): {why}"
            ),
            Tls { address, why } => {
                write!(f, "TLS with the KMIP server at {address} failed: {why}")
            }
            Version { address, why } => write!(f, "the KMIP server at {address} {why}"),
            Key { address, why } => write!(f, "the KMIP server at {address}: {why}"),
            Protocol { address, why } => write!(
                f,
                "the KMIP server at {address} did not answer Discover Versions: {why}"
            ),
        }
    }
}

impl std::error::Error for KmipPreflightError {}

/// What the preflight learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmipInfo {
    /// The address the server was reached at.
    pub addr: SocketAddr,
    /// What its certificate names (the host part of the address).
    pub server_name: String,
    /// The versions it offers, its preferred first.
    pub versions: Vec<ProtocolVersion>,
    /// The version the harness's own requests will carry: the newest offered it speaks.
    pub admin_version: ProtocolVersion,
}

/// The host part of `host:port` (brackets of an IPv6 address removed), as the cluster's
/// connector takes it for the name the server's certificate must carry.
pub fn host_of(address: &str) -> Result<(String, u16), String> {
    let bad = || format!("{address:?} is not HOST:PORT");
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Runs the checks against the server at `address` (`host:port`) with the client's
/// certificate: see the module's comment.
pub async fn check(
    address: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &Secret,
    key_uid: Option<&str>,
) -> Result<KmipInfo, KmipPreflightError> {
    use KmipPreflightError as E;
    let at = address.to_string();
    let (host, port) = host_of(address).map_err(E::BadCertificates)?;
    let config = cluster::tls::client_config(
        &cluster::tls::TlsEnv::real(),
        Some(ca_pem),
        cert_pem,
        key_pem.expose(),
    )
    .map_err(|e| E::BadCertificates(e.to_string()))?;
    let name = ServerName::try_from(host.clone()).map_err(|_| {
        E::BadCertificates(format!(
            "{host:?} is neither a DNS name nor an IP address a certificate can name"
        ))
    })?;

    let unreachable = |why: String| E::Unreachable {
        address: at.clone(),
        why,
    };
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| unreachable(format!("{host} does not resolve: {e}")))?
        .next()
        .ok_or_else(|| unreachable(format!("{host} resolves to no address")))?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
    let tls: TlsStream<TcpStream> = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::clone(&config)).connect(name, tcp),
    )
    .await
    .map_err(|_| E::Tls {
        address: at.clone(),
        why: format!(
            "no handshake within {} s (is it a TLS server?)",
            CONNECT_TIMEOUT.as_secs()
        ),
    })?
    .map_err(|e| tls_failure(&at, &host, &e))?;

    // Discover Versions exists since KMIP 1.1: asked in 1.1, any server that has it answers.
    let mut admin = KmipAdmin::new(tls).with_version(ProtocolVersion::V1_1);
    let versions = admin.discover_versions().await.map_err(|e| match &e {
        KmipError::Transport { why, .. } if is_alert(why) => E::ClientRejected {
            address: at.clone(),
            why: why.clone(),
        },
        KmipError::Failed { .. } => E::Version {
            address: at.clone(),
            why: format!(
                "refused Discover Versions in KMIP 1.1 ({e}): it speaks only KMIP 1.0; the \
                 cluster needs 1.2 or later"
            ),
        },
        _ => E::Protocol {
            address: at.clone(),
            why: e.to_string(),
        },
    })?;
    let usable = |v: &&ProtocolVersion| **v >= ProtocolVersion::V1_2 && **v <= ADMIN_NEWEST;
    let Some(admin_version) = versions.iter().filter(usable).max().copied() else {
        let names: Vec<String> = versions.iter().map(|v| v.to_string()).collect();
        let spoken = if names.is_empty() {
            "names no protocol version".to_string()
        } else {
            format!("offers only KMIP {}", names.join(", "))
        };
        let why = if versions.iter().any(|v| *v > ADMIN_NEWEST) {
            format!("{spoken}: this harness administers keys in KMIP 1.2 to 1.4")
        } else {
            format!("{spoken}: the cluster needs KMIP 1.2 or later")
        };
        return Err(E::Version { address: at, why });
    };

    if let Some(uid) = key_uid {
        let mut admin = admin.with_version(admin_version);
        let key = |why: String| E::Key {
            address: at.clone(),
            why,
        };
        match admin.state(uid).await {
            Ok(s) if s == state::ACTIVE => {}
            Ok(s) => {
                return Err(key(format!(
                    "key UID {uid} is {}, not Active: the cluster can neither encrypt nor \
                     decrypt with it",
                    state::name(s)
                )))
            }
            // PyKMIP answers Permission Denied for another client's object.
            Err(e)
                if matches!(
                    e.reason(),
                    Some(result_reason::ITEM_NOT_FOUND | result_reason::PERMISSION_DENIED)
                ) =>
            {
                return Err(key(format!(
                    "key UID {uid} is unknown to this client certificate ({e})"
                )))
            }
            Err(e) => return Err(key(format!("cannot read the state of key UID {uid}: {e}"))),
        }
    }
    Ok(KmipInfo {
        addr,
        server_name: host,
        versions,
        admin_version,
    })
}

/// Whose fault a failed handshake was: a certificate this side refused, one the server
/// refused (an alert it sent), or something else.
fn tls_failure(address: &str, host: &str, e: &std::io::Error) -> KmipPreflightError {
    use rustls::{CertificateError, Error};
    use KmipPreflightError as E;
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<Error>());
    let (address, text) = (address.to_string(), e.to_string());
    match inner {
        Some(Error::InvalidCertificate(ce)) => {
            let why = match ce {
                // A CA of the same name but another key: the signature does not verify.
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    "it is not signed by the CA given (--ca-cert)".to_string()
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    format!("it is for another name: it does not name {host}")
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "it has expired".to_string()
                }
                _ => text,
            };
            E::ServerCertificate { address, why }
        }
        Some(Error::AlertReceived(_)) => E::ClientRejected { address, why: text },
        _ if is_alert(&text) => E::ClientRejected { address, why: text },
        _ => E::Tls { address, why: text },
    }
}

/// Whether a transport error is a TLS alert the server sent (how a server refuses a
/// client certificate; in TLS 1.3 it arrives after the client's handshake completed).
fn is_alert(why: &str) -> bool {
    why.contains("received fatal alert")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(host_of("127.0.0.1:5696"), Ok(("127.0.0.1".into(), 5696)));
        assert_eq!(host_of("[::1]:5696"), Ok(("::1".into(), 5696)));
        assert_eq!(host_of("kms.example:1"), Ok(("kms.example".into(), 1)));
        assert!(host_of("kms.example").is_err());
        assert!(host_of(":5696").is_err());
        assert!(host_of("kms:0").is_err());
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let pki = crate::live::pykmip::LivePki::generate(&["c"]).unwrap();
        let c = &pki.clients["c"];
        let address = format!("127.0.0.1:{port}");
        let e = check(&address, &pki.ca_pem, &c.cert_pem, &c.key_pem, None)
            .await
            .unwrap_err();
        assert!(matches!(e, KmipPreflightError::Unreachable { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("the KMIP server at {address} is unreachable: ")),
            "{e}"
        );
    }

    /// A KMIP server over real mutual TLS that answers every request with a Discover
    /// Versions answer naming `versions`; its address.
    async fn old_server(
        pki: &crate::live::pykmip::LivePki,
        versions: Vec<ProtocolVersion>,
    ) -> String {
        use tokio::io::AsyncWriteExt;
        use ttlv::enums::operation;
        use ttlv::{tag, Item, Limits, ResponseItem, ResponseMessage};
        let env = cluster::tls::TlsEnv::real();
        let config = kms_sim::tls::server_config(
            env.provider,
            env.time,
            &pki.ca_pem,
            &pki.server.cert_pem,
            pki.server.key_pem.expose(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = kms_sim::tls::accept(config, tcp).await.unwrap();
            while let Ok(Some(_)) = ttlv::read_frame(&mut tls, Limits::default()).await {
                let payload = versions.iter().map(|v| v.to_item()).collect();
                let answer = ResponseMessage {
                    version: ProtocolVersion::V1_1,
                    time_stamp: 0,
                    batch: vec![ResponseItem {
                        operation: Some(operation::DISCOVER_VERSIONS),
                        id: None,
                        result: Ok(Some(Item::structure(tag::RESPONSE_PAYLOAD, payload))),
                    }],
                };
                tls.write_all(&answer.encode()).await.unwrap();
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_server_of_kmip_1_1_and_1_0_only_is_refused_by_name() {
        let pki = crate::live::pykmip::LivePki::generate(&["c"]).unwrap();
        let address = old_server(&pki, vec![ProtocolVersion::V1_1, ProtocolVersion::V1_0]).await;
        let c = &pki.clients["c"];
        let e = check(&address, &pki.ca_pem, &c.cert_pem, &c.key_pem, None)
            .await
            .unwrap_err();
        assert!(matches!(e, KmipPreflightError::Version { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "the KMIP server at {address} offers only KMIP 1.1, 1.0: the cluster needs \
                 KMIP 1.2 or later"
            )
        );
    }
}
