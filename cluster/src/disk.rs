//! A backend's simulated disk: what survives a crash or a power cycle.
//!
//! The runner owns each disk and hands it to the node at every boot; a crash drops the
//! node (and the DEKs in its memory) but not the disk. Everything written here is
//! what an attacker with the drives would see, so oracles scan it for plaintext keys.
//!
//! Data blocks go through [`Disk::read_block`] and [`Disk::write_block`], the config
//! table's Raft records (vote, committed mark, log entries, snapshot)
//! through [`Disk::read_record`] and [`Disk::write_record`]; both are where the runner's
//! storage faults (see [`faults`]) meet them, each only when the runner aimed a fault at
//! it ([`faults::FaultTarget`]). A block is checksummed and has replicas on other disks,
//! so a read falls back and repairs; a record is checksummed too ([`records`]), but its
//! only copies are the other backends' replicas of the whole log, so a backend that meets
//! a record it cannot verify stops its config-table replica (see
//! `config_table::fail_stop`) and the atlas keeps a quorum of intact ones.

pub mod faults;
pub mod records;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::{LogId, StoredMembership};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config_table::{ConfigState, NodeId};
use faults::{DiskError, DiskFaultMode, DiskFaults, FaultTarget, WriteFate};
use records::{RecordCheck, RecordError, RecordId, SealedRecord};

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

/// Where a piece of data lies on a disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StoredAt {
    /// A config-table record.
    Record(RecordId),
    /// Block `.1` of the filesystem with data id `.0`.
    Block(u32, u64),
}

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

/// The config table as Raft keeps it on disk: each record sealed with its checksum
/// (see [`records`]), read and written through [`Disk::read_record`] and
/// [`Disk::write_record`].
#[derive(Default)]
pub struct RaftRecords {
    pub records: BTreeMap<RecordId, SealedRecord>,
}

/// The config table's state machine as a snapshot holds it (and as a replica keeps it
/// in memory): how far it applied the log, the membership, and the table.
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

/// A block's checksum: its address, nonce and ciphertext. Lengths are fixed but the
/// ciphertext's, which comes last, so no two inputs share an encoding.
fn block_checksum(fs_id: u32, block: u64, nonce: &[u8; 12], ciphertext: &[u8]) -> [u8; 16] {
    checksum(
        b"wekasim block checksum v1",
        &[
            &fs_id.to_le_bytes(),
            &block.to_le_bytes(),
            nonce,
            ciphertext,
        ],
    )
}

