//! Reading a block from its replicas: the first copy that verifies is the block. A copy
//! that fails its checksum (bit rot, a write that landed on the wrong block) or that its
//! disk cannot read (a bad sector) is skipped and remembered, so the caller can repair
//! it; when no replica gives a good copy the read fails with a typed error, and a damaged
//! copy is never returned as data.

use std::future::Future;

use crate::disk::StoredBlock;

/// Why a replica gave no copy of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BlockReadError {
    /// It did not answer (down, cut off, too slow).
    Unreachable(String),
    /// Its disk failed the read: the replica is up, its copy is bad.
    Disk(String),
}

/// Why a block read found no copy to return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaReadError {
    /// Some replica held a copy, but none that verifies: each failed its checksum or its
    /// disk's read, or its backend was out of reach.
    #[error("no replica holds a copy that verifies ({last})")]
    NoValidCopy { last: String },
    /// No replica held the block or answered.
    #[error("{last}")]
    NoCopy { last: String },
}

/// What a read met on the way to its copy, for the caller's probes and repairs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ReadLog {
    /// Copies that failed their checksum.
    pub mismatches: u32,
    /// Reads a replica's disk failed.
    pub io_errors: u32,
    /// The replicas whose copy was bad, in the order tried.
    pub bad: Vec<u64>,
}

/// The first copy among `replicas` (in order) that verifies as block `block` of
/// filesystem `fs_id`, with the replica and its position; `get` reads one replica.
/// With `trust_first`, the first replica's copy is taken unchecked (the planted
/// `read-skips-checksum` bug; never in a correct read).
pub(super) async fn first_valid<F, Fut>(
    fs_id: u32,
    block: u64,
    replicas: &[u64],
    trust_first: bool,
    mut get: F,
    log: &mut ReadLog,
) -> Result<(usize, u64, StoredBlock), ReplicaReadError>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = Result<Option<StoredBlock>, BlockReadError>>,
{
    let mut last = String::from("no replica holds it");
    for (tried, &target) in replicas.iter().enumerate() {
        match get(target).await {
            Ok(Some(stored)) => {
                let check = tried > 0 || !trust_first;
                if check && !stored.verify(fs_id, block) {
                    log.mismatches += 1;
                    log.bad.push(target);
                    last = format!("backend {target}'s copy fails its checksum");
                    continue;
                }
                return Ok((tried, target, stored));
            }
            Ok(None) => {}
            Err(BlockReadError::Disk(e)) => {
                log.io_errors += 1;
                log.bad.push(target);
                last = e;
            }
            Err(BlockReadError::Unreachable(e)) => last = e,
        }
    }
    if log.bad.is_empty() {
        Err(ReplicaReadError::NoCopy { last })
    } else {
        Err(ReplicaReadError::NoValidCopy { last })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::faults::DiskFaultMode;
    use crate::disk::Disk;

    /// Three replicas' disks, each holding block 7 of filesystem 3.
    fn disks(data: &[u8]) -> Vec<Disk> {
        (0..3)
            .map(|_| {
                let disk = Disk::default();
                let stored = StoredBlock::new(3, 7, [1; 12], data.to_vec());
                disk.write_block(3, 7, &stored);
                disk
            })
            .collect()
    }

    async fn read(
        disks: &[Disk],
        trust_first: bool,
    ) -> (Result<(usize, u64, StoredBlock), ReplicaReadError>, ReadLog) {
        let mut log = ReadLog::default();
        let get = |t: u64| {
            let disk = disks[t as usize].clone();
            async move {
                disk.read_block(3, 7)
                    .map_err(|e| BlockReadError::Disk(e.to_string()))
            }
        };
        let result = first_valid(3, 7, &[0, 1, 2], trust_first, get, &mut log).await;
        (result, log)
    }

    #[tokio::test]
    async fn bit_rot_on_the_first_replica_reads_the_next_one() {
        let disks = disks(b"the data");
        disks[0].inject(DiskFaultMode::BitRot, 1.0, 1);
        let (result, log) = read(&disks, false).await;
        let (tried, from, stored) = result.expect("another replica has a good copy");
        assert_eq!((tried, from), (1, 1));
        assert_eq!(stored.ciphertext, b"the data");
        assert_eq!(log.bad, vec![0]);
        assert_eq!(disks[0].faults_met(), vec![DiskFaultMode::BitRot]);
        // The rotted copy is on the platter: it fails its checksum.
        let rotted = disks[0].lock().blocks[&(3, 7)].clone();
        assert!(!rotted.verify(3, 7));
        // A repair puts the good copy back, and a healed disk serves it.
        disks[0].heal();
        assert!(disks[0].repair_block(3, 7, &stored));
        let (result, _) = read(&disks, false).await;
        assert_eq!(result.unwrap().0, 0);
    }

    #[tokio::test]
    async fn bit_rot_on_every_replica_fails_with_a_typed_error() {
        let disks = disks(b"the data");
        for (i, disk) in disks.iter().enumerate() {
            disk.inject(DiskFaultMode::BitRot, 1.0, i as u64);
        }
        let (result, log) = read(&disks, false).await;
        assert!(
            matches!(result, Err(ReplicaReadError::NoValidCopy { .. })),
            "{result:?}"
        );
        assert_eq!(log.mismatches, 3);
    }

    #[tokio::test]
    async fn a_latent_sector_error_is_skipped_and_a_rewrite_clears_it() {
        let disks = disks(b"the data");
        disks[0].inject(DiskFaultMode::LatentSectorError, 1.0, 1);
        let (result, log) = read(&disks, false).await;
        assert_eq!(result.unwrap().1, 1);
        assert_eq!(log.io_errors, 1);
        disks[0].heal();
        // Still bad: the sector stays bad until written.
        assert!(disks[0].read_block(3, 7).is_err());
        let good = StoredBlock::new(3, 7, [1; 12], b"the data".to_vec());
        assert!(disks[0].repair_block(3, 7, &good));
        assert_eq!(disks[0].read_block(3, 7), Ok(Some(good)));
    }

    #[test]
    fn a_lost_write_is_found_by_its_read_back_and_refused_if_it_never_lands() {
        let disk = Disk::default();
        let old = StoredBlock::new(3, 7, [1; 12], b"old".to_vec());
        let new = StoredBlock::new(3, 7, [2; 12], b"new".to_vec());
        disk.write_block(3, 7, &old);
        disk.inject(DiskFaultMode::LostWrite, 1.0, 1);
        assert!(matches!(
            disk.write_block(3, 7, &new),
            crate::disk::WriteOutcome::Failed(_)
        ));
        assert_eq!(disk.read_block(3, 7), Ok(Some(old)));
        disk.heal();
        assert_eq!(
            disk.write_block(3, 7, &new),
            crate::disk::WriteOutcome::Stored { rewrites: 0 }
        );
    }

    #[test]
    fn a_misdirected_write_fails_the_checksum_where_it_lands() {
        let disk = Disk::default();
        let other = StoredBlock::new(3, 8, [3; 12], b"other".to_vec());
        disk.write_block(3, 8, &other);
        disk.write_block(3, 7, &StoredBlock::new(3, 7, [1; 12], b"old".to_vec()));
        disk.inject(DiskFaultMode::MisdirectedWrite, 1.0, 1);
        let new = StoredBlock::new(3, 7, [2; 12], b"new".to_vec());
        assert!(matches!(
            disk.write_block(3, 7, &new),
            crate::disk::WriteOutcome::Failed(_)
        ));
        let landed = disk.lock().blocks[&(3, 8)].clone();
        assert_eq!(landed, new);
        assert!(!landed.verify(3, 8));
    }
}
