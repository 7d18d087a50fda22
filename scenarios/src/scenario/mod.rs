//! A scenario: the cluster to build, the KMS to run, and the steps to take.
//!
//! Scenarios live as commented TOML files under `scenarios/` (one file each), and can
//! also be built in Rust. Loading is strict: an unknown field or action is an error that
//! names the file, the line and the field.

mod load;

pub use load::LoadError;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::disk::faults::{DiskFaultMode, FaultTarget};
use cluster::hooks::CrashPoint;
use kms_sim::chaos::Fault;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub scenario: Meta,
    #[serde(default)]
    pub cluster: ClusterSpec,
    #[serde(default)]
    pub kms: KmsSpec,
    /// More clusters beside the main one (a disaster-recovery site, say): their own
    /// backends and config table, the same KMS and object store.
    #[serde(
        rename = "extra_cluster",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_clusters: Vec<ExtraCluster>,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seeds this scenario always runs with (a regression found by a sweep keeps the
    /// seed that found it); when empty, the suite's seed range applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<u64>,
    /// For a scenario drawn by the swarm: the knobs that were on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub knobs: BTreeMap<String, String>,
}

impl Meta {
    /// The seeds to run this scenario with: its own (a regression's), else `default`.
    pub fn seeds_or(&self, default: impl IntoIterator<Item = u64>) -> Vec<u64> {
        if self.seeds.is_empty() {
            default.into_iter().collect()
        } else {
            self.seeds.clone()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Number of backend nodes (Raft members).
    #[serde(default = "default_backends")]
    pub backends: u32,
    /// Copies of each data block.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Bytes per data block written by `write` steps.
    #[serde(default = "default_block_size")]
    pub block_size: usize,
    /// Backends that vote on the config table, the first in id order (1 to 7, at most
    /// `backends`); the others are learners. Unset: every backend votes, up to 7.
    #[serde(default)]
    pub voters: Option<u32>,
}

/// The most voters a config table has: more only slows its commits.
pub const MAX_VOTERS: u32 = 7;
/// The most backends a cluster has in a scenario.
pub const MAX_BACKENDS: u32 = 64;
/// The most filesystems one `fs-create` step makes.
pub const MAX_FILESYSTEMS: u32 = 100_000;

impl ClusterSpec {
    /// How many backends vote on the config table.
    pub fn voter_count(&self) -> u32 {
        self.voters.unwrap_or_else(|| default_voters(self.backends))
    }
}

/// Voters of a cluster of `backends` that does not say: every backend, up to
/// [`MAX_VOTERS`].
pub fn default_voters(backends: u32) -> u32 {
    backends.min(MAX_VOTERS)
}

fn default_backends() -> u32 {
    5
}
fn default_replicas() -> u32 {
    2
}
fn default_block_size() -> usize {
    512
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            backends: default_backends(),
            replicas: default_replicas(),
            block_size: default_block_size(),
            voters: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSpec {
    /// `vault` or `kmip`.
    #[serde(rename = "type", default = "default_kms_type")]
    pub kind: KmsKind,
    /// The transit key that wraps the cluster's DEKs.
    #[serde(default = "default_key")]
    pub key: String,
    /// More transit keys the setup creates (and the WEKA policy covers), for clusters
    /// configured with another key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_keys: Vec<String>,
}

fn default_kms_type() -> KmsKind {
    KmsKind::Vault
}
fn default_key() -> String {
    "weka-key".into()
}

impl KmsSpec {
    /// Every transit key the Vault setup creates: the cluster key first.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = vec![self.key.clone()];
        keys.extend(self.extra_keys.iter().cloned());
        keys
    }
}

impl Default for KmsSpec {
    fn default() -> Self {
        KmsSpec {
            kind: KmsKind::Vault,
            key: default_key(),
            extra_keys: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraCluster {
    /// Steps name it with `cluster = "<name>"`; its hosts are `<name>-backend<N>`.
    pub name: String,
    #[serde(default = "default_backends")]
    pub backends: u32,
    #[serde(default = "default_replicas")]
    pub replicas: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KmsKind {
    /// Vault's transit engine, over HTTP.
    Vault,
    /// A KMIP server: TTLV over mutual TLS, keys named by UID.
    Kmip,
}

impl KmsKind {
    /// The KMS's host on the simulated network, which the host group `kms` names.
    pub fn host(self) -> &'static str {
        match self {
            KmsKind::Vault => "vault",
            KmsKind::Kmip => "kmip",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Token,
    Approle,
}

/// What a step that sends an admin command expects of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// The command must succeed.
    #[default]
    Ok,
    /// The command must fail (within its bound, with a typed error).
    Error,
    /// Either; used under faults, where only the oracles judge.
    Any,
}

impl Expect {
    fn is_ok(&self) -> bool {
        *self == Expect::Ok
    }
}

/// One step. Admin commands must succeed unless the step's `expect` says otherwise; the
/// oracles run after each step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// `weka security kms set vault <url> <key> --token ... | --role-id ... --secret-id ...`
    KmsSet {
        auth: Auth,
    },
    /// `weka fs create <name> default <capacity> [--encrypted]`; with `count` > 1 the
    /// filesystems are named `<name>-1` .. `<name>-<count>`.
    FsCreate {
        name: String,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        count: u32,
        #[serde(default)]
        encrypted: bool,
        #[serde(default = "default_capacity")]
        capacity_gib: u64,
        #[serde(default, skip_serializing_if = "Expect::is_ok")]
        expect: Expect,
    },
    /// Writes `blocks` blocks of seeded random data to each selected filesystem, through
    /// backends chosen by the seed. Each acknowledged write must read back later.
    Write {
        #[serde(default = "all")]
        fs: String,
        blocks: u64,
        /// The cluster to write to (the main one by default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
        /// The backends that may serve the writes (all by default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<String>,
        #[serde(default, skip_serializing_if = "Expect::is_ok")]
        expect: Expect,
    },
    /// Reads back every acknowledged block of the selected filesystems and compares.
    ReadVerify {
        #[serde(default = "all")]
        fs: String,
        /// The cluster to read from (the main one by default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
        /// The backends that may serve the reads (all by default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<String>,
        #[serde(default, skip_serializing_if = "Expect::is_ok")]
        expect: Expect,
    },
    /// A WEKA CLI command, as an admin types it (`security kms set vault ...`,
    /// `fs create ...`, `security kms rewrap`). `$VAULT_URL`, `$TOKEN`, `$ROLE_ID` and
    /// `$SECRET_ID` stand for what the Vault setup produced. With `expect_error`, the
    /// command must fail with an error containing that text.
    Weka {
        command: String,
        /// The cluster that runs the command (the main one by default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cluster: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_error: Option<String>,
        #[serde(default, skip_serializing_if = "Expect::is_ok")]
        expect: Expect,
        /// `weka fs` and `weka security kms` only: text their answer, printed as WEKA
        /// prints it (with the command's `-o`, `--filter`, `--no-header`, `--json`), must
        /// contain (a table's rows as lines, columns joined by ` | `).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_output: Option<String>,
    },
    /// Racing admins: WEKA CLI commands sent at once, each by its own admin session to a
    /// different backend (chosen by the seed among those running). Any of them may
    /// succeed or fail, as racing commands may; what was acknowledged must then be in the
    /// config table exactly once, and no acknowledged change lost (the
    /// `acknowledged-effects` check).
    Race {
        commands: Vec<String>,
        /// The cluster key is rotated in the KMS while the commands run (by a KMS admin,
        /// or the KMS's own rotation schedule), at a seeded moment in its first
        /// `RACE_ROTATION_DELAY_MAX`: a wrap may then land under a version older than the
        /// one a racing rewrap moves to.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        kms_rotate: bool,
    },
    /// Power-cycles every backend at once: memory (and every DEK in it) is lost, disks stay.
    RestartAll,
    /// Restarts one backend (1-based).
    Restart {
        backend: u32,
    },
    /// Crashes one backend and leaves it down (until `start`, or the liveness phase).
    Crash {
        backend: u32,
    },
    /// Starts a crashed backend again (every crashed backend if none is named).
    Start {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<u32>,
    },
    /// Arms a crash: the next time `backend` (any backend if omitted) reaches `point`,
    /// it is crashed right there and stays down.
    CrashAt {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<u32>,
        point: CrashPoint,
    },
    /// Turns a KMS fault on (`mode = "none"` turns it off).
    KmsFault {
        mode: Fault,
        #[serde(
            default,
            with = "opt_duration",
            skip_serializing_if = "Option::is_none"
        )]
        delay: Option<Duration>,
        /// Vault only, with a protocol fault (`error-500`, `error-503`, `rate-limit`): the
        /// fault answers requests on this one key and no other (one tenant's key out of
        /// reach, as a locked or unavailable namespace is).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Turns a fault on in front of the snapshot object store (`mode = "none"` turns it
    /// off). The store speaks no protocol of its own faults: only the byte-level modes
    /// (refuse, hang, slow, malformed, truncated).
    ObjectStoreFault {
        mode: Fault,
        #[serde(
            default,
            with = "opt_duration",
            skip_serializing_if = "Option::is_none"
        )]
        delay: Option<Duration>,
    },
    /// Storage faults on a backend's disk, on its data blocks, its config table's Raft
    /// records, or both (`target`): `mode` (`bit-rot`, `latent-sector-error`,
    /// `misdirected-write`, `lost-write`) meets each read or write there with
    /// `probability` (a quarter if not given). The runner's fault atlases keep a
    /// fault-free replica of every block, and an intact config table on a quorum of
    /// backends: a step that would put block faults on as many disks as a block has
    /// replicas, or config faults on more than `(voters - 1) / 2` disks, is skipped, and
    /// says so in the trace. Without `backend`, the atlas picks the disk (seeded): one that
    /// already has faults once no other may.
    DiskFault {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<u32>,
        mode: DiskFaultMode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        probability: Option<f64>,
        /// What the fault meets: `blocks` (the default), `config` (the config table's
        /// records: a backend that meets a damaged one stops its config-table replica and
        /// reports it) or `both`.
        #[serde(default, skip_serializing_if = "FaultTarget::is_default")]
        target: FaultTarget,
    },
    /// Stops the storage faults on a backend's disk (every disk if none is named). Damage
    /// already done stays on the platter until a read repairs it from a good replica.
    DiskHeal {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backend: Option<u32>,
    },
    /// Revokes every token the KMS issued (the root token aside): a cluster that logs in
    /// by AppRole logs in again; one configured with a token is locked out.
    KmsRevokeTokens,
    /// Vault: the admin destroys the AppRole secret-id the cluster was given and revokes
    /// every token (a leaked credential, say), and mints a new secret-id. The cluster's
    /// next login is refused (`KMSError`) until a `kms-set` (or `weka security kms set`
    /// with `$SECRET_ID`) gives it the new one; if none has by the end, the liveness
    /// phase does, as the admin would.
    KmsRevokeSecretId,
    /// KMIP: the KMS's admin revokes the cluster key's newest key (Deactivated): it no
    /// longer wraps, but still unwraps what it wrapped. New encrypted filesystems fail until
    /// a new key and a rewrap to it. (Vault has no such state: refused for Vault.)
    KmsRevokeKey,
    /// `bao operator seal`: every KMS call answers 503 "Vault is sealed".
    KmsSeal,
    KmsUnseal,
    /// The KMS process stops (a crash, a maintenance window): nothing answers at its
    /// address until `kms-start`.
    KmsStop,
    /// The KMS starts again from its storage. Like a real Vault it comes back sealed:
    /// `kms-unseal` follows.
    KmsStart,
    /// Rotates the transit key (`transit/keys/<key>/rotate`), as an admin does before
    /// `security kms rewrap`.
    KmsRotate {
        /// A filesystem's own key, one of `[kms] extra_keys` (Vault only); the cluster key
        /// if left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Raises the key's `min_decryption_version` (to the newest version if not given):
    /// ciphertext from older versions stops decrypting.
    KmsTrim {
        /// A filesystem's own key, one of `[kms] extra_keys` (Vault only); the cluster key
        /// if left out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_decryption_version: Option<u64>,
        /// Trim only if the last rewrap that covers the key was acknowledged (what an
        /// admin who trusts the cluster's answer does): `security kms rewrap` for the
        /// cluster key, `security kms rewrap --all` for any; otherwise the step does
        /// nothing.
        #[serde(default, skip_serializing_if = "is_false")]
        only_after_rewrap: bool,
    },
    /// Cuts the network between two groups of hosts (`kms`, `backends`, `backendN`, or
    /// a comma list); `oneway` cuts only from `a` to `b`.
    Partition {
        a: String,
        b: String,
        #[serde(default, skip_serializing_if = "is_false")]
        oneway: bool,
    },
    /// Holds messages between two groups (they are delivered on `release`).
    Hold {
        a: String,
        b: String,
    },
    Release {
        a: String,
        b: String,
    },
    /// Repairs every partition and releases every hold.
    Heal,
    /// Sets the maximum message latency of every link.
    Latency {
        #[serde(with = "duration_text")]
        max: Duration,
    },
    /// Waits until every backend is up and serves every filesystem (all DEKs unwrapped, no
    /// `KMSError` alert), failing the run if that takes longer than `within`.
    WaitReady {
        #[serde(with = "duration_text")]
        within: Duration,
        /// Filesystems that may stay locked meanwhile (a tenant whose key is out of
        /// reach): every other one must be served, and `KMSError` may stay raised.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        except: Vec<String>,
    },
    /// Waits until every running backend has raised `KMSError` and keeps its encrypted
    /// filesystems locked while unencrypted ones stay ready; fails after `within`.
    ExpectLocked {
        #[serde(with = "duration_text")]
        within: Duration,
        /// The backends that must be locked (all by default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        backends: Option<String>,
    },
    /// Lets simulated time pass.
    Idle {
        #[serde(rename = "for", with = "duration_text")]
        duration: Duration,
    },
}

fn one() -> u32 {
    1
}
fn is_one(n: &u32) -> bool {
    *n == 1
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn default_capacity() -> u64 {
    10
}
fn all() -> String {
    "all".into()
}

impl Step {
    /// The cluster a step names, if any.
    pub fn cluster(&self) -> Option<&str> {
        match self {
            Step::Weka { cluster, .. }
            | Step::Write { cluster, .. }
            | Step::ReadVerify { cluster, .. } => cluster.as_deref(),
            _ => None,
        }
    }

    pub fn action(&self) -> &'static str {
        match self {
            Step::KmsSet { .. } => "kms-set",
            Step::FsCreate { .. } => "fs-create",
            Step::Write { .. } => "write",
            Step::ReadVerify { .. } => "read-verify",
            Step::Weka { .. } => "weka",
            Step::Race { .. } => "race",
            Step::RestartAll => "restart-all",
            Step::Restart { .. } => "restart",
            Step::Crash { .. } => "crash",
            Step::Start { .. } => "start",
            Step::CrashAt { .. } => "crash-at",
            Step::KmsFault { .. } => "kms-fault",
            Step::ObjectStoreFault { .. } => "object-store-fault",
            Step::DiskFault { .. } => "disk-fault",
            Step::DiskHeal { .. } => "disk-heal",
            Step::KmsSeal => "kms-seal",
            Step::KmsRevokeTokens => "kms-revoke-tokens",
            Step::KmsRevokeSecretId => "kms-revoke-secret-id",
            Step::KmsRevokeKey => "kms-revoke-key",
            Step::KmsUnseal => "kms-unseal",
            Step::KmsStop => "kms-stop",
            Step::KmsStart => "kms-start",
            Step::KmsRotate { .. } => "kms-rotate",
            Step::KmsTrim { .. } => "kms-trim",
            Step::Partition { .. } => "partition",
            Step::Hold { .. } => "hold",
            Step::Release { .. } => "release",
            Step::Heal => "heal",
            Step::Latency { .. } => "latency",
            Step::WaitReady { .. } => "wait-ready",
            Step::ExpectLocked { .. } => "expect-locked",
            Step::Idle { .. } => "idle",
        }
    }
}

/// Durations as text: `"30s"`, `"250ms"`, `"2m"`.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration_text::deserialize(d).map(Some)
    }
}

pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The hosts a group names: `kms`, `backends`, `backendN`, or a comma list of those.
/// `kms` (or its old name `vault`) is `kms_host`.
pub fn host_group(text: &str, backends: u32, kms_host: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for word in text.split(',').map(str::trim) {
        match word {
            "kms" | "vault" => hosts.push(kms_host.to_string()),
            "backends" => hosts.extend((1..=backends).map(|i| format!("backend{i}"))),
            _ => {
                let n: u32 = word
                    .strip_prefix("backend")
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=backends).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "unknown host {word:?}: use kms, backends, or backend1 to backend{backends}"
                        )
                    })?;
                hosts.push(format!("backend{n}"));
            }
        }
    }
    hosts.sort();
    hosts.dedup();
    Ok(hosts)
}

/// Fills in the placeholders a `weka` step may use.
pub fn substitute(
    command: &str,
    vault_url: &str,
    token: &str,
    role_id: &str,
    secret_id: &str,
) -> String {
    command
        .replace("$VAULT_URL", vault_url)
        .replace("$TOKEN", token)
        .replace("$ROLE_ID", role_id)
        .replace("$SECRET_ID", secret_id)
}

/// `"30s"`, `"250ms"`, `"2m"`, `"3h"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {text:?} has no unit (use ms, s, m or h)"))?;
    let (num, unit) = text.split_at(split);
    let unit = unit.trim();
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration {text:?} does not start with a whole number"))?;
    let seconds_per = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            return Err(format!(
                "duration {text:?} has unit {unit:?}; use ms, s, m or h"
            ))
        }
    };
    n.checked_mul(seconds_per)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration {text:?} is too long"))
}
