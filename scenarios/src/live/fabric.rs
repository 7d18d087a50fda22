//! The live fabric: real time and real TCP on loopback, in front of a real KMS.
//!
//! - Each backend's node runs on a runtime of its own (one worker thread), so a crash
//!   drops the runtime and with it every task and connection the node had; its disk
//!   (in memory, shared with the runner) survives, as in a seeded run.
//! - The cluster reaches the KMS through a proxy that carries the same fault switch a
//!   seeded run has, so `kms-fault` steps work live; the admin reaches the KMS directly,
//!   out of band. The KMS itself runs outside the fabric (see `live::kms`). A Vault's
//!   proxy speaks HTTP and the cluster is given its URL; a KMIP server's forwards raw TCP
//!   (TLS stays end to end), and the cluster is given the server's own address, which the
//!   fabric's dialer sends to the proxy, so the server's certificate is checked against
//!   its real name.
//! - The snapshot object store is the simulated one, served on a real port behind a fault
//!   switch of its own (byte-level faults, as in a seeded run).
//! - The admin host is a current-thread runtime on the runner's thread: a tick lets it
//!   run its jobs for 10 ms of real time.

use std::collections::BTreeMap;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cluster::config_table::seed_raft_rng;
use cluster::events::EventSink;
use cluster::net::{BoxFuture, BoxStream, Dialer, TcpDialer};
use cluster::node::{Node, NodeOptions};
use kms_sim::chaos::{Chaos, Fault};
use kms_sim::object_store::ObjectStore;
use kms_sim::serve::serve_tcp;
use kms_sim::tcp_proxy::TcpForward;
use tokio::runtime::Runtime;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::LocalSet;

use crate::runner::fabric::{Clock, Fabric, Job, Stuck};
use crate::runner::{lock, Backend};
use crate::scenario::Step;
use crate::wall::Stopwatch;

/// How long a tick lets real time pass.
const TICK: Duration = Duration::from_millis(10);
/// How long a crashed node's runtime gets to drop its tasks.
const SHUTDOWN: Duration = Duration::from_secs(2);

/// A backend as the live fabric boots it.
struct LiveNode {
    /// What it boots with, once [`Fabric::boot`] registered it.
    boot: Option<(NodeOptions, EventSink)>,
    port: u16,
    /// The socket that holds `port` from the moment the address is handed out until the
    /// first boot listens on it: a port closed and bound again later may meanwhile go to
    /// another process (a container's published port, a parallel test's server).
    reserved: Option<StdListener>,
    /// Its runtime while it is up.
    runtime: Option<Runtime>,
}

/// What the fabric serves in front of the KMS.
pub enum KmsFront {
    /// An HTTP proxy (a Vault's): the cluster is given the proxy's URL.
    Http(Router),
    /// A raw TCP proxy (a KMIP server's); `address` is the server's `host:port` as the
    /// cluster is given it, which the fabric's dialer sends to the proxy.
    Tcp {
        forward: TcpForward,
        address: String,
    },
}

/// Real TCP, except that dials to the KMS's own address go to the fabric's proxy.
struct RedirectDialer {
    from: String,
    to: String,
}

impl Dialer for RedirectDialer {
    fn dial(&self, addr: &str) -> BoxFuture<'static, std::io::Result<BoxStream>> {
        let target = if addr == self.from { &self.to } else { addr };
        TcpDialer.dial(target)
    }

    fn reuse_connections(&self) -> bool {
        TcpDialer.reuse_connections()
    }
}

pub struct LiveFabric {
    started: Arc<Stopwatch>,
    admin: Runtime,
    jobs: LocalSet,
    /// Serves the KMS proxy, the object store and the Ctrl-C watcher.
    services: Runtime,
    /// The fault switch in the KMS proxy.
    chaos: Chaos,
    /// The fault switch in front of the object store.
    store_chaos: Chaos,
    proxy_url: String,
    objects_url: String,
    /// The nodes' dialer: real TCP, with the KMIP server's address sent to the proxy.
    dialer: Arc<dyn Dialer>,
    nodes: BTreeMap<String, LiveNode>,
    /// Set by the first Ctrl-C (see [`LiveFabric::stop_on_ctrl_c`]).
    interrupted: Arc<AtomicBool>,
}

