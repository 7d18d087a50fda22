//! The KMS connector: the only way a node touches key-encryption keys.
//!
//! A connector wraps DEKs (sends them to the KMS to be encrypted under its key) and
//! unwraps them again. Only the wrapped form ever leaves the node's memory.

mod vault;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dek::Dek;
use crate::http::{HttpClient, HttpError};
use crate::net::{BoxFuture, Dialer};
use crate::secret::Secret;

pub use vault::VaultConnector;

/// A DEK as the KMS wrapped it, and the key version that did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedDek {
    /// Vault: `vault:v<N>:<base64>`.
    pub ciphertext: String,
    pub key_version: u64,
}

/// The KMS configuration `security kms set` commits to the config table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum KmsConfig {
    Vault(VaultConfig),
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
        }
    }

    pub fn key_name(&self) -> &str {
        match self {
            KmsConfig::Vault(v) => &v.key_name,
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
pub fn connect(config: &KmsConfig, dialer: Arc<dyn Dialer>) -> Arc<dyn KmsConnector> {
    match config {
        KmsConfig::Vault(v) => Arc::new(VaultConnector::new(
            v.clone(),
            HttpClient::new(dialer, KMS_REQUEST_TIMEOUT),
        )),
    }
}
