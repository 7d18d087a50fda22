//! Seams for the harness: crash points and planted bugs. A live cluster leaves them
//! empty; a normal build cannot plant bugs at all.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::buggify::Buggify;
use crate::config_table::NodeId;
use crate::probe::ProbeSink;

/// A point inside a command where a crash is most dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// The KMS has answered (a wrap or a rewrap) and nothing is committed yet.
    AfterKmsBeforeCommit,
    /// A new filesystem (created or downloaded) is committed and its DEK not yet in this
    /// backend's memory: the committed filesystem must still unlock, here and elsewhere.
    AfterCommitBeforeKeyInMemory,
    /// A download is committed and has copied its first block of several: the filesystem
    /// exists with part of its data.
    MidDownload,
    /// A snapshot's blocks are in the object store and listed, its manifest not yet
    /// written.
    BetweenBlocksAndManifest,
}

impl CrashPoint {
    pub const ALL: [CrashPoint; 4] = [
        CrashPoint::AfterKmsBeforeCommit,
        CrashPoint::AfterCommitBeforeKeyInMemory,
        CrashPoint::MidDownload,
        CrashPoint::BetweenBlocksAndManifest,
    ];

    /// The point's name in scenario files and probes (`after-kms-before-commit`).
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::AfterKmsBeforeCommit => "after-kms-before-commit",
            CrashPoint::AfterCommitBeforeKeyInMemory => "after-commit-before-key-in-memory",
            CrashPoint::MidDownload => "mid-download",
            CrashPoint::BetweenBlocksAndManifest => "between-blocks-and-manifest",
        }
    }
}

/// Known bugs, planted to prove the harness notices them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlantedBug {
    /// `fs create` commits the filesystem before the KMS has wrapped its DEK.
    CommitBeforeKms,
    /// `security kms rewrap` skips the last filesystem.
    SkipOneRewrap,
    /// Startup unwrap stops after its first failure.
    GiveUpUnwrap,
    /// `fs create` writes the plaintext DEK into the config table for every fifth
    /// filesystem.
    PlaintextDekRarePath,
    /// `security kms rewrap` records every uploaded snapshot as re-wrapped too, so an
    /// admin who trusts the cluster's snapshot list retires a key version a snapshot
    /// still needs.
    TrimUnderSnapshot,
    /// `fs update --kms-key-identifier` wraps a fresh DEK under the new key but the
    /// backends keep using the old one.
    StaleDekAfterMove,
    /// The block-nonce counter starts again from zero at every boot, as if it lived in
    /// memory: a restarted backend seals new blocks under nonces it has used before.
    NonceCounterRestarts,
    /// `fs create` draws the DEK from a copy of the node's RNG, which therefore never
    /// advances: filesystems created on one backend between two boots share one DEK.
    DekDrawnTwice,
    /// A block's associated data names its filesystem but not the block, so its
    /// ciphertext also decrypts as any other block of the filesystem.
    AadIgnoresBlock,
    /// Startup unwrap doubles its wait after every failure with no ceiling: after a long
    /// KMS outage a backend sleeps for minutes after the KMS is back.
    BackoffWithoutCeiling,
    /// A failed `fs create` leaves its name reserved on the backend that tried it, which
    /// then refuses the name as if the filesystem existed.
    NameReservedAfterFailedCreate,
    /// The KMIP connector takes its wrap IVs from a counter that starts at zero for every
    /// connector, as if a counter in memory were as good as randomness: two backends, or
    /// one after a restart, wrap different DEKs under one key with the same IV.
    KmipIvCounter,
    /// `security kms rewrap` reads each filesystem's wrapping again just before it commits
    /// and expects that one, so its compare-and-set always matches: a filesystem moved to a
    /// key of its own meanwhile, by an admin on another backend, gets the cluster key's
    /// wrapping back under its own-key binding, and the acknowledged move is lost.
    LostUpdateOnRewrap,
    /// `fs download` unwraps the snapshot's DEK with the key its manifest names, but
    /// records the new filesystem on the cluster key, as if every snapshot came from one:
    /// a snapshot of a filesystem on its own key downloads into a filesystem whose
    /// committed wrapping its binding's key cannot unwrap.
    DownloadIgnoresOwnKey,
    /// A block read trusts the first replica's copy as the fast path and checks the
    /// checksum only of copies from a fallback replica: a rotted or misdirected copy on
    /// the first replica is returned as the block.
    ReadSkipsChecksum,
    /// The config table's records are decoded without their checksum checked, as if the
    /// decoder would notice damage: a rotted bit that still decodes (a digit, a letter of
    /// a name or of a wrapped DEK) is applied as a change nobody made, on one replica.
    RecordSkipsChecksum,
}

