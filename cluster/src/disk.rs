//! A backend's simulated disk: what survives a crash or a power cycle.
//!
//! The runner owns each disk and hands it to the node at every boot; a crash drops the
//! node (and the DEKs in its memory) but not the disk. Everything written here is
//! what an attacker with the drives would see, so oracles scan it for plaintext keys.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::{Entry, LogId, StoredMembership, Vote};
use serde::{Deserialize, Serialize};

use crate::config_table::{ConfigState, NodeId, TypeConfig};

#[derive(Clone, Default)]
pub struct Disk(Arc<Mutex<DiskState>>);

#[derive(Default)]
pub struct DiskState {
    /// How many times this backend has booted from this disk.
    pub boots: u64,
    pub raft: RaftRecords,
    pub blocks: BTreeMap<(u32, u64), StoredBlock>,
    /// The last block-nonce sequence number handed out (see [`crate::dek::block_nonce`]).
    pub nonce_seq: u64,
}

/// The config table as Raft keeps it on disk.
#[derive(Default, Serialize, Deserialize)]
pub struct RaftRecords {
    pub vote: Option<Vote<NodeId>>,
    pub committed: Option<LogId<NodeId>>,
    pub last_purged: Option<LogId<NodeId>>,
    pub log: BTreeMap<u64, Entry<TypeConfig>>,
    pub machine: MachineRecord,
    pub snapshot: Option<SnapshotRecord>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct MachineRecord {
    pub last_applied: Option<LogId<NodeId>>,
    pub membership: StoredMembership<NodeId, openraft::BasicNode>,
    pub state: ConfigState,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub meta: openraft::SnapshotMeta<NodeId, openraft::BasicNode>,
    pub data: Vec<u8>,
}

/// One encrypted block on disk: ciphertext only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlock {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
}

impl Disk {
    pub fn lock(&self) -> MutexGuard<'_, DiskState> {
        // A panic while the lock was held already failed the run; the data is still the
        // best record of the disk, so keep reading it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every byte at rest, in the form it is stored: the Raft records as serialized and
    /// each block's nonce and ciphertext.
    pub fn for_each_stored(&self, mut f: impl FnMut(&[u8])) {
        let disk = self.lock();
        let raft = serde_json::to_vec(&disk.raft).unwrap_or_default();
        f(&raft);
        for block in disk.blocks.values() {
            f(&block.nonce);
            f(&block.ciphertext);
        }
    }

    /// The blocks of a filesystem this disk stores.
    pub fn block_ids(&self, fs_id: u32) -> Vec<u64> {
        self.lock()
            .blocks
            .range((fs_id, 0)..=(fs_id, u64::MAX))
            .map(|((_, b), _)| *b)
            .collect()
    }

    /// How far this disk's state machine has applied the log.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.lock().raft.machine.last_applied
    }

    /// The committed config table as this disk's state machine last applied it.
    pub fn config_state(&self) -> ConfigState {
        self.lock().raft.machine.state.clone()
    }
}
