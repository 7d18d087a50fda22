//! The seam between the runner and the world it drives.
//!
//! The runner (steps, checks, oracles) is the same for a seeded run on turmoil and for a
//! live run in real time against a real KMS; what differs is behind [`Fabric`]: how time
//! passes, how hosts are booted and crashed, how the network is reached, and the fault
//! switch on the wire in front of the KMS. The KMS itself (its protocol, keys and
//! lifecycle) is the other seam, [`crate::kms::KmsUnderTest`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cluster::events::EventSink;
use cluster::net::Dialer;
use cluster::node::NodeOptions;
use kms_sim::chaos::Chaos;

use super::world::Backend;
use crate::scenario::Step;

/// Work the runner hands to its admin host: an admin command, a Vault admin call.
pub type Job = Pin<Box<dyn Future<Output = ()>>>;

/// A clock any thread can read: the time since the run began (simulated or real).
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The admin host is gone: the job was not taken.
#[derive(Debug)]
pub struct Stuck;

pub trait Fabric {
    /// Time since the run began.
    fn elapsed(&self) -> Duration;

    /// The same time, for the backends' event sink.
    fn clock(&self) -> Clock;

    /// Lets one tick of time pass (and every host run meanwhile).
    fn tick(&mut self);

    /// Queues a job on the admin host; it runs while time passes.
    fn submit(&mut self, job: Job) -> Result<(), Stuck>;

    /// How the admin host and the backends reach each other and the KMS.
    fn dialer(&self) -> Arc<dyn Dialer>;

    /// The address the backend on `host` serves on; called once per backend, before
    /// any backend boots (every node is told every member's address).
    fn backend_addr(&mut self, host: &str) -> String;

    /// The object store's URL, as the backends reach it.
    fn object_store_url(&self) -> String;

    /// Registers a backend and boots it: its node fills `backend.slot` once it is up.
    fn boot(&mut self, backend: &Backend, options: NodeOptions, sink: EventSink);

    /// Crashes a backend: memory gone, disk kept, down until [`Fabric::start`].
    fn crash(&mut self, backend: &Backend);

    /// Boots a backend again from its disk.
    fn start(&mut self, backend: &Backend);

    /// The fault switch on the wire in front of the KMS.
    fn chaos(&self) -> &Chaos;

    /// The fault switch on the wire in front of the object store (its byte-level faults:
    /// the store has no protocol faults of its own).
    fn store_chaos(&self) -> &Chaos;

    /// Stops a service host the fabric runs (the simulated KMS) as power loss does: its
    /// storage survives. A live fabric runs no service hosts: the KMS is outside it.
    fn stop_host(&mut self, host: &str) -> Result<(), String>;

    /// Boots a service host again.
    fn restart_host(&mut self, host: &str) -> Result<(), String>;

    /// Carries out a network step (`partition`, `hold`, `release`, `heal`, `latency`).
    fn network(&mut self, step: &Step, hosts: &dyn Fn(&str) -> Vec<String>) -> String;

    /// The network and the wires in front of the KMS and the object store back to health
    /// before the liveness phase.
    fn heal(&mut self);

    /// Whether the user asked to stop (a live run's Ctrl-C). The runner then ends the run
    /// at the next wait or step, and still tears down.
    fn interrupted(&self) -> bool {
        false
    }
}
