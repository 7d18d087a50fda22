//! The harness: scenarios, the deterministic runner, traces and oracles.

pub mod bench;
pub mod key_versions;
pub mod library;
pub mod live;
pub mod net;
pub mod oracle;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod swarm;
pub mod trace;
pub mod vault_setup;
pub mod wall;

pub use cluster::hooks::{PlantedBug, CAN_PLANT};
