//! The config table: the cluster's replicated configuration, kept by Raft (openraft).
//!
//! It holds the KMS configuration and every filesystem with its wrapped DEK. A change
//! is committed once a majority of backends stored it, so it survives the crash of
//! any minority, and a partitioned minority cannot commit.

mod applied;
mod fail_stop;
mod kms_change;
mod network;
mod runtime;
mod state;
mod store;

use std::io::Cursor;

pub use applied::{Applied, AppliedTable};
pub use fail_stop::FailStop;
pub use kms_change::{name_list, own_key_refusal, Dependent};
pub use network::Network;
pub use runtime::{seed_raft_rng, SimRuntime};
pub use state::{ConfigCommand, ConfigResponse, ConfigState, Rewrapping};
pub use store::{LogStore, StateMachineStore};

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The config table's Raft types.
    pub TypeConfig:
        D = ConfigCommand,
        R = ConfigResponse,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = SimRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
