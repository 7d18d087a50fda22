//! The KMS connector: the only way a node touches key-encryption keys.
//!
//! A connector wraps DEKs (sends them to the KMS to be encrypted under its key) and
//! unwraps them again. Only the wrapped form ever leaves the node's memory.

mod each;
mod kmip;
mod vault;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dek::Dek;
use crate::http::{HttpClient, HttpError};
use crate::net::{BoxFuture, Dialer};
use crate::secret::Secret;

pub use each::unwrap_each;
pub use kmip::{parse_wrapping, wrapping_key, KmipConnector, KmipRandom, KmipTransport, Wrapping};
pub use vault::VaultConnector;

/// A DEK as the KMS wrapped it, and the key version that did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDek {
    /// Vault: `vault:v<N>:<base64>`. KMIP: `kmip:<key uid>:<base64(iv || ciphertext || tag)>`
    /// with `key_version` 0 (KMIP keys do not version; a new key has a new UID).
    pub ciphertext: String,
    pub key_version: u64,
}

/// The KMS configuration `security kms set` commits to the config table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KmsConfig {
    Vault(VaultConfig),
    Kmip(KmipConfig),
}

/// A KMIP server reached over mutual TLS: the cluster's client certificate is what the
/// server knows it by, so the certificate and its key are the credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmipConfig {
    /// `host:port`, the port filled in (5696) when the admin left it out.
    pub address: String,
    /// The Unique Identifier of the symmetric key that wraps DEKs.
    pub key_uid: String,
    pub client_cert_pem: String,
    pub client_key_pem: Secret,
    /// The CA that signed the server's certificate; `None` trusts the usual roots.
    pub ca_cert_pem: Option<String>,
}

/// KMIP's registered port.
pub const KMIP_DEFAULT_PORT: u16 = 5696;

/// Certificates are public but long: shown by size, so a config in a log stays one line.
impl fmt::Debug for KmipConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmipConfig")
            .field("address", &self.address)
            .field("key_uid", &self.key_uid)
            .field(
                "client_cert_pem",
                &format_args!("<{} bytes>", self.client_cert_pem.len()),
            )
            .field("client_key_pem", &self.client_key_pem)
            .field(
                "ca_cert_pem",
                &self
                    .ca_cert_pem
                    .as_ref()
                    .map(|c| format!("<{} bytes>", c.len())),
            )
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultConfig {
    /// `http://host:port`, without `/v1`.
    pub url: String,
    pub key_name: String,
    pub transit_path: String,
    pub auth_path: String,
    pub namespace: Option<String>,
    pub auth: VaultAuth,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum VaultAuth {
    Token { token: Secret },
    AppRole { role_id: String, secret_id: Secret },
}

impl VaultAuth {
    /// As `weka security kms` shows it.
    pub fn method_name(&self) -> &'static str {
        match self {
            VaultAuth::Token { .. } => "Token",
            VaultAuth::AppRole { .. } => "RoleId/SecretId",
        }
    }
}

impl KmsConfig {
    /// The same KMS and credentials, another key.
    pub fn with_key(&self, key: &str) -> KmsConfig {
        match self {
            KmsConfig::Vault(v) => KmsConfig::Vault(VaultConfig {
                key_name: key.to_string(),
                ..v.clone()
            }),
            KmsConfig::Kmip(k) => KmsConfig::Kmip(KmipConfig {
                key_uid: key.to_string(),
                ..k.clone()
            }),
        }
    }

    pub fn key_name(&self) -> &str {
        match self {
            KmsConfig::Vault(v) => &v.key_name,
            KmsConfig::Kmip(k) => &k.key_uid,
        }
    }

    /// One line, with no credential in it.
    pub fn describe(&self) -> String {
        match self {
            KmsConfig::Vault(v) => format!(
                "vault {} key {} ({})",
                v.url,
                v.key_name,
                v.auth.method_name()
            ),
            KmsConfig::Kmip(k) => format!("kmip {} key {}", k.address, k.key_uid),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum KmsError {
    #[error("KMS unreachable: {0}")]
    Unreachable(String),
    #[error("KMS did not answer in time: {0}")]
    Timeout(String),
    #[error("KMS is sealed")]
    Sealed,
    #[error("KMS rejected the credentials: {0}")]
    Auth(String),
    #[error("KMS refused the request (HTTP {status}): {message}")]
    Refused { status: u16, message: String },
    #[error("KMS answered with something unreadable: {0}")]
    Malformed(String),
    #[error("KMS probe failed: a test DEK did not unwrap to itself")]
    ProbeMismatch,
    /// The KMS speaks no protocol version this cluster does.
    #[error("KMS not supported: {0}")]
    Unsupported(String),
    /// A KMIP operation answered with a failure result.
    #[error("KMIP {operation} failed ({reason}): {message}")]
    KmipFailure {
        operation: String,
        reason: String,
        message: String,
    },
}

impl From<HttpError> for KmsError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Timeout { .. } => KmsError::Timeout(e.to_string()),
            HttpError::BadUrl(_) | HttpError::Garbled { .. } => KmsError::Malformed(e.to_string()),
            _ => KmsError::Unreachable(e.to_string()),
        }
    }
}

