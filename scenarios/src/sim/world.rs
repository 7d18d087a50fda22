//! The simulated world: turmoil, a Vault host behind a fault switch, the backend hosts
//! with their disks, the admin host, and what the runner remembers to check the
//! cluster against.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::config_table::seed_raft_rng;
use cluster::disk::Disk;
use cluster::events::{Event, EventSink};
use cluster::hooks::{CrashPoint, CrashPointHook, Hooks};
use cluster::node::{Node, NodeOptions, Timing};
use kms_sim::chaos::Chaos;
use kms_sim::VaultSim;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use super::driver::{Driver, Stuck};
use super::{derive_seed, pinned_epoch, SimOptions};
use crate::net::TurmoilDialer;
use crate::oracle::{Key, LeakScanner};
use crate::scenario::Scenario;
use crate::trace::{self, SharedTrace};
use crate::vault_setup::VaultCreds;

pub const VAULT_HOST: &str = "vault";
pub const VAULT_PORT: u16 = 8200;
pub const BACKEND_PORT: u16 = 7000;
pub const ROOT_TOKEN: &str = "root";

/// The live node of a backend, filled in by the host each time it boots and emptied
/// by the runner when it crashes the host.
pub type Slot = Arc<Mutex<Option<Node>>>;

pub struct Backend {
    pub id: u64,
    pub host: String,
    pub disk: Disk,
    pub slot: Slot,
}

/// A crash waiting for a backend (any, if `None`) to reach a point.
type ArmedCrash = (Option<u64>, CrashPoint);

/// Crashes armed by `crash-at` steps, and the ones that fired.
#[derive(Clone, Default)]
pub struct CrashSwitch {
    armed: Arc<Mutex<Vec<ArmedCrash>>>,
    fired: Arc<Mutex<Vec<u64>>>,
}

impl CrashSwitch {
    pub fn arm(&self, backend: Option<u64>, point: CrashPoint) {
        lock(&self.armed).push((backend, point));
    }

    /// The hook every node asks at its crash points.
    fn hook(&self) -> CrashPointHook {
        let switch = self.clone();
        Arc::new(move |node, point| {
            let mut armed = lock(&switch.armed);
            let hit = armed
                .iter()
                .position(|(b, p)| *p == point && b.is_none_or(|b| b == node));
            match hit {
                Some(i) => {
                    armed.remove(i);
                    lock(&switch.fired).push(node);
                    true
                }
                None => false,
            }
        })
    }

    fn take_fired(&self) -> Vec<u64> {
        std::mem::take(&mut *lock(&self.fired))
    }
}

pub struct World<'a> {
    pub(super) sim: turmoil::Sim<'a>,
    pub(super) driver: Driver,
    pub(super) scenario: Scenario,
    pub(super) opts: SimOptions,
    pub(super) backends: Vec<Backend>,
    pub(super) trace: SharedTrace,
    /// The runner's own draws: which backend serves a command, what data to write.
    pub(super) rng: ChaCha20Rng,
    pub(super) vault: VaultSim,
    pub(super) chaos: Chaos,
    pub(super) crashes: CrashSwitch,
    pub(super) creds: Option<VaultCreds>,
    /// Filesystems whose creation was acknowledged, in order.
    pub(super) filesystems: Vec<String>,
    /// Filesystems whose creation failed with a KMS error: they must not exist.
    pub(super) failed_creates: BTreeSet<String>,
    /// Every acknowledged write: what each block must read back as.
    pub(super) acked: BTreeMap<(String, u64), Vec<u8>>,
    /// Writes that failed after the last acknowledged one of their block: a failed write
    /// may have reached some replicas, so a read may return its data instead.
    pub(super) unacked: BTreeMap<(String, u64), Vec<Vec<u8>>>,
    /// Every DEK seen in any backend's memory during the run.
    pub(super) known_deks: BTreeMap<String, Key>,
    pub(super) leaks: LeakScanner,
    /// The transit key's newest version and its `min_decryption_version`, as the
    /// runner's own rotate and trim steps left them.
    pub(super) key_latest: u64,
    pub(super) key_min_decryption: u64,
    /// Whether the last `security kms rewrap` was acknowledged.
    pub(super) last_rewrap_ok: bool,
    /// The backends the current step may send commands to (`None`: any).
    pub(super) via: Option<Vec<u64>>,
}

