//! The runner: a scenario played step by step over a [`fabric::Fabric`], the same for a
//! seeded run on turmoil (`crate::simulated`) and a live one (`crate::live`).
//!
//! The run is a loop that reads as a checklist: take the next step, step the simulation
//! until the step is done (or its bound passes), check every oracle, repeat; then a
//! liveness phase (every filesystem ready within a bound) and a final read-back of every
//! acknowledged write.

mod checks;
mod disk_faults;
pub mod fabric;
mod faults;
mod race;
mod steps;
mod world;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cluster::hooks::PlantedBug;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::coverage::Counts;
use crate::scenario::Scenario;
use crate::trace;
pub(crate) use world::lock;
pub use world::{Backend, Progress, Slot, StepTime, World};

/// How a simulated run is set up. Everything not here comes from the scenario or is
/// derived from `seed`.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    /// turmoil's tick: the granularity of simulated time. 10 ms keeps the per-tick cost
    /// of idle hosts low (see `wekasim bench`) while staying well below the Raft
    /// heartbeat (100 ms) and the KMS round trip.
    pub tick: Duration,
    /// Bound for the liveness phase at the end of a run.
    pub liveness_bound: Duration,
    /// Known bugs to plant in the cluster (only a `planted-bugs` build plants them).
    pub planted: BTreeSet<PlantedBug>,
    /// A fault in the harness itself, for the tests of the failure paths a correct build
    /// never reaches (see `TestHook`). `None` in every real run.
    pub test_hook: Option<TestHook>,
}

/// Faults of the harness itself, so end-to-end tests can drive the paths a correct build
/// never takes: a crash (exit 4) and a seed that does not replay (`--check-determinism`
/// failing). The command line takes them only from the hidden `WEKASIM_TEST_HOOK`
/// variable; they are no part of the user's surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestHook {
    /// A simulated host that panics at the first tick of the run.
    PanicInHost,
    /// turmoil draws message latency from another seed: the run differs from the one
    /// its seed fixes, as a run that reads the real clock or OS randomness would.
    PerturbLatency,
}

impl SimOptions {
    pub fn new(seed: u64) -> Self {
        SimOptions {
            seed,
            tick: Duration::from_millis(10),
            liveness_bound: Duration::from_secs(60),
            planted: BTreeSet::new(),
            test_hook: None,
        }
    }
}

/// Whether this build can play a seeded run: `Err` with what to do when tokio was built
/// without `--cfg tokio_unstable` (`.cargo/config.toml`). Without it `select!` draws from
/// an unseeded RNG and a panic in a simulated host is swallowed, so the same seed could
/// play two different runs; a `RUSTFLAGS` in the environment replaces the config file's
/// flags and drops it silently. Cargo gives every crate of a build the same flags, so this
/// crate's cfg is tokio's.
pub fn seeded_build() -> Result<(), String> {
    seeded_build_given(cfg!(tokio_unstable))
}

fn seeded_build_given(tokio_unstable: bool) -> Result<(), String> {
    if tokio_unstable {
        return Ok(());
    }
    Err(
        "this build cannot play seeded runs: it was compiled without `--cfg tokio_unstable`, \
         so tokio's `select!` would not draw from the seed and a seed would not replay its run. \
         A RUSTFLAGS in the environment replaces .cargo/config.toml's flags: unset it (or add \
         `--cfg tokio_unstable` to it) and rebuild"
            .into(),
    )
}

/// turmoil's wall clock starts here in every run, whatever the real date.
pub fn pinned_epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_767_225_600) // 2026-01-01T00:00:00Z
}

/// A per-purpose seed, so adding a consumer of randomness does not shift the others.
pub fn derive_seed(seed: u64, purpose: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(purpose.as_bytes());
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// An oracle was violated, or a step that must succeed failed.
    Correctness,
    /// Something did not happen within its bound.
    Liveness,
    /// A panic in the harness or the cluster.
    Crash,
    /// The user stopped a live run (Ctrl-C).
    Interrupted,
}

