//! The admin API: one command enum mirroring the WEKA CLI, typed answers, typed errors.

use serde::{Deserialize, Serialize};

use crate::kms::{KmsConfig, KmsError, VaultAuth, VaultConfig};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum AdminCommand {
    /// `weka security kms set vault <url> <key-name> ...`
    KmsSet(KmsSetVault),
    /// `weka security kms`
    KmsShow,
    /// `weka security kms rewrap`
    KmsRewrap,
    /// `weka fs snapshot`: the snapshots uploaded, with the key version of each.
    SnapshotList,
    /// `weka fs snapshot upload <fs> <snapshot>`
    SnapshotUpload { fs: String, snapshot: String },
    /// `weka fs download <name> <group> <capacity> <ssd-capacity> <obs-bucket> <locator>`
    FsDownload {
        name: String,
        capacity_gib: u64,
        bucket: String,
        locator: String,
    },
    /// `weka fs create <name> <group> <capacity> [--encrypted]`
    FsCreate {
        name: String,
        capacity_gib: u64,
        encrypted: bool,
    },
    /// `weka fs`
    FsList,
    /// `weka fs update <name> --kms-key-identifier <key>` (or, with `None`,
    /// `--use-cluster-kms-key-identifier`): re-wraps the DEK with another key.
    FsUpdate {
        name: String,
        kms_key: Option<String>,
    },
    /// Write one block of a filesystem (the data path, not a WEKA CLI command).
    Write {
        fs: String,
        block: u64,
        data: Vec<u8>,
    },
    /// Read one block back.
    Read { fs: String, block: u64 },
    /// This backend's view: leader, ready and locked filesystems, alerts.
    Status,
}

/// The arguments of `security kms set vault`, before they are checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsSetVault {
    pub url: String,
    pub key_name: String,
    pub token: Option<Secret>,
    pub role_id: Option<String>,
    pub secret_id: Option<Secret>,
    pub namespace: Option<String>,
    pub transit_path: Option<String>,
    pub auth_path: Option<String>,
}

impl KmsSetVault {
    /// `security kms set vault <url> <key-name>` with no flags yet.
    pub fn new(url: impl Into<String>, key_name: impl Into<String>) -> Self {
        KmsSetVault {
            url: url.into(),
            key_name: key_name.into(),
            token: None,
            role_id: None,
            secret_id: None,
            namespace: None,
            transit_path: None,
            auth_path: None,
        }
    }

    /// WEKA's rules: a token or a role-id with its secret-id, never both.
    pub fn into_config(self) -> Result<KmsConfig, AdminError> {
        let auth = match (self.token, self.role_id, self.secret_id) {
            (Some(_), Some(_), _) => {
                return Err(AdminError::Usage(
                    "--token and --role-id exclude each other; give one".into(),
                ))
            }
            (Some(token), None, None) => VaultAuth::Token { token },
            (Some(_), None, Some(_)) => {
                return Err(AdminError::Usage(
                    "--secret-id goes with --role-id, not with --token".into(),
                ))
            }
            (None, Some(role_id), Some(secret_id)) => VaultAuth::AppRole { role_id, secret_id },
            (None, Some(_), None) => {
                return Err(AdminError::Usage("--role-id needs --secret-id".into()))
            }
            (None, None, _) => {
                return Err(AdminError::Usage(
                    "give --token, or --role-id with --secret-id".into(),
                ))
            }
        };
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(AdminError::Usage(format!(
                "Vault URL {:?} must start with http:// or https://",
                self.url
            )));
        }
        if self.key_name.is_empty() {
            return Err(AdminError::Usage("the key name is empty".into()));
        }
        if let Some(ns) = &self.namespace {
            validate_namespace(ns)?;
        }
        Ok(KmsConfig::Vault(VaultConfig {
            url: self.url.trim_end_matches('/').to_string(),
            key_name: self.key_name,
            transit_path: self.transit_path.unwrap_or_else(|| "transit".into()),
            auth_path: self.auth_path.unwrap_or_else(|| "approle".into()),
            namespace: self.namespace,
            auth,
        }))
    }
}

