//! The admin API: one command enum mirroring the WEKA CLI, typed answers, typed errors.

use serde::{Deserialize, Serialize};

use std::fmt;

use crate::kms::{KmipConfig, KmsConfig, KmsError, VaultAuth, VaultConfig, KMIP_DEFAULT_PORT};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum AdminCommand {
    /// `weka security kms set vault <url> <key-name> ...`
    KmsSet(KmsSetVault),
    /// `weka security kms`
    KmsShow,
    /// `weka security kms reset` (older: `unset`): the KMS configuration removed, refused
    /// while anything encrypted depends on it.
    KmsReset,
    /// `weka security kms rewrap`
    KmsRewrap,
    /// `weka security kms rewrap --all`: the cluster key's filesystems, then those on
    /// keys of their own, each key's DEKs wrapped by its newest version (Vault).
    KmsRewrapAll,
    /// `weka security kms rewrap --convert-to-cluster-key-on-fs` (with or without
    /// `--all`): the cluster key's filesystems rewrapped, then every filesystem on a key
    /// of its own moved to the cluster key (Vault).
    KmsRewrapConvert,
    /// `weka fs kms-rewrap <name>`: one filesystem's DEK wrapped by the newest version of
    /// its key, the cluster's or its own (Vault).
    FsKmsRewrap { name: String },
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
    /// `weka fs create <name> <group> <capacity> [--encrypted [--kms-key-identifier <key>]]`
    FsCreate {
        name: String,
        capacity_gib: u64,
        encrypted: bool,
        /// A key of its own (`--kms-key-identifier`), reached with the cluster's KMS
        /// address and credentials; `None`: the cluster key. Left out of the wire form
        /// when `None`, so commands without it serialize as they always did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kms_key: Option<String>,
    },
    /// `weka fs`
    FsList,
    /// `weka fs update <name> --kms-key-identifier <key>` (or, with `None`,
    /// `--use-cluster-kms-key-identifier`): re-wraps the DEK with another key.
    FsUpdate {
        name: String,
        kms_key: Option<String>,
    },
    /// `weka security kms set kmip <host:port> <key-uid> --client-cert F --client-key F`
    KmsSetKmip(KmsSetKmip),
    /// `weka security kms rewrap --new-key-uid <uid>`: a KMIP KMS's DEKs moved to a new key.
    KmsRewrapTo { new_key_uid: String },
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

/// The arguments of `security kms set kmip`, before they are checked: the certificates and
/// key as their files held them (the CLI names files; a backend needs their contents).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KmsSetKmip {
    pub address: String,
    pub key_uid: String,
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<Secret>,
    pub ca_cert_pem: Option<String>,
    /// Vault-only flags the admin gave, by name without `--` (their values are dropped
    /// unread), so that the refusal can name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vault_flags: Vec<String>,
}

/// Certificates are shown by size and the key not at all, so a command in a log stays short.
impl fmt::Debug for KmsSetKmip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = |pem: &Option<String>| pem.as_ref().map(|p| format!("<{} bytes>", p.len()));
        f.debug_struct("KmsSetKmip")
            .field("address", &self.address)
            .field("key_uid", &self.key_uid)
            .field("client_cert_pem", &size(&self.client_cert_pem))
            .field("client_key_pem", &self.client_key_pem)
            .field("ca_cert_pem", &size(&self.ca_cert_pem))
            .field("vault_flags", &self.vault_flags)
            .finish()
    }
}

/// What a PEM file given to `security kms set kmip` must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemKind {
    /// `--client-cert`, `--ca-cert`: certificates, and no private key (they are stored
    /// and shown as public).
    Certificate,
    /// `--client-key`.
    PrivateKey,
}

impl PemKind {
    /// Why `text` is not this kind of PEM, without quoting any of it.
    pub fn check(self, text: &str) -> Result<(), String> {
        let private = text.contains("PRIVATE KEY-----");
        match self {
            PemKind::Certificate if !text.contains("-----BEGIN CERTIFICATE-----") => {
                Err("holds no PEM certificate (no -----BEGIN CERTIFICATE----- line)".into())
            }
            PemKind::Certificate if private => {
                Err("also holds a private key; give the key alone with --client-key".into())
            }
            PemKind::PrivateKey if !(text.contains("-----BEGIN ") && private) => {
                Err("holds no PEM private key (no -----BEGIN ... PRIVATE KEY----- line)".into())
            }
            _ => Ok(()),
        }
    }
}

