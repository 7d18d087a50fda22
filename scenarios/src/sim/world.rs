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
use cluster::node::{Node, NodeOptions, ObjectStoreConfig, Timing};
use kms_sim::chaos::Chaos;
use kms_sim::object_store::ObjectStore;
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
pub const OBJECT_STORE_HOST: &str = "s3";
pub const OBJECT_STORE_PORT: u16 = 9000;
pub const SNAPSHOT_BUCKET: &str = "weka-snapshots";

/// The live node of a backend, filled in by the host each time it boots and emptied
/// by the runner when it crashes the host.
pub type Slot = Arc<Mutex<Option<Node>>>;

pub struct Backend {
    /// Index into the world's clusters: 0 is the main cluster.
    pub cluster: usize,
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
    /// The clusters' names (`main` first) and what the runner knows of each.
    pub(super) clusters: Vec<String>,
    pub(super) books: Vec<Books>,
    /// The cluster the current step talks to.
    pub(super) current: usize,
    /// What each uploaded snapshot holds, by locator: per block, what it must read back as
    /// and what else a failed write may have left.
    pub(super) snapshots: BTreeMap<String, SnapshotContent>,
    pub(super) objects: ObjectStore,
    pub(super) net: Net,
    /// Every DEK seen in any backend's memory during the run, by `cluster/fs`.
    pub(super) known_deks: BTreeMap<String, Key>,
    pub(super) leaks: LeakScanner,
    /// The transit key's newest version and its `min_decryption_version`, as the
    /// runner's own rotate and trim steps left them.
    pub(super) key_latest: u64,
    pub(super) key_min_decryption: u64,
    /// The highest `min_decryption_version` set by a trim the cluster's snapshot list
    /// said was safe: no kept snapshot may be wrapped below it.
    pub(super) safe_trim_min: u64,
    /// Whether the last `security kms rewrap` was acknowledged.
    pub(super) last_rewrap_ok: bool,
    /// The backends the current step may send commands to (`None`: any).
    pub(super) via: Option<Vec<u64>>,
}

/// Per block of a snapshot: what it must read back as, and what else a failed write may
/// have left in it.
pub type SnapshotContent = BTreeMap<u64, (Vec<u8>, Vec<Vec<u8>>)>;

/// What the runner knows of one cluster, to check it against.
#[derive(Default)]
pub struct Books {
    /// Filesystems whose creation was acknowledged, in order.
    pub filesystems: Vec<String>,
    /// Filesystems whose creation failed with a KMS error: they must not exist.
    pub failed_creates: BTreeSet<String>,
    /// Every acknowledged write: what each block must read back as.
    pub acked: BTreeMap<(String, u64), Vec<u8>>,
    /// Writes that failed after the last acknowledged one of their block: a failed write
    /// may have reached some replicas, so a read may return its data instead.
    pub unacked: BTreeMap<(String, u64), Vec<Vec<u8>>>,
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

        let objects = ObjectStore::default();
        let store = objects.router();
        sim.host(OBJECT_STORE_HOST, move || {
            let store = store.clone();
            async move {
                let listener =
                    turmoil::net::TcpListener::bind(("0.0.0.0", OBJECT_STORE_PORT)).await?;
                loop {
                    let (stream, _) = listener.accept().await?;
                    tokio::spawn(kms_sim::serve::serve_stream(store.clone(), stream));
                }
            }
        });