impl PlantedBug {
    pub const ALL: [PlantedBug; 16] = [
        PlantedBug::CommitBeforeKms,
        PlantedBug::SkipOneRewrap,
        PlantedBug::GiveUpUnwrap,
        PlantedBug::PlaintextDekRarePath,
        PlantedBug::TrimUnderSnapshot,
        PlantedBug::StaleDekAfterMove,
        PlantedBug::NonceCounterRestarts,
        PlantedBug::DekDrawnTwice,
        PlantedBug::AadIgnoresBlock,
        PlantedBug::BackoffWithoutCeiling,
        PlantedBug::NameReservedAfterFailedCreate,
        PlantedBug::KmipIvCounter,
        PlantedBug::LostUpdateOnRewrap,
        PlantedBug::DownloadIgnoresOwnKey,
        PlantedBug::ReadSkipsChecksum,
        PlantedBug::RecordSkipsChecksum,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::CommitBeforeKms => "commit-before-kms",
            PlantedBug::SkipOneRewrap => "skip-one-rewrap",
            PlantedBug::GiveUpUnwrap => "give-up-unwrap",
            PlantedBug::PlaintextDekRarePath => "plaintext-dek-rare-path",
            PlantedBug::TrimUnderSnapshot => "trim-under-snapshot",
            PlantedBug::StaleDekAfterMove => "stale-dek-after-move",
            PlantedBug::NonceCounterRestarts => "nonce-counter-restarts",
            PlantedBug::DekDrawnTwice => "dek-drawn-twice",
            PlantedBug::AadIgnoresBlock => "aad-ignores-block",
            PlantedBug::BackoffWithoutCeiling => "backoff-without-ceiling",
            PlantedBug::NameReservedAfterFailedCreate => "name-reserved-after-failed-create",
            PlantedBug::KmipIvCounter => "kmip-iv-counter",
            PlantedBug::LostUpdateOnRewrap => "lost-update-on-rewrap",
            PlantedBug::DownloadIgnoresOwnKey => "download-ignores-own-key",
            PlantedBug::ReadSkipsChecksum => "read-skips-checksum",
            PlantedBug::RecordSkipsChecksum => "record-skips-checksum",
        }
    }

    /// The check meant to catch this bug and the failure kind it reports: what the
    /// planted-bug proof in `tests/run.sh` requires of a sweep with the bug planted
    /// (`wekasim list --bugs` prints it). A bug caught by some other check, or not at
    /// all, fails the proof.
    pub fn caught_by(self) -> Catch {
        let (check, kind) = match self {
            // The KMS refused the wrap, yet the filesystem is in the config table.
            PlantedBug::CommitBeforeKms => ("nothing-half-created", "correctness"),
            // The rewrap is acknowledged with the skipped filesystem on the old version
            // (before a trim retires it and strands it: `wrapped-deks-unwrappable`).
            PlantedBug::SkipOneRewrap => ("acknowledged-effects", "correctness"),
            // The filesystems after the first failure stay locked for good.
            PlantedBug::GiveUpUnwrap => ("filesystems-ready", "liveness"),
            PlantedBug::PlaintextDekRarePath => ("no-plaintext-dek-at-rest", "correctness"),
            PlantedBug::TrimUnderSnapshot => ("snapshots-downloadable", "correctness"),
            // The move commits a wrapped DEK that is not the filesystem's data key: the
            // KMS's own unwrap of it shows so right after the move, before any backend
            // restarts, unwraps it and fails to read.
            PlantedBug::StaleDekAfterMove => ("wrapped-dek-is-the-data-key", "correctness"),
            // A restarted backend seals a new block under a nonce it used before.
            PlantedBug::NonceCounterRestarts => ("nonce-never-reused", "correctness"),
            // The second filesystem created on a backend gets the first one's DEK.
            PlantedBug::DekDrawnTwice => ("one-dek-per-filesystem", "correctness"),
            // Every block is sealed as block 0, so it does not open as itself.
            PlantedBug::AadIgnoresBlock => ("block-bound-to-its-place", "correctness"),
            // After a long outage the backends sleep past the liveness bound.
            PlantedBug::BackoffWithoutCeiling => ("filesystems-ready", "liveness"),
            // A retry on the backend that failed is refused as if the name existed.
            PlantedBug::NameReservedAfterFailedCreate => ("errors-tell-the-truth", "correctness"),
            // The second backend to wrap a DEK under the key reuses the first one's IV.
            PlantedBug::KmipIvCounter => ("wrap-iv-unique", "correctness"),
            // A move acknowledged in a race is found overwritten right after the race.
            PlantedBug::LostUpdateOnRewrap => ("acknowledged-effects", "correctness"),
            // The KMS's own unwrap of the committed wrapping under the recorded binding
            // fails right after the download.
            PlantedBug::DownloadIgnoresOwnKey => ("wrapped-deks-unwrappable", "correctness"),
            // A damaged copy on a block's first replica comes back as the block.
            PlantedBug::ReadSkipsChecksum => ("acknowledged-writes-read-back", "correctness"),
            // A replica applies a rotted entry that still decodes: its table differs from
            // the others' at the same log index.
            PlantedBug::RecordSkipsChecksum => ("config-tables-agree", "correctness"),
        };
        Catch { check, kind }
    }

    pub fn parse(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// How a planted bug must be caught: the failing check's name (an oracle's, or a step's
/// action) and the failure kind (`correctness`, `liveness`), as a run's report names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Catch {
    pub check: &'static str,
    pub kind: &'static str,
}

/// Whether this build can plant bugs (the `planted-bugs` cargo feature).
pub const CAN_PLANT: bool = cfg!(feature = "planted-bugs");

pub type CrashPointHook = Arc<dyn Fn(NodeId, CrashPoint) -> bool + Send + Sync>;

#[derive(Clone, Default)]
pub struct Hooks {
    /// Asked at each crash point; `true` freezes the node there so the runner can crash
    /// it at exactly that point.
    pub crash_point: Option<CrashPointHook>,
    /// Bugs to plant. Ignored unless the build has the `planted-bugs` feature.
    pub planted: BTreeSet<PlantedBug>,
    /// Where the node's code probes are counted (see `probe`).
    pub probes: ProbeSink,
    /// The fault sites active in this run (see `buggify`); none outside the harness.
    pub buggify: Buggify,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("crash_point", &self.crash_point.is_some())
            .field("planted", &self.planted)
            .field("probes", &self.probes)
            .field("buggify", &self.buggify)
            .finish()
    }
}

impl Hooks {
    pub fn planted(&self, bug: PlantedBug) -> bool {
        CAN_PLANT && self.planted.contains(&bug)
    }
}
