//! `wekasim run`, `list` and `suite` on the shipped `startup-unwrap` scenario: the
//! verdict line, its hash, the trace file, the JSON report and the suite table.

mod common;

use common::{hash_of, output, run, wekasim, TempDir, EXIT_PASS};
use serde_json::Value;

#[test]
fn run_prints_one_verdict_line_with_repro() {
    let r = run(&["run", "startup-unwrap", "--seed", "42"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line\n{}", r.describe());
    let line = lines[0];
    for needle in [
        "startup-unwrap",
        "seed=42",
        "hash=",
        "PASS",
        "repro: wekasim run startup-unwrap --seed 42",
    ] {
        assert!(line.contains(needle), "{needle:?} missing from {line:?}");
    }
    assert!(!hash_of(line).is_empty(), "empty hash in {line:?}");
}

#[test]
fn hash_does_not_depend_on_working_directory_or_log_level() {
    let here = run(&["run", "startup-unwrap", "--seed", "42"]);
    assert_eq!(here.code, Some(EXIT_PASS), "{}", here.describe());

    let mut cmd = wekasim(&["run", "startup-unwrap", "--seed", "42"]);
    cmd.current_dir(std::env::temp_dir())
        .env("RUST_LOG", "debug");
    let elsewhere = output(cmd);
    assert_eq!(elsewhere.code, Some(EXIT_PASS), "{}", elsewhere.describe());

    assert_eq!(hash_of(&here.stdout), hash_of(&elsewhere.stdout));
}

#[test]
fn different_seeds_give_different_hashes() {
    let a = run(&["run", "startup-unwrap", "--seed", "42"]);
    let b = run(&["run", "startup-unwrap", "--seed", "43"]);
    assert_eq!(a.code, Some(EXIT_PASS), "{}", a.describe());
    assert_eq!(b.code, Some(EXIT_PASS), "{}", b.describe());
    assert_ne!(hash_of(&a.stdout), hash_of(&b.stdout));
}

#[test]
fn trace_file_is_json_lines_without_secrets() {
    let dir = TempDir::new("trace_file");
    let trace = dir.path().join("trace.jsonl");
    let trace_arg = trace.to_str().expect("temp path is UTF-8");
    let r = run(&[
        "run",
        "startup-unwrap",
        "--seed",
        "42",
        "--trace",
        trace_arg,
    ]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());

    let text = std::fs::read_to_string(&trace).expect("trace file was not written");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 50, "only {} trace lines", lines.len());
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("trace line {n} is not JSON ({e}): {line}"));
        let event = value
            .as_object()
            .unwrap_or_else(|| panic!("trace line {n} is not an object: {line}"));
        assert!(event["t_ms"].is_number(), "line {n} t_ms: {line}");
        assert!(event["host"].is_string(), "line {n} host: {line}");
        assert!(event.contains_key("event"), "line {n} has no event: {line}");
        for secret in ["hvs.", "secret_id"] {
            assert!(!line.contains(secret), "line {n} leaks {secret:?}: {line}");
        }
    }
}

#[test]
fn check_determinism_replays_to_the_same_hash() {
    let r = run(&[
        "run",
        "startup-unwrap",
        "--seed",
        "42",
        "--check-determinism",
    ]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    assert!(r.stderr.contains("same hash"), "{}", r.describe());
}

#[test]
fn json_prints_one_report_object() {
    let r = run(&["run", "startup-unwrap", "--seed", "42", "--json"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line\n{}", r.describe());
    let report: Value = serde_json::from_str(lines[0]).expect("stdout is not JSON");
    assert!(report.is_object(), "{report}");
    assert_eq!(report["scenario"], "startup-unwrap");
    assert_eq!(report["seed"], 42);
    assert!(
        report["trace_hash"].as_str().is_some_and(|h| !h.is_empty()),
        "{report}"
    );
    assert!(
        report.get("failure").is_some_and(Value::is_null),
        "failure should be null: {report}"
    );
}

#[test]
fn list_shows_startup_unwrap() {
    let r = run(&["list"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    assert!(
        r.stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("startup-unwrap")),
        "{}",
        r.describe()
    );
}

#[test]
fn suite_prints_a_table_with_every_run_passed() {
    let r = run(&["suite", "--seeds", "0..1", "--jobs", "2"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.len() >= 3, "table too short\n{}", r.describe());

    let header = lines[0];
    for column in ["scenario", "seeds", "passed", "failed"] {
        assert!(
            header.contains(column),
            "{column:?} missing from {header:?}"
        );
    }

    let row: Vec<&str> = lines
        .iter()
        .find(|l| l.split_whitespace().next() == Some("startup-unwrap"))
        .unwrap_or_else(|| panic!("no startup-unwrap row\n{}", r.describe()))
        .split_whitespace()
        .collect();
    assert_eq!(
        row[1..4],
        ["1", "1", "0"],
        "startup-unwrap row: seeds, passed, failed"
    );

    let last = lines[lines.len() - 1];
    let (passed, failed) = last
        .split_once(" passed, ")
        .unwrap_or_else(|| panic!("last line is not a total: {last:?}"));
    assert!(passed.parse::<u64>().is_ok_and(|n| n >= 5), "{last:?}");
    assert_eq!(failed, "0 failed", "{last:?}");
}

#[test]
fn a_swarm_seed_replays_and_names_its_repro() {
    let r = run(&["run", "swarm", "--seed", "5"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.stderr);
    assert!(
        r.stdout.contains("repro: wekasim run swarm --seed 5"),
        "{}",
        r.stdout
    );
    let again = run(&["run", "swarm", "--seed", "5"]);
    assert_eq!(hash_of(&r.stdout), hash_of(&again.stdout));
}

#[test]
fn run_folder_holds_scenario_trace_report_and_junit() {
    let dir = TempDir::new("run_folder");
    let out = dir.path().to_str().expect("UTF-8 path").to_string();
    let r = run(&["run", "swarm", "--seed", "2", "--out", &out]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.stderr);
    let folder = dir.path().join("swarm-2");
    let scenario = std::fs::read_to_string(folder.join("scenario.toml")).expect("scenario.toml");
    assert!(scenario.contains("[scenario.knobs]"), "{scenario}");
    let trace = std::fs::read_to_string(folder.join("trace.jsonl")).expect("trace.jsonl");
    let first: Value = serde_json::from_str(trace.lines().next().expect("a line")).expect("JSON");
    assert!(
        first["knobs"].is_object(),
        "the drawn knobs are in the trace: {first}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("report.json")).expect("report"))
            .expect("JSON");
    assert_eq!(report["seed"], 2);
    let junit = std::fs::read_to_string(folder.join("junit.xml")).expect("junit.xml");
    assert!(
        junit.contains("<testsuite") && junit.contains("tests=\"1\""),
        "{junit}"
    );
}

#[test]
fn sweep_prints_a_summary_and_writes_junit() {
    let dir = TempDir::new("sweep_junit");
    let out = dir.path().to_str().expect("UTF-8 path").to_string();
    let r = run(&["sweep", "--seeds", "0..12", "--jobs", "2", "--out", &out]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("seeds/s"), "{}", r.stdout);
    assert_eq!(r.stdout.lines().last(), Some("12 passed, 0 failed"));
    assert!(
        r.stderr.contains("[12/12]"),
        "progress is shown: {}",
        r.stderr
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).expect("junit.xml");
    assert_eq!(junit.matches("<testcase").count(), 12);
    assert!(junit.contains("failures=\"0\""));
}
