//! The binary's failure paths end to end: exit codes 1, 3 and 4, the failing verdict line,
//! a failing seed replayed in a fresh process, `--until-fail`, `sweep --out`, `--plant` in a
//! normal build, and `--check-determinism` catching a run that does not replay.
//!
//! A correct build never crashes and always replays a seed, so two of these drive the
//! hidden `WEKASIM_TEST_HOOK` (src/cli/mod.rs): `panic-in-host` (a simulated host panics)
//! and `perturb-second-run` (the replay draws message latency from another seed).

mod common;

use common::{
    one_encrypted_fs_then, output, run, wekasim, Run, TempDir, EXIT_CORRECTNESS, EXIT_CRASH,
    EXIT_LIVENESS, EXIT_PASS, EXIT_USAGE,
};
use serde_json::Value;

/// A read that succeeds where the scenario expects an error: a correctness failure.
const READ_EXPECTED_TO_FAIL: &str = r#"
[[step]]
action = "write"
fs = "all"
blocks = 2

[[step]]
action = "read-verify"
expect = "error"
"#;

/// Every backend restarts while the KMS is sealed; ready within 1 ms cannot happen.
const READY_WHILE_SEALED: &str = r#"
[[step]]
action = "kms-seal"

[[step]]
action = "restart-all"

[[step]]
action = "wait-ready"
within = "1ms"
"#;

/// Writes the scenario `name` with `steps` into a fresh directory and runs it with seed 7.
fn run_seed_7(name: &str, steps: &str) -> (TempDir, Run) {
    let dir = TempDir::new(name);
    dir.write("f.toml", &one_encrypted_fs_then(name, steps));
    let r = run(&["run", &file_in(&dir), "--seed", "7"]);
    (dir, r)
}

fn file_in(dir: &TempDir) -> String {
    dir.path()
        .join("f.toml")
        .to_str()
        .expect("UTF-8 path")
        .to_string()
}

fn with_hook(args: &[&str], hook: &str) -> Run {
    let mut cmd = wekasim(args);
    cmd.env("WEKASIM_TEST_HOOK", hook);
    output(cmd)
}

fn json(r: &Run) -> Value {
    serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("not one JSON report ({e})\n{}", r.describe()))
}

/// `NAME seed=N sim=S.SSSs wall=W.WWWs hash=HEX FAIL KIND [CHECK, step K] at T.TTTs: DETAIL  repro: wekasim run TARGET --seed N`
fn assert_failing_verdict(line: &str, kind: &str, check: &str, step: usize, target: &str) {
    let fields: Vec<&str> = line.splitn(7, ' ').collect();
    assert_eq!(fields.len(), 7, "{line:?}");
    let time = |t: &str, prefix: &str| {
        let t = t.strip_prefix(prefix).and_then(|t| t.strip_suffix('s'));
        let (whole, millis) = t.and_then(|t| t.split_once('.')).unwrap_or_default();
        assert!(
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && millis.len() == 3
                && millis.bytes().all(|b| b.is_ascii_digit()),
            "{prefix}S.SSSs expected in {line:?}"
        );
    };
    assert_eq!(fields[1], "seed=7", "{line:?}");
    time(fields[2], "sim=");
    time(fields[3], "wall=");
    let hash = fields[4].strip_prefix("hash=").expect("hash=");
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line:?}"
    );
    assert_eq!(fields[5], "FAIL", "{line:?}");
    let rest = fields[6];
    let head = format!("{kind} [{check}, step {step}] at ");
    assert!(rest.starts_with(&head), "{head:?} expected in {line:?}");
    let (at, rest) = rest[head.len()..].split_once(": ").expect("at T: DETAIL");
    time(at, "");
    let (detail, repro) = rest.rsplit_once("  repro: ").expect("  repro: ");
    assert!(!detail.trim().is_empty(), "{line:?}");
    assert_eq!(repro, format!("wekasim run {target} --seed 7"), "{line:?}");
}

#[test]
fn a_step_that_should_fail_but_succeeds_is_exit_1_with_a_verdict_that_replays() {
    let (dir, first) = run_seed_7("read-expected-to-fail", READ_EXPECTED_TO_FAIL);
    let file = &file_in(&dir);
    assert_eq!(first.code, Some(EXIT_CORRECTNESS), "{}", first.describe());
    let line = first.stdout.trim();
    assert!(line.starts_with("read-expected-to-fail "), "{line:?}");
    assert_failing_verdict(line, "correctness", "read", 4, file);

    // The failing seed replays bit for bit in a fresh process.
    let again = run(&["run", file, "--seed", "7"]);
    assert_eq!(again.code, Some(EXIT_CORRECTNESS), "{}", again.describe());
    let hash = |l: &str| l.split(' ').nth(4).map(str::to_string);
    assert_eq!(hash(line), hash(again.stdout.trim()));
    assert_eq!(
        line.split_once(" wall=").map(|p| p.0),
        again.stdout.trim().split_once(" wall=").map(|p| p.0),
        "same seed, same simulated time"
    );
}