impl FailureKind {
    /// The kind as the verdict line, the JSON report and JUnit name it.
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Correctness => "correctness",
            FailureKind::Liveness => "liveness",
            FailureKind::Crash => "crash",
            FailureKind::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// 1-based; `None` for setup and the final phase.
    pub step: Option<usize>,
    /// Which check failed: an oracle's name, or the step's action.
    pub check: String,
    pub at_ms: u64,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub scenario: String,
    /// What to give `wekasim run` to replay this run: the scenario's name, or the path
    /// of a file outside the library.
    pub target: String,
    /// Bugs planted in this run (a `planted-bugs` build only).
    pub planted: Vec<String>,
    pub seed: u64,
    pub sim_ms: u64,
    pub wall_ms: u64,
    pub trace_hash: String,
    pub events: usize,
    /// Set for a live run: the Vault it ran against. A live run's times and trace depend
    /// on the real world, so its seed does not replay it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
    pub failure: Option<Failure>,
    /// How often each probe fired (see `coverage`); empty for a run that did not play.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub coverage: Counts,
    #[serde(skip)]
    pub trace: Vec<String>,
    /// When each step began (wall time included, so never serialized with the report).
    #[serde(skip)]
    pub step_times: Vec<StepTime>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// Each step (and the liveness phase, index 0) with how long it took, simulated and
    /// wall: to the next one's start, or to the run's end.
    pub fn step_spans(&self) -> Vec<(&StepTime, Duration, Duration)> {
        let end = (
            Duration::from_millis(self.sim_ms),
            Duration::from_millis(self.wall_ms),
        );
        let times = &self.step_times;
        times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let (sim, wall) = times.get(i + 1).map_or(end, |n| (n.sim, n.wall));
                (t, sim.saturating_sub(t.sim), wall.saturating_sub(t.wall))
            })
            .collect()
    }

    /// The command that replays this run exactly (for a live run: the same scenario and
    /// seed, simulated).
    pub fn repro(&self) -> String {
        let mut cmd = format!("wekasim run {} --seed {}", self.target, self.seed);
        for bug in &self.planted {
            cmd.push_str(&format!(" --plant {bug}"));
        }
        cmd
    }

    /// One line: scenario, seed, times, hash, verdict, and how to reproduce it.
    pub fn verdict_line(&self) -> String {
        let verdict = match &self.failure {
            None => "PASS".to_string(),
            Some(f) => format!(
                "FAIL {} [{}{}] at {:.3}s: {}",
                f.kind.name(),
                f.check,
                f.step.map(|s| format!(", step {s}")).unwrap_or_default(),
                f.at_ms as f64 / 1000.0,
                f.detail
            ),
        };
        if let Some(vault) = &self.live {
            return format!(
                "{} seed={} live wall={:.3}s hash={} {}  against: {}  simulated: {}",
                self.scenario,
                self.seed,
                self.wall_ms as f64 / 1000.0,
                self.trace_hash,
                verdict,
                vault,
                self.repro()
            );
        }
        format!(
            "{} seed={} sim={:.3}s wall={:.3}s hash={} {}  repro: {}",
            self.scenario,
            self.seed,
            self.sim_ms as f64 / 1000.0,
            self.wall_ms as f64 / 1000.0,
            self.trace_hash,
            verdict,
            self.repro()
        )
    }
}

/// Builds a world with `build` and plays `scenario` in it. `Err` when the world cannot be
/// built (a live peer refused); a panic while playing becomes a `crash` failure.
pub fn play_on<'a>(
    scenario: &Scenario,
    opts: &SimOptions,
    build: impl FnOnce(trace::SharedTrace) -> Result<World<'a>, String>,
) -> Result<RunReport, String> {
    // Wall time is reported beside the verdict and never enters the trace or its hash.
    let wall = crate::wall::Stopwatch::start();
    let shared_trace = trace::SharedTrace::default();
    let (failure, sim, coverage, step_times) =
        match catch_unwind(AssertUnwindSafe(|| build(shared_trace.clone()))) {
            Ok(Err(e)) => return Err(e),
            Err(panic) => (
                Some(crashed(panic)),
                Duration::ZERO,
                Counts::new(),
                Vec::new(),
            ),
            Ok(Ok(mut world)) => {
                let played = catch_unwind(AssertUnwindSafe(|| world.play().err()));
                let sim = world.elapsed();
                // The teardown runs whatever happened: a live Vault outlives the run.
                let teardown = catch_unwind(AssertUnwindSafe(|| world.teardown()))
                    .unwrap_or_else(|panic| Err(crashed(panic).detail));
                let failure = match (played, teardown) {
                    (Err(panic), _) => Some(crashed(panic)),
                    (Ok(None), Err(e)) => Some(Failure {
                        kind: FailureKind::Correctness,
                        step: None,
                        check: "teardown".into(),
                        at_ms: sim.as_millis() as u64,
                        detail: e,
                    }),
                    (Ok(failure), _) => failure,
                };
                (failure, sim, world.coverage(), world.step_times().to_vec())
            }
        };
    let trace = trace::lock(&shared_trace);
    Ok(RunReport {
        scenario: scenario.scenario.name.clone(),
        target: scenario.scenario.name.clone(),
        planted: opts.planted.iter().map(|b| b.name().to_string()).collect(),
        seed: opts.seed,
        sim_ms: sim.as_millis() as u64,
        wall_ms: wall.elapsed().as_millis() as u64,
        trace_hash: trace.hash(),
        events: trace.lines().len(),
        live: None,
        failure,
        coverage,
        trace: trace.lines().to_vec(),
        step_times,
    })
}

/// A panic, as the report's failure.
fn crashed(panic: Box<dyn std::any::Any + Send>) -> Failure {
    let detail = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into());
    Failure {
        kind: FailureKind::Crash,
        step: None,
        check: "panic".into(),
        at_ms: 0,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::FailureKind;

    #[test]
    fn a_build_without_tokio_unstable_refuses_seeded_runs() {
        let refusal = super::seeded_build_given(false).unwrap_err();
        assert!(refusal.contains("--cfg tokio_unstable"), "{refusal}");
        assert!(refusal.contains("RUSTFLAGS"), "{refusal}");
        assert_eq!(super::seeded_build_given(true), Ok(()));
        // This test build itself has the flag (from .cargo/config.toml): a RUSTFLAGS that
        // drops it fails here.
        assert_eq!(super::seeded_build(), Ok(()));
    }

    #[test]
    fn failure_kind_names_match_the_json_report() {
        for kind in [
            FailureKind::Correctness,
            FailureKind::Liveness,
            FailureKind::Crash,
            FailureKind::Interrupted,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
    }
}
