//! What a replica has applied of the config table, where the harness can see it.
//!
//! A replica's state machine lives in memory: its disk holds the log and the last
//! snapshot, and each boot replays the committed log onto the snapshot (openraft does
//! this before the node serves). So the applied table is not on the disk for the harness
//! to read; the state machine shows it here instead, after every apply. The runner keeps
//! one [`AppliedTable`] per backend across its boots: after a crash it still shows what
//! the replica had applied when it went down, and a boot starts it again from the
//! snapshot.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use openraft::LogId;

use super::{ConfigState, NodeId};
use crate::disk::MachineRecord;

/// One backend's applied config table, shared between its replica (which sets it) and
/// the harness (which reads it). Empty until the replica first boots; cheap to clone and
/// to read, since a [`ConfigState`] shares its maps between copies.
#[derive(Clone, Default)]
pub struct AppliedTable(Arc<Mutex<Option<Arc<Applied>>>>);

/// A state machine as applied up to some log index, with its digest made on demand.
pub struct Applied {
    pub machine: MachineRecord,
    /// SHA-256 (cut to 128 bits) of the machine's JSON: made only when someone compares
    /// tables, never on the apply path, which must stay O(change) however big the table.
    digest: OnceLock<[u8; 16]>,
}

impl Applied {
    /// Where the state machine stands: the last log id it applied.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.machine.last_applied
    }

    /// A digest of the state, its membership and the index it was applied at: two
    /// replicas at one index agree exactly when their digests do.
    pub fn digest(&self) -> [u8; 16] {
        *self.digest.get_or_init(|| {
            // Serializing the table's own types cannot fail; if it ever did, the digest
            // of nothing would differ from every real table's, never match one.
            let bytes = serde_json::to_vec(&self.machine).unwrap_or_default();
            crate::disk::checksum(b"wekasim applied config table v1", &[&bytes])
        })
    }
}

/// Shows where the table stands, never its contents (wrapped DEKs, KMS credentials).
impl std::fmt::Debug for AppliedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppliedTable")
            .field("last_applied", &self.last_applied())
            .finish()
    }
}

impl AppliedTable {
    fn lock(&self) -> MutexGuard<'_, Option<Arc<Applied>>> {
        // A panic while the lock was held already failed the run; the table is still
        // the best record of what was applied.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The replica applied up to `machine.last_applied` (or booted with `machine`).
    pub(super) fn set(&self, machine: &MachineRecord) {
        *self.lock() = Some(Arc::new(Applied {
            machine: machine.clone(),
            digest: OnceLock::new(),
        }));
    }

    /// What the replica has applied, if it ever booted (its digest, once made, is kept
    /// until the next apply).
    pub fn get(&self) -> Option<Arc<Applied>> {
        self.lock().clone()
    }

    /// The last log id the replica applied.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.lock().as_ref().and_then(|a| a.last_applied())
    }

    /// The config table as the replica applied it (empty before its first boot).
    pub fn state(&self) -> ConfigState {
        self.lock()
            .as_ref()
            .map(|a| a.machine.state.clone())
            .unwrap_or_default()
    }
}
