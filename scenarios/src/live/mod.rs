//! Live runs: the scenario files in real time, against a real Vault.

pub mod docker;
pub mod fabric;
pub mod kms;
pub mod openbao;
pub mod preflight;
pub mod pykmip;
pub mod runner;
pub mod vault;

pub use runner::{run, LiveError, LiveOptions, Target};