/// A runner event in the trace.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(super) enum RunnerEvent<'a> {
    Start {
        scenario: &'a str,
        seed: u64,
        backends: u32,
        tick_ms: u64,
        planted: Vec<&'static str>,
        knobs: &'a BTreeMap<String, String>,
    },
    Step {
        index: usize,
        action: &'a str,
    },
    Crash {
        backend: u64,
    },
    Restart {
        backend: u64,
    },
    Fault {
        what: String,
    },
    Phase {
        name: &'a str,
    },
    Verdict {
        pass: bool,
        check: Option<&'a str>,
        kms_requests: u64,
    },
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a> World<'a> {
    pub fn build(scenario: &Scenario, opts: &SimOptions, trace: SharedTrace) -> World<'a> {
        let seed = opts.seed;
        seed_raft_rng(derive_seed(seed, "raft"));
        let mut sim = turmoil::Builder::new()
            .rng_seed(derive_seed(seed, "turmoil"))
            .epoch(pinned_epoch())
            .tick_duration(opts.tick)
            .simulation_duration(Duration::from_secs(365 * 24 * 3600))
            // A latency range, so the seed shapes message timing (a fixed latency would
            // make every seed replay the same run).
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(Duration::from_millis(25))
            .build();

        let vault = VaultSim::new(derive_seed(seed, "vault"), ROOT_TOKEN);
        let chaos = Chaos::default();
        let app = chaos.wrap(vault.router());
        let refuse = chaos.clone();
        sim.host(VAULT_HOST, move || {
            let (app, refuse) = (app.clone(), refuse.clone());
            async move {
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", VAULT_PORT)).await?;
                loop {
                    let (stream, _) = listener.accept().await?;
                    if refuse.refuses() {
                        drop(stream);
                        continue;
                    }
                    tokio::spawn(kms_sim::serve::serve_stream(app.clone(), stream));
                }
            }
        });

        let crashes = CrashSwitch::default();
        let hooks = Hooks {
            crash_point: Some(crashes.hook()),
            planted: opts.planted.clone(),
        };
        let spec = &scenario.cluster;
        let members: BTreeMap<u64, String> = (1..=spec.backends as u64)
            .map(|id| (id, format!("backend{id}:{BACKEND_PORT}")))
            .collect();
        let sink: EventSink = {
            let trace = trace.clone();
            Arc::new(move |node: u64, event: Event| {
                let at = turmoil::sim_elapsed().unwrap_or_default();
                trace::lock(&trace).record(at, &format!("backend{node}"), &event);
            })
        };
        let mut backends = Vec::new();
        for id in 1..=spec.backends as u64 {
            let host = format!("backend{id}");
            let disk = Disk::default();
            let slot: Slot = Arc::default();
            let options = NodeOptions {
                id,
                members: members.clone(),
                replicas: spec.replicas as usize,
                seed: derive_seed(seed, &host),
                timing: Timing::default(),
                hooks: hooks.clone(),
            };
            let (d, s, sink) = (disk.clone(), slot.clone(), sink.clone());
            sim.host(host.as_str(), move || {
                let (options, disk, slot, sink) =
                    (options.clone(), d.clone(), s.clone(), sink.clone());
                async move {
                    let node = Node::start(options, disk, Arc::new(TurmoilDialer), sink).await?;
                    *lock(&slot) = Some(node.clone());
                    let listener =
                        turmoil::net::TcpListener::bind(("0.0.0.0", BACKEND_PORT)).await?;
                    loop {
                        let (stream, _) = listener.accept().await?;
                        let node = node.clone();
                        tokio::spawn(async move { node.serve(Box::new(stream)).await });
                    }
                }
            });
            backends.push(Backend {
                id,
                host,
                disk,
                slot,
            });
        }
        let driver = Driver::install(&mut sim);

        trace::lock(&trace).record(
            Duration::ZERO,
            "runner",
            &RunnerEvent::Start {
                scenario: &scenario.scenario.name,
                seed,
                backends: spec.backends,
                tick_ms: opts.tick.as_millis() as u64,
                planted: opts.planted.iter().map(|b| b.name()).collect(),
                knobs: &scenario.scenario.knobs,
            },
        );
        World {
            sim,
            driver,
            scenario: scenario.clone(),
            opts: opts.clone(),
            backends,
            trace,
            rng: ChaCha20Rng::seed_from_u64(derive_seed(seed, "runner")),
            vault,
            chaos,
            crashes,
            creds: None,
            filesystems: Vec::new(),
            failed_creates: BTreeSet::new(),
            acked: BTreeMap::new(),
            unacked: BTreeMap::new(),
            known_deks: BTreeMap::new(),
            leaks: LeakScanner::default(),
            key_latest: 1,
            key_min_decryption: 1,
            via: None,
            last_rewrap_ok: false,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    pub(super) fn record(&self, event: &RunnerEvent<'_>) {
        trace::lock(&self.trace).record(self.sim.elapsed(), "runner", event);
    }

    /// One tick, then any crash a crash point asked for.
    pub(super) fn step_sim(&mut self) -> Duration {
        step_and_crash(&mut self.sim, &self.crashes, &self.backends, &self.trace)
    }

    /// Runs a job on the admin host, crashing backends at their crash points meanwhile.
    pub(super) fn run_job<T: 'static>(
        &mut self,
        bound: Duration,
        job: impl std::future::Future<Output = T> + 'static,
    ) -> Result<T, Stuck> {
        let World {
            sim,
            driver,
            crashes,
            backends,
            trace,
            ..
        } = self;
        let now = sim.elapsed();
        let mut step = || step_and_crash(sim, crashes, backends, trace);
        driver.run(&mut step, now, bound, job)
    }

    /// The backends whose node is up, with it.
    pub(super) fn running(&self) -> Vec<(u64, Node)> {
        self.backends
            .iter()
            .filter_map(|b| lock(&b.slot).clone().map(|n| (b.id, n)))
            .collect()
    }

    pub(super) fn is_up(&self, index: usize) -> bool {
        lock(&self.backends[index].slot).is_some()
    }

    /// Crashes one backend: its memory is gone, its disk stays; it stays down.
    pub(super) fn crash(&mut self, index: usize) {
        crash_backend(&mut self.sim, &self.backends[index], &self.trace);
    }

    /// Boots one backend (crashed or running) from its disk.
    pub(super) fn start(&mut self, index: usize) {
        let backend = &self.backends[index];
        *lock(&backend.slot) = None;
        let (id, host) = (backend.id, backend.host.clone());
        self.sim.bounce(host.as_str());
        self.record(&RunnerEvent::Restart { backend: id });
    }

    /// Power-cycles one backend.
    pub(super) fn restart(&mut self, index: usize) {
        if self.is_up(index) {
            self.crash(index);
        }
        self.start(index);
    }
}

fn crash_backend(sim: &mut turmoil::Sim<'_>, backend: &Backend, trace: &SharedTrace) {
    *lock(&backend.slot) = None;
    sim.crash(backend.host.as_str());
    trace::lock(trace).record(
        sim.elapsed(),
        "runner",
        &RunnerEvent::Crash {
            backend: backend.id,
        },
    );
}

fn step_and_crash(
    sim: &mut turmoil::Sim<'_>,
    crashes: &CrashSwitch,
    backends: &[Backend],
    trace: &SharedTrace,
) -> Duration {
    if let Err(e) = sim.step() {
        panic!("the simulation stopped: {e}");
    }
    for id in crashes.take_fired() {
        if let Some(b) = backends.iter().find(|b| b.id == id) {
            crash_backend(sim, b, trace);
        }
    }
    sim.elapsed()
}