/// Wrap, unwrap, rewrap (all batched), and a probe that proves the KMS is usable.
pub trait KmsConnector: Send + Sync {
    /// Health, login, and a test wrap and unwrap: `security kms set` refuses a KMS
    /// that fails it.
    fn probe(&self) -> BoxFuture<'_, Result<(), KmsError>>;
    fn wrap<'a>(&'a self, deks: &'a [Dek]) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>>;
    fn unwrap<'a>(&'a self, wrapped: &'a [WrappedDek])
        -> BoxFuture<'a, Result<Vec<Dek>, KmsError>>;
    fn rewrap<'a>(
        &'a self,
        wrapped: &'a [WrappedDek],
    ) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>>;
}

/// How long one KMS exchange may take before it counts as a failure.
pub const KMS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds the connector for a configuration, over the node's network: Vault over HTTP; a
/// KMIP server over mutual TLS built from the configuration's certificates and the
/// dialer's TLS environment (seeded in a simulated run), its IVs from that environment's
/// randomness. Certificates that do not load give a connector that refuses every call
/// with the reason, so `security kms set kmip` fails its probe and commits nothing.
pub fn connect(config: &KmsConfig, dialer: Arc<dyn Dialer>) -> Arc<dyn KmsConnector> {
    connect_planted(config, dialer, false)
}

/// [`connect`], with the planted bug `kmip-iv-counter` when `iv_counter` is set: the KMIP
/// IVs come from a counter that starts at zero, not from the random source.
pub fn connect_planted(
    config: &KmsConfig,
    dialer: Arc<dyn Dialer>,
    iv_counter: bool,
) -> Arc<dyn KmsConnector> {
    match config {
        KmsConfig::Vault(v) => Arc::new(VaultConnector::new(
            v.clone(),
            HttpClient::new(dialer, KMS_REQUEST_TIMEOUT),
        )),
        KmsConfig::Kmip(k) => match kmip_transport(k, &dialer) {
            Ok(transport) => {
                let env = dialer.tls();
                if iv_counter {
                    let next = std::sync::atomic::AtomicU64::new(0);
                    let counting: KmipRandom = Arc::new(move |buf: &mut [u8]| {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let bytes = n.to_be_bytes();
                        let len = buf.len().min(bytes.len());
                        buf.fill(0);
                        buf[..len].copy_from_slice(&bytes[..len]);
                    });
                    return Arc::new(KmipConnector::new(k.clone(), transport, counting));
                }
                let random: KmipRandom = Arc::new(move |buf: &mut [u8]| {
                    // A source that cannot fill a buffer leaves it as it was; the IV is
                    // then not random, so say it loudly rather than wrap with it.
                    if env.provider.secure_random.fill(buf).is_err() {
                        panic!("the TLS environment's random source failed");
                    }
                });
                let reuse = dialer.reuse_connections();
                Arc::new(KmipConnector::new(k.clone(), transport, random).reusing_streams(reuse))
            }
            Err(why) => Arc::new(NoKmipTransport {
                address: k.address.clone(),
                why,
            }),
        },
    }
}

/// Dials the KMIP server and runs the mutual-TLS handshake, once per stream asked for.
fn kmip_transport(config: &KmipConfig, dialer: &Arc<dyn Dialer>) -> Result<KmipTransport, String> {
    let tls = crate::tls::client_config(
        &dialer.tls(),
        config.ca_cert_pem.as_deref(),
        &config.client_cert_pem,
        config.client_key_pem.expose(),
    )
    .map_err(|e| e.to_string())?;
    let address = config.address.clone();
    // The name the server's certificate must carry: the address without its port.
    let host = match address.rsplit_once(':') {
        Some((host, _)) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        None => address.clone(),
    };
    let dialer = dialer.clone();
    Ok(Arc::new(move || {
        let (tls, host, dial) = (tls.clone(), host.clone(), dialer.dial(&address));
        Box::pin(async move { crate::tls::connect(tls, &host, dial.await?).await })
    }))
}

/// The connector for a KMIP KMS, over `transport` (one TLS stream to the server per call,
/// already authenticated with the config's certificates), drawing IVs from `random`.
pub fn connect_kmip(
    config: &KmipConfig,
    transport: KmipTransport,
    random: KmipRandom,
) -> Arc<dyn KmsConnector> {
    Arc::new(KmipConnector::new(config.clone(), transport, random))
}

/// A KMIP configuration whose certificates do not make a TLS client.
struct NoKmipTransport {
    address: String,
    why: String,
}

impl NoKmipTransport {
    fn refuse<T>(&self) -> BoxFuture<'_, Result<T, KmsError>> {
        let error = KmsError::Unreachable(format!(
            "KMIP server {}: no TLS connection can be made: {}",
            self.address, self.why
        ));
        Box::pin(async move { Err(error) })
    }
}

impl KmsConnector for NoKmipTransport {
    fn probe(&self) -> BoxFuture<'_, Result<(), KmsError>> {
        self.refuse()
    }
    fn wrap<'a>(&'a self, _: &'a [Dek]) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
        self.refuse()
    }
    fn unwrap<'a>(&'a self, _: &'a [WrappedDek]) -> BoxFuture<'a, Result<Vec<Dek>, KmsError>> {
        self.refuse()
    }
    fn rewrap<'a>(
        &'a self,
        _: &'a [WrappedDek],
    ) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
        self.refuse()
    }
}
