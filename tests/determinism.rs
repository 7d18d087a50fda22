//! The whole run is fixed by its seed: the same seed replays to the same trace hash in a
//! fresh process, and different seeds explore different runs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use common::{run, EXIT_PASS};
use serde_json::Value;

const SEEDS: u64 = 20;
const THREADS: usize = 2;

/// Runs `run <startup-unwrap or kmip-startup-unwrap> --seed <seed> --json` (Vault for even
/// seeds, KMIP with its seeded TLS for odd ones), checks it passed, returns its hash.
fn passing_hash(seed: u64) -> String {
    let seed_arg = seed.to_string();
    let scenario = if seed % 2 == 0 {
        "startup-unwrap"
    } else {
        "kmip-startup-unwrap"
    };
    let r = run(&["run", scenario, "--seed", &seed_arg, "--json"]);
    assert_eq!(r.code, Some(EXIT_PASS), "seed {seed}\n{}", r.describe());
    let report: Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("seed {seed}: not JSON ({e})\n{}", r.describe()));
    assert_eq!(report["seed"], seed, "{report}");
    assert!(report["failure"].is_null(), "seed {seed} failed: {report}");
    report["trace_hash"]
        .as_str()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| panic!("seed {seed}: no trace_hash: {report}"))
        .to_string()
}

#[test]
fn each_seed_replays_to_the_same_hash_and_seeds_give_different_runs() {
    let next = AtomicU64::new(0);
    let hashes: Mutex<BTreeMap<u64, (String, String)>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= SEEDS {
                    return;
                }
                let pair = (passing_hash(seed), passing_hash(seed));
                hashes.lock().unwrap().insert(seed, pair);
            });
        }
    });
    let hashes = hashes.into_inner().unwrap();
    assert_eq!(hashes.len(), SEEDS as usize);

    let replay_diffs: Vec<String> = hashes
        .iter()
        .filter(|(_, (a, b))| a != b)
        .map(|(seed, (a, b))| format!("seed {seed}: {a} then {b}"))
        .collect();
    assert!(
        replay_diffs.is_empty(),
        "nondeterministic seeds:\n{}",
        replay_diffs.join("\n")
    );

    let distinct: BTreeSet<&String> = hashes.values().map(|(a, _)| a).collect();
    assert!(
        distinct.len() >= 15,
        "only {} distinct hashes over {SEEDS} seeds: {hashes:?}",
        distinct.len()
    );
}

/// Hash of `run <target> --seed <seed>` in a fresh process.
fn fresh_hash(target: &str, seed: u64) -> String {
    let seed_arg = seed.to_string();
    let r = run(&["run", target, "--seed", &seed_arg, "--json"]);
    let report: Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("{target} seed {seed}: not JSON ({e})\n{}", r.describe()));
    let hash = report["trace_hash"].as_str().unwrap_or_default();
    assert!(
        !hash.is_empty(),
        "{target} seed {seed}: no hash\n{}",
        r.describe()
    );
    hash.to_string()
}

/// A sweep runs many seeds in one process, on several threads; what it reports for a
/// seed must be what `wekasim run swarm --seed N` replays in a fresh process, or its
/// repro lines would lie.
#[test]
fn a_parallel_sweep_reports_the_hashes_fresh_runs_replay() {
    let r = run(&["sweep", "--seeds", "0..16", "--jobs", "2", "--json"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    let reports: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON report per line"))
        .collect();
    assert_eq!(reports.len(), 16);
    for report in reports
        .iter()
        .filter(|r| r["seed"].as_u64().unwrap() % 5 == 0)
    {
        let seed = report["seed"].as_u64().unwrap();
        assert_eq!(
            report["trace_hash"].as_str().unwrap(),
            fresh_hash("swarm", seed),
            "sweep and a fresh run disagree on swarm seed {seed}"
        );
    }
}

/// The same for the suite, whose runs share a process with the scenarios before them.
#[test]
fn a_parallel_suite_reports_the_hashes_fresh_runs_replay() {
    let r = run(&["suite", "--seeds", "0..2", "--jobs", "2", "--json"]);
    assert_eq!(r.code, Some(EXIT_PASS), "{}", r.describe());
    // Every scenario of the library reported, and the two compared below on every seed.
    let listed = run(&["list"]);
    let mut unreported: BTreeSet<&str> = listed
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(unreported.len() >= 5, "{}", listed.describe());
    let mut compared = BTreeSet::new();
    for line in r.stdout.lines() {
        let report: Value = serde_json::from_str(line).expect("one JSON report per line");
        let (scenario, seed) = (
            report["scenario"].as_str().unwrap(),
            report["seed"].as_u64().unwrap(),
        );
        if scenario == "startup-unwrap" || scenario == "kms-outage" {
            assert_eq!(
                report["trace_hash"].as_str().unwrap(),
                fresh_hash(scenario, seed),
                "suite and a fresh run disagree on {scenario} seed {seed}"
            );
            compared.insert((scenario.to_string(), seed));
        }
        unreported.remove(scenario);
    }
    assert!(
        unreported.is_empty(),
        "the suite reported nothing for {unreported:?}\n{}",
        r.describe()
    );
    assert_eq!(
        compared.len(),
        4,
        "compared: {compared:?}\n{}",
        r.describe()
    );
}
