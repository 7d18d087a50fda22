//! The seeded fabric: turmoil, the KMS's host behind its fault switch, the object store,
//! the admin host, and the cuts a scenario made in the network.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cluster::config_table::seed_raft_rng;
use cluster::events::EventSink;
use cluster::net::Dialer;
use cluster::node::{Node, NodeOptions};
use kms_sim::chaos::Chaos;
use kms_sim::object_store::ObjectStore;
use kms_sim::VaultSim;

mod driver;
mod kmip;
pub mod net;
pub mod tls;
mod vault;

use crate::kms::kmip::KmipUnderTest;
use crate::kms::vault::{SetupPlan, VaultUnderTest};
use crate::kms::KmsUnderTest;
use crate::runner::fabric::{Clock, Fabric, Job, Stuck};
use crate::runner::{
    derive_seed, lock, pinned_epoch, play_on, Backend, RunReport, SimOptions, TestHook, World,
};
use crate::scenario::{KmsKind, Scenario, Step};
use driver::Driver;
use kmip::{KmipService, KmipSetup, SimKmipHost, KMIP_HOST, KMIP_PORT};
use net::TurmoilDialer;
use vault::SimVaultHost;

/// Runs one scenario with one seed. Never panics: a panic inside becomes a `crash`
/// failure in the report.
pub fn run(scenario: &Scenario, opts: &SimOptions) -> RunReport {
    play_on(scenario, opts, |trace| {
        let objects = ObjectStore::default();
        let (service, kms): (SimKms, Box<dyn KmsUnderTest>) = match scenario.kms.kind {
            KmsKind::Vault => {
                let vault = VaultSim::new(derive_seed(opts.seed, "vault"), vault::ROOT_TOKEN);
                let router = vault.router();
                let host = SimVaultHost::new(vault);
                let kms = VaultUnderTest::new(host, SetupPlan::fresh(), None);
                (SimKms::Vault(router), Box::new(kms))
            }
            KmsKind::Kmip => {
                let setup = KmipSetup::new(opts.seed)?;
                let kms = KmipUnderTest::new(SimKmipHost::new(&setup));
                (SimKms::Kmip(setup), Box::new(kms))
            }
        };
        let fabric = Box::new(SimFabric::new(opts, service, &objects));
        Ok(World::build(scenario, opts, trace, fabric, kms, objects))
    })
    .unwrap_or_else(|e| unreachable!("a simulated world always builds: {e}"))
}

/// The KMS a run serves, on its own host.
pub enum SimKms {
    /// Vault's HTTP API, behind the fault switch's HTTP faults and the wire's byte-level
    /// ones.
    Vault(Router),
    /// A KMIP server behind TLS and the fault switch's byte-level faults; the fabric
    /// gives it TLS from its own dialer's seeded crypto.
    Kmip(KmipSetup),
}

pub const VAULT_HOST: &str = "vault";
pub const VAULT_PORT: u16 = 8200;
pub const BACKEND_PORT: u16 = 7000;
pub const OBJECT_STORE_HOST: &str = "s3";
pub const OBJECT_STORE_PORT: u16 = 9000;
/// The latency range every run starts with.
const MAX_LATENCY: Duration = Duration::from_millis(25);

pub struct SimFabric<'a> {
    sim: turmoil::Sim<'a>,
    /// Installed with the first job, so the admin host registers after the backends.
    driver: Option<Driver>,
    /// The fault switch in front of the KMS host.
    chaos: Chaos,
    /// The fault switch in front of the object store (byte-level faults only).
    store_chaos: Chaos,
    net: Net,
    /// Every host's dialer: one seeded TLS environment for the run.
    dialer: TurmoilDialer,
}

impl<'a> SimFabric<'a> {
    /// turmoil seeded from `opts`, with the KMS (`kms`, served behind the fault switch)
    /// and the object store (shared with the runner's checks) as hosts.
    pub fn new(opts: &SimOptions, kms: SimKms, objects: &ObjectStore) -> SimFabric<'a> {
        // A caller that forgot to ask `seeded_build` first gets a crash, never a run its
        // seed does not replay.
        if let Err(refusal) = crate::runner::seeded_build() {
            panic!("{refusal}");
        }
        let seed = opts.seed;
        seed_raft_rng(derive_seed(seed, "raft"));
        let turmoil_seed = match opts.test_hook {
            Some(TestHook::PerturbLatency) => derive_seed(seed, "turmoil, perturbed"),
            _ => derive_seed(seed, "turmoil"),
        };
        let mut sim = turmoil::Builder::new()
            .rng_seed(turmoil_seed)
            .epoch(pinned_epoch())
            .tick_duration(opts.tick)
            .simulation_duration(Duration::from_secs(365 * 24 * 3600))
            // A latency range, so the seed shapes message timing (a fixed latency would
            // make every seed replay the same run).
            .min_message_latency(Duration::from_millis(1))
            .max_message_latency(MAX_LATENCY)
            .build();

