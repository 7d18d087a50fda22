//! Helpers for the tests of live runs (`wekasim run SCENARIO --vault URL | --openbao [BIN] |
//! --vault-container ID`): run the built binary with a bound on its wall time, pick out its
//! verdict line, check that no secret shows in what it printed, and take a snapshot of what
//! a Vault holds to compare before and after a run.
//!
//! Used by tests/live_run.rs and tests/container_gate.rs (each uses its own subset).

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use scenarios::wall::Stopwatch;
use serde_json::Value;

/// Exit codes of `wekasim run`.
pub const EXIT_PASS: i32 = 0;
pub const EXIT_CORRECTNESS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_LIVENESS: i32 = 3;
pub const EXIT_CRASH: i32 = 4;

/// A live run that took longer than this is killed (and the test fails): the library
/// scenarios take about 45 s to 2 min live.
pub const RUN_BOUND: Duration = Duration::from_secs(600);
/// How often the wait for the child looks at it.
const POLL: Duration = Duration::from_millis(100);

/// The environment variables wekasim reads secrets and addresses from: never inherited
/// from whoever runs the tests, only set by the test.
const SCRUBBED_ENV: &[&str] = &[
    "VAULT_TOKEN",
    "VAULT_UNSEAL_KEY",
    "WEKA_KMS_SECRET_ID",
    "VAULT_ADDR",
    "BAO_ADDR",
    "BAO_TOKEN",
    "RUST_LOG",
    "RUST_BACKTRACE",
];

/// What one run of the binary printed, how it ended, and how long it took.
pub struct LiveRun {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    /// The child's pid (for checking what it left behind).
    pub pid: u32,
    /// When each Ctrl-C was sent, from the start (see [`wekasim_interrupted`]).
    pub interrupted_at: Vec<Duration>,
}

impl LiveRun {
    /// Everything needed to understand a failed assertion. Secrets never reach this: the
    /// tests check output for them before describing it (see [`LiveRun::assert_no_secret`]),
    /// and the arguments shown are the ones given, which carry no secret (they go by env).
    pub fn describe(&self) -> String {
        format!(
            "wekasim {}\nexit code: {:?} after {:.1} s\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.wall.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }

    /// The verdict line: the stdout line naming PASS or FAIL.
    pub fn verdict_line(&self) -> Option<&str> {
        self.stdout
            .lines()
            .find(|l| l.contains(" PASS") || l.contains(" FAIL"))
    }

    /// Fails if any non-empty secret appears in stdout or stderr; the failure message
    /// redacts it, so the secret does not reach the test log either.
    pub fn assert_no_secret(&self, secrets: &[&str]) {
        for (i, s) in secrets.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
            let on = [("stdout", &self.stdout), ("stderr", &self.stderr)];
            for (stream, text) in on {
                assert!(
                    !text.contains(s),
                    "secret #{i} appears on {stream} (redacted below)\n{}",
                    redact(&self.describe(), secrets)
                );
            }
        }
    }

    /// Fails if anything shaped like a token or an unseal key shows in stdout or stderr:
    /// for runs whose secrets the test does not know (`--openbao`).
    pub fn assert_nothing_secret_shaped(&self) {
        for text in [&self.stdout, &self.stderr] {
            assert!(
                looks_like_a_secret(text).is_none(),
                "something shaped like a token or unseal key in the output: {:?}\n{}",
                looks_like_a_secret(text),
                self.describe()
            );
        }
    }

    /// Exit code 0, one verdict line with PASS and "live" on stdout.
    pub fn assert_live_pass(&self, secrets: &[&str]) {
        self.assert_no_secret(secrets);
        let verdict = self.verdict_line().unwrap_or("");
        assert!(
            self.code == Some(EXIT_PASS) && verdict.contains(" PASS") && verdict.contains(" live "),
            "expected a live PASS (exit 0)\n{}",
            self.describe()
        );
    }

    /// Exit code 2, `error: ` and `fragment` on stderr, no verdict, no panic, no secret.
    pub fn assert_refused(&self, fragment: &str, secrets: &[&str]) {
        self.assert_no_secret(secrets);
        assert_eq!(self.code, Some(EXIT_USAGE), "{}", self.describe());
        assert!(
            self.stderr.contains("error: ") && self.stderr.contains(fragment),
            "stderr should say `error: ... {fragment} ...`\n{}",
            self.describe()
        );
        assert!(
            self.verdict_line().is_none(),
            "a refused run printed a verdict\n{}",
            self.describe()
        );
        for panic_text in ["panicked", "RUST_BACKTRACE"] {
            assert!(
                !self.stderr.contains(panic_text),
                "panic text {panic_text:?} on stderr\n{}",
                self.describe()
            );
        }
    }
}

/// Every non-empty secret replaced by `<redacted>`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |t, s| t.replace(s, "<redacted>"))
}