impl KmsSetKmip {
    /// `security kms set kmip <address> <key-uid>` with no flags yet.
    pub fn new(address: impl Into<String>, key_uid: impl Into<String>) -> Self {
        KmsSetKmip {
            address: address.into(),
            key_uid: key_uid.into(),
            client_cert_pem: None,
            client_key_pem: None,
            ca_cert_pem: None,
            vault_flags: Vec::new(),
        }
    }

    /// SPEC's rules: `host:port` with no scheme (port 5696 if left out), the client
    /// certificate and key both given, Vault's flags refused by name.
    pub fn into_config(self) -> Result<KmsConfig, AdminError> {
        if let Some(flag) = self.vault_flags.first() {
            return Err(AdminError::Usage(format!(
                "--{flag} is a Vault flag; a KMIP KMS does not take it (it authenticates with --client-cert and --client-key)"
            )));
        }
        let address = kmip_address(&self.address)?;
        if self.key_uid.is_empty() || self.key_uid.contains(char::is_whitespace) {
            return Err(AdminError::Usage(format!(
                "the key UID {:?} must be non-empty and hold no spaces",
                self.key_uid
            )));
        }
        let usage = |flag: &str, why: String| AdminError::Usage(format!("--{flag} {why}"));
        let cert = self.client_cert_pem.ok_or_else(|| {
            usage(
                "client-cert",
                "is required for a KMIP KMS: the certificate the server knows this cluster by"
                    .into(),
            )
        })?;
        let key = self.client_key_pem.ok_or_else(|| {
            usage(
                "client-key",
                "is required for a KMIP KMS: the private key of --client-cert".into(),
            )
        })?;
        PemKind::Certificate
            .check(&cert)
            .map_err(|why| usage("client-cert", why))?;
        PemKind::PrivateKey
            .check(key.expose())
            .map_err(|why| usage("client-key", why))?;
        if let Some(ca) = &self.ca_cert_pem {
            PemKind::Certificate
                .check(ca)
                .map_err(|why| usage("ca-cert", why))?;
        }
        Ok(KmsConfig::Kmip(KmipConfig {
            address,
            key_uid: self.key_uid,
            client_cert_pem: cert,
            client_key_pem: key,
            ca_cert_pem: self.ca_cert_pem,
        }))
    }
}

/// A KMIP server's `host:port` (an IPv6 host in brackets), the port 5696 if left out.
pub fn kmip_address(address: &str) -> Result<String, AdminError> {
    let usage = |why: &str| {
        AdminError::Usage(format!(
            "KMIP address {address:?} {why}: give host:port (port {KMIP_DEFAULT_PORT} if left out)"
        ))
    };
    if address.contains("://") {
        return Err(usage("takes no scheme such as https://"));
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| usage("opens a [ it does not close"))?;
        let v6_ok = !v6.is_empty()
            && v6
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if !v6_ok {
            return Err(usage("has no IPv6 address between its brackets"));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| usage("has something after ]"))?,
            ),
        };
        (&address[..v6.len() + 2], port)
    } else {
        match address.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(usage(
                    "holds more than one ':' (an IPv6 address goes in brackets)",
                ))
            }
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')));
    if !host_ok {
        return Err(usage("has no valid host name"));
    }
    let port = match port {
        None => KMIP_DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.chars().all(|c| c.is_ascii_digit()) => n,
            _ => return Err(usage("has a port that is not a number from 1 to 65535")),
        },
    };
    Ok(format!("{host}:{port}"))
}

