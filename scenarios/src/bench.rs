//! The speed benchmark: the harness against bare turmoil with the same hosts and tick.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runner::{pinned_epoch, RunReport, SimOptions};
use crate::scenario::{Auth, ClusterSpec, Expect, KmsSpec, Meta, Scenario, Step};
use crate::simulated;

/// A benchmark's scenario: a Vault on AppRole, `filesystems` encrypted filesystems
/// created on `backends` backends, then `steps`.
fn bench_scenario(
    name: &str,
    backends: u32,
    replicas: u32,
    filesystems: u32,
    steps: Vec<Step>,
) -> Scenario {
    let setup = [
        Step::KmsSet {
            auth: Auth::Approle,
        },
        Step::FsCreate {
            name: "enc".into(),
            count: filesystems,
            encrypted: true,
            capacity_gib: 10,
            expect: Expect::Ok,
        },
    ];
    Scenario {
        scenario: Meta {
            name: format!("bench-{name}"),
            description: format!("{name} at benchmark scale"),
            knobs: Default::default(),
            seeds: Vec::new(),
        },
        cluster: ClusterSpec {
            backends,
            replicas: replicas.min(backends),
            block_size: 512,
            voters: None,
        },
        kms: KmsSpec::default(),
        extra_clusters: Vec::new(),
        steps: setup.into_iter().chain(steps).collect(),
    }
}

/// Waits until every backend holds every key again.
fn wait_ready() -> Step {
    Step::WaitReady {
        within: Duration::from_secs(60),
        except: Vec::new(),
    }
}

/// startup-unwrap at bench scale: `backends` nodes, `filesystems` encrypted filesystems
/// with one block each, a power cycle, and the wait for every key.
pub fn startup_unwrap(backends: u32, filesystems: u32) -> Scenario {
    let write = Step::Write {
        fs: "all".into(),
        blocks: 1,
        cluster: None,
        via: None,
        expect: Expect::Ok,
    };
    let steps = vec![write, Step::RestartAll, wait_ready()];
    bench_scenario("startup-unwrap", backends, 2, filesystems, steps)
}

/// The scale benchmark's scenario: `filesystems` encrypted filesystems on `backends`
/// backends, a power cycle, a key rotation and `security kms rewrap`, and a power cycle
/// again, each power cycle waited out until every key is back in memory.
pub fn scale(backends: u32, filesystems: u32) -> Scenario {
    let rewrap = Step::Weka {
        command: REWRAP.into(),
        cluster: None,
        expect_error: None,
        expect: Expect::Ok,
        expect_output: None,
    };
    let steps = vec![
        Step::RestartAll,
        wait_ready(),
        Step::KmsRotate { key: None },
        rewrap,
        Step::RestartAll,
        wait_ready(),
    ];
    bench_scenario("scale", backends, 3, filesystems, steps)
}

/// The command whose time the scale table reports.
const REWRAP: &str = "weka security kms rewrap";

/// One row of the scale table: a run of [`scale`] and the bare-turmoil ceiling for the
/// same hosts and simulated time. Times in seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRow {
    pub backends: u32,
    pub filesystems: u32,
    /// The whole run, simulated.
    pub sim_s: f64,
    /// The whole run, wall.
    pub wall_s: f64,
    /// The rewrap step alone, simulated.
    pub rewrap_sim_s: f64,
    /// The rewrap step alone, wall.
    pub rewrap_wall_s: f64,
    /// Bare turmoil's wall time for the same hosts, tick and simulated time.
    pub ceiling_wall_s: f64,
    /// This process's peak resident memory after the run, in MiB (one row per process).
    pub peak_rss_mib: Option<f64>,
}

impl ScaleRow {
    /// Simulated seconds per wall second.
    pub fn speed(&self) -> f64 {
        self.sim_s / self.wall_s.max(1e-9)
    }

    /// Bare turmoil's simulated seconds per wall second, for the same hosts.
    pub fn ceiling_speed(&self) -> f64 {
        self.sim_s / self.ceiling_wall_s.max(1e-9)
    }
}

/// Whether the scale table can run `backends` x `filesystems`: the loader's own checks,
/// so a size out of range is refused as a scenario file's would be.
pub fn scale_scenario(backends: u32, filesystems: u32) -> Result<Scenario, String> {
    Scenario::parse(&scale(backends, filesystems).to_toml()?)
}

