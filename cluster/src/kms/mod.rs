//! The KMS connector: the only way a node touches key-encryption keys.
//!
//! A connector wraps DEKs (sends them to the KMS to be encrypted under its key) and
//! unwraps them again. Only the wrapped form ever leaves the node's memory.

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

pub use kmip::{wrapping_key, KmipConnector, KmipRandom, KmipTransport};
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
            HttpError::BadUrl(_) => KmsError::Malformed(e.to_string()),
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

/// Builds the connector for a configuration, over the node's network.
///
/// A KMIP KMS needs a TLS transport built from its certificates, which a bare [`Dialer`]
/// cannot give: until a node is handed one, its KMIP connector refuses every call with
/// [`KmsError::Unreachable`] (so `security kms set kmip` fails its probe and commits
/// nothing). [`connect_kmip`] builds the working one.
pub fn connect(config: &KmsConfig, dialer: Arc<dyn Dialer>) -> Arc<dyn KmsConnector> {
    match config {
        KmsConfig::Vault(v) => Arc::new(VaultConnector::new(
            v.clone(),
            HttpClient::new(dialer, KMS_REQUEST_TIMEOUT),
        )),
        KmsConfig::Kmip(k) => Arc::new(NoKmipTransport {
            address: k.address.clone(),
        }),
    }
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

/// A KMIP configuration on a node that has no TLS transport for it.
struct NoKmipTransport {
    address: String,
}

impl NoKmipTransport {
    fn refuse<T>(&self) -> BoxFuture<'_, Result<T, KmsError>> {
        let error = KmsError::Unreachable(format!(
            "KMIP server {}: this node has no TLS transport for KMIP",
            self.address
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
