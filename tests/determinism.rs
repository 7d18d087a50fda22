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

/// Runs `run startup-unwrap --seed <seed> --json`, checks it passed, returns its hash.
fn passing_hash(seed: u64) -> String {
    let seed_arg = seed.to_string();
    let r = run(&["run", "startup-unwrap", "--seed", &seed_arg, "--json"]);
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