        let dialer = TurmoilDialer::new(seed);
        let chaos = Chaos::default();
        let kms_host = match kms {
            SimKms::Vault(router) => {
                serve_http(&mut sim, VAULT_HOST, VAULT_PORT, chaos.wrap(router), &chaos);
                VAULT_HOST
            }
            SimKms::Kmip(setup) => {
                let service = KmipService::new(setup, &dialer).unwrap_or_else(|e| panic!("{e}"));
                service.kmip.follow(chaos.clone());
                let chaos = chaos.clone();
                sim.host(KMIP_HOST, move || {
                    let (service, chaos) = (service.clone(), chaos.clone());
                    async move {
                        let listener =
                            turmoil::net::TcpListener::bind(("0.0.0.0", KMIP_PORT)).await?;
                        loop {
                            let (stream, _) = listener.accept().await?;
                            if chaos.refuses() {
                                drop(stream);
                                continue;
                            }
                            tokio::spawn(service.clone().serve(stream, chaos.clone()));
                        }
                    }
                });
                KMIP_HOST
            }
        };

        if opts.test_hook == Some(TestHook::PanicInHost) {
            sim.host("doomed", || async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                panic!("a simulated host panicked (test hook panic-in-host)");
            });
        }

        let store_chaos = Chaos::default();
        serve_http(
            &mut sim,
            OBJECT_STORE_HOST,
            OBJECT_STORE_PORT,
            objects.router(),
            &store_chaos,
        );
        let net = Net {
            hosts: [kms_host, OBJECT_STORE_HOST, "admin"]
                .iter()
                .map(|h| h.to_string())
                .collect(),
            cuts: Vec::new(),
        };
        SimFabric {
            sim,
            driver: None,
            chaos,
            store_chaos,
            net,
            dialer,
        }
    }

    /// Crashes a host the way power loss does: it sends nothing on the way down.
    ///
    /// turmoil cancels a host's tasks in an order that follows tokio's process-wide task
    /// ids, and each stream dropped would send a FIN with a latency drawn from the seeded
    /// RNG; cutting the host off first drops those FINs (one draw each, whatever the
    /// order), so a run replays the same in a fresh process and after other runs in the
    /// same one.
    fn crash_host(&mut self, host: &str) {
        let others: Vec<String> = self
            .net
            .hosts
            .iter()
            .filter(|h| *h != host)
            .cloned()
            .collect();
        for other in &others {
            self.sim.partition(host, other.as_str());
        }
        self.sim.crash(host);
        for other in &others {
            self.sim.repair(host, other.as_str());
        }
        for cut in &self.net.cuts {
            Net::apply(&self.sim, cut);
        }
    }

    fn heal_network(&mut self) {
        self.net.cuts.clear();
        let hosts = &self.net.hosts;
        for (i, x) in hosts.iter().enumerate() {
            for y in &hosts[i + 1..] {
                self.sim.repair(x.as_str(), y.as_str());
                self.sim.release(x.as_str(), y.as_str());
            }
        }
        self.sim.set_max_message_latency(MAX_LATENCY);
    }
}

