//! KMIP as the KMS under test: for now the harness's own KMIP client ([`admin::KmipAdmin`]),
//! with which it prepares and inspects keys on a KMIP server (PyKMIP live, kms-sim
//! simulated) out of band, the way an admin would, and compares servers with each other.

pub mod admin;

pub use admin::{connect_tls, GcmSealed, KmipAdmin, KmipError};