/// Which rewrap a KMS takes: a Vault key gets a new version in place (no new key), a KMIP
/// key does not version, so its DEKs move to another key named by UID.
pub fn check_rewrap(config: &KmsConfig, new_key_uid: Option<&str>) -> Result<(), AdminError> {
    match (config, new_key_uid) {
        (KmsConfig::Vault(_), None) => Ok(()),
        (KmsConfig::Vault(_), Some(_)) => Err(AdminError::Usage(
            "--new-key-uid is for a KMIP KMS; a Vault key rotates in place: use `security kms rewrap`"
                .into(),
        )),
        (KmsConfig::Kmip(_), None) => Err(AdminError::Usage(
            "a KMIP key does not version: give the new key with `security kms rewrap --new-key-uid <uid>`"
                .into(),
        )),
        (KmsConfig::Kmip(_), Some(uid)) if uid.is_empty() || uid.contains(char::is_whitespace) => {
            Err(AdminError::Usage(format!(
                "the new key UID {uid:?} must be non-empty and hold no spaces"
            )))
        }
        (KmsConfig::Kmip(_), Some(_)) => Ok(()),
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
        /// The cluster's KMS, for the KMS columns of `weka fs`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kms: Option<KmsSummary>,
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
    /// The AppRole's role-id (an identifier, not a secret; the secret-id is never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsSummary {
    pub name: String,
    /// `READY`, or `LOCKED` while this backend lacks the DEK.
    pub status: String,
    pub encrypted: bool,
    pub kms_key: Option<String>,
    pub key_version: Option<u64>,
    #[serde(default)]
    pub capacity_gib: u64,
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
    /// `security kms set` over a live configuration that would strand committed DEKs.
    #[error("security kms set refused: {0}; the KMS configuration was not changed")]
    KmsChangeRefused(String),
    /// `security kms reset` while encrypted filesystems or snapshots depend on the KMS.
    #[error(
        "security kms reset refused: {0}; the KMS configuration was not changed \
         (--allow-downgrade and --force are not modelled)"
    )]
    KmsResetRefused(String),
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
    /// This backend's config-table replica stopped on a record it could not verify: it
    /// serves nothing that needs the config table (ask another backend).
    #[error(
        "this backend's config-table replica is stopped: its {record} record failed \
         verification on disk; send the command to another backend"
    )]
    ConfigReplicaStopped { record: String },
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
                role_id: match &v.auth {
                    VaultAuth::AppRole { role_id, .. } => Some(role_id.clone()),
                    VaultAuth::Token { .. } => None,
                },
            },
            KmsConfig::Kmip(k) => KmsSummary {
                kind: "kmip".into(),
                address: k.address.clone(),
                key: k.key_uid.clone(),
                auth_method: "Client certificate".into(),
                namespace: None,
                role_id: None,
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
        let KmsConfig::Vault(v) = a.into_config().unwrap() else {
            panic!("a Vault command makes a Vault config");
        };
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

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n";

    fn kmip(address: &str) -> KmsSetKmip {
        let mut a = KmsSetKmip::new(address, "1");
        a.client_cert_pem = Some(CERT.into());
        a.client_key_pem = Some(Secret::new(KEY));
        a
    }

    fn usage(result: Result<KmsConfig, AdminError>) -> String {
        match result {
            Err(AdminError::Usage(why)) => why,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn kmip_address_gets_the_default_port() {
        let KmsConfig::Kmip(k) = kmip("kms.example").into_config().unwrap() else {
            panic!("a KMIP command makes a KMIP config");
        };
        assert_eq!(k.address, "kms.example:5696");
        assert_eq!(kmip_address("10.0.0.5:15696").unwrap(), "10.0.0.5:15696");
        assert_eq!(kmip_address("[fd00::5]").unwrap(), "[fd00::5]:5696");
        assert_eq!(kmip_address("[fd00::5]:7000").unwrap(), "[fd00::5]:7000");
    }

    #[test]
    fn kmip_address_refuses_schemes_and_bad_syntax() {
        for bad in ["https://kms:5696", "kmip://kms", "tcp://kms"] {
            assert!(
                usage(kmip(bad).into_config()).contains("no scheme"),
                "{bad}"
            );
        }
        for bad in [
            "",
            ":5696",
            "kms:",
            "kms:0",
            "kms:70000",
            "kms:+5",
            "fd00::5",
            "[fd00::5",
            "kms/x:5696",
            "[]:1",
            "[fd00::5]x",
        ] {
            assert!(kmip_address(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kmip_needs_certificate_and_key() {
        let mut a = kmip("kms");
        a.client_key_pem = None;
        let why = usage(a.into_config());
        assert!(
            why.contains("--client-key") && why.contains("required"),
            "{why}"
        );
        let mut a = kmip("kms");
        a.client_cert_pem = None;
        assert!(usage(a.into_config()).contains("--client-cert"));
        // Swapped files: the error names the flag and quotes nothing.
        let mut a = kmip("kms");
        a.client_cert_pem = Some(KEY.into());
        let why = usage(a.into_config());
        assert!(
            why.starts_with("--client-cert") && !why.contains("c2VjcmV0"),
            "{why}"
        );
        let mut a = kmip("kms");
        a.client_key_pem = Some(Secret::new(CERT));
        assert!(usage(a.into_config()).starts_with("--client-key"));
        let mut a = kmip("kms");
        a.ca_cert_pem = Some("not pem".into());
        assert!(usage(a.into_config()).starts_with("--ca-cert"));
    }

    #[test]
    fn kmip_refuses_vault_flags_by_name() {
        for flag in ["token", "role-id", "namespace", "transit-path"] {
            let mut a = kmip("kms");
            a.vault_flags.push(flag.into());
            let why = usage(a.into_config());
            assert!(
                why.contains(&format!("--{flag}")) && why.contains("Vault"),
                "{why}"
            );
        }
        let mut a = kmip("kms");
        a.key_uid = String::new();
        assert!(usage(a.into_config()).contains("key UID"));
    }

    #[test]
    fn kmip_describe_and_debug_hold_no_key_material() {
        let config = kmip("kms").into_config().unwrap();
        assert_eq!(config.describe(), "kmip kms:5696 key 1");
        assert_eq!(config.key_name(), "1");
        assert_eq!(config.with_key("2").key_name(), "2");
        let shown = format!(
            "{} {config:?} {:?} {:?}",
            config.describe(),
            kmip("kms"),
            KmsSummary::of(&config)
        );
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("PRIVATE"),
            "{shown}"
        );
        let summary = KmsSummary::of(&config);
        assert_eq!(
            (
                summary.kind.as_str(),
                summary.address.as_str(),
                summary.key.as_str()
            ),
            ("kmip", "kms:5696", "1")
        );
    }

    #[test]
    fn rewrap_forms_follow_the_kms() {
        let vault = {
            let mut a = args();
            a.token = Some(Secret::new("t"));
            a.into_config().unwrap()
        };
        let kmip = kmip("kms").into_config().unwrap();
        assert!(check_rewrap(&vault, None).is_ok());
        let why = check_rewrap(&vault, Some("2")).unwrap_err().to_string();
        assert!(
            why.contains("--new-key-uid") && why.contains("Vault"),
            "{why}"
        );
        let why = check_rewrap(&kmip, None).unwrap_err().to_string();
        assert!(why.contains("--new-key-uid"), "{why}");
        assert!(check_rewrap(&kmip, Some("2")).is_ok());
        assert!(check_rewrap(&kmip, Some("")).is_err());
    }

    /// Trace hashes are computed over these forms: they must not change.
    #[test]
    fn existing_forms_serialize_as_before() {
        let mut a = args();
        a.token = Some(Secret::new("t"));
        let vault = a.clone().into_config().unwrap();
        assert_eq!(
            serde_json::to_string(&vault).unwrap(),
            r#"{"type":"vault","url":"http://vault:8200","key_name":"weka-key","transit_path":"transit","auth_path":"approle","namespace":null,"auth":{"method":"token","token":"t"}}"#
        );
        assert_eq!(
            serde_json::to_string(&AdminCommand::KmsRewrap).unwrap(),
            r#"{"cmd":"kms_rewrap"}"#
        );
        assert_eq!(
            serde_json::to_string(&AdminCommand::KmsSet(a)).unwrap(),
            r#"{"cmd":"kms_set","url":"http://vault:8200","key_name":"weka-key","token":"t","role_id":null,"secret_id":null,"namespace":null,"transit_path":null,"auth_path":null}"#
        );
        let kmip = kmip("kms").into_config().unwrap();
        let back: KmsConfig = serde_json::from_str(&serde_json::to_string(&kmip).unwrap()).unwrap();
        assert_eq!(back, kmip);
    }
}