impl LiveFabric {
    /// Serves `kms` (the way on to the KMS) behind the fault switch as the cluster's KMS
    /// proxy, and `objects`; `admin` is the runtime the run was prepared on.
    pub fn new(
        admin: Runtime,
        jobs: LocalSet,
        kms: KmsFront,
        objects: &ObjectStore,
    ) -> Result<LiveFabric, String> {
        let services = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("wekasim-services")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the services runtime: {e}"))?;
        let chaos = Chaos::default();
        let (proxy, proxy_url) = listen(&services)?;
        let dialer: Arc<dyn Dialer> = match kms {
            KmsFront::Http(router) => {
                services.spawn(serve_tcp(proxy, chaos.wrap(router), chaos.clone()));
                Arc::new(TcpDialer)
            }
            KmsFront::Tcp { forward, address } => {
                services.spawn(forward.serve(proxy, chaos.clone()));
                let to = proxy_url.trim_start_matches("http://").to_string();
                Arc::new(RedirectDialer { from: address, to })
            }
        };
        let (store, objects_url) = listen(&services)?;
        let store_chaos = Chaos::default();
        services.spawn(serve_tcp(store, objects.router(), store_chaos.clone()));
        Ok(LiveFabric {
            started: Arc::new(Stopwatch::start()),
            admin,
            jobs,
            services,
            chaos,
            store_chaos,
            proxy_url,
            objects_url,
            dialer,
            nodes: BTreeMap::new(),
            interrupted: Arc::default(),
        })
    }

    /// Where the cluster reaches the KMS: the proxy with the fault switch (`http://...` in
    /// front of a Vault).
    pub fn kms_url(&self) -> &str {
        &self.proxy_url
    }

    /// Makes the first Ctrl-C end the run at its next step or wait, so that the backends
    /// stop and what the run created in the Vault is removed; a second one quits at once.
    pub fn stop_on_ctrl_c(&self) {
        // Registered here, before the run starts, so no Ctrl-C can slip past it.
        let _context = self.services.enter();
        let Ok(mut sigint) = signal(SignalKind::interrupt()) else {
            tracing::warn!("cannot watch for Ctrl-C: it will kill the run uncleanly");
            return;
        };
        let interrupted = self.interrupted.clone();
        self.services.spawn(async move {
            if sigint.recv().await.is_none() {
                return;
            }
            interrupted.store(true, Ordering::SeqCst);
            eprintln!(
                "interrupted: ending the run and cleaning up the KMS (Ctrl-C again quits at \
                 once and leaves what the run created)"
            );
            if sigint.recv().await.is_some() {
                std::process::exit(130);
            }
        });
    }

    /// Runs `fut` on the admin runtime (queued admin jobs run meanwhile).
    fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.jobs.block_on(&self.admin, fut)
    }

    fn boot_node(&mut self, backend: &Backend) {
        let Some(node) = self.nodes.get_mut(&backend.host) else {
            return;
        };
        if let Some(old) = node.runtime.take() {
            old.shutdown_timeout(SHUTDOWN);
        }
        let Some((options, sink)) = node.boot.clone() else {
            return;
        };
        // Each node thread draws its Raft election timeouts from its own seeded RNG.
        let seed = options.seed;
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(backend.host.clone())
            .enable_all()
            .on_thread_start(move || seed_raft_rng(seed))
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("cannot start a runtime for {}: {e}", backend.host);
                return;
            }
        };
        let port = node.port;
        let reserved = node.reserved.take();
        let dialer = self.dialer.clone();
        let (disk, slot, host) = (
            backend.disk.clone(),
            backend.slot.clone(),
            backend.host.clone(),
        );
        runtime.spawn(async move {
            // Listen first, so peers that dial meanwhile wait in the backlog: on the first
            // boot with the socket reserved for it, after a crash on the same port again.
            let listener = match reserved {
                Some(socket) => tokio::net::TcpListener::from_std(socket),
                None => bind(port).await,
            };
            let listener = match listener {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("{host} cannot listen on 127.0.0.1:{port}: {e}");
                    return;
                }
            };
            let node = match Node::start(options, disk, dialer, sink).await {
                Ok(node) => node,
                Err(e) => {
                    tracing::error!("{host} did not boot: {e}");
                    return;
                }
            };
            *lock(&slot) = Some(node.clone());
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let node = node.clone();
                tokio::spawn(async move { node.serve(Box::new(stream)).await });
            }
        });
        node.runtime = Some(runtime);
    }
}