/// SHA-256, cut to 128 bits, of a domain tag and `parts` in order: what a stored copy's
/// checksum is made of, for blocks and config records alike. It catches damage, not an
/// attacker.
pub(crate) fn checksum(domain: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(domain);
    for part in parts {
        h.update(part);
    }
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

    /// Every byte at rest, in the form it is stored, piece by piece: where it lies, the
    /// checksum stored with it, and its bytes (a Raft record's bytes; a block's nonce,
    /// then its ciphertext). A piece's bytes change only with its checksum, but for bit
    /// rot's few flipped bits, so a scanner may skip a piece it saw with that checksum.
    pub fn for_each_stored(&self, mut f: impl FnMut(StoredAt, &[u8; 16], &[&[u8]])) {
        let disk = self.lock();
        for (id, record) in &disk.raft.records {
            f(StoredAt::Record(*id), &record.checksum, &[&record.bytes]);
        }
        for ((fs, block), stored) in &disk.blocks {
            f(
                StoredAt::Block(*fs, *block),
                &stored.checksum,
                &[&stored.nonce, &stored.ciphertext],
            );
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

    /// Puts storage faults on this disk's data blocks: from now on `mode` meets each
    /// block read or write with `probability`, drawn from `seed` (bit rot and bad sectors
    /// strike the copies already stored too, see [`DiskFaultMode`]).
    pub fn inject(&self, mode: DiskFaultMode, probability: f64, seed: u64) {
        self.inject_on(FaultTarget::Blocks, mode, probability, seed);
    }

    /// Puts storage faults on what `target` names: the data blocks as
    /// [`Disk::inject`] does, the config records likewise, with draws of their own (from
    /// a seed derived from `seed`, so faults on both never share a stream).
    pub fn inject_on(&self, target: FaultTarget, mode: DiskFaultMode, probability: f64, seed: u64) {
        let mut guard = self.lock();
        let disk = &mut *guard;
        if target.blocks() {
            disk.faults
                .inject(&mut disk.blocks, mode, probability, seed);
        }
        if target.config() {
            let seed = seed.rotate_left(29) ^ 0x5EC0_4D5E_C0F1_6000;
            disk.faults
                .inject_records(&mut disk.raft.records, mode, probability, seed);
        }
    }

    /// Stops injecting faults; damage already done stays until a repair or a rewrite.
    pub fn heal(&self) {
        self.lock().faults.heal();
    }

    /// The fault modes that met a block read or write on this disk.
    pub fn faults_met(&self) -> Vec<DiskFaultMode> {
        self.lock().faults.met()
    }

    /// The fault modes that met a config record's read or write on this disk.
    pub fn record_faults_met(&self) -> Vec<DiskFaultMode> {
        self.lock().faults.records_met()
    }

    /// The blocks of a filesystem this disk stores.
    pub fn block_ids(&self, fs_id: u32) -> Vec<u64> {
        self.lock()
            .blocks
            .range((fs_id, 0)..=(fs_id, u64::MAX))
            .map(|((_, b), _)| *b)
            .collect()
    }

    /// Reads record `id` through the disk's faults and checks it (as `check` says):
    /// `Ok(None)` if there is none, an error if its sector is bad or its copy fails its
    /// checksum or does not decode.
    pub fn read_record<T: DeserializeOwned>(
        &self,
        id: RecordId,
        check: RecordCheck,
    ) -> Result<Option<T>, RecordError> {
        let mut guard = self.lock();
        let disk = &mut *guard;
        disk.faults.on_record_read(&mut disk.raft.records, id)?;
        disk.raft
            .records
            .get(&id)
            .map(|r| r.open(id, check))
            .transpose()
    }

    /// The log entries with an index in `range`, each read and checked as
    /// [`Disk::read_record`] does, in order.
    pub fn read_log<T: DeserializeOwned>(
        &self,
        range: impl std::ops::RangeBounds<u64>,
        check: RecordCheck,
    ) -> Result<Vec<T>, RecordError> {
        self.log_indexes(range)
            .into_iter()
            .filter_map(|i| self.read_record(RecordId::Log(i), check).transpose())
            .collect()
    }

    /// The indexes of the log entries on disk within `range`.
    pub fn log_indexes(&self, range: impl std::ops::RangeBounds<u64>) -> Vec<u64> {
        use std::ops::Bound;
        let lo = match range.start_bound() {
            Bound::Included(&i) => Some(i),
            Bound::Excluded(&i) => i.checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let hi = match range.end_bound() {
            Bound::Included(&i) => Some(i),
            Bound::Excluded(&i) => i.checked_sub(1),
            Bound::Unbounded => Some(u64::MAX),
        };
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => self
                .lock()
                .raft
                .records
                .range(RecordId::Log(lo)..=RecordId::Log(hi))
                .filter_map(|(id, _)| id.index())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Writes record `id` through the disk's faults, then reads it back as it now lies,
    /// writing it again (a few times) until it is there, as [`Disk::write_block`] does.
    pub fn write_record(&self, id: RecordId, value: &impl Serialize) -> Result<(), RecordError> {
        let sealed = SealedRecord::seal(id, value);
        let mut guard = self.lock();
        let disk = &mut *guard;
        let mut rewrites = 0;
        loop {
            match disk.faults.on_record_write(&disk.raft.records, id) {
                WriteFate::Store => {
                    disk.faults.record_landed(id);
                    disk.raft.records.insert(id, sealed.clone());
                }
                WriteFate::Lost => {}
                WriteFate::Misdirected(other) => {
                    disk.faults.record_landed(other);
                    disk.raft.records.insert(other, sealed.clone());
                }
            }
            if disk.raft.records.get(&id) == Some(&sealed) {
                return Ok(());
            }
            if rewrites == MAX_REWRITES {
                return Err(RecordError::WriteNotStored(id));
            }
            rewrites += 1;
        }
    }

    /// Removes record `id` (a truncated or purged log entry): trimming a file, which no
    /// fault here meets.
    pub fn remove_record(&self, id: RecordId) {
        self.lock().raft.records.remove(&id);
    }

    /// Reads every record through the disk's faults and checks it, as a backend does at
    /// boot: the first one that fails, if any.
    pub fn scrub_records(&self, check: RecordCheck) -> Result<(), RecordError> {
        let ids: Vec<RecordId> = self.lock().raft.records.keys().copied().collect();
        for id in ids {
            self.read_record::<serde::de::IgnoredAny>(id, check)?;
        }
        Ok(())
    }
}