#[test]
fn a_filesystem_not_ready_within_its_bound_is_exit_3() {
    let (dir, r) = run_seed_7("ready-while-sealed", READY_WHILE_SEALED);
    assert_eq!(r.code, Some(EXIT_LIVENESS), "{}", r.describe());
    let file = &file_in(&dir);
    assert_failing_verdict(r.stdout.trim(), "liveness", "filesystems-ready", 5, file);
}

#[test]
fn a_panic_inside_a_simulated_host_is_exit_4_a_crash() {
    let r = with_hook(
        &["run", "kms-set-probe", "--seed", "1", "--json"],
        "panic-in-host",
    );
    assert_eq!(r.code, Some(EXIT_CRASH), "{}", r.describe());
    let report = json(&r);
    assert_eq!(report["failure"]["kind"], "crash", "{report}");
    assert_eq!(report["failure"]["check"], "panic", "{report}");
}

#[test]
fn an_unknown_test_hook_is_bad_input() {
    let r = with_hook(&["run", "kms-set-probe", "--seed", "1"], "bogus");
    assert_eq!(r.code, Some(EXIT_USAGE), "{}", r.describe());
    assert!(r.stderr.contains("WEKASIM_TEST_HOOK"), "{}", r.describe());
}

#[test]
fn check_determinism_reports_a_run_that_does_not_replay() {
    let r = with_hook(
        &["run", "kms-set-probe", "--seed", "1", "--check-determinism"],
        "perturb-second-run",
    );
    // The first run passed; the replay differing is what fails.
    assert!(r.stdout.contains(" PASS "), "{}", r.describe());
    assert_eq!(r.code, Some(EXIT_CORRECTNESS), "{}", r.describe());
    let report = r
        .stderr
        .lines()
        .find(|l| l.starts_with("NONDETERMINISTIC: seed 1 gave hash "))
        .unwrap_or_else(|| panic!("no NONDETERMINISTIC line\n{}", r.describe()));
    let line: usize = report
        .rsplit_once("first differ at line ")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("no line number in {report:?}"));
    assert!(line >= 1, "{report:?}");
    let first = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("  first run:  "));
    let second = r
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("  second run: "));
    assert!(
        first.is_some() && second.is_some() && first != second,
        "the two differing lines are shown\n{}",
        r.describe()
    );
}

#[test]
fn until_fail_stops_at_the_first_failing_seed() {
    let r = with_hook(
        &[
            "sweep",
            "--seeds",
            "0..6",
            "--jobs",
            "1",
            "--until-fail",
            "--json",
        ],
        "panic-in-host",
    );
    assert_eq!(r.code, Some(EXIT_CRASH), "{}", r.describe());
    let reports: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report per line"))
        .collect();
    assert_eq!(reports.len(), 1, "{}", r.describe());
    assert_eq!(reports[0]["seed"], 0);
}

#[test]
fn sweep_out_writes_a_run_folder_per_failing_seed() {
    let dir = TempDir::new("failure_sweep_out");
    let out = dir.path().to_str().expect("UTF-8 path");
    let r = with_hook(
        &["sweep", "--seeds", "0..3", "--jobs", "2", "--out", out],
        "panic-in-host",
    );
    assert_eq!(r.code, Some(EXIT_CRASH), "{}", r.describe());
    for seed in 0..3 {
        let folder = dir.path().join(format!("swarm-{seed}"));
        for file in ["scenario.toml", "trace.jsonl", "report.json", "junit.xml"] {
            assert!(
                folder.join(file).is_file(),
                "{} missing",
                folder.join(file).display()
            );
        }
        let report: Value = serde_json::from_str(
            &std::fs::read_to_string(folder.join("report.json")).expect("report.json"),
        )
        .expect("JSON");
        assert_eq!(report["seed"], seed);
        assert_eq!(report["failure"]["kind"], "crash");
    }
    let folders = std::fs::read_dir(dir.path())
        .expect("out dir")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert_eq!(folders, 3, "one folder per failing seed");
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("tests=\"3\" failures=\"0\" errors=\"3\""),
        "{junit}"
    );
}

#[test]
fn sweep_and_shrink_refuse_to_plant_in_a_normal_build() {
    for args in [
        &["sweep", "--seeds", "0..2", "--plant", "skip-one-rewrap"][..],
        &["shrink", "--seed", "3", "--plant", "skip-one-rewrap"][..],
    ] {
        let r = run(args);
        assert_eq!(r.code, Some(EXIT_USAGE), "{args:?}\n{}", r.describe());
        assert!(
            r.stderr.contains("cannot plant bugs") && r.stderr.contains("--features planted-bugs"),
            "{args:?}\n{}",
            r.describe()
        );
        assert!(
            r.stdout.is_empty(),
            "{args:?}: nothing ran\n{}",
            r.describe()
        );
    }
}

#[test]
fn a_passing_run_is_exit_0() {
    let r = run(&["run", "kms-set-probe", "--seed", "1"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
}
