//! Live runs: the scenario files in real time, against a real Vault or KMIP server.

pub mod docker;
pub mod fabric;
pub mod kmip;
pub mod kms;
pub mod openbao;
pub mod preflight;
pub mod preflight_kmip;
pub mod pykmip;
pub mod runner;
pub mod vault;

pub use runner::{run, KmipTarget, LiveError, LiveOptions, Target};
