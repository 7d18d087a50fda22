//! Rewrap: the DEKs of the filesystems on the cluster key wrapped again, by the key's
//! newest version (Vault) or by another key (KMIP), with the data never re-encrypted;
//! with `--all`, those on keys of their own too, each by its own key's newest version;
//! `fs kms-rewrap`, one filesystem's.
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

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{find_fs, Node, KMS_BATCH, STALE_RETRIES};
use crate::admin::{check_rewrap, AdminError, AdminOutput};
use crate::config_table::{name_list, ConfigCommand, ConfigResponse, ConfigState, Rewrapping};
use crate::events::Event;
use crate::filesystem::KmsBinding;
use crate::hooks::{CrashPoint, PlantedBug};
use crate::kms::{self, KmsConfig, KmsConnector, WrappedDek};
use crate::probe::Probe;

/// What a Vault `security kms rewrap` does with the filesystems on keys of their own,
/// after those on the cluster key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OwnKeys {
    /// Nothing (plain `security kms rewrap`).
    Leave,
    /// Each rewrapped by its own key's newest version (`--all`).
    Rewrap,
    /// Each moved to the cluster key (`--convert-to-cluster-key-on-fs`).
    Convert,
}

/// How far a rewrap got, for the events that report a failure midway.
#[derive(Default)]
struct Progress {
    done: usize,
    total: usize,
}

impl Node {
    /// `security kms rewrap`: every filesystem on the cluster key gets its DEK wrapped by
    /// the newest key version; then, key by key in name order, those on keys of their
    /// own as `own_keys` says. A failure stops the rewrap where it is; run again, it wraps
    /// every DEK anew (one already at the newest version gets a fresh wrapping by that
    /// same version).
    pub(super) async fn kms_rewrap(&self, own_keys: OwnKeys) -> Result<AdminOutput, AdminError> {
        let (state, config) = self.rewrap_start().await?;
        let mut progress = Progress::default();
        let newest = self
            .rewrap_to_newest(&config, &KmsBinding::ClusterKey, &state, &mut progress)
            .await?;
        self.trim_under_snapshot(&state, &config, newest).await?;
        match own_keys {
            OwnKeys::Leave => {}
            OwnKeys::Rewrap => self.rewrap_own_keys(&state, &config, &mut progress).await?,
            OwnKeys::Convert => {
                self.convert_own_keys(state.clone(), &config, &mut progress)
                    .await?
            }
        }
        Ok(AdminOutput::Rewrapped {
            filesystems: progress.total,
            key_version: newest,
        })
    }

    /// The `--all` part of a rewrap: the filesystems on keys of their own, key by key.
    async fn rewrap_own_keys(
        &self,
        state: &ConfigState,
        config: &KmsConfig,
        progress: &mut Progress,
    ) -> Result<(), AdminError> {
        for key in own_keys(state) {
            let binding = KmsBinding::OwnKey {
                key: key.to_string(),
            };
            let before = progress.done;
            self.rewrap_to_newest(&config.with_key(key), &binding, state, progress)
                .await?;
            if progress.done > before {
                self.probe(Probe::RewrapOwnKey);
            }
        }
        Ok(())
    }

    /// The `--convert-to-cluster-key-on-fs` part of a rewrap: every filesystem on a key of
    /// its own moves to the cluster key, its DEK unwrapped by its own key and wrapped by
    /// the cluster key's newest version, a KMS batch per proposal, each filesystem
    /// committed only if still wrapped as it was. Then a rescan for what joined a key of
    /// its own meanwhile; what is still there after the last one fails the command (run
    /// it again), so an acknowledged conversion left nothing behind.
    async fn convert_own_keys(
        &self,
        mut state: Arc<ConfigState>,
        config: &KmsConfig,
        progress: &mut Progress,
    ) -> Result<(), AdminError> {
        let cluster = self.connector(config);
        for _ in 0..=STALE_RETRIES {
            let keys: Vec<String> = own_keys(&state).map(str::to_string).collect();
            if keys.is_empty() {
                return Ok(());
            }
            for key in keys {
                let binding = KmsBinding::OwnKey { key: key.clone() };
                let targets = self.rewrap_targets(&state, &binding, |_| true);
                let own = self.connector(&config.with_key(&key));
                progress.total += targets.len();
                for chunk in targets.chunks(KMS_BATCH) {
                    self.convert_batch(own.as_ref(), cluster.as_ref(), config, chunk, progress)
                        .await?;
                }
            }
            self.read_barrier().await?;
            state = self.config();
        }
        let left: Vec<&str> = state
            .members_encrypted()
            .filter(|f| matches!(f.binding, KmsBinding::OwnKey { .. }))
            .map(|f| f.name.as_str())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        Err(AdminError::NotCommitted(format!(
            "filesystems {} are still on keys of their own (moved or created there while \
             the rewrap ran): run it again",
            name_list(&left)
        )))
    }

