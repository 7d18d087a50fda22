//! Code probes: named places in the cluster's code, each a path a sweep should take at
//! least once (an error path, a lost race, a fallback). The harness counts them per run
//! and a long sweep fails when a declared probe never fired: a schedule that stopped
//! reaching a path is found before a bug hides there. A probe only counts; it never
//! changes what the cluster does, so a run plays the same with or without a sink.

use std::fmt;
use std::sync::Arc;

use crate::buggify::{Buggify, Site, KMS_DELAY_MAX};
use crate::dek::Dek;
use crate::kms::{KmsConnector, KmsError, WrappedDek};
use crate::net::BoxFuture;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Probe {
    /// A KMS call found nothing to talk to (connection refused or reset).
    KmsUnreachable,
    /// A KMS call had no answer within its timeout.
    KmsTimeout,
    /// A KMS call found the Vault sealed.
    KmsSealed,
    /// The KMS rejected the cluster's credentials (a revoked token, say).
    KmsAuth,
    /// The KMS refused a request with an error status (500, 503).
    KmsRefused,
    /// The KMS answered 429: rate limited.
    KmsRateLimited,
    /// The KMS answered something unreadable (garbled, or cut short).
    KmsMalformed,
    /// A KMIP operation answered with a failure result (a revoked key, say).
    KmipFailure,
    /// Startup unwrap's wait reached its ceiling (`unwrap_backoff_max`).
    UnwrapBackoffAtCeiling,
    /// A rewrap lost its compare-and-set: the filesystem was re-wrapped or moved between
    /// the KMS's answer and the commit, and the other change stands.
    RewrapLostRace,
    /// A rewrap's rescan found filesystems that joined the cluster key behind it, wrapped
    /// under what the rewrap was moving away from (a create or download that wrapped
    /// before a rotation, say), and moved them too.
    RewrapRescanFound,
    /// `security kms rewrap --all` re-wrapped a filesystem on a key of its own.
    RewrapOwnKey,
    /// `security kms rewrap --convert-to-cluster-key-on-fs` moved a filesystem from a key
    /// of its own to the cluster key.
    ConvertedToClusterKey,
    /// A block read skipped a replica that did not have it or did not answer, and read
    /// another one.
    ReadFromAnotherReplica,
    /// A snapshot upload was refused because a block's every replica was silent.
    SnapshotBlocksUnlisted,
    /// `fs download` of a snapshot whose filesystem was on a key of its own.
    DownloadOwnKeySnapshot,
    /// A fault site fired (see `buggify`): a KMS request held back.
    BuggifyKmsDelay,
    /// A fault site fired: a KMS request failed without reaching the KMS.
    BuggifyKmsSpuriousError,
    /// A fault site fired: a committed change proposed once more.
    BuggifyDuplicatedProposal,
    /// A block read found a replica's copy failing its checksum (bit rot, a misdirected
    /// write) and skipped it.
    BlockChecksumMismatch,
    /// A replica's disk failed a block read (a latent sector error) and the read went on
    /// to the next replica.
    BlockReadIoError,
    /// A read wrote a good copy over a replica's bad one.
    BlockRepaired,
    /// A block write's read-back did not find it (a lost or misdirected write) and the
    /// disk wrote it again.
    WriteRewritten,
    /// A backend met a config-table record that failed its checksum, sat on a bad
    /// sector, or never landed, and stopped its config-table replica.
    ConfigRecordCorrupt,
}

impl Probe {
    pub const ALL: [Probe; 24] = [
        Probe::KmsUnreachable,
        Probe::KmsTimeout,
        Probe::KmsSealed,
        Probe::KmsAuth,
        Probe::KmsRefused,
        Probe::KmsRateLimited,
        Probe::KmsMalformed,
        Probe::KmipFailure,
        Probe::UnwrapBackoffAtCeiling,
        Probe::RewrapLostRace,
        Probe::RewrapRescanFound,
        Probe::RewrapOwnKey,
        Probe::ConvertedToClusterKey,
        Probe::ReadFromAnotherReplica,
        Probe::SnapshotBlocksUnlisted,
        Probe::DownloadOwnKeySnapshot,
        Probe::BuggifyKmsDelay,
        Probe::BuggifyKmsSpuriousError,
        Probe::BuggifyDuplicatedProposal,
        Probe::BlockChecksumMismatch,
        Probe::BlockReadIoError,
        Probe::BlockRepaired,
        Probe::WriteRewritten,
        Probe::ConfigRecordCorrupt,
    ];

