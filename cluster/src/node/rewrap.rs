//! Rewrap: the DEKs of the filesystems on the cluster key wrapped again, by the key's
//! newest version (Vault) or by another key (KMIP), with the data never re-encrypted.
//!
//! Each KMS batch of filesystems commits as one config-table proposal, so a rewrap of n
//! filesystems costs n / `KMS_BATCH` commits. Within it each filesystem is decided on its
//! own, only if its wrapping is still the one that was rewrapped (a compare-and-set), so
//! a failure or crash midway leaves each one wrapped by the old or the new, never
//! neither, and a racing change is never overwritten. A
//! filesystem that joins the cluster key while a rewrap runs (a create, a download, a move
//! back) is caught one of two ways: committed before the rewrap's first commit, it is in
//! the rescan that ends the rewrap; after it, the config table refuses its old wrapping
//! (`ConfigResponse::StaleWrapping`) and its command wraps again.

use super::{Node, KMS_BATCH, STALE_RETRIES};
use crate::admin::{check_rewrap, AdminError, AdminOutput};
use crate::config_table::{ConfigCommand, ConfigResponse, ConfigState, Rewrapping};
use crate::events::Event;
use crate::filesystem::KmsBinding;
use crate::hooks::{CrashPoint, PlantedBug};
use crate::kms::{self, KmsConnector, WrappedDek};
use crate::probe::Probe;

/// How far a rewrap got, for the events that report a failure midway.
#[derive(Default)]
struct Progress {
    done: usize,
    total: usize,
}

impl Node {
    /// `security kms rewrap`: every filesystem on the cluster key gets its DEK wrapped by
    /// the newest key version.
    pub(super) async fn kms_rewrap(&self) -> Result<AdminOutput, AdminError> {
        self.read_barrier().await?;
        let state = self.config();
        let config = state.kms.clone().ok_or(AdminError::KmsNotConfigured)?;
        // A KMIP key does not version: its rewrap is `kms_rewrap_to`.
        check_rewrap(&config, None)?;
        let connector = self.connector(&config);
        let mut targets = self.rewrap_targets(&state, |_| true);
        let mut progress = Progress::default();
        let mut newest = None;
        for _ in 0..=STALE_RETRIES {
            progress.total += targets.len();
            let reached = self
                .rewrap_pass(
                    connector.as_ref(),
                    &targets,
                    &mut progress,
                    |fs, old, new| Event::Rewrapped {
                        fs: fs.to_string(),
                        from_version: old.key_version,
                        to_version: new.key_version,
                    },
                )
                .await?;
            newest = newest.max(reached);
            // The rescan: what joined the cluster key below that version meanwhile.
            let Some(version) = newest else { break };
            self.read_barrier().await?;
            targets = self.rewrap_targets(&self.config(), |w| w.key_version < version);
            if targets.is_empty() {
                break;
            }
            self.probe(Probe::RewrapRescanFound);
        }
        if self.planted(PlantedBug::TrimUnderSnapshot) {
            let on_cluster_key = state
                .snapshots
                .values()
                .filter(|r| r.kms_key.as_deref() == Some(config.key_name()));
            for mut record in on_cluster_key.cloned() {
                record.key_version = newest;
                self.propose(ConfigCommand::AddSnapshot { record }).await?;
            }
        }
        Ok(AdminOutput::Rewrapped {
            filesystems: progress.total,
            key_version: newest,
        })
    }

    /// `security kms rewrap --new-key-uid`: the DEKs of filesystems on a KMIP cluster key
    /// move to another key; both unwrap meanwhile, because a KMIP wrapping names its own
    /// key. The configuration moves to the new key once every filesystem is on it; run
    /// again after a failure, the rewrap skips those already moved.
    pub(super) async fn kms_rewrap_to(
        &self,
        new_key_uid: String,
    ) -> Result<AdminOutput, AdminError> {
        self.read_barrier().await?;
        let state = self.config();
        let config = state.kms.clone().ok_or(AdminError::KmsNotConfigured)?;
        check_rewrap(&config, Some(&new_key_uid))?;
        let target = config.with_key(&new_key_uid);
        let not_moved = |w: &WrappedDek| kms::wrapping_key(&w.ciphertext) != Some(&new_key_uid);
        let mut targets = self.rewrap_targets(&state, not_moved);
        // The connector for the new key: it decrypts each DEK with the key its wrapping
        // names and encrypts it with the new one.
        let connector = self.connector(&target);
        let mut progress = Progress::default();
        let mut configured = false;
        for _ in 0..=STALE_RETRIES {
            progress.total += targets.len();
            self.rewrap_pass(connector.as_ref(), &targets, &mut progress, |fs, old, _| {
                Event::RewrappedToKey {
                    fs: fs.to_string(),
                    from_key: kms::wrapping_key(&old.ciphertext)
                        .unwrap_or_default()
                        .to_string(),
                    to_key: new_key_uid.clone(),
                }
            })
            .await?;
            if !configured {
                // From this commit on, the table refuses a wrapping by the old key on the
                // cluster key; the rescan below moves what committed before it.
                self.propose(ConfigCommand::SetKms {
                    config: target.clone(),
                    proved: None,
                })
                .await?;
                self.emit(Event::KmsConfigured {
                    kms: target.describe(),
                });
                configured = true;
            }
            self.read_barrier().await?;
            targets = self.rewrap_targets(&self.config(), not_moved);
            if targets.is_empty() {
                break;
            }
            self.probe(Probe::RewrapRescanFound);
        }
        Ok(AdminOutput::Rewrapped {
            filesystems: progress.total,
            key_version: None,
        })
    }

