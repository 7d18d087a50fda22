//! The harness: scenarios, the deterministic runner, traces and oracles.

pub mod bench;
pub mod bench_kmip;
pub mod config_agreement;
pub mod coverage;
pub mod crypto_history;
pub mod kms;
pub mod library;
pub mod live;
pub mod oracle;
pub mod report;
pub mod runner;
pub mod safe_trims;
pub mod scenario;
pub mod simulated;
pub mod swarm;
pub mod trace;
pub mod wall;

pub use cluster::hooks::{PlantedBug, CAN_PLANT};
