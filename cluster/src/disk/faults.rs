//! Storage faults on a backend's simulated disk, as TigerBeetle's storage fault model
//! has them: bit rot, latent sector errors, misdirected writes and lost writes, on data
//! blocks, on the config table's Raft records, or on both ([`FaultTarget`]).
//!
//! The runner, not the cluster, turns them on (see `Disk::inject`), and chooses which
//! disks so that every block keeps a fault-free replica, and a quorum of backends keeps
//! an intact config table (the fault atlases): the cluster must detect each fault, read
//! a block from another replica, and stop a config-table replica that meets a record it
//! cannot verify, never return a damaged copy as data or apply it as state. A mode meets
//! each read or write with its probability, drawn from a seeded RNG, so a run plays the
//! same every time. Damage stays after the faults stop (it is on the platter) until a
//! repair or a rewrite replaces the copy.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

use crate::disk::records::{RecordError, RecordId, SealedRecord};
use crate::disk::StoredBlock;

/// A block's address on a disk: (filesystem id, block number).
pub type BlockAddr = (u32, u64);

/// One kind of storage fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFaultMode {
    /// A bit of a stored copy flips at rest: each copy on the disk when the fault comes on
    /// rots with its probability (the disk has been rotting unseen), and so may a copy
    /// each time it is read. The read returns the damaged copy; its checksum rejects it.
    BitRot,
    /// A sector goes bad: reads of the block fail with an I/O error until a write to it
    /// (which remaps the sector). Each copy on the disk when the fault comes on is on a
    /// bad sector with its probability, and a read may find one more.
    LatentSectorError,
    /// A write lands on another block of the same filesystem on this disk (a record: on
    /// another record): that copy is now wrong for its address, and the intended one
    /// keeps its old content.
    MisdirectedWrite,
    /// The disk acknowledges a write and does not store it: the old content stays.
    LostWrite,
}

impl DiskFaultMode {
    pub const ALL: [DiskFaultMode; 4] = [
        DiskFaultMode::BitRot,
        DiskFaultMode::LatentSectorError,
        DiskFaultMode::MisdirectedWrite,
        DiskFaultMode::LostWrite,
    ];

    /// The mode as scenario files spell it (`bit-rot`).
    pub fn name(self) -> &'static str {
        match self {
            DiskFaultMode::BitRot => "bit-rot",
            DiskFaultMode::LatentSectorError => "latent-sector-error",
            DiskFaultMode::MisdirectedWrite => "misdirected-write",
            DiskFaultMode::LostWrite => "lost-write",
        }
    }
}

/// What on a disk a storage fault meets: its data blocks (what disk faults always met,
/// and still the default), the config table's Raft records, or both.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FaultTarget {
    #[default]
    Blocks,
    Config,
    Both,
}

impl FaultTarget {
    /// The target as scenario files spell it (`blocks`).
    pub fn name(self) -> &'static str {
        match self {
            FaultTarget::Blocks => "blocks",
            FaultTarget::Config => "config",
            FaultTarget::Both => "both",
        }
    }

    pub fn is_default(&self) -> bool {
        *self == FaultTarget::Blocks
    }

    /// Whether faults on this target meet data blocks.
    pub fn blocks(self) -> bool {
        self != FaultTarget::Config
    }

    /// Whether faults on this target meet the config table's records.
    pub fn config(self) -> bool {
        self != FaultTarget::Blocks
    }
}

/// A block read or write the disk could not carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    #[error("I/O error reading block {block} of filesystem id {fs_id}: latent sector error")]
    LatentSectorError { fs_id: u32, block: u64 },
    #[error(
        "I/O error writing block {block} of filesystem id {fs_id}: the read-back never found it"
    )]
    WriteNotStored { fs_id: u32, block: u64 },
}

/// Where a write goes, as the faults decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFate<A = BlockAddr> {
    Store,
    Lost,
    Misdirected(A),
}

/// A stored copy a fault can damage: one bit of it flips.
pub trait Damageable {
    fn flip_a_bit(&mut self, rng: &mut ChaCha20Rng);
}

impl Damageable for StoredBlock {
    /// One bit of the ciphertext (of the nonce if it has no ciphertext).
    fn flip_a_bit(&mut self, rng: &mut ChaCha20Rng) {
        flip_a_bit_of(&mut self.ciphertext, &mut self.nonce, rng);
    }
}

impl Damageable for SealedRecord {
    /// One bit of the record's bytes (of its checksum if it has none).
    fn flip_a_bit(&mut self, rng: &mut ChaCha20Rng) {
        flip_a_bit_of(&mut self.bytes, &mut self.checksum, rng);
    }
}

