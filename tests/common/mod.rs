//! Helpers shared by the CLI integration tests: run the built `wekasim` binary and
//! pick apart what it prints.

#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The exit codes documented in `src/cli/mod.rs`.
pub const EXIT_PASS: i32 = 0;
pub const EXIT_CORRECTNESS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_LIVENESS: i32 = 3;
pub const EXIT_CRASH: i32 = 4;

/// A command for the built binary, with logging left at its default, and no sweep shard
/// from the environment (the tests may run in a pod of a Kubernetes Indexed Job).
pub fn wekasim(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wekasim"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("WEKASIM_SHARD_COUNT");
    cmd
}

/// What one run of the binary printed, and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything needed to understand a failed assertion.
    pub fn describe(&self) -> String {
        format!(
            "exit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs a prepared command to completion.
pub fn output(mut cmd: Command) -> Run {
    cmd.output()
        .expect("cannot start the wekasim binary")
        .into()
}

/// Runs `wekasim <args>` to completion.
pub fn run(args: &[&str]) -> Run {
    output(wekasim(args))
}

/// The value of the `hash=` token of a verdict line.
pub fn hash_of(verdict_line: &str) -> String {
    verdict_line
        .split_whitespace()
        .find_map(|token| token.strip_prefix("hash="))
        .unwrap_or_else(|| panic!("no hash= token in {verdict_line:?}"))
        .to_string()
}

/// A fresh directory under the system temp dir, named after the test and this process,
/// removed (with its contents) when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(test_name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("wekasim-{test_name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("cannot create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` in this directory and returns its full path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("cannot write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `manifest.json` a `sweep --out DIR` or `merge --out DIR` wrote.
pub fn sweep_manifest(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .unwrap_or_else(|e| panic!("{}/manifest.json: {e}", dir.display()));
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

/// A manifest's per-seed results without their wall time (the one thing that differs
/// between two runs of the same seeds).
pub fn sweep_results(m: &serde_json::Value) -> Vec<serde_json::Value> {
    m["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().expect("a result").remove("wall_ms");
            r
        })
        .collect()
}

/// A scenario file: a cluster of 3 backends with the KMS set and one encrypted filesystem
/// (`enc`), then `steps` (TOML `[[step]]` tables).
pub fn one_encrypted_fs_then(name: &str, steps: &str) -> String {
    format!(
        r#"[scenario]
name = "{name}"
description = "a scenario of a CLI test"

[cluster]
backends = 3
replicas = 2
block_size = 256

[kms]
type = "vault"
key = "weka-key"

[[step]]
action = "weka"
command = "weka security kms set vault $VAULT_URL weka-key --token $TOKEN"

[[step]]
action = "fs-create"
name = "enc"
count = 1
encrypted = true
{steps}"#
    )
}
