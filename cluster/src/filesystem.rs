//! A filesystem as the config table records it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::kms::WrappedDek;

/// Encryption is chosen at creation and never changes; changing keys only re-wraps
/// the DEK, the data is never re-encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsRecord {
    pub name: String,
    /// Short id used in block addresses on the backends' disks.
    pub id: u32,
    /// The id the data was first written under, bound into every block's cipher
    /// associated data. Equal to `id`, except for a filesystem downloaded from a
    /// snapshot, which keeps its source's (its data is never re-encrypted).
    #[serde(default)]
    pub data_id: u32,
    pub capacity_gib: u64,
    /// `None` for an unencrypted filesystem.
    pub wrapped_dek: Option<WrappedDek>,
    pub binding: KmsBinding,
}

/// Which KMS key wraps the filesystem's DEK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KmsBinding {
    /// Not encrypted.
    None,
    /// The cluster's KMS key (`security kms set ... <key-name>`).
    ClusterKey,
    /// A key of its own (`fs update --kms-key-identifier`), reached with the cluster's
    /// KMS address and credentials.
    OwnKey { key: String },
}

/// A snapshot uploaded to the object store, as the config table remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub fs: String,
    pub snapshot: String,
    pub bucket: String,
    pub locator: String,
    /// The KMS key its DEK is wrapped by: a version means nothing without its key.
    #[serde(default)]
    pub kms_key: Option<String>,
    /// The version of `kms_key` its DEK is wrapped by: `security kms rewrap` never
    /// re-wraps an uploaded snapshot, so this version must stay decryptable while it is
    /// kept.
    pub key_version: Option<u64>,
}

/// What Snap-To-Object writes beside the blocks: enough to rebuild the filesystem on
/// any cluster whose KMS can unwrap `wrapped_dek`, and never a plaintext key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub fs: String,
    pub snapshot: String,
    pub data_id: u32,
    pub capacity_gib: u64,
    pub wrapped_dek: Option<WrappedDek>,
    pub binding: KmsBinding,
    /// The KMS key name that wrapped the DEK, so a failed download can say which key
    /// it needs.
    pub kms_key: Option<String>,
    pub blocks: Vec<u64>,
}

impl FsRecord {
    pub fn encrypted(&self) -> bool {
        self.wrapped_dek.is_some()
    }

    /// The key version that wraps its DEK; `None` for an unencrypted filesystem.
    pub fn key_version(&self) -> Option<u64> {
        self.wrapped_dek.as_ref().map(|w| w.key_version)
    }
}

/// Where a block of a filesystem lives: `replicas` consecutive backends, starting at a
/// position that spreads filesystems and blocks over the cluster.
pub fn placement(members: &[u64], fs_id: u32, block: u64, replicas: usize) -> Vec<u64> {
    if members.is_empty() {
        return Vec::new();
    }
    let start = (fs_id as u64).wrapping_mul(7).wrapping_add(block) as usize % members.len();
    (0..replicas.min(members.len()))
        .map(|i| members[(start + i) % members.len()])
        .collect()
}

/// A placement of filesystem `fs_id` that lies wholly on `silent` backends, if there is
/// one: a block placed there has no copy anywhere else, so a listing of the blocks that
/// every other backend holds may miss it.
pub fn placement_within(
    members: &[u64],
    fs_id: u32,
    replicas: usize,
    silent: &BTreeSet<u64>,
) -> Option<Vec<u64>> {
    // Consecutive blocks start their placements at every position once.
    (0..members.len() as u64)
        .map(|block| placement(members, fs_id, block, replicas))
        .find(|p| !p.is_empty() && p.iter().all(|m| silent.contains(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_distinct_and_bounded() {
        let members = [1, 2, 3, 4, 5];
        for b in 0..20 {
            let p = placement(&members, 3, b, 2);
            assert_eq!(p.len(), 2);
            assert_ne!(p[0], p[1]);
        }
        assert_eq!(placement(&members, 1, 0, 9).len(), 5);
        assert!(placement(&[], 1, 0, 2).is_empty());
    }

    #[test]
    fn a_placement_within_silent_backends_is_found() {
        let members = [1, 2, 3, 4, 5];
        let silent = |s: &[u64]| s.iter().copied().collect::<BTreeSet<u64>>();
        // Two replicas: two silent neighbours hide some block, two apart do not.
        let hidden = placement_within(&members, 1, 2, &silent(&[2, 3])).unwrap();
        assert_eq!(silent(&hidden), silent(&[2, 3]));
        assert!(placement_within(&members, 1, 2, &silent(&[2, 4])).is_none());
        assert!(placement_within(&members, 1, 2, &silent(&[5, 1])).is_some());
        // Whatever is silent, three replicas of five survive any two.
        assert!(placement_within(&members, 1, 3, &silent(&[1, 2])).is_none());
        assert!(placement_within(&members, 1, 2, &silent(&[])).is_none());
    }
}