    /// The probe's name, as the sweep's coverage table prints it.
    pub fn name(self) -> &'static str {
        match self {
            Probe::KmsUnreachable => "cluster:kms-unreachable",
            Probe::KmsTimeout => "cluster:kms-timeout",
            Probe::KmsSealed => "cluster:kms-sealed",
            Probe::KmsAuth => "cluster:kms-auth-refused",
            Probe::KmsRefused => "cluster:kms-error-status",
            Probe::KmsRateLimited => "cluster:kms-rate-limited",
            Probe::KmsMalformed => "cluster:kms-malformed-answer",
            Probe::KmipFailure => "cluster:kmip-operation-failed",
            Probe::UnwrapBackoffAtCeiling => "cluster:unwrap-backoff-at-ceiling",
            Probe::RewrapLostRace => "cluster:rewrap-lost-race",
            Probe::RewrapRescanFound => "cluster:rewrap-rescan-found",
            Probe::RewrapOwnKey => "cluster:rewrap-own-key",
            Probe::ConvertedToClusterKey => "cluster:rewrap-converted-to-cluster-key",
            Probe::ReadFromAnotherReplica => "cluster:read-from-another-replica",
            Probe::SnapshotBlocksUnlisted => "cluster:snapshot-blocks-unlisted",
            Probe::DownloadOwnKeySnapshot => "cluster:download-own-key-snapshot",
            Probe::BuggifyKmsDelay => "cluster:buggify-kms-delay",
            Probe::BuggifyKmsSpuriousError => "cluster:buggify-kms-spurious-error",
            Probe::BuggifyDuplicatedProposal => "cluster:buggify-duplicated-proposal",
            Probe::BlockChecksumMismatch => "cluster:block-checksum-mismatch",
            Probe::BlockReadIoError => "cluster:block-read-io-error",
            Probe::BlockRepaired => "cluster:read-repaired",
            Probe::WriteRewritten => "cluster:write-read-back-rewrote",
            Probe::ConfigRecordCorrupt => "cluster:config-record-corrupt",
        }
    }

    /// The probe a failed KMS call fires (`None`: a failure no fault reaches, such as a
    /// probe mismatch).
    pub fn of_kms_error(error: &KmsError) -> Option<Probe> {
        match error {
            KmsError::Unreachable(_) => Some(Probe::KmsUnreachable),
            KmsError::Timeout(_) => Some(Probe::KmsTimeout),
            KmsError::Sealed => Some(Probe::KmsSealed),
            KmsError::Auth(_) => Some(Probe::KmsAuth),
            KmsError::Refused { status: 429, .. } => Some(Probe::KmsRateLimited),
            KmsError::Refused { .. } => Some(Probe::KmsRefused),
            KmsError::Malformed(_) => Some(Probe::KmsMalformed),
            KmsError::KmipFailure { .. } => Some(Probe::KmipFailure),
            KmsError::ProbeMismatch | KmsError::Unsupported(_) => None,
        }
    }
}

/// Where probes are counted: the harness's sink, or nothing outside it.
#[derive(Clone, Default)]
pub struct ProbeSink(Option<Arc<dyn Fn(Probe) + Send + Sync>>);

impl ProbeSink {
    pub fn new(sink: impl Fn(Probe) + Send + Sync + 'static) -> Self {
        ProbeSink(Some(Arc::new(sink)))
    }

    pub fn fire(&self, probe: Probe) {
        if let Some(sink) = &self.0 {
            sink(probe);
        }
    }
}

impl fmt::Debug for ProbeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ProbeSink(counting)"
        } else {
            "ProbeSink(none)"
        })
    }
}

/// A connector that fires the probe of each failure it passes on, and is where the KMS
/// fault sites are (a request held back, a request failed before it left).
pub struct Probed {
    pub inner: Arc<dyn KmsConnector>,
    pub probes: ProbeSink,
    pub buggify: Buggify,
}

impl Probed {
    /// The fault sites every request passes.
    async fn sites(&self) -> Result<(), KmsError> {
        if self.buggify.fires(Site::KmsDelay) {
            self.probes.fire(Probe::BuggifyKmsDelay);
            tokio::time::sleep(self.buggify.delay(KMS_DELAY_MAX)).await;
        }
        if self.buggify.fires(Site::KmsSpuriousError) {
            self.probes.fire(Probe::BuggifyKmsSpuriousError);
            return Err(KmsError::Unreachable(
                "connection reset before the request was sent (a fault site)".into(),
            ));
        }
        Ok(())
    }

    fn seen<T>(&self, result: Result<T, KmsError>) -> Result<T, KmsError> {
        if let Err(e) = &result {
            if let Some(probe) = Probe::of_kms_error(e) {
                self.probes.fire(probe);
            }
        }
        result
    }
}

impl KmsConnector for Probed {
    fn probe(&self) -> BoxFuture<'_, Result<(), KmsError>> {
        Box::pin(async move {
            self.seen(self.sites().await)?;
            self.seen(self.inner.probe().await)
        })
    }

    fn wrap<'a>(&'a self, deks: &'a [Dek]) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
        Box::pin(async move {
            self.seen(self.sites().await)?;
            self.seen(self.inner.wrap(deks).await)
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a [WrappedDek],
    ) -> BoxFuture<'a, Result<Vec<Dek>, KmsError>> {
        Box::pin(async move {
            self.seen(self.sites().await)?;
            self.seen(self.inner.unwrap(wrapped).await)
        })
    }

    fn rewrap<'a>(
        &'a self,
        wrapped: &'a [WrappedDek],
    ) -> BoxFuture<'a, Result<Vec<WrappedDek>, KmsError>> {
        Box::pin(async move {
            self.seen(self.sites().await)?;
            self.seen(self.inner.rewrap(wrapped).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Probe;
    use std::collections::BTreeSet;

    #[test]
    fn every_probe_is_listed_once_with_its_own_name() {
        let names: BTreeSet<&str> = Probe::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), Probe::ALL.len());
        assert!(names.iter().all(|n| n.starts_with("cluster:")));
    }
}
