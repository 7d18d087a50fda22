//! A scenario: the cluster to build, the KMS to run, and the steps to take.
//!
//! Scenarios live as commented TOML files under `scenarios/` (one file each), and can
//! also be built in Rust. Loading is strict: an unknown field or action is an error that
//! names the file, the line and the field.

use std::collections::{BTreeMap, BTreeSet};

use cluster::admin::AdminCommand;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSpec {
    /// Only `vault` so far.
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
    Vault,
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
    },
    /// Revokes every token the KMS issued (the root token aside): a cluster that logs in
    /// by AppRole logs in again; one configured with a token is locked out.
    KmsRevokeTokens,
    /// `bao operator seal`: every KMS call answers 503 "Vault is sealed".
    KmsSeal,
    KmsUnseal,
    /// Rotates the transit key (`transit/keys/<key>/rotate`), as an admin does before
    /// `security kms rewrap`.
    KmsRotate,
    /// Raises the key's `min_decryption_version` (to the newest version if not given):
    /// ciphertext from older versions stops decrypting.
    KmsTrim {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_decryption_version: Option<u64>,
        /// Trim only if the last `security kms rewrap` was acknowledged (what an admin
        /// who trusts the cluster's answer does); otherwise the step does nothing.
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
            Step::RestartAll => "restart-all",
            Step::Restart { .. } => "restart",
            Step::Crash { .. } => "crash",
            Step::Start { .. } => "start",
            Step::CrashAt { .. } => "crash-at",
            Step::KmsFault { .. } => "kms-fault",
            Step::KmsSeal => "kms-seal",
            Step::KmsRevokeTokens => "kms-revoke-tokens",
            Step::KmsUnseal => "kms-unseal",
            Step::KmsRotate => "kms-rotate",
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

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The filesystems a step creates (`true`: it may create them) or needs to exist
/// (`false`: it must succeed on them).
fn step_filesystems(step: &Step) -> (bool, Vec<String>) {
    match step {
        Step::FsCreate {
            name,
            count,
            expect,
            ..
        } if *expect != Expect::Error => (true, Scenario::fs_names(name, *count)),
        Step::Write {
            fs,
            expect: Expect::Ok,
            ..
        }
        | Step::ReadVerify {
            fs,
            expect: Expect::Ok,
            ..
        } if fs != "all" => (false, vec![fs.clone()]),
        Step::Weka {
            command,
            expect_error,
            expect,
            ..
        } => {
            let stand_in = substitute(command, "http://vault:8200", "t", "r", "s");
            let may_succeed = expect_error.is_none() && *expect != Expect::Error;
            let must_succeed = expect_error.is_none() && *expect == Expect::Ok;
            match cluster::weka_cli::parse(&stand_in) {
                Ok(AdminCommand::FsCreate { name, .. } | AdminCommand::FsDownload { name, .. })
                    if may_succeed =>
                {
                    (true, vec![name])
                }
                Ok(
                    AdminCommand::FsUpdate { name: fs, .. }
                    | AdminCommand::SnapshotUpload { fs, .. },
                ) if must_succeed => (false, vec![fs]),
                _ => (false, Vec::new()),
            }
        }
        _ => (false, Vec::new()),
    }
}

/// The hosts a group names: `kms`, `backends`, `backendN`, or a comma list of those.
pub fn host_group(text: &str, backends: u32) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for word in text.split(',').map(str::trim) {
        match word {
            "kms" | "vault" => hosts.push("vault".to_string()),
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

/// `"30s"`, `"250ms"`, `"2m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {text:?} has no unit (use ms, s or m)"))?;
    let (num, unit) = text.split_at(split);
    let unit = unit.trim();
    let n: u64 = num
        .parse()
        .map_err(|_| format!("duration {text:?} does not start with a whole number"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!(
            "duration {text:?} has unit {unit:?}; use ms, s or m"
        )),
    }
}

/// A scenario file that could not be loaded, with where and why.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for LoadError {}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError {
            path: path.to_path_buf(),
            message: format!("cannot read: {e}"),
        })?;
        Scenario::parse(&text).map_err(|message| LoadError {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The scenario as a file a person can read and `wekasim run` can load.
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// Parses and checks a scenario; the error says line, column and field.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Rules serde cannot express.
    fn check(&self) -> Result<(), String> {
        let c = &self.cluster;
        if !(1..=9).contains(&c.backends) {
            return Err(format!(
                "[cluster] backends = {}: must be 1 to 9",
                c.backends
            ));
        }
        if c.replicas == 0 || c.replicas > c.backends {
            return Err(format!(
                "[cluster] replicas = {}: must be 1 to backends ({})",
                c.replicas, c.backends
            ));
        }
        if !(16..=65536).contains(&c.block_size) {
            return Err(format!(
                "[cluster] block_size = {}: must be 16 to 65536 bytes",
                c.block_size
            ));
        }
        for (i, extra) in self.extra_clusters.iter().enumerate() {
            let at = format!("[[extra_cluster]] {}", i + 1);
            if extra.name.is_empty()
                || !extra
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
                || extra.name == "main"
            {
                return Err(format!(
                    "{at}: name {:?} must be letters, digits and '-', and not \"main\"",
                    extra.name
                ));
            }
            if self.extra_clusters[..i]
                .iter()
                .any(|e| e.name == extra.name)
            {
                return Err(format!(
                    "{at}: a cluster named {:?} already exists",
                    extra.name
                ));
            }
            if !(1..=9).contains(&extra.backends)
                || extra.replicas == 0
                || extra.replicas > extra.backends
            {
                return Err(format!(
                    "{at}: backends must be 1 to 9 and replicas 1 to backends"
                ));
            }
        }
        // Filesystems created so far, by cluster: a step that must succeed cannot name one
        // that no earlier step creates.
        let mut created: BTreeSet<(String, String)> = BTreeSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("step {} ({})", i + 1, step.action());
            if let Some(name) = step.cluster() {
                if name != "main" && !self.extra_clusters.iter().any(|e| e.name == name) {
                    return Err(format!("{at}: no cluster named {name:?}"));
                }
            }
            let cluster = step.cluster().unwrap_or("main").to_string();
            let (makes, names) = step_filesystems(step);
            for fs in names {
                let known = created.contains(&(cluster.clone(), fs.clone()));
                if makes {
                    created.insert((cluster.clone(), fs));
                } else if !known {
                    return Err(format!(
                        "{at}: no earlier step creates a filesystem named {fs:?} on cluster {cluster:?}"
                    ));
                }
            }
            self.check_step(step).map_err(|e| format!("{at}: {e}"))?;
        }
        Ok(())
    }

    fn check_step(&self, step: &Step) -> Result<(), String> {
        let n = self.cluster.backends;
        let backend_ok = |b: u32| {
            if b == 0 || b > n {
                Err(format!(
                    "backend = {b}, but the cluster has backends 1 to {n}"
                ))
            } else {
                Ok(())
            }
        };
        match step {
            Step::Restart { backend } | Step::Crash { backend } => backend_ok(*backend),
            Step::CrashAt {
                backend: Some(b), ..
            }
            | Step::Start { backend: Some(b) } => backend_ok(*b),
            Step::FsCreate { count: 0, .. } => Err("count must be at least 1".into()),
            Step::Weka {
                command,
                expect_error,
                expect,
                ..
            } => {
                if expect_error.is_some() && *expect != Expect::Ok {
                    return Err(format!(
                        "expect_error already says the command fails; drop expect = {:?}",
                        expect
                    ));
                }
                let stand_in = substitute(command, "http://vault:8200", "t", "r", "s");
                cluster::weka_cli::parse(&stand_in)
                    .map(|_| ())
                    .map_err(|e| format!("command {command:?}: {e}"))
            }
            Step::KmsFault { mode, delay } => match (mode, delay) {
                (Fault::Slow, None) => Err("mode = \"slow\" needs a delay".into()),
                (Fault::Slow, Some(_)) | (_, None) => Ok(()),
                (other, Some(_)) => Err(format!(
                    "delay only goes with mode = \"slow\", not {other:?}"
                )),
            },
            Step::Write { via: Some(g), .. }
            | Step::ReadVerify { via: Some(g), .. }
            | Step::ExpectLocked {
                backends: Some(g), ..
            } => {
                let hosts = host_group(g, n)?;
                if hosts.iter().any(|h| h == "vault") {
                    return Err(format!("{g:?} must name backends only"));
                }
                Ok(())
            }
            Step::Partition { a, b, .. } | Step::Hold { a, b } | Step::Release { a, b } => {
                let (a, b) = (host_group(a, n)?, host_group(b, n)?);
                if a.iter().any(|h| b.contains(h)) {
                    return Err("a host cannot be on both sides".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The filesystem names a `fs-create` step makes.
    pub fn fs_names(name: &str, count: u32) -> Vec<String> {
        if count == 1 {
            vec![name.to_string()]
        } else {
            (1..=count).map(|i| format!("{name}-{i}")).collect()
        }
    }
}

/// Puts the line number first so a person and a script both find it. Inside a
/// `[[step]]`, toml reports the line where the steps begin (the action decides a step's
/// type, and the field positions are lost on the way); when the message names a field or
/// quotes a value found further down, point at the line that holds it instead.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().to_string();
    let Some(span) = e.span() else {
        return message;
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    if let Some(token) = offending_token(&message) {
        let later = lines.iter().enumerate().skip(line).find(|(_, l)| {
            let l = l.trim_start();
            l.starts_with(&format!("{token} "))
                || l.starts_with(&format!("{token}="))
                || l.contains(&format!("\"{token}\""))
        });
        if let Some((i, _)) = later {
            line = i + 1;
        }
    }
    let snippet = lines.get(line - 1).map(|l| l.trim()).unwrap_or("");
    format!("line {line}: {message} (at `{snippet}`)")
}

/// The field in "unknown field `x`", the value in "unknown variant `x`" or in
/// `duration "x" ...`.
fn offending_token(message: &str) -> Option<&str> {
    for prefix in ["unknown field `", "unknown variant `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next();
        }
    }
    let start = message.find('"')? + 1;
    let len = message[start..].find('"')?;
    Some(&message[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[scenario]
name = "t"
[[step]]
action = "kms-set"
auth = "token"
[[step]]
action = "wait-ready"
within = "5s"
"#;

    #[test]
    fn parses_a_small_scenario() {
        let s = Scenario::parse(GOOD).unwrap();
        assert_eq!(s.cluster.backends, 5);
        assert_eq!(s.steps.len(), 2);
        assert_eq!(
            s.steps[1],
            Step::WaitReady {
                within: Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let bad = GOOD.replace("auth = \"token\"", "auth = \"token\"\nauthh = 1");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("line 7"), "{err}");
        assert!(err.contains("authh"), "{err}");
    }

    #[test]
    fn mistyped_value_is_reported() {
        let bad = GOOD.replace("within = \"5s\"", "within = \"5 parsecs\"");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("line 9"), "{err}");
        assert!(err.contains("unit"), "{err}");
    }

    #[test]
    fn unknown_action_is_reported() {
        let bad = GOOD.replace("kms-set", "kms-sett");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("kms-sett"), "{err}");
    }

    #[test]
    fn restart_of_missing_backend_is_refused() {
        let bad = format!("{GOOD}\n[[step]]\naction = \"restart\"\nbackend = 9\n");
        let err = Scenario::parse(&bad).unwrap_err();
        assert!(err.contains("step 3"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
    }
}