    /// The filesystems on the cluster key whose wrapping `pick` selects, each with it.
    fn rewrap_targets(
        &self,
        state: &ConfigState,
        pick: impl Fn(&WrappedDek) -> bool,
    ) -> Vec<(String, WrappedDek)> {
        let mut targets: Vec<(String, WrappedDek)> = state
            .members_encrypted()
            .filter(|f| f.binding == KmsBinding::ClusterKey)
            .filter_map(|f| f.wrapped_dek.clone().map(|w| (f.name.clone(), w)))
            .filter(|(_, w)| pick(w))
            .collect();
        if self.planted(PlantedBug::SkipOneRewrap) {
            targets.pop();
        }
        targets
    }

    /// Rewraps `targets` in KMS batches, each committed in one proposal that decides each
    /// filesystem on its own; answers the newest key version the KMS wrapped with. `moved`
    /// is the event a filesystem's commit emits.
    async fn rewrap_pass(
        &self,
        connector: &dyn KmsConnector,
        targets: &[(String, WrappedDek)],
        progress: &mut Progress,
        moved: impl Fn(&str, &WrappedDek, &WrappedDek) -> Event,
    ) -> Result<Option<u64>, AdminError> {
        let mut newest = None;
        for chunk in targets.chunks(KMS_BATCH) {
            let old: Vec<WrappedDek> = chunk.iter().map(|(_, w)| w.clone()).collect();
            let new = self.rewrap_batch(connector, &old, progress).await?;
            let mut rewraps = Vec::with_capacity(chunk.len());
            let mut events = Vec::with_capacity(chunk.len());
            for ((fs, old), new) in chunk.iter().zip(new) {
                newest = newest.max(Some(new.key_version));
                if *old == new {
                    continue;
                }
                progress.done += 1;
                events.push(moved(fs, old, &new));
                rewraps.push(Rewrapping {
                    fs: fs.clone(),
                    expected: self.expected_wrapping(fs, old).await,
                    wrapped: new,
                });
            }
            if rewraps.is_empty() {
                continue;
            }
            let asked = rewraps.len();
            let outcomes = match self.propose(ConfigCommand::Rewrap { rewraps }).await? {
                ConfigResponse::Each { outcomes } if outcomes.len() == asked => outcomes,
                other => {
                    return Err(AdminError::NotCommitted(format!(
                        "the config table answered a rewrap of {asked} filesystems with {other:?}"
                    )))
                }
            };
            for (event, outcome) in events.into_iter().zip(outcomes) {
                // Anything but Ok: someone else re-wrapped it meanwhile, and theirs stands.
                if outcome == ConfigResponse::Ok {
                    self.emit(event);
                } else {
                    self.probe(Probe::RewrapLostRace);
                }
            }
        }
        Ok(newest)
    }

    /// The wrapping a rewrap's compare-and-set expects: the one it rewrapped.
    async fn expected_wrapping(&self, fs: &str, rewrapped: &WrappedDek) -> WrappedDek {
        if self.planted(PlantedBug::LostUpdateOnRewrap) {
            // Read again, after a barrier, "to be fresh": the compare-and-set then always
            // matches, whatever committed since the KMS rewrapped.
            if self.read_barrier().await.is_ok() {
                if let Some(current) = self
                    .config()
                    .filesystems
                    .get(fs)
                    .and_then(|r| r.wrapped_dek.clone())
                {
                    return current;
                }
            }
        }
        rewrapped.clone()
    }

    /// Rewraps one batch; a failure is told with how far the whole rewrap got. Then the
    /// crash point between the KMS's answer and the commit.
    async fn rewrap_batch(
        &self,
        connector: &dyn KmsConnector,
        old: &[WrappedDek],
        progress: &Progress,
    ) -> Result<Vec<WrappedDek>, AdminError> {
        match connector.rewrap(old).await {
            Ok(new) => {
                self.crash_point(CrashPoint::AfterKmsBeforeCommit).await;
                Ok(new)
            }
            Err(e) => {
                self.emit(Event::RewrapFailed {
                    error: e.to_string(),
                    done: progress.done,
                    left: progress.total - progress.done,
                });
                Err(e.into())
            }
        }
    }
}
