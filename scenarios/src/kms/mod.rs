//! The KMS under test: everything the runner, its steps and its oracles need from the KMS
//! the cluster wraps its keys with, whatever its kind and wherever it runs.
//!
//! The fabric carries bytes (and the byte-level faults on the wire in front of the KMS);
//! the KMS under test speaks its protocol: it prepares keys and credentials as an admin
//! would, rotates and retires keys, seals, stops and starts, says which key versions can
//! still unwrap, and removes what the run created. Vault is the first kind
//! ([`vault::VaultUnderTest`]), simulated or live.

pub mod kmip;
pub mod vault;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cluster::admin::AdminCommand;
use cluster::kms::{KmsConfig, WrappedDek};
use cluster::net::Dialer;

use crate::runner::fabric::Fabric;
use crate::scenario::Auth;

/// An admin call to the KMS, run as a job on the fabric's admin host.
pub type AdminJob<T> = Pin<Box<dyn Future<Output = Result<T, String>>>>;

/// What a lifecycle step does to the KMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    Seal,
    Unseal,
    /// Revokes every credential the KMS issued but the admin's.
    RevokeCredentials,
    /// The KMS process stops: nothing answers at its address.
    Stop,
    /// It starts again from its storage (a Vault comes back sealed).
    Start,
}

/// A key's versions as the KMS holds them: ciphertext of versions `min_decryption` to
/// `latest` still unwraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyVersions {
    pub latest: u64,
    pub min_decryption: u64,
}

impl Default for KeyVersions {
    fn default() -> Self {
        KeyVersions {
            latest: 1,
            min_decryption: 1,
        }
    }
}

pub trait KmsUnderTest {
    /// Prepares the keys a scenario names (the cluster key first) and the credentials
    /// the cluster is given, as an admin would before `security kms set`.
    fn prepare(&self, dialer: Arc<dyn Dialer>, keys: &[String]) -> AdminJob<()>;

    /// The `security kms set` command that points the cluster at this KMS and `key`.
    fn kms_set(&self, key: &str, auth: Auth) -> AdminCommand;

    /// A `weka` step's command line with the KMS's placeholders filled in (`$VAULT_URL`,
    /// `$TOKEN`, `$ROLE_ID`, `$SECRET_ID`).
    fn substitute(&self, line: &str) -> String;

    /// The contents of a file a `weka` command line names (`--client-cert F`), where the
    /// KMS under test keeps them rather than the disk.
    fn read_file(&self, _path: &str) -> Option<String> {
        None
    }

    /// Completes a parsed admin command with what the scenario cannot know (where a live
    /// run keeps its keys).
    fn complete(&self, cmd: &mut AdminCommand);

    /// Revokes `key`'s newest version without destroying it: it unwraps what it wrapped
    /// but wraps nothing new. Only a KMS with such a state (KMIP) can.
    fn revoke_key(&self, _dialer: Arc<dyn Dialer>, key: &str) -> AdminJob<()> {
        let e = format!("this KMS cannot revoke {key} without destroying it");
        Box::pin(async move { Err(e) })
    }

    /// Destroys the AppRole secret-id the cluster was given and mints a new one, which
    /// `kms_set` and `$SECRET_ID` give from now on. Only a Vault has secret-ids.
    fn replace_secret_id(&self, _dialer: Arc<dyn Dialer>) -> AdminJob<()> {
        Box::pin(async { Err("this KMS has no AppRole secret-id".to_string()) })
    }

    /// Rotates `key` to a new version.
    fn rotate(&self, dialer: Arc<dyn Dialer>, key: &str) -> AdminJob<()>;

    /// Retires the versions of `key` below `version`: their ciphertext no longer unwraps.
    fn retire_below(&self, dialer: Arc<dyn Dialer>, key: &str, version: u64) -> AdminJob<()>;

    /// `key`'s versions as the run's rotations and retirements left them.
    fn versions(&self, key: &str) -> KeyVersions;

    /// The scenario's name and the run's version number of the key the cluster calls
    /// `cluster_key` at `version`. Vault names both the same way; a KMIP key is a UID,
    /// which this maps back to the name it was created under and its place among them.
    fn identify(&self, cluster_key: &str, version: u64) -> (String, u64) {
        (cluster_key.to_string(), version)
    }

    /// [`KmsUnderTest::identify`] for the key that wrapped `wrapped` (a KMIP-wrapped DEK
    /// names its key's UID; the cluster may still call the key something else mid-rewrap).
    fn identify_wrapped(&self, cluster_key: &str, wrapped: &WrappedDek) -> (String, u64) {
        self.identify(cluster_key, wrapped.key_version)
    }

    /// What the KMS as it stands now would unwrap `wrapped` to for a cluster configured
    /// as `config` (`Err` says why it would not: another kind of KMS, another key, mount
    /// or namespace, a retired version); `None` where the harness cannot ask without
    /// disturbing the run (a live KMS, whose every request the run counts and faults).
    /// The DEK it answers is for the oracles' comparison only: never shown.
    fn unwraps(&self, config: &KmsConfig, wrapped: &WrappedDek) -> Option<Result<Vec<u8>, String>>;

    /// Carries out a lifecycle step; the answer says what happened, for the trace.
    fn lifecycle(&mut self, action: Lifecycle, fabric: &mut dyn Fabric) -> Result<String, String>;

    /// Back to health before the liveness phase: running and unsealed.
    fn heal(&mut self, fabric: &mut dyn Fabric) -> Result<(), String>;

    /// Requests the KMS served (or, live, that reached it through the fault switch).
    fn requests(&self) -> u64;

    /// After the run: removes what [`KmsUnderTest::prepare`] created where the KMS
    /// outlives the run.
    fn teardown(&mut self, fabric: &mut dyn Fabric) -> Result<(), String>;
}