    /// One KMS batch of a conversion: unwrapped by their own key, wrapped by the cluster
    /// key, committed in one proposal.
    async fn convert_batch(
        &self,
        own: &dyn KmsConnector,
        cluster: &dyn KmsConnector,
        config: &KmsConfig,
        chunk: &[(String, WrappedDek)],
        progress: &mut Progress,
    ) -> Result<(), AdminError> {
        let old: Vec<WrappedDek> = chunk.iter().map(|(_, w)| w.clone()).collect();
        let deks = own
            .unwrap(&old)
            .await
            .map_err(|e| self.rewrap_failed(e, progress))?;
        let new = match cluster.wrap(&deks).await {
            Ok(new) if new.len() == old.len() => new,
            Ok(new) => {
                let e = kms::KmsError::Malformed(format!(
                    "{} wrappings for {} keys",
                    new.len(),
                    old.len()
                ));
                return Err(self.rewrap_failed(e, progress));
            }
            Err(e) => return Err(self.rewrap_failed(e, progress)),
        };
        self.crash_point(CrashPoint::AfterKmsBeforeCommit).await;
        let rewraps: Vec<Rewrapping> = chunk
            .iter()
            .zip(new)
            .map(|((fs, old), wrapped)| Rewrapping {
                fs: fs.clone(),
                expected: old.clone(),
                wrapped,
                binding: Some(KmsBinding::ClusterKey),
            })
            .collect();
        let versions: Vec<u64> = rewraps.iter().map(|r| r.wrapped.key_version).collect();
        let outcomes = self.propose_rewraps(rewraps, "conversion").await?;
        for (((fs, _), key_version), outcome) in chunk.iter().zip(versions).zip(outcomes) {
            // Anything but Ok: changed meanwhile; the rescan finds it if it is still on a
            // key of its own.
            if outcome == ConfigResponse::Ok {
                progress.done += 1;
                self.probe(Probe::ConvertedToClusterKey);
                self.emit(Event::FsKeyMoved {
                    fs: fs.clone(),
                    key: config.key_name().to_string(),
                    key_version,
                });
            } else {
                self.probe(Probe::RewrapLostRace);
            }
        }
        Ok(())
    }

    /// `fs kms-rewrap <name>`: one filesystem's DEK wrapped by the newest version of its
    /// key, the cluster's or its own; answers that version.
    pub(super) async fn fs_kms_rewrap(&self, name: &str) -> Result<AdminOutput, AdminError> {
        let (state, _) = self.rewrap_start().await?;
        let record = find_fs(&state, name)?;
        let wrapped = record.wrapped_dek.clone().ok_or_else(|| {
            AdminError::Usage(format!(
                "filesystem {name} is not encrypted: it has no key to rewrap"
            ))
        })?;
        let config = state.kms_for(&record).ok_or(AdminError::KmsNotConfigured)?;
        let connector = self.connector(&config);
        let mut progress = Progress { done: 0, total: 1 };
        let event = rewrapped_event(&record.binding);
        let newest = self
            .rewrap_pass(
                connector.as_ref(),
                &[(name.to_string(), wrapped)],
                &mut progress,
                event,
            )
            .await?;
        Ok(AdminOutput::Rewrapped {
            filesystems: 1,
            key_version: newest,
        })
    }

    /// The state every Vault rewrap starts from: the table as last committed, and its KMS
    /// configuration, checked to be one whose keys version (a KMIP key's rewrap is
    /// `kms_rewrap_to`).
    async fn rewrap_start(&self) -> Result<(Arc<ConfigState>, KmsConfig), AdminError> {
        self.read_barrier().await?;
        let state = self.config();
        let config = state.kms.clone().ok_or(AdminError::KmsNotConfigured)?;
        check_rewrap(&config, None)?;
        Ok((state, config))
    }

