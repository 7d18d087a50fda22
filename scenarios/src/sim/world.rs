//! The simulated world: turmoil, a Vault host, the backend hosts with their disks, the
//! admin host, and what the runner remembers to check the cluster against.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cluster::config_table::seed_raft_rng;
use cluster::disk::Disk;
use cluster::events::{Event, EventSink};
use cluster::node::{Node, NodeOptions, Timing};
use kms_sim::VaultSim;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use super::driver::Driver;
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
    pub(super) creds: Option<VaultCreds>,
    /// Filesystems created so far, in creation order.
    pub(super) filesystems: Vec<String>,
    /// Every acknowledged write: what each block must read back as.
    pub(super) acked: BTreeMap<(String, u64), Vec<u8>>,
    /// Every DEK seen in any backend's memory during the run.
    pub(super) known_deks: BTreeMap<String, Key>,
    pub(super) leaks: LeakScanner,
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
    Phase {
        name: &'a str,
    },
    Verdict {
        pass: bool,
        check: Option<&'a str>,
        kms_requests: u64,
    },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
        let app = vault.router();
        sim.host(VAULT_HOST, move || {
            let app = app.clone();
            async move {
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", VAULT_PORT)).await?;
                loop {
                    let (stream, _) = listener.accept().await?;
                    tokio::spawn(kms_sim::serve::serve_stream(app.clone(), stream));
                }
            }
        });

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
            creds: None,
            filesystems: Vec::new(),
            acked: BTreeMap::new(),
            known_deks: BTreeMap::new(),
            leaks: LeakScanner::default(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    pub(super) fn record(&self, event: &RunnerEvent<'_>) {
        trace::lock(&self.trace).record(self.sim.elapsed(), "runner", event);
    }

    /// The backends whose node is up, with it.
    pub(super) fn running(&self) -> Vec<(u64, Node)> {
        self.backends
            .iter()
            .filter_map(|b| lock(&b.slot).clone().map(|n| (b.id, n)))
            .collect()
    }

    /// Power-cycles one backend: its memory is gone, its disk stays.
    pub(super) fn restart(&mut self, index: usize) {
        let backend = &self.backends[index];
        let (id, host) = (backend.id, backend.host.clone());
        *lock(&backend.slot) = None;
        self.record(&RunnerEvent::Crash { backend: id });
        self.sim.bounce(host.as_str());
        self.record(&RunnerEvent::Restart { backend: id });
    }
}