/// Flips one bit of `bytes`, or of `otherwise` if `bytes` is empty.
fn flip_a_bit_of(bytes: &mut [u8], otherwise: &mut [u8], rng: &mut ChaCha20Rng) {
    let bit = rng.gen_range(0..8u32);
    let target = if bytes.is_empty() { otherwise } else { bytes };
    let i = rng.gen_range(0..target.len());
    target[i] ^= 1 << bit;
}

/// The faults on one disk, and the damage they left that the disk itself knows of (bad
/// sectors): for its blocks and for its config records apart, each with its own RNG, so
/// faults on one never change the draws of the other.
#[derive(Debug, Default)]
pub struct DiskFaults {
    blocks: Faults<BlockAddr>,
    records: Faults<RecordId>,
}

/// The faults on one kind of copy (blocks, or records), addressed by `A`.
#[derive(Debug)]
struct Faults<A> {
    /// The modes on, with the probability each meets a read or write.
    modes: BTreeMap<DiskFaultMode, f64>,
    rng: Option<ChaCha20Rng>,
    /// Sectors gone bad: reads of them fail until they are written.
    latent: BTreeSet<A>,
    /// Copies rotted at rest that no read has met yet.
    rotted: BTreeSet<A>,
    /// Modes that met a read or a write (a fault nothing met proves nothing).
    met: BTreeSet<DiskFaultMode>,
}

impl<A> Default for Faults<A> {
    fn default() -> Self {
        Faults {
            modes: BTreeMap::new(),
            rng: None,
            latent: BTreeSet::new(),
            rotted: BTreeSet::new(),
            met: BTreeSet::new(),
        }
    }
}

impl<A: Ord + Copy> Faults<A> {
    /// Turns `mode` on with `probability` (clamped to 0..=1); the draws from now on come
    /// from `seed`. Bit rot and bad sectors also strike the copies already on the disk
    /// (`copies`), each with `probability`: damage found only by the reads to come.
    fn inject<V: Damageable>(
        &mut self,
        copies: &mut BTreeMap<A, V>,
        mode: DiskFaultMode,
        probability: f64,
        seed: u64,
    ) {
        let p = if probability.is_finite() {
            probability.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.modes.insert(mode, p);
        let rng = self.rng.insert(ChaCha20Rng::seed_from_u64(seed));
        for (&addr, stored) in copies.iter_mut() {
            match mode {
                DiskFaultMode::BitRot if rng.gen_bool(p) => {
                    stored.flip_a_bit(rng);
                    self.rotted.insert(addr);
                }
                DiskFaultMode::LatentSectorError if rng.gen_bool(p) => {
                    self.latent.insert(addr);
                }
                _ => {}
            }
        }
    }

    /// Whether `mode` is on and meets this operation. No draw at all while no fault is
    /// on, so a healthy disk changes nothing in a run.
    fn roll(&mut self, mode: DiskFaultMode) -> bool {
        let Some(&p) = self.modes.get(&mode) else {
            return false;
        };
        self.rng.as_mut().is_some_and(|rng| rng.gen_bool(p))
    }

    /// A read of `addr` is about to return `copies[addr]`: fails it (`Err`) on a bad
    /// sector, or rots a bit of the copy first.
    fn on_read<V: Damageable>(&mut self, copies: &mut BTreeMap<A, V>, addr: A) -> Result<(), ()> {
        if !copies.contains_key(&addr) {
            return Ok(());
        }
        if self.rotted.remove(&addr) {
            self.met.insert(DiskFaultMode::BitRot);
        }
        if self.latent.contains(&addr) {
            self.met.insert(DiskFaultMode::LatentSectorError);
            return Err(());
        }
        if self.roll(DiskFaultMode::LatentSectorError) {
            self.latent.insert(addr);
            self.met.insert(DiskFaultMode::LatentSectorError);
            return Err(());
        }
        if self.roll(DiskFaultMode::BitRot) {
            let rng = self.rng.as_mut().expect("a fault that rolled has an RNG");
            if let Some(stored) = copies.get_mut(&addr) {
                stored.flip_a_bit(rng);
                self.met.insert(DiskFaultMode::BitRot);
            }
        }
        Ok(())
    }

    /// Where a write goes: lost, or (misdirected) onto one of `others`, the copies it
    /// may land on instead (none: it lands where it should).
    fn on_write(&mut self, others: impl FnOnce() -> Vec<A>) -> WriteFate<A> {
        if self.roll(DiskFaultMode::LostWrite) {
            self.met.insert(DiskFaultMode::LostWrite);
            return WriteFate::Lost;
        }
        if self.roll(DiskFaultMode::MisdirectedWrite) {
            let others = others();
            if !others.is_empty() {
                let rng = self.rng.as_mut().expect("a fault that rolled has an RNG");
                let other = others[rng.gen_range(0..others.len())];
                self.met.insert(DiskFaultMode::MisdirectedWrite);
                return WriteFate::Misdirected(other);
            }
        }
        WriteFate::Store
    }

    /// A write landed on `addr`: its sector is good again (remapped), its copy new.
    fn landed(&mut self, addr: A) {
        self.latent.remove(&addr);
        self.rotted.remove(&addr);
    }
}

impl DiskFaults {
    /// Turns `mode` on for the data blocks with `probability` (clamped to 0..=1); the
    /// draws from now on come from `seed`. Bit rot and bad sectors also strike the copies
    /// already on the disk (`blocks`), each with `probability`: damage found only by the
    /// reads to come.
    pub fn inject(
        &mut self,
        blocks: &mut BTreeMap<BlockAddr, StoredBlock>,
        mode: DiskFaultMode,
        probability: f64,
        seed: u64,
    ) {
        self.blocks.inject(blocks, mode, probability, seed);
    }