/// A file for a child's output, removed when dropped.
struct OutFile(PathBuf);

impl OutFile {
    fn new(what: &str) -> OutFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        OutFile(std::env::temp_dir().join(format!(
            "wekasim-live-test-{}-{}-{what}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )))
    }

    fn read(&self) -> String {
        std::fs::read(&self.0)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `wekasim ARGS` with `env` (and none of the inherited secrets or addresses), from
/// the crate's root (where `.venv/bin/bao` is), killing it after [`RUN_BOUND`]. Output goes
/// through files, so no thread is needed to drain pipes.
pub fn wekasim(args: &[&str], env: &[(&str, &str)]) -> LiveRun {
    run_wekasim(args, env, &[], &mut |_| ())
}

/// The variable naming the wekasim built with `--features planted-bugs` that the tests of
/// planted bugs run (`bash tests/run.sh` builds it and sets this).
pub const PLANTED_BIN_VAR: &str = "WEKASIM_PLANTED_BIN";

/// The planted-bugs binary [`PLANTED_BIN_VAR`] names, relative to the repository or
/// absolute; a test asking for it without one fails, saying how to give it.
pub fn planted_bin() -> PathBuf {
    let Ok(path) = std::env::var(PLANTED_BIN_VAR) else {
        panic!(
            "{PLANTED_BIN_VAR} is not set: build wekasim with `cargo build --release --features \
             planted-bugs` and set {PLANTED_BIN_VAR}=target/release/wekasim (bash tests/run.sh \
             does both)"
        );
    };
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(&path);
    assert!(
        bin.is_file(),
        "{PLANTED_BIN_VAR}={path}: no such file ({})",
        bin.display()
    );
    bin
}

/// As [`wekasim`], running the planted-bugs binary of [`planted_bin`].
pub fn wekasim_planted(args: &[&str], env: &[(&str, &str)]) -> LiveRun {
    run_bin(&planted_bin(), args, env, &[], &mut |_| ())
}

/// As [`wekasim`], and sends it SIGINT (Ctrl-C) once its stderr shows `after[0]`, again
/// once it shows `after[1]`, and so on: each Ctrl-C waits for what the run printed.
pub fn wekasim_interrupted(args: &[&str], env: &[(&str, &str)], after: &[&str]) -> LiveRun {
    run_wekasim(args, env, after, &mut |_| ())
}

/// As [`wekasim_interrupted`], calling `before(i)` right before the `i`-th Ctrl-C (from 0).
pub fn wekasim_interrupted_with(
    args: &[&str],
    env: &[(&str, &str)],
    after: &[&str],
    before: &mut dyn FnMut(usize),
) -> LiveRun {
    run_wekasim(args, env, after, before)
}

fn run_wekasim(
    args: &[&str],
    env: &[(&str, &str)],
    after: &[&str],
    before: &mut dyn FnMut(usize),
) -> LiveRun {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_wekasim"));
    run_bin(bin, args, env, after, before)
}

fn run_bin(
    bin: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    after: &[&str],
    before: &mut dyn FnMut(usize),
) -> LiveRun {
    let (out, err) = (OutFile::new("stdout"), OutFile::new("stderr"));
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null());
    for var in SCRUBBED_ENV {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied());
    let file = |f: &OutFile| {
        std::fs::File::create(&f.0).unwrap_or_else(|e| panic!("{}: {e}", f.0.display()))
    };
    cmd.stdout(file(&out)).stderr(file(&err));
    let clock = Stopwatch::start();
    let mut child = cmd.spawn().expect("cannot start the wekasim binary");
    let pid = child.id();
    let mut interrupted_at = Vec::new();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if clock.elapsed() > RUN_BOUND => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                let next = after.get(interrupted_at.len());
                if next.is_some_and(|shown| err.read().contains(shown)) {
                    before(interrupted_at.len());
                    let sent = Command::new("kill")
                        .args(["-INT", &pid.to_string()])
                        .status();
                    assert!(sent.is_ok_and(|s| s.success()), "kill -INT {pid}");
                    interrupted_at.push(clock.elapsed());
                    // The next Ctrl-C waits for its own line: no poll in between.
                    continue;
                }
                std::thread::sleep(POLL)
            }
            Err(e) => panic!("waiting for wekasim: {e}"),
        }
    };
    let run = LiveRun {
        interrupted_at,
        args: args.iter().map(|a| a.to_string()).collect(),
        code: status.and_then(|s| s.code()),
        stdout: out.read(),
        stderr: err.read(),
        wall: clock.elapsed(),
        pid,
    };
    assert!(
        status.is_some(),
        "wekasim did not finish within {RUN_BOUND:?} and was killed\n{}",
        redact(
            &run.describe(),
            &env.iter().map(|(_, v)| *v).collect::<Vec<_>>()
        )
    );
    run
}

// ---------------------------------------------------------------------------------------
// What a run left behind or let out

