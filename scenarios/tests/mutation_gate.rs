//! The test `tests/mutants.sh` gives cargo-mutants for every mutant of `cluster/`: the
//! scenario library (seed 0; a regression over its own seeds) and a short swarm sweep,
//! played in process. A mutant is caught when any run fails.
//!
//! Built and run only when named (`test = false` in `scenarios/Cargo.toml`), so the
//! default test run neither builds nor runs it: the release suite and the 6,000-seed
//! sweep of `tests/run.sh` already cover what it does, at a scale a mutant cannot afford.
//! `WEKASIM_MUTANTS_SEEDS` sets the sweep's length (default 200).

use scenarios::runner::{RunReport, SimOptions};
use scenarios::scenario::Scenario;
use scenarios::{library, simulated, swarm};

/// The sweep's seeds: `0..n`.
fn sweep_seeds() -> u64 {
    match std::env::var("WEKASIM_MUTANTS_SEEDS") {
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("WEKASIM_MUTANTS_SEEDS={n:?} is not a whole number")),
        Err(_) => 200,
    }
}

/// Fails with the first failing run's verdict line.
fn require_pass(report: &RunReport) {
    assert!(report.passed(), "{}", report.verdict_line());
}

#[test]
fn the_library_passes() {
    let dir = library::default_dir();
    let files = library::all(&dir).unwrap_or_else(|e| panic!("{e}"));
    for path in files {
        let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        for seed in scenario.scenario.seeds_or([0]) {
            require_pass(&simulated::run(&scenario, &SimOptions::new(seed)));
        }
    }
}

/// The sweep in two halves, so the test harness's two threads share it.
fn sweep(half: u64) {
    for seed in (half..sweep_seeds()).step_by(2) {
        require_pass(&swarm::run(seed, &SimOptions::new(seed)).1);
    }
}

#[test]
fn the_sweep_passes_even_seeds() {
    sweep(0);
}

#[test]
fn the_sweep_passes_odd_seeds() {
    sweep(1);
}