/// Vault namespace names WEKA refuses.
pub fn validate_namespace(ns: &str) -> Result<(), AdminError> {
    const RESERVED: [&str; 6] = ["root", "sys", "audit", "auth", "cubbyhole", "identity"];
    if ns.is_empty() || ns.ends_with('/') || ns.contains(' ') || RESERVED.contains(&ns) {
        return Err(AdminError::Usage(format!(
            "namespace {ns:?} is not allowed: it must not be empty, end in '/', hold spaces, or be one of {RESERVED:?}"
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "output", rename_all = "snake_case")]
pub enum AdminOutput {
    Done,
    Kms {
        kms: Option<KmsSummary>,
    },
    FsCreated {
        name: String,
        id: u32,
        key_version: Option<u64>,
    },
    Filesystems {
        filesystems: Vec<FsSummary>,
    },
    Written {
        replicas: Vec<u64>,
    },
    Rewrapped {
        filesystems: usize,
        key_version: Option<u64>,
    },
    SnapshotUploaded {
        bucket: String,
        locator: String,
        blocks: usize,
    },
    Snapshots {
        snapshots: Vec<crate::filesystem::SnapshotRecord>,
    },
    Data {
        data: Vec<u8>,
    },
    Status(NodeStatus),
}

/// `weka security kms` as data: no credential in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsSummary {
    pub kind: String,
    pub address: String,
    pub key: String,
    pub auth_method: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsSummary {
    pub name: String,
    /// `READY`, or `LOCKED` while this backend lacks the DEK.
    pub status: String,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub key_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: u64,
    pub leader: Option<u64>,
    pub ready: Vec<String>,
    pub locked: Vec<String>,
    pub alerts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum AdminError {
    #[error("{0}")]
    Usage(String),
    #[error("encrypted filesystems need a KMS: configure one with `security kms set`")]
    KmsNotConfigured,
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error("filesystem {0} already exists")]
    FsExists(String),
    #[error("no filesystem named {0}")]
    NoSuchFs(String),
    #[error("filesystem {0} is locked: this backend has not unwrapped its key (KMSError)")]
    FsLocked(String),
    #[error("the config table did not commit the change: {0}")]
    NotCommitted(String),
    #[error("block {block} of {fs} is unavailable: {reason}")]
    Unavailable {
        fs: String,
        block: u64,
        reason: String,
    },
    #[error("object store: {0}")]
    ObjectStore(String),
    #[error("snapshot {locator}: {reason}")]
    Snapshot { locator: String, reason: String },
    #[error("block {block} of {fs} failed authentication: stored ciphertext does not decrypt")]
    Corrupt { fs: String, block: u64 },
}

impl KmsSummary {
    pub fn of(config: &KmsConfig) -> Self {
        match config {
            KmsConfig::Vault(v) => KmsSummary {
                kind: "vault".into(),
                address: v.url.clone(),
                key: v.key_name.clone(),
                auth_method: v.auth.method_name().into(),
                namespace: v.namespace.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> KmsSetVault {
        KmsSetVault::new("http://vault:8200", "weka-key")
    }

    #[test]
    fn token_and_role_id_exclude_each_other() {
        let mut a = args();
        a.token = Some(Secret::new("t"));
        a.role_id = Some("r".into());
        a.secret_id = Some(Secret::new("s"));
        assert!(matches!(a.into_config(), Err(AdminError::Usage(_))));
    }

    #[test]
    fn role_id_needs_secret_id() {
        let mut a = args();
        a.role_id = Some("r".into());
        assert!(matches!(a.into_config(), Err(AdminError::Usage(_))));
    }

    #[test]
    fn defaults_fill_in() {
        let mut a = args();
        a.token = Some(Secret::new("t"));
        let KmsConfig::Vault(v) = a.into_config().unwrap();
        assert_eq!(v.transit_path, "transit");
        assert_eq!(v.auth_path, "approle");
    }

    #[test]
    fn reserved_namespaces_refused() {
        for ns in ["sys", "a/", "a b", ""] {
            assert!(validate_namespace(ns).is_err(), "{ns}");
        }
        assert!(validate_namespace("tenant-a").is_ok());
    }
}