/// Whether `text` holds something shaped like an OpenBao token (`s.` or `hvs.` and 20 or
/// more letters and digits) or an unseal key (64 hex digits, or 44 base64 characters
/// ending in `=`): for runs whose secrets the test does not know (`--openbao`).
pub fn looks_like_a_secret(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "._+/=-".contains(c)))
        .find(|w| {
            let token = ["s.", "hvs."].iter().any(|p| {
                w.strip_prefix(p).is_some_and(|rest| {
                    rest.len() >= 20 && rest.chars().all(|c| c.is_ascii_alphanumeric())
                })
            });
            let hex_key = w.len() >= 64 && w.chars().all(|c| c.is_ascii_hexdigit());
            let b64_key = w.len() == 44
                && w.ends_with('=')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
            token || hex_key || b64_key
        })
        .map(str::to_string)
}

/// Processes whose command line names `needle`.
pub fn processes_naming(needle: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline
                .contains(needle)
                .then(|| format!("{}: {cmdline}", e.file_name().to_string_lossy()))
        })
        .collect()
}

/// What the run with pid `pid` left of the OpenBao it started: its temp dirs (named
/// `wekasim-openbao-PID-...`) and any process started from one.
pub fn openbao_leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("wekasim-openbao-{pid}-");
    let mut left: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    left.extend(processes_naming(&prefix));
    left
}

/// Every file under `dir`, with its path and its text.
pub fn files_under(dir: &std::path::Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            let text = std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            files.push((path, text));
        }
    }
    files
}

// ---------------------------------------------------------------------------------------
// What a Vault holds

/// A blocking HTTP request to a Vault: `(status, JSON body or Null)`.
pub type Call<'a> = &'a dyn Fn(&str, &str, Option<&str>) -> Result<(u16, String), String>;

/// What a run could leave behind in a Vault, each list sorted: secrets engines
/// (`path type`), auth methods (`path type`), ACL policies, the roles of every AppRole
/// mount, the keys of every transit mount, and how many tokens exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultState {
    pub mounts: Vec<String>,
    pub auth: Vec<String>,
    pub policies: Vec<String>,
    pub approle_roles: Vec<String>,
    pub transit_keys: Vec<String>,
    pub tokens: usize,
}

fn json(call: Call<'_>, method: &str, path: &str) -> Value {
    let (status, body) =
        call(method, path, None).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match status {
        200 => v,
        // LIST of an empty collection.
        404 => Value::Null,
        _ => panic!("{method} {path}: HTTP {status}: {body}"),
    }
}

/// `path type` for every entry of a `sys/mounts`- or `sys/auth`-like answer.
fn table(v: &Value) -> Vec<String> {
    let t = v.get("data").and_then(Value::as_object);
    let mut rows: Vec<String> = t
        .into_iter()
        .flatten()
        .map(|(path, m)| format!("{path} {}", m["type"].as_str().unwrap_or("?")))
        .collect();
    rows.sort();
    rows
}

fn list(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .pointer("/data/keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

/// Takes the snapshot with an admin (root) token.
pub fn vault_state(call: Call<'_>) -> VaultState {
    let mounts = table(&json(call, "GET", "/v1/sys/mounts"));
    let auth = table(&json(call, "GET", "/v1/sys/auth"));
    let policies = list(&json(call, "LIST", "/v1/sys/policies/acl"));
    let mut approle_roles = Vec::new();
    for row in auth.iter().filter(|r| r.ends_with(" approle")) {
        let path = row.split(' ').next().unwrap_or_default();
        for role in list(&json(call, "LIST", &format!("/v1/auth/{path}role"))) {
            approle_roles.push(format!("{path}{role}"));
        }
    }
    let mut transit_keys = Vec::new();
    for row in mounts.iter().filter(|r| r.ends_with(" transit")) {
        let path = row.split(' ').next().unwrap_or_default();
        for key in list(&json(call, "LIST", &format!("/v1/{path}keys"))) {
            transit_keys.push(format!("{path}{key}"));
        }
    }
    let tokens = list(&json(call, "LIST", "/v1/auth/token/accessors")).len();
    VaultState {
        mounts,
        auth,
        policies,
        approle_roles,
        transit_keys,
        tokens,
    }
}

/// A scenario file for a live test: three backends on key `weka-key`, `security kms set`
/// by AppRole, then `steps` (TOML `[[step]]` tables).
pub fn scenario_text(name: &str, description: &str, steps: &str) -> String {
    format!(
        r#"[scenario]
name = "{name}"
description = "{description}"

[cluster]
backends = 3
replicas = 2

[kms]
type = "vault"
key = "weka-key"

[[step]]
action = "weka"
command = "weka security kms set vault $VAULT_URL weka-key --role-id $ROLE_ID --secret-id $SECRET_ID"

{steps}"#
    )
}
