//! A scenario: the cluster to build, the KMS to run, and the steps to take.
//!
//! Scenarios live as commented TOML files under `scenarios/` (one file each), and can
//! also be built in Rust. Loading is strict: an unknown field or action is an error that
//! names the file, the line and the field.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub scenario: Meta,
    #[serde(default)]
    pub cluster: ClusterSpec,
    #[serde(default)]
    pub kms: KmsSpec,
    #[serde(rename = "step", default)]
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsSpec {
    /// Only `vault` so far.
    #[serde(rename = "type", default = "default_kms_type")]
    pub kind: KmsKind,
    /// The transit key that wraps the cluster's DEKs.
    #[serde(default = "default_key")]
    pub key: String,
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
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KmsKind {
    Vault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Token,
    Approle,
}

/// One step. Every admin command must succeed unless the step says otherwise; the
/// oracles run after each step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// `weka security kms set vault <url> <key> --token ... | --role-id ... --secret-id ...`
    KmsSet { auth: Auth },
    /// `weka fs create <name> default <capacity> [--encrypted]`; with `count` > 1 the
    /// filesystems are named `<name>-1` .. `<name>-<count>`.
    FsCreate {
        name: String,
        #[serde(default = "one")]
        count: u32,
        #[serde(default)]
        encrypted: bool,
        #[serde(default = "default_capacity")]
        capacity_gib: u64,
    },
    /// Writes `blocks` blocks of seeded random data to each selected filesystem, through
    /// backends chosen by the seed. Each acknowledged write must read back later.
    Write {
        #[serde(default = "all")]
        fs: String,
        blocks: u64,
    },
    /// Reads back every acknowledged block of the selected filesystems and compares.
    ReadVerify {
        #[serde(default = "all")]
        fs: String,
    },
    /// Power-cycles every backend at once: memory (and every DEK in it) is lost, disks stay.
    RestartAll,
    /// Restarts one backend (1-based).
    Restart { backend: u32 },
    /// Waits until every backend serves every filesystem (all DEKs unwrapped, no
    /// `KMSError` alert), failing the run if that takes longer than `within`.
    WaitReady {
        #[serde(deserialize_with = "duration")]
        within: Duration,
    },
    /// A WEKA CLI command, as an admin types it (`security kms set vault ...`,
    /// `fs create ...`). `$VAULT_URL`, `$TOKEN`, `$ROLE_ID` and `$SECRET_ID` stand for
    /// what the Vault setup produced. With `expect_error`, the command must fail with an
    /// error containing that text (and commit nothing).
    Weka {
        command: String,
        expect_error: Option<String>,
    },
    /// Lets simulated time pass.
    Idle {
        #[serde(rename = "for", deserialize_with = "duration")]
        duration: Duration,
    },
}

fn one() -> u32 {
    1
}
fn default_capacity() -> u64 {
    10
}
fn all() -> String {
    "all".into()
}

impl Step {
    pub fn action(&self) -> &'static str {
        match self {
            Step::KmsSet { .. } => "kms-set",
            Step::FsCreate { .. } => "fs-create",
            Step::Write { .. } => "write",
            Step::ReadVerify { .. } => "read-verify",
            Step::RestartAll => "restart-all",
            Step::Restart { .. } => "restart",
            Step::WaitReady { .. } => "wait-ready",
            Step::Weka { .. } => "weka",
            Step::Idle { .. } => "idle",
        }
    }
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

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
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
        for (i, step) in self.steps.iter().enumerate() {
            let at = format!("step {} ({})", i + 1, step.action());
            match step {
                Step::Restart { backend } if *backend == 0 || *backend > c.backends => {
                    return Err(format!(
                        "{at}: backend = {backend}, but the cluster has backends 1 to {}",
                        c.backends
                    ))
                }
                Step::FsCreate { count: 0, .. } => {
                    return Err(format!("{at}: count must be at least 1"))
                }
                Step::Weka { command, .. } => {
                    let stand_in = substitute(command, "http://vault:8200", "t", "r", "s");
                    cluster::weka_cli::parse(&stand_in)
                        .map_err(|e| format!("{at}: command {command:?}: {e}"))?;
                }
                _ => {}
            }
        }
        Ok(())
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

/// The field in "unknown field `x`" or the value in `duration "x" ...`.
fn offending_token(message: &str) -> Option<&str> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        return rest.split('`').next();
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
