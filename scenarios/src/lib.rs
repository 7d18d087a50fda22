//! The harness: scenarios, the deterministic runner, traces and oracles.

pub mod bench;
pub mod library;
pub mod net;
pub mod oracle;
pub mod scenario;
pub mod sim;
pub mod trace;
pub mod vault_setup;
pub mod wall;