    /// Rewraps the filesystems bound as `binding` (reached through `config`) to its key's
    /// newest version, then rescans until none is left below it; answers that version.
    async fn rewrap_to_newest(
        &self,
        config: &KmsConfig,
        binding: &KmsBinding,
        state: &ConfigState,
        progress: &mut Progress,
    ) -> Result<Option<u64>, AdminError> {
        let connector = self.connector(config);
        let mut targets = self.rewrap_targets(state, binding, |_| true);
        let mut newest = None;
        for _ in 0..=STALE_RETRIES {
            progress.total += targets.len();
            let reached = self
                .rewrap_pass(
                    connector.as_ref(),
                    &targets,
                    progress,
                    rewrapped_event(binding),
                )
                .await?;
            newest = newest.max(reached);
            // The rescan: what joined this key below that version meanwhile.
            let Some(version) = newest else { break };
            self.read_barrier().await?;
            targets = self.rewrap_targets(&self.config(), binding, |w| w.key_version < version);
            if targets.is_empty() {
                break;
            }
            self.probe(Probe::RewrapRescanFound);
        }
        Ok(newest)
    }

    /// Planted bug: the snapshots on the cluster key recorded as re-wrapped too, which
    /// lets an admin trim versions they still need.
    async fn trim_under_snapshot(
        &self,
        state: &ConfigState,
        config: &KmsConfig,
        newest: Option<u64>,
    ) -> Result<(), AdminError> {
        if !self.planted(PlantedBug::TrimUnderSnapshot) {
            return Ok(());
        }
        let on_cluster_key = state
            .snapshots
            .values()
            .filter(|r| r.kms_key.as_deref() == Some(config.key_name()));
        for mut record in on_cluster_key.cloned() {
            record.key_version = newest;
            self.propose(ConfigCommand::AddSnapshot { record }).await?;
        }
        Ok(())
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
        let on_cluster_key = KmsBinding::ClusterKey;
        let mut targets = self.rewrap_targets(&state, &on_cluster_key, not_moved);
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
                let answer = self
                    .propose(ConfigCommand::SetKms {
                        config: target.clone(),
                        proved: None,
                    })
                    .await?;
                self.emit(Event::kms_configured(&answer, target.describe()));
                configured = true;
            }
            self.read_barrier().await?;
            targets = self.rewrap_targets(&self.config(), &on_cluster_key, not_moved);
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

    /// The filesystems bound as `binding` whose wrapping `pick` selects, each with it.
    fn rewrap_targets(
        &self,
        state: &ConfigState,
        binding: &KmsBinding,
        pick: impl Fn(&WrappedDek) -> bool,
    ) -> Vec<(String, WrappedDek)> {
        let mut targets: Vec<(String, WrappedDek)> = state
            .members_encrypted()
            .filter(|f| f.binding == *binding)
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
                    binding: None,
                });
            }
            if rewraps.is_empty() {
                continue;
            }
            let outcomes = self.propose_rewraps(rewraps, "rewrap").await?;
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

    /// Commits a batch of rewrappings in one proposal; answers each filesystem's outcome,
    /// in order. `what` names the command in the error if the table answers otherwise.
    async fn propose_rewraps(
        &self,
        rewraps: Vec<Rewrapping>,
        what: &str,
    ) -> Result<Vec<ConfigResponse>, AdminError> {
        let asked = rewraps.len();
        match self.propose(ConfigCommand::Rewrap { rewraps }).await? {
            ConfigResponse::Each { outcomes } if outcomes.len() == asked => Ok(outcomes),
            other => Err(AdminError::NotCommitted(format!(
                "the config table answered a {what} of {asked} filesystems with {other:?}"
            ))),
        }
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
            Err(e) => Err(self.rewrap_failed(e, progress)),
        }
    }

    /// A KMS failure midway through a rewrap: told with how far the whole rewrap got.
    fn rewrap_failed(&self, e: kms::KmsError, progress: &Progress) -> AdminError {
        self.emit(Event::RewrapFailed {
            error: e.to_string(),
            done: progress.done,
            left: progress.total - progress.done,
        });
        e.into()
    }
}

/// The event a Vault rewrap of a filesystem bound as `binding` emits; it names the key
/// only for a key of the filesystem's own (the cluster key's event is as it always was).
fn rewrapped_event(binding: &KmsBinding) -> impl Fn(&str, &WrappedDek, &WrappedDek) -> Event + '_ {
    move |fs, old, new| Event::Rewrapped {
        fs: fs.to_string(),
        key: match binding {
            KmsBinding::OwnKey { key } => Some(key.clone()),
            _ => None,
        },
        from_version: old.key_version,
        to_version: new.key_version,
    }
}

/// The keys of their own that filesystems of `state` are on, each once, in name order.
fn own_keys(state: &ConfigState) -> impl Iterator<Item = &str> {
    let keys: BTreeSet<&str> = state
        .members_encrypted()
        .filter_map(|f| match &f.binding {
            KmsBinding::OwnKey { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    keys.into_iter()
}
