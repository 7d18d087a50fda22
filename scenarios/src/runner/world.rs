//! The world a run plays in: the backends with their disks, the fabric they run on, and
//! what the runner remembers to check the cluster against.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::buggify::{Buggify, Site};
use cluster::config_table::AppliedTable;
use cluster::disk::Disk;
use cluster::events::{Event, EventSink};
use cluster::hooks::{CrashPoint, CrashPointHook, Hooks};
use cluster::node::{Node, NodeOptions, ObjectStoreConfig, Timing};
use kms_sim::object_store::ObjectStore;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use tokio::sync::watch;

use super::fabric::{Fabric, Stuck};
use super::{derive_seed, SimOptions};
use crate::config_agreement::AppliedStates;
use crate::coverage::{add_faults_met, Counts, Coverage};
use crate::crypto_history::CryptoHistory;
use crate::kms::KmsUnderTest;
use crate::oracle::{Key, LeakScanner};
use crate::safe_trims::SafeTrims;
use crate::scenario::{default_voters, Scenario};
use crate::trace::{self, SharedTrace};

pub const SNAPSHOT_BUCKET: &str = "weka-snapshots";

/// The live node of a backend, filled in by the host each time it boots and emptied
/// by the runner when it crashes the host.
pub type Slot = Arc<Mutex<Option<Node>>>;

#[derive(Clone)]
pub struct Backend {
    /// Index into the world's clusters: 0 is the main cluster.
    pub cluster: usize,
    pub id: u64,
    pub host: String,
    /// Where its node serves (`host:port`).
    pub addr: String,
    pub disk: Disk,
    /// What its replica applied of the config table (kept across its boots: after a
    /// crash, what it had applied when it went down).
    pub applied: AppliedTable,
    pub slot: Slot,
    /// Counts the times this backend's node went down (crashed, powered off or bounced):
    /// an admin command in flight to it watches this to learn it will get no answer.
    pub downs: Arc<watch::Sender<u64>>,
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
    /// Time, hosts and network: turmoil in a seeded run, real ones live.
    pub(super) fabric: Box<dyn Fabric + 'a>,
    /// The KMS the cluster wraps its keys with: its protocol, keys and lifecycle.
    pub(super) kms: Box<dyn KmsUnderTest + 'a>,
    pub(super) scenario: Scenario,
    pub(super) opts: SimOptions,
    pub(super) backends: Vec<Backend>,
    pub(super) trace: SharedTrace,
    /// The runner's own draws: which backend serves a command, what data to write.
    pub(super) rng: ChaCha20Rng,
    pub(super) crashes: CrashSwitch,
    /// The probes this run fired (see `coverage`).
    pub(super) coverage: Coverage,
    /// The clusters' names (`main` first) and what the runner knows of each.
    pub(super) clusters: Vec<String>,
    pub(super) books: Vec<Books>,
    /// The cluster the current step talks to.
    pub(super) current: usize,
    /// What each uploaded snapshot holds, by locator: per block, what it must read back as
    /// and what else a failed write may have left.
    pub(super) snapshots: BTreeMap<String, SnapshotContent>,
    pub(super) objects: ObjectStore,
    /// Every DEK seen in any backend's memory during the run, by `cluster/fs`.
    pub(super) known_deks: BTreeMap<String, Key>,
    pub(super) leaks: LeakScanner,
    /// What the cluster did with its keys over the whole run (see `crypto_history`).
    pub(super) crypto: CryptoHistory,
    /// The trims the cluster's snapshot list called safe, by key: no kept snapshot may be
    /// wrapped by a version one retired.
    pub(super) safe_trims: SafeTrims,
    /// Whether the last rewrap of the cluster key (`security kms rewrap`, with or
    /// without `--all` or `--new-key-uid`) was acknowledged.
    pub(super) last_rewrap_ok: bool,
    /// Whether the last rewrap of the keys filesystems have of their own (`security kms
    /// rewrap --all`) was acknowledged.
    pub(super) last_rewrap_all_ok: bool,
    /// The backends the current step may send commands to (`None`: any).
    pub(super) via: Option<Vec<u64>>,
    /// Told of each step as it starts (a live run shows its progress).
    pub(super) progress: Option<Progress>,
    /// The backends (by index) whose disks have had storage faults this run (see
    /// `disk_faults`).
    pub(super) faulty_disks: BTreeSet<usize>,
    /// The backends (by index) whose config records have had storage faults this run (see
    /// `disk_faults`).
    pub(super) config_faulty_disks: BTreeSet<usize>,
    /// The backends (by id) that reported a config record they could not verify
    /// (`ConfigRecordCorrupt`), as the event sink saw it.
    pub(super) reported_corrupt: Arc<Mutex<BTreeSet<u64>>>,
    /// Per cluster and log index, the config state a backend applied there (see
    /// `config_agreement::config_tables_agree`).
    pub(super) applied: AppliedStates,
    /// A `kms-revoke-secret-id` destroyed the secret-id the cluster has, and no `kms set`
    /// has given it the new one since.
    pub(super) secret_id_replaced: bool,
    /// When each step began, in simulated and wall time (for benchmarks; never traced).
    pub(super) step_times: Vec<StepTime>,
    /// Wall time since the world was built: only for `step_times`.
    pub(super) stopwatch: crate::wall::Stopwatch,
}