    /// As [`DiskFaults::inject`], for the config table's records.
    pub fn inject_records(
        &mut self,
        records: &mut BTreeMap<RecordId, SealedRecord>,
        mode: DiskFaultMode,
        probability: f64,
        seed: u64,
    ) {
        self.records.inject(records, mode, probability, seed);
    }

    /// No more faults; bad sectors and damaged copies stay.
    pub fn heal(&mut self) {
        self.blocks.modes.clear();
        self.records.modes.clear();
    }

    /// The modes that met a block read or write.
    pub fn met(&self) -> Vec<DiskFaultMode> {
        self.blocks.met.iter().copied().collect()
    }

    /// The modes that met a config record's read or write.
    pub fn records_met(&self) -> Vec<DiskFaultMode> {
        self.records.met.iter().copied().collect()
    }

    /// Whether the sector of `addr` has gone bad.
    pub fn unreadable(&self, addr: BlockAddr) -> bool {
        self.blocks.latent.contains(&addr)
    }

    /// A read of `addr` is about to return `blocks[addr]`: fails it on a bad sector, or
    /// rots a bit of the copy first.
    pub fn on_read(
        &mut self,
        blocks: &mut BTreeMap<BlockAddr, StoredBlock>,
        addr: BlockAddr,
    ) -> Result<(), DiskError> {
        let (fs_id, block) = addr;
        self.blocks
            .on_read(blocks, addr)
            .map_err(|()| DiskError::LatentSectorError { fs_id, block })
    }

    /// Where a write to `addr` goes. A misdirected write lands on another block of the
    /// same filesystem that this disk holds (none: it lands where it should, so a
    /// misdirection never invents a block a listing would then show).
    pub fn on_write(
        &mut self,
        blocks: &BTreeMap<BlockAddr, StoredBlock>,
        addr: BlockAddr,
    ) -> WriteFate {
        let (fs_id, _) = addr;
        self.blocks.on_write(|| {
            blocks
                .range((fs_id, 0)..=(fs_id, u64::MAX))
                .map(|(a, _)| *a)
                .filter(|a| *a != addr)
                .collect()
        })
    }

    /// A write landed on `addr`: its sector is good again (remapped), its copy new.
    pub fn landed(&mut self, addr: BlockAddr) {
        self.blocks.landed(addr);
    }

    /// A read of record `id` is about to return `records[id]`: fails it on a bad sector,
    /// or rots a bit of the record first.
    pub fn on_record_read(
        &mut self,
        records: &mut BTreeMap<RecordId, SealedRecord>,
        id: RecordId,
    ) -> Result<(), RecordError> {
        self.records
            .on_read(records, id)
            .map_err(|()| RecordError::Unreadable(id))
    }

    /// Where a write of record `id` goes. A misdirected write lands on another record
    /// this disk holds (none: it lands where it should).
    pub fn on_record_write(
        &mut self,
        records: &BTreeMap<RecordId, SealedRecord>,
        id: RecordId,
    ) -> WriteFate<RecordId> {
        self.records
            .on_write(|| records.keys().copied().filter(|r| *r != id).collect())
    }

    /// A record write landed on `id`.
    pub fn record_landed(&mut self, id: RecordId) {
        self.records.landed(id);
    }
}
