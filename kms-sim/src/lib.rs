//! Simulated external services for wekasim: a Vault (HTTP API v1 subset) that runs inside a
//! turmoil simulation or on a real port.

pub mod chaos;
pub mod object_store;
pub mod proxy;
pub mod serve;
pub mod vault;

pub use vault::VaultSim;