/// When a step (or, with index 0, the liveness phase) began: simulated time since the
/// run began, and wall time since its world was built. Wall time never enters a trace.
#[derive(Debug, Clone)]
pub struct StepTime {
    pub index: usize,
    pub action: &'static str,
    pub sim: Duration,
    pub wall: Duration,
}

/// Called with (step, of steps, action, time since the run began) as each step starts;
/// step 0 is the liveness phase.
pub type Progress = Box<dyn Fn(usize, usize, &str, Duration)>;

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
    /// One command of a race and what came of it.
    Raced {
        backend: u64,
        command: &'static str,
        outcome: &'static str,
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

/// The fault sites of a run whose scenario asks for them (`[scenario.knobs] buggify =
/// "true"`, as the swarm's `buggify` knob writes it): each site active in about one such
/// run in four, drawn from the seed.
fn buggify(scenario: &Scenario, seed: u64) -> Buggify {
    if scenario.scenario.knobs.get("buggify").map(String::as_str) != Some("true") {
        return Buggify::default();
    }
    let active = Site::ALL
        .into_iter()
        .filter(|site| {
            derive_seed(seed, &format!("buggify site {}", site.name())).is_multiple_of(4)
        })
        .collect();
    Buggify::new(active, derive_seed(seed, "buggify"))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<'a> World<'a> {
    /// The cluster(s) of `scenario` on `fabric`, booting, with `kms` as their KMS.
    /// `objects` is the store the fabric serves snapshots from.
    pub fn build(
        scenario: &Scenario,
        opts: &SimOptions,
        trace: SharedTrace,
        mut fabric: Box<dyn Fabric + 'a>,
        kms: Box<dyn KmsUnderTest + 'a>,
        objects: ObjectStore,
    ) -> World<'a> {
        let seed = opts.seed;
        let crashes = CrashSwitch::default();
        let coverage = Coverage::default();
        let hooks = Hooks {
            crash_point: Some(crashes.hook()),
            planted: opts.planted.clone(),
            probes: coverage.sink(),
            buggify: buggify(scenario, seed),
        };
        let spec = &scenario.cluster;
        // Each cluster's name, backends, replicas and voters.
        let mut clusters = vec![(
            "main".to_string(),
            spec.backends,
            spec.replicas,
            spec.voter_count(),
        )];
        clusters.extend(scenario.extra_clusters.iter().map(|e| {
            let voters = default_voters(e.backends);
            (e.name.clone(), e.backends, e.replicas, voters)
        }));
        let hosts: BTreeMap<u64, String> = clusters
            .iter()
            .enumerate()
            .flat_map(|(c, (name, count, _, _))| {
                (1..=*count as u64).map(move |i| (node_id(c, i), host_name(c, name, i)))
            })
            .collect();
        let addrs: BTreeMap<u64, String> = hosts
            .iter()
            .map(|(id, host)| (*id, fabric.backend_addr(host)))
            .collect();
        let reported_corrupt: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
        let sink: EventSink = {
            let trace = trace.clone();
            let clock = fabric.clock();
            let coverage = coverage.clone();
            let reported = reported_corrupt.clone();
            Arc::new(move |node: u64, event: Event| {
                coverage.event(&event);
                if matches!(event, Event::ConfigRecordCorrupt { .. }) {
                    lock(&reported).insert(node);
                }
                let host = hosts.get(&node).map_or("?", String::as_str);
                trace::lock(&trace).record(clock(), host, &event);
            })
        };
        let object_store = ObjectStoreConfig {
            url: fabric.object_store_url(),
            bucket: SNAPSHOT_BUCKET.into(),
        };
        let mut backends = Vec::new();
        for (index, (name, count, replicas, voters)) in clusters.iter().enumerate() {
            let members: BTreeMap<u64, String> = (1..=*count as u64)
                .map(|i| (node_id(index, i), addrs[&node_id(index, i)].clone()))
                .collect();
            for i in 1..=*count as u64 {
                let host = host_name(index, name, i);
                let id = node_id(index, i);
                let applied = AppliedTable::default();
                let options = NodeOptions {
                    id,
                    members: members.clone(),
                    voters: *voters as usize,
                    replicas: *replicas as usize,
                    seed: derive_seed(seed, &host),
                    timing: Timing::default(),
                    hooks: hooks.clone(),
                    object_store: Some(object_store.clone()),
                    applied: applied.clone(),
                };
                let backend = Backend {
                    cluster: index,
                    id,
                    addr: addrs[&id].clone(),
                    host,
                    disk: Disk::default(),
                    applied,
                    slot: Slot::default(),
                    downs: Arc::new(watch::Sender::new(0)),
                };
                fabric.boot(&backend, options, sink.clone());
                backends.push(backend);
            }
        }

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
            fabric,
            kms,
            scenario: scenario.clone(),
            opts: opts.clone(),
            backends,
            trace,
            rng: ChaCha20Rng::seed_from_u64(derive_seed(seed, "runner")),
            crashes,
            coverage,
            books: clusters.iter().map(|_| Books::default()).collect(),
            clusters: clusters.into_iter().map(|(name, ..)| name).collect(),
            current: 0,
            snapshots: BTreeMap::new(),
            objects,
            known_deks: BTreeMap::new(),
            leaks: LeakScanner::default(),
            crypto: CryptoHistory::default(),
            via: None,
            last_rewrap_ok: false,
            last_rewrap_all_ok: false,
            safe_trims: SafeTrims::default(),
            progress: None,
            faulty_disks: BTreeSet::new(),
            config_faulty_disks: BTreeSet::new(),
            reported_corrupt,
            applied: AppliedStates::default(),
            secret_id_replaced: false,
            step_times: Vec::new(),
            stopwatch: crate::wall::Stopwatch::start(),
        }
    }

    /// When each step began, so far.
    pub fn step_times(&self) -> &[StepTime] {
        &self.step_times
    }

    /// Notes that step `index` (0: the liveness phase) begins, and tells `progress`.
    pub(super) fn step_begins(&mut self, index: usize, of: usize, action: &'static str) {
        let sim = self.fabric.elapsed();
        self.step_times.push(StepTime {
            index,
            action,
            sim,
            wall: self.stopwatch.elapsed(),
        });
        if let Some(progress) = &self.progress {
            progress(index, of, action, sim);
        }
    }

    /// The probes this run fired, with the faults that met a request at each switch.
    pub fn coverage(&self) -> Counts {
        let mut counts = self.coverage.counts();
        add_faults_met(&mut counts, "kms", self.fabric.chaos().met());
        add_faults_met(&mut counts, "store", self.fabric.store_chaos().met());
        self.add_disk_faults_met(&mut counts);
        counts
    }

    /// Has `progress` told of each step as it starts.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    pub fn elapsed(&self) -> Duration {
        self.fabric.elapsed()
    }

    /// Removes what the KMS setup created, where the KMS outlives the run.
    pub fn teardown(&mut self) -> Result<(), String> {
        self.kms.teardown(self.fabric.as_mut())
    }

    pub(super) fn record(&self, event: &RunnerEvent<'_>) {
        trace::lock(&self.trace).record(self.fabric.elapsed(), "runner", event);
    }

    /// One tick, then any crash a crash point asked for.
    pub(super) fn step_sim(&mut self) {
        self.fabric.tick();
        for id in self.crashes.take_fired() {
            if let Some(index) = self.backends.iter().position(|b| b.id == id) {
                self.crash(index);
            }
        }
    }

    /// Runs a job on the admin host (crashing backends at their crash points meanwhile)
    /// and waits for its answer at most `bound`.
    pub(super) fn run_job<T: 'static>(
        &mut self,
        bound: Duration,
        job: impl std::future::Future<Output = T> + 'static,
    ) -> Result<T, Stuck> {
        let slot: Rc<RefCell<Option<T>>> = Rc::new(RefCell::new(None));
        let out = slot.clone();
        self.fabric.submit(Box::pin(async move {
            let value = job.await;
            *out.borrow_mut() = Some(value);
        }))?;
        let deadline = self.fabric.elapsed() + bound;
        loop {
            if let Some(value) = slot.borrow_mut().take() {
                return Ok(value);
            }
            self.step_sim();
            if self.fabric.elapsed() > deadline || self.fabric.interrupted() {
                return Err(Stuck);
            }
        }
    }

    /// The backends whose node is up, with it.
    pub(super) fn running(&self) -> Vec<(u64, Node)> {
        self.backends
            .iter()
            .filter_map(|b| lock(&b.slot).clone().map(|n| (b.id, n)))
            .collect()
    }

    /// The backend of `cluster` whose replica has applied the most of the config table: a
    /// lagging or crashed backend's table may trail its cluster's.
    pub(super) fn most_advanced(&self, cluster: usize) -> Option<&Backend> {
        self.backends
            .iter()
            .filter(|b| b.cluster == cluster)
            .max_by_key(|b| b.applied.last_applied())
    }

    /// `call`, unless backend `id` goes down before it ends: then `None`, at once. A
    /// crashed process's kernel resets its connections, so its clients learn of the crash
    /// straight away rather than when their timeouts expire. (A powered-off machine's
    /// clients would wait out their timeouts; that would tell a run nothing more, and cost
    /// it a minute of simulated time per command in flight.)
    pub(super) fn unless_down<F: std::future::Future>(
        &self,
        id: u64,
        call: F,
    ) -> impl std::future::Future<Output = Option<F::Output>> {
        let downs = self
            .backends
            .iter()
            .find(|b| b.id == id)
            .map(|b| b.downs.subscribe());
        async move {
            let Some(mut downs) = downs else {
                return Some(call.await);
            };
            // `biased`: polled in this order, not in a random one (determinism).
            tokio::select! {
                biased;
                out = call => Some(out),
                _ = downs.changed() => None,
            }
        }
    }

    pub(super) fn is_up(&self, index: usize) -> bool {
        lock(&self.backends[index].slot).is_some()
    }

    /// Crashes one backend: its memory is gone, its disk stays; it stays down.
    pub(super) fn crash(&mut self, index: usize) {
        self.fabric.crash(&self.backends[index]);
        self.backends[index].downs.send_modify(|n| *n += 1);
        self.record(&RunnerEvent::Crash {
            backend: self.backends[index].id,
        });
    }

    /// Boots one backend (crashed or running) from its disk.
    pub(super) fn start(&mut self, index: usize) {
        self.fabric.start(&self.backends[index]);
        self.backends[index].downs.send_modify(|n| *n += 1);
        self.record(&RunnerEvent::Restart {
            backend: self.backends[index].id,
        });
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