/// Runs one row of the scale table (seed 0). Peak memory is the process's, so a table
/// runs each row in a process of its own.
pub fn scale_row(backends: u32, filesystems: u32, tick: Duration) -> Result<ScaleRow, String> {
    let scenario = scale_scenario(backends, filesystems)?;
    // The rewrap's step, 1-based as the report counts steps.
    let rewrap_step = 1 + scenario
        .steps
        .iter()
        .position(|s| matches!(s, Step::Weka { command, .. } if command == REWRAP))
        .ok_or("the scale scenario has no rewrap")?;
    let report = play(&scenario, 0, tick, "scale")?;
    let (_, rewrap_sim, rewrap_wall) = report
        .step_spans()
        .into_iter()
        .find(|(t, ..)| t.index == rewrap_step)
        .ok_or("the scale run never reached its rewrap")?;
    let sim = Duration::from_millis(report.sim_ms);
    // The backends, the Vault, the object store and the admin host.
    let ceiling_wall = bare_turmoil(backends + 3, tick, sim, 0);
    Ok(ScaleRow {
        backends,
        filesystems,
        sim_s: sim.as_secs_f64(),
        wall_s: report.wall_ms as f64 / 1000.0,
        rewrap_sim_s: rewrap_sim.as_secs_f64(),
        rewrap_wall_s: rewrap_wall.as_secs_f64(),
        ceiling_wall_s: ceiling_wall.as_secs_f64(),
        peak_rss_mib: peak_rss_kib().map(|k| k as f64 / 1024.0),
    })
}

/// Plays `scenario` with `seed` at `tick`; a failed run is an error (`what` names the
/// benchmark), since a benchmark of a failing run measures nothing.
fn play(scenario: &Scenario, seed: u64, tick: Duration, what: &str) -> Result<RunReport, String> {
    let mut opts = SimOptions::new(seed);
    opts.tick = tick;
    let report = simulated::run(scenario, &opts);
    match &report.failure {
        Some(f) => Err(format!(
            "{what} run failed ({}): {}",
            f.check,
            report.verdict_line()
        )),
        None => Ok(report),
    }
}

/// Bare turmoil: the same number of hosts (backends, the Vault, the object store, the admin client)
/// doing nothing for `duration` of simulated time at `tick`. Returns the wall time.
pub fn bare_turmoil(hosts: u32, tick: Duration, duration: Duration, seed: u64) -> Duration {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .epoch(pinned_epoch())
        .tick_duration(tick)
        .simulation_duration(duration + Duration::from_secs(60))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(25))
        .build();
    for i in 0..hosts.saturating_sub(1) {
        sim.host(format!("idle{i}").as_str(), || async {
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        });
    }
    sim.client("idle-client", async move {
        tokio::time::sleep(duration).await;
        Ok(())
    });
    let start = crate::wall::Stopwatch::start();
    sim.run().expect("an idle simulation cannot fail");
    start.elapsed()
}

pub struct BenchRow {
    pub label: String,
    pub sim: Duration,
    pub wall: Duration,
}

impl BenchRow {
    pub fn speed(&self) -> f64 {
        self.sim.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The harness's rows (one per seed) and the bare-turmoil ceilings for the same hosts.
pub fn run(
    backends: u32,
    filesystems: u32,
    seeds: u64,
    tick: Duration,
) -> Result<(Vec<BenchRow>, Vec<BenchRow>), String> {
    let scenario = startup_unwrap(backends, filesystems);
    let mut rows = Vec::new();
    for seed in 0..seeds {
        let report = play(&scenario, seed, tick, "bench")?;
        rows.push(BenchRow {
            label: format!("seed {seed}"),
            sim: Duration::from_millis(report.sim_ms),
            wall: Duration::from_millis(report.wall_ms.max(1)),
        });
    }
    let sim_total: Duration = rows.iter().map(|r| r.sim).sum();
    let per_seed = sim_total / rows.len().max(1) as u32;
    // The backends, the Vault, the object store and the admin host.
    let hosts = backends + 3;
    let mut ceilings = Vec::new();
    for t in [tick, Duration::from_millis(1)] {
        let wall = bare_turmoil(hosts, t, per_seed, 0);
        ceilings.push(BenchRow {
            label: format!("bare turmoil, {hosts} hosts, {} ms tick", t.as_millis()),
            sim: per_seed,
            wall,
        });
    }
    Ok((rows, ceilings))
}

/// Peak resident memory of this process, from /proc (Linux); `None` elsewhere.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
