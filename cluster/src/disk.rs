//! A backend's simulated disk: what survives a crash or a power cycle.
//!
//! The runner owns each disk and hands it to the node at every boot; a crash drops the
//! node (and the DEKs in its memory) but not the disk. Everything written here is
//! what an attacker with the drives would see, so oracles scan it for plaintext keys.
//!
//! Data blocks go through [`Disk::read_block`] and [`Disk::write_block`], where the
//! runner's storage faults (see [`faults`]) meet them; the Raft records do not (faults
//! on them are out of scope: the config table's storage keeps its semantics).

pub mod faults;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::{Entry, LogId, StoredMembership, Vote};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config_table::{ConfigState, NodeId, TypeConfig};
use faults::{DiskError, DiskFaultMode, DiskFaults, WriteFate};

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
    /// The storage faults the runner put on this disk (none on a healthy one).
    pub faults: DiskFaults,
}

/// The config table as Raft keeps it on disk.
/// How many times a write whose read-back did not find it is tried again before the
/// disk reports an I/O error.
const MAX_REWRITES: u32 = 3;

/// What became of a block write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// On disk, after `rewrites` writes that the read-back did not find.
    Stored { rewrites: u32 },
    /// Never landed: the caller must not acknowledge it.
    Failed(DiskError),
}

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

/// One encrypted block on disk: ciphertext only, with the checksum its writer made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredBlock {
    pub nonce: [u8; 12],
    pub ciphertext: Vec<u8>,
    /// Binds the block's address (filesystem id, block number) and its bytes: a flipped
    /// bit, or a copy written to the wrong address, fails [`StoredBlock::verify`] at read,
    /// before it can be returned as data. Made by the writer and checked by the reader
    /// (end to end), so it covers the wire and the disk alike. Not a MAC: a plaintext
    /// filesystem has no key, and an encrypted one's AEAD already authenticates; this
    /// catches damage, not an attacker.
    pub checksum: [u8; 16],
}

impl StoredBlock {
    /// A block to store at block `block` of filesystem `fs_id`, with its checksum.
    pub fn new(fs_id: u32, block: u64, nonce: [u8; 12], ciphertext: Vec<u8>) -> Self {
        let checksum = block_checksum(fs_id, block, &nonce, &ciphertext);
        StoredBlock {
            nonce,
            ciphertext,
            checksum,
        }
    }

    /// Whether this copy is intact and belongs at block `block` of filesystem `fs_id`.
    pub fn verify(&self, fs_id: u32, block: u64) -> bool {
        block_checksum(fs_id, block, &self.nonce, &self.ciphertext) == self.checksum
    }
}

/// SHA-256, cut to 128 bits, of a domain tag, the address and the bytes: lengths are
/// fixed but the ciphertext's, which comes last, so no two inputs share an encoding.
fn block_checksum(fs_id: u32, block: u64, nonce: &[u8; 12], ciphertext: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(b"wekasim block checksum v1");
    h.update(fs_id.to_le_bytes());
    h.update(block.to_le_bytes());
    h.update(nonce);
    h.update(ciphertext);
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
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

    /// Reads a block through the disk's faults: a latent sector error fails the read, bit
    /// rot may damage the copy at rest before it is read (the caller's checksum finds it).
    pub fn read_block(&self, fs_id: u32, block: u64) -> Result<Option<StoredBlock>, DiskError> {
        let mut guard = self.lock();
        let disk = &mut *guard;
        disk.faults.on_read(&mut disk.blocks, (fs_id, block))?;
        Ok(disk.blocks.get(&(fs_id, block)).cloned())
    }

    /// Writes a block through the disk's faults, then reads it back as it now lies on
    /// the platter, rewriting it (a few times) until it is there.
    ///
    /// Why a read-after-write, not write stamps compared across replicas at read: a
    /// stamp needs an order between writers of one block, which this model has none of
    /// (two backends' nonce counters do not compare), and every read would have to ask
    /// every replica. A lost or misdirected write leaves the old copy at the address, so
    /// the read-back sees it at once; a write that cannot land is refused (an I/O error),
    /// so it is never acknowledged. The read-back meets the sector as just written: bit
    /// rot and latent errors develop at rest, and meet later reads.
    pub fn write_block(&self, fs_id: u32, block: u64, stored: &StoredBlock) -> WriteOutcome {
        let mut guard = self.lock();
        let disk = &mut *guard;
        let addr = (fs_id, block);
        let mut rewrites = 0;
        loop {
            match disk.faults.on_write(&disk.blocks, addr) {
                WriteFate::Store => {
                    disk.faults.landed(addr);
                    disk.blocks.insert(addr, stored.clone());
                }
                WriteFate::Lost => {}
                WriteFate::Misdirected(other) => {
                    disk.faults.landed(other);
                    disk.blocks.insert(other, stored.clone());
                }
            }
            if disk.blocks.get(&addr) == Some(stored) {
                return WriteOutcome::Stored { rewrites };
            }
            if rewrites == MAX_REWRITES {
                return WriteOutcome::Failed(DiskError::WriteNotStored { fs_id, block });
            }
            rewrites += 1;
        }
    }

    /// Stores `good` at the address if the copy there is missing its checksum's
    /// agreement or cannot be read (a repair after a read found it bad); a copy that
    /// verifies, perhaps newer than `good`, is kept. Whether the disk took the repair.
    pub fn repair_block(&self, fs_id: u32, block: u64, good: &StoredBlock) -> bool {
        let bad = {
            let disk = self.lock();
            disk.faults.unreadable((fs_id, block))
                || disk
                    .blocks
                    .get(&(fs_id, block))
                    .is_none_or(|b| !b.verify(fs_id, block))
        };
        bad && matches!(
            self.write_block(fs_id, block, good),
            WriteOutcome::Stored { .. }
        )
    }

    /// Puts storage faults on this disk: from now on `mode` meets each block read or
    /// write with `probability`, drawn from `seed` (bit rot and bad sectors strike the
    /// copies already stored too, see [`DiskFaultMode`]).
    pub fn inject(&self, mode: DiskFaultMode, probability: f64, seed: u64) {
        let mut guard = self.lock();
        let disk = &mut *guard;
        disk.faults
            .inject(&mut disk.blocks, mode, probability, seed);
    }

    /// Stops injecting faults; damage already done stays until a repair or a rewrite.
    pub fn heal(&self) {
        self.lock().faults.heal();
    }

    /// The fault modes that met a block read or write on this disk.
    pub fn faults_met(&self) -> Vec<DiskFaultMode> {
        self.lock().faults.met()
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