        let crashes = CrashSwitch::default();
        let hooks = Hooks {
            crash_point: Some(crashes.hook()),
            planted: opts.planted.clone(),
        };
        let spec = &scenario.cluster;
        let mut clusters = vec![("main".to_string(), spec.backends, spec.replicas)];
        clusters.extend(
            scenario
                .extra_clusters
                .iter()
                .map(|e| (e.name.clone(), e.backends, e.replicas)),
        );
        let hosts: BTreeMap<u64, String> = clusters
            .iter()
            .enumerate()
            .flat_map(|(c, (name, count, _))| {
                (1..=*count as u64).map(move |i| (node_id(c, i), host_name(c, name, i)))
            })
            .collect();
        let sink: EventSink = {
            let trace = trace.clone();
            Arc::new(move |node: u64, event: Event| {
                let at = turmoil::sim_elapsed().unwrap_or_default();
                let host = hosts.get(&node).map_or("?", String::as_str);
                trace::lock(&trace).record(at, host, &event);
            })
        };
        let mut backends = Vec::new();
        for (index, (name, count, replicas)) in clusters.iter().enumerate() {
            let host_of = |i: u64| host_name(index, name, i);
            let members: BTreeMap<u64, String> = (1..=*count as u64)
                .map(|i| (node_id(index, i), format!("{}:{BACKEND_PORT}", host_of(i))))
                .collect();
            for i in 1..=*count as u64 {
                let host = host_of(i);
                let id = node_id(index, i);
                let disk = Disk::default();
                let slot: Slot = Arc::default();
                let options = NodeOptions {
                    id,
                    members: members.clone(),
                    replicas: *replicas as usize,
                    seed: derive_seed(seed, &host),
                    timing: Timing::default(),
                    hooks: hooks.clone(),
                    object_store: Some(ObjectStoreConfig {
                        url: format!("http://{OBJECT_STORE_HOST}:{OBJECT_STORE_PORT}"),
                        bucket: SNAPSHOT_BUCKET.into(),
                    }),
                };
                let (d, s, sink) = (disk.clone(), slot.clone(), sink.clone());
                sim.host(host.as_str(), move || {
                    let (options, disk, slot, sink) =
                        (options.clone(), d.clone(), s.clone(), sink.clone());
                    async move {
                        let node =
                            Node::start(options, disk, Arc::new(TurmoilDialer), sink).await?;
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
                    cluster: index,
                    id,
                    host,
                    disk,
                    slot,
                });
            }
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
        let net = Net {
            hosts: [VAULT_HOST, OBJECT_STORE_HOST, "admin"]
                .iter()
                .map(|h| h.to_string())
                .chain(backends.iter().map(|b| b.host.clone()))
                .collect(),
            cuts: Vec::new(),
        };
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
            books: clusters.iter().map(|_| Books::default()).collect(),
            clusters: clusters.into_iter().map(|(name, _, _)| name).collect(),
            current: 0,
            snapshots: BTreeMap::new(),
            net,
            objects,
            known_deks: BTreeMap::new(),
            leaks: LeakScanner::default(),
            key_latest: 1,
            key_min_decryption: 1,
            via: None,
            last_rewrap_ok: false,
            safe_trim_min: 0,
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
        step_and_crash(
            &mut self.sim,
            &self.crashes,
            &self.backends,
            &self.trace,
            &self.net,
        )
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
            net,
            ..
        } = self;
        let now = sim.elapsed();
        let mut step = || step_and_crash(sim, crashes, backends, trace, net);
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
        crash_backend(&mut self.sim, &self.backends[index], &self.trace, &self.net);
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

/// Node ids are unique across clusters: cluster `c`'s backend `i` is `c * 100 + i`, so
/// the main cluster keeps ids 1..N.
pub fn node_id(cluster: usize, i: u64) -> u64 {
    cluster as u64 * 100 + i
}

fn host_name(cluster: usize, name: &str, i: u64) -> String {
    if cluster == 0 {
        format!("backend{i}")
    } else {
        format!("{name}-backend{i}")
    }
}

/// Crashes a backend the way power loss does: its host sends nothing on the way down.
///
/// turmoil cancels a host's tasks in an order that follows tokio's process-wide task
/// ids, and each stream dropped would send a FIN with a latency drawn from the seeded
/// RNG; cutting the host off first drops those FINs (one draw each, whatever the order),
/// so a run replays the same in a fresh process and after other runs in the same one.
fn crash_backend(sim: &mut turmoil::Sim<'_>, backend: &Backend, trace: &SharedTrace, net: &Net) {
    *lock(&backend.slot) = None;
    let host = backend.host.as_str();
    let others: Vec<&String> = net.hosts.iter().filter(|h| *h != host).collect();
    for other in &others {
        sim.partition(host, other.as_str());
    }
    sim.crash(host);
    for other in &others {
        sim.repair(host, other.as_str());
    }
    net.reapply(sim);
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
    net: &Net,
) -> Duration {
    if let Err(e) = sim.step() {
        panic!("the simulation stopped: {e}");
    }
    for id in crashes.take_fired() {
        if let Some(b) = backends.iter().find(|b| b.id == id) {
            crash_backend(sim, b, trace, net);
        }
    }
    sim.elapsed()
}

/// Every host, and the cuts the scenario put in the network (so a crash, which cuts
/// and repairs a host's links, can restore them).
#[derive(Default)]
pub struct Net {
    pub hosts: Vec<String>,
    pub cuts: Vec<Cut>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    Both(String, String),
    OneWay(String, String),
    Hold(String, String),
}

impl Net {
    pub fn apply(sim: &turmoil::Sim<'_>, cut: &Cut) {
        match cut {
            Cut::Both(a, b) => sim.partition(a.as_str(), b.as_str()),
            Cut::OneWay(a, b) => sim.partition_oneway(a.as_str(), b.as_str()),
            Cut::Hold(a, b) => sim.hold(a.as_str(), b.as_str()),
        }
    }

    fn reapply(&self, sim: &turmoil::Sim<'_>) {
        for cut in &self.cuts {
            Net::apply(sim, cut);
        }
    }
}
