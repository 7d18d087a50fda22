//! The speed benchmark: the harness against bare turmoil with the same hosts and tick.

use std::time::Duration;

use crate::runner::{pinned_epoch, SimOptions};
use crate::scenario::{Auth, ClusterSpec, Expect, KmsSpec, Meta, Scenario, Step};
use crate::simulated;

/// startup-unwrap at bench scale: `backends` nodes, `filesystems` encrypted filesystems
/// with one block each, a power cycle, and the wait for every key.
pub fn startup_unwrap(backends: u32, filesystems: u32) -> Scenario {
    Scenario {
        scenario: Meta {
            name: "bench-startup-unwrap".into(),
            description: "startup-unwrap at benchmark scale".into(),
            knobs: Default::default(),
            seeds: Vec::new(),
        },
        cluster: ClusterSpec {
            backends,
            replicas: 2.min(backends),
            block_size: 512,
            voters: None,
        },
        kms: KmsSpec::default(),
        extra_clusters: Vec::new(),
        steps: vec![
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
            Step::Write {
                fs: "all".into(),
                blocks: 1,
                cluster: None,
                via: None,
                expect: Expect::Ok,
            },
            Step::RestartAll,
            Step::WaitReady {
                within: Duration::from_secs(60),
                except: Vec::new(),
            },
        ],
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
        let mut opts = SimOptions::new(seed);
        opts.tick = tick;
        let report = simulated::run(&scenario, &opts);
        if let Some(f) = &report.failure {
            return Err(format!(
                "bench run failed ({}): {}",
                f.check,
                report.verdict_line()
            ));
        }
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