impl Drop for LiveFabric {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(rt) = node.runtime.take() {
                rt.shutdown_background();
            }
        }
    }
}

impl Fabric for LiveFabric {
    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn clock(&self) -> Clock {
        let started = self.started.clone();
        Arc::new(move || started.elapsed())
    }

    fn tick(&mut self) {
        // The sleep is made inside the runtime: a timer needs its context.
        self.block_on(async { tokio::time::sleep(TICK).await });
    }

    fn submit(&mut self, job: Job) -> Result<(), Stuck> {
        self.jobs.spawn_local(job);
        Ok(())
    }

    fn dialer(&self) -> Arc<dyn Dialer> {
        self.dialer.clone()
    }

    fn backend_addr(&mut self, host: &str) -> String {
        // A port the system hands out now, held until the node's first boot listens on it.
        let reserved = StdListener::bind("127.0.0.1:0").and_then(|l| {
            l.set_nonblocking(true)?;
            Ok(l)
        });
        let port = reserved
            .as_ref()
            .ok()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port());
        self.nodes.insert(
            host.to_string(),
            LiveNode {
                boot: None,
                port,
                reserved: reserved.ok(),
                runtime: None,
            },
        );
        format!("127.0.0.1:{port}")
    }

    fn object_store_url(&self) -> String {
        self.objects_url.clone()
    }

    fn boot(&mut self, backend: &Backend, options: NodeOptions, sink: EventSink) {
        if let Some(node) = self.nodes.get_mut(&backend.host) {
            node.boot = Some((options, sink));
        }
        self.boot_node(backend);
    }

    fn crash(&mut self, backend: &Backend) {
        *lock(&backend.slot) = None;
        if let Some(rt) = self
            .nodes
            .get_mut(&backend.host)
            .and_then(|n| n.runtime.take())
        {
            rt.shutdown_timeout(SHUTDOWN);
        }
    }

    fn start(&mut self, backend: &Backend) {
        *lock(&backend.slot) = None;
        self.boot_node(backend);
    }

    fn chaos(&self) -> &Chaos {
        &self.chaos
    }

    fn store_chaos(&self) -> &Chaos {
        &self.store_chaos
    }

    fn stop_host(&mut self, host: &str) -> Result<(), String> {
        Err(format!(
            "{host} is not a host of the live fabric: a live KMS runs outside it"
        ))
    }

    fn restart_host(&mut self, host: &str) -> Result<(), String> {
        self.stop_host(host)
    }

    fn network(&mut self, step: &Step, _hosts: &dyn Fn(&str) -> Vec<String>) -> String {
        // The live runner refuses network steps before it starts; `heal` has nothing to do.
        format!("{} has no effect live", step.action())
    }

    fn heal(&mut self) {
        self.chaos.set(Fault::None);
        self.store_chaos.set(Fault::None);
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

/// A loopback listener on the services runtime, and its URL.
fn listen(services: &Runtime) -> Result<(tokio::net::TcpListener, String), String> {
    let std = StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on loopback: {e}"))?;
    let addr = std.local_addr().map_err(|e| e.to_string())?;
    let _guard = services.enter();
    let listener = tokio::net::TcpListener::from_std(std).map_err(|e| e.to_string())?;
    Ok((listener, format!("http://{addr}")))
}

/// Binds a node's port; a restarted node may find its old socket still closing.
async fn bind(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let mut attempt = 0;
    loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return Ok(l),
            Err(e) if attempt >= 50 => return Err(e),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}
