//! Storage faults on a backend's simulated disk, as TigerBeetle's storage fault model
//! has them: bit rot, latent sector errors, misdirected writes and lost writes, on data
//! blocks only.
//!
//! The runner, not the cluster, turns them on (see `Disk::inject`), and chooses which
//! disks so that every block keeps a fault-free replica (the fault atlas): the cluster
//! must detect each fault and read the block from another replica, never return a
//! damaged copy as data. A mode meets each block read or write with its probability,
//! drawn from a seeded RNG, so a run plays the same every time. Damage stays after the
//! faults stop (it is on the platter) until a repair or a rewrite replaces the copy.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

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
    /// A write lands on another block of the same filesystem on this disk: that copy is
    /// now wrong for its address, and the intended one keeps its old content.
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
pub enum WriteFate {
    Store,
    Lost,
    Misdirected(BlockAddr),
}

/// The faults on one disk, and the damage they left that the disk itself knows of (bad
/// sectors).
#[derive(Debug, Default)]
pub struct DiskFaults {
    /// The modes on, with the probability each meets a read or write.
    modes: BTreeMap<DiskFaultMode, f64>,
    rng: Option<ChaCha20Rng>,
    /// Sectors gone bad: reads of them fail until they are written.
    latent: BTreeSet<BlockAddr>,
    /// Copies rotted at rest that no read has met yet.
    rotted: BTreeSet<BlockAddr>,
    /// Modes that met a read or a write (a fault nothing met proves nothing).
    met: BTreeSet<DiskFaultMode>,
}

impl DiskFaults {
    /// Turns `mode` on with `probability` (clamped to 0..=1); the draws from now on come
    /// from `seed`. Bit rot and bad sectors also strike the copies already on the disk
    /// (`blocks`), each with `probability`: damage found only by the reads to come.
    pub fn inject(
        &mut self,
        blocks: &mut BTreeMap<BlockAddr, StoredBlock>,
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
        for (&addr, stored) in blocks.iter_mut() {
            match mode {
                DiskFaultMode::BitRot if rng.gen_bool(p) => {
                    flip_a_bit(rng, stored);
                    self.rotted.insert(addr);
                }
                DiskFaultMode::LatentSectorError if rng.gen_bool(p) => {
                    self.latent.insert(addr);
                }
                _ => {}
            }
        }
    }

    /// No more faults; bad sectors and damaged copies stay.
    pub fn heal(&mut self) {
        self.modes.clear();
    }

    pub fn met(&self) -> Vec<DiskFaultMode> {
        self.met.iter().copied().collect()
    }

    /// Whether the sector of `addr` has gone bad.
    pub fn unreadable(&self, addr: BlockAddr) -> bool {
        self.latent.contains(&addr)
    }

    /// Whether `mode` is on and meets this operation. No draw at all while no fault is
    /// on, so a healthy disk changes nothing in a run.
    fn roll(&mut self, mode: DiskFaultMode) -> bool {
        let Some(&p) = self.modes.get(&mode) else {
            return false;
        };
        self.rng.as_mut().is_some_and(|rng| rng.gen_bool(p))
    }

    /// A read of `addr` is about to return `blocks[addr]`: fails it on a bad sector, or
    /// rots a bit of the copy first.
    pub fn on_read(
        &mut self,
        blocks: &mut BTreeMap<BlockAddr, StoredBlock>,
        addr: BlockAddr,
    ) -> Result<(), DiskError> {
        let (fs_id, block) = addr;
        if !blocks.contains_key(&addr) {
            return Ok(());
        }
        if self.rotted.remove(&addr) {
            self.met.insert(DiskFaultMode::BitRot);
        }
        if self.latent.contains(&addr) {
            self.met.insert(DiskFaultMode::LatentSectorError);
            return Err(DiskError::LatentSectorError { fs_id, block });
        }
        if self.roll(DiskFaultMode::LatentSectorError) {
            self.latent.insert(addr);
            self.met.insert(DiskFaultMode::LatentSectorError);
            return Err(DiskError::LatentSectorError { fs_id, block });
        }
        if self.roll(DiskFaultMode::BitRot) {
            let rng = self.rng.as_mut().expect("a fault that rolled has an RNG");
            if let Some(stored) = blocks.get_mut(&addr) {
                flip_a_bit(rng, stored);
                self.met.insert(DiskFaultMode::BitRot);
            }
        }
        Ok(())
    }

    /// Where a write to `addr` goes. A misdirected write lands on another block of the
    /// same filesystem that this disk holds (none: it lands where it should, so a
    /// misdirection never invents a block a listing would then show).
    pub fn on_write(
        &mut self,
        blocks: &BTreeMap<BlockAddr, StoredBlock>,
        addr: BlockAddr,
    ) -> WriteFate {
        if self.roll(DiskFaultMode::LostWrite) {
            self.met.insert(DiskFaultMode::LostWrite);
            return WriteFate::Lost;
        }
        if self.roll(DiskFaultMode::MisdirectedWrite) {
            let (fs_id, _) = addr;
            let others: Vec<BlockAddr> = blocks
                .range((fs_id, 0)..=(fs_id, u64::MAX))
                .map(|(a, _)| *a)
                .filter(|a| *a != addr)
                .collect();
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
    pub fn landed(&mut self, addr: BlockAddr) {
        self.latent.remove(&addr);
        self.rotted.remove(&addr);
    }
}

/// Flips one bit of a stored copy's bytes (its nonce if it has no ciphertext).
fn flip_a_bit(rng: &mut ChaCha20Rng, stored: &mut StoredBlock) {
    let bit = rng.gen_range(0..8u32);
    if stored.ciphertext.is_empty() {
        let i = rng.gen_range(0..stored.nonce.len());
        stored.nonce[i] ^= 1 << bit;
    } else {
        let i = rng.gen_range(0..stored.ciphertext.len());
        stored.ciphertext[i] ^= 1 << bit;
    }
}