impl Fabric for SimFabric<'_> {
    fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    fn clock(&self) -> Clock {
        Arc::new(|| turmoil::sim_elapsed().unwrap_or_default())
    }

    fn tick(&mut self) {
        if let Err(e) = self.sim.step() {
            panic!("the simulation stopped: {e}");
        }
    }

    fn submit(&mut self, job: Job) -> Result<(), Stuck> {
        let sim = &mut self.sim;
        self.driver
            .get_or_insert_with(|| Driver::install(sim))
            .submit(job)
    }

    fn dialer(&self) -> Arc<dyn Dialer> {
        Arc::new(self.dialer.clone())
    }

    fn backend_addr(&mut self, host: &str) -> String {
        format!("{host}:{BACKEND_PORT}")
    }

    fn object_store_url(&self) -> String {
        format!("http://{OBJECT_STORE_HOST}:{OBJECT_STORE_PORT}")
    }

    fn boot(&mut self, backend: &Backend, options: NodeOptions, sink: EventSink) {
        self.net.hosts.push(backend.host.clone());
        let (disk, slot) = (backend.disk.clone(), backend.slot.clone());
        let dialer = self.dialer.clone();
        self.sim.host(backend.host.as_str(), move || {
            let (options, disk, slot, sink, dialer) = (
                options.clone(),
                disk.clone(),
                slot.clone(),
                sink.clone(),
                dialer.clone(),
            );
            async move {
                let node = Node::start(options, disk, Arc::new(dialer), sink).await?;
                *lock(&slot) = Some(node.clone());
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", BACKEND_PORT)).await?;
                loop {
                    let (stream, _) = listener.accept().await?;
                    let node = node.clone();
                    tokio::spawn(async move { node.serve(Box::new(stream)).await });
                }
            }
        });
    }

    fn crash(&mut self, backend: &Backend) {
        *lock(&backend.slot) = None;
        self.crash_host(&backend.host);
    }

    fn start(&mut self, backend: &Backend) {
        *lock(&backend.slot) = None;
        self.sim.bounce(backend.host.as_str());
    }

    fn chaos(&self) -> &Chaos {
        &self.chaos
    }

    fn store_chaos(&self) -> &Chaos {
        &self.store_chaos
    }

    fn stop_host(&mut self, host: &str) -> Result<(), String> {
        self.crash_host(host);
        Ok(())
    }

    fn restart_host(&mut self, host: &str) -> Result<(), String> {
        self.sim.bounce(host);
        Ok(())
    }

    fn network(&mut self, step: &Step, hosts: &dyn Fn(&str) -> Vec<String>) -> String {
        let mut cut_all = |a: &str, b: &str, make: fn(String, String) -> Cut| {
            let ys = hosts(b);
            for x in hosts(a) {
                for y in &ys {
                    let cut = make(x.clone(), y.clone());
                    Net::apply(&self.sim, &cut);
                    self.net.cuts.push(cut);
                }
            }
        };
        match step {
            Step::Partition { a, b, oneway } => {
                cut_all(a, b, if *oneway { Cut::OneWay } else { Cut::Both });
                format!("partition {a} {} {b}", if *oneway { "->" } else { "<->" })
            }
            Step::Hold { a, b } => {
                cut_all(a, b, Cut::Hold);
                format!("hold {a} <-> {b}")
            }
            Step::Release { a, b } => {
                let ys = hosts(b);
                for x in hosts(a) {
                    for y in &ys {
                        self.sim.release(x.as_str(), y.as_str());
                        let held = Cut::Hold(x.clone(), y.clone());
                        self.net.cuts.retain(|c| *c != held);
                    }
                }
                format!("release {a} <-> {b}")
            }
            Step::Heal => {
                self.heal_network();
                "network healed".into()
            }
            Step::Latency { max } => {
                self.sim.set_max_message_latency(*max);
                format!("max latency {} ms", max.as_millis())
            }
            other => unreachable!("{} is not a network step", other.action()),
        }
    }

    fn heal(&mut self) {
        self.heal_network();
        self.chaos.set(kms_sim::chaos::Fault::None);
        self.store_chaos.set(kms_sim::chaos::Fault::None);
    }
}

/// Serves `app` over HTTP on `host:port`, every connection through the wire's byte-level
/// faults of `chaos` (a refused connection is dropped where it is accepted).
fn serve_http(sim: &mut turmoil::Sim<'_>, host: &str, port: u16, app: Router, chaos: &Chaos) {
    let chaos = chaos.clone();
    sim.host(host, move || {
        let (app, chaos) = (app.clone(), chaos.clone());
        async move {
            let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
            loop {
                let (stream, _) = listener.accept().await?;
                if chaos.refuses() {
                    drop(stream);
                    continue;
                }
                tokio::spawn(kms_sim::serve::serve_faulty(
                    app.clone(),
                    stream,
                    chaos.clone(),
                ));
            }
        }
    });
}

/// Every host, and the cuts the scenario put in the network (so a crash, which cuts
/// and repairs a host's links, can restore them).
#[derive(Default)]
struct Net {
    hosts: Vec<String>,
    cuts: Vec<Cut>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Cut {
    Both(String, String),
    OneWay(String, String),
    Hold(String, String),
}

impl Net {
    fn apply(sim: &turmoil::Sim<'_>, cut: &Cut) {
        match cut {
            Cut::Both(a, b) => sim.partition(a.as_str(), b.as_str()),
            Cut::OneWay(a, b) => sim.partition_oneway(a.as_str(), b.as_str()),
            Cut::Hold(a, b) => sim.hold(a.as_str(), b.as_str()),
        }
    }
}
