//! The seam between the runner and the world it drives.
//!
//! The runner (steps, checks, oracles) is the same for a seeded run on turmoil and for a
//! live run in real time against a real Vault; what differs is behind [`Fabric`]: how
//! time passes, how hosts are booted and crashed, how the network is reached, and how
//! the KMS is faulted, sealed, stopped and started.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cluster::events::EventSink;
use cluster::net::Dialer;
use cluster::node::NodeOptions;
use kms_sim::chaos::{Chaos, Fault};

use super::world::Backend;
use crate::scenario::Step;
use crate::vault_setup::{SetupPlan, VaultCreds};

/// Work the runner hands to its admin host: an admin command, a Vault admin call.
pub type Job = Pin<Box<dyn Future<Output = ()>>>;

/// A clock any thread can read: the time since the run began (simulated or real).
pub type Clock = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The admin host is gone: the job was not taken.
#[derive(Debug)]
pub struct Stuck;

/// What a KMS step does to the KMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsAction {
    /// Turns a fault on in front of the KMS (`Fault::None` turns it off).
    Fault(Fault, Duration),
    Seal,
    Unseal,
    /// Revokes every token but the admin's; returns how many.
    RevokeTokens,
    /// The KMS process stops: nothing answers at its address.
    Stop,
    /// It starts again from its storage, sealed.
    Start,
}

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

    /// The Vault URL the cluster is given in `security kms set`.
    fn kms_url(&self) -> String;

    /// The Vault an admin reaches out of band (no fault in between), and the admin's
    /// token.
    fn vault_admin(&self) -> (String, String);

    /// The object store's URL, as the backends reach it.
    fn object_store_url(&self) -> String;

    /// Registers a backend and boots it: its node fills `backend.slot` once it is up.
    fn boot(&mut self, backend: &Backend, options: NodeOptions, sink: EventSink);

    /// Crashes a backend: memory gone, disk kept, down until [`Fabric::start`].
    fn crash(&mut self, backend: &Backend);

    /// Boots a backend again from its disk.
    fn start(&mut self, backend: &Backend);

    /// The fault switch in front of the KMS.
    fn chaos(&self) -> &Chaos;

    /// Carries out a KMS step; the answer says what happened, for the trace.
    fn kms(&mut self, action: KmsAction) -> Result<String, String>;

    /// Carries out a network step (`partition`, `hold`, `release`, `heal`, `latency`).
    fn network(&mut self, step: &Step, hosts: &dyn Fn(&str) -> Vec<String>) -> String;

    /// Everything back to health before the liveness phase: network, KMS faults, the
    /// KMS running and unsealed.
    fn heal(&mut self) -> Result<(), String>;

    /// Requests the KMS served, for the verdict.
    fn kms_requests(&self) -> u64;

    /// Whether the user asked to stop (a live run's Ctrl-C). The runner then ends the run
    /// at the next wait or step, and still tears down.
    fn interrupted(&self) -> bool {
        false
    }

    /// After the run: removes what the Vault setup created (a live Vault outlives the
    /// run; a simulated one does not).
    /// `keys` are the transit keys the setup created.
    fn teardown(
        &mut self,
        _setup: &SetupPlan,
        _keys: &[String],
        _creds: Option<&VaultCreds>,
    ) -> Result<(), String> {
        Ok(())
    }
}
