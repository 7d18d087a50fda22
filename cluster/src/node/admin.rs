//! Admin commands as a backend carries them out.

use super::rewrap::OwnKeys;
use super::unwrap::by_config;
use super::{find_fs, lock, serves, Node, STALE_RETRIES};
use crate::admin::{AdminCommand, AdminError, AdminOutput, FsSummary, KmsSummary};
use crate::config_table::{
    name_list, own_key_refusal, ConfigCommand, ConfigResponse, ConfigState, Rewrapping,
};
use crate::dek::Dek;
use crate::events::Event;
use crate::filesystem::{FsRecord, KmsBinding};
use crate::hooks::{CrashPoint, PlantedBug};
use crate::kms::{self, KmsConfig, WrappedDek};
use crate::rpc::ProposeError;

impl From<ProposeError> for AdminError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::ReplicaStopped(record) => AdminError::ConfigReplicaStopped { record },
            e => AdminError::NotCommitted(e.to_string()),
        }
    }
}

impl Node {
    pub async fn admin(&self, cmd: AdminCommand) -> Result<AdminOutput, AdminError> {
        // A stopped config-table replica serves only its status: everything else reads
        // or changes the config table (I/O included: placement and keys come from it).
        if let Some(record) = self.config_stopped() {
            if !matches!(cmd, AdminCommand::Status) {
                return Err(AdminError::ConfigReplicaStopped {
                    record: record.to_string(),
                });
            }
        }
        match cmd {
            AdminCommand::KmsSet(args) => self.kms_set(args.into_config()?).await,
            AdminCommand::KmsSetKmip(args) => self.kms_set(args.into_config()?).await,
            AdminCommand::KmsShow => Ok(AdminOutput::Kms {
                kms: self.config().kms.as_ref().map(KmsSummary::of),
            }),
            AdminCommand::KmsReset => self.kms_reset().await,
            AdminCommand::FsCreate {
                name,
                capacity_gib,
                encrypted,
                kms_key,
            } => self.fs_create(name, capacity_gib, encrypted, kms_key).await,
            AdminCommand::FsList => Ok(self.fs_list()),
            AdminCommand::FsUpdate { name, kms_key } => self.fs_update(name, kms_key).await,
            AdminCommand::Write { fs, block, data } => self.write_block(&fs, block, &data).await,
            AdminCommand::Read { fs, block } => self.read_block(&fs, block).await,
            AdminCommand::Status => Ok(AdminOutput::Status(self.status())),
            AdminCommand::KmsRewrap => self.kms_rewrap(OwnKeys::Leave).await,
            AdminCommand::KmsRewrapAll => self.kms_rewrap(OwnKeys::Rewrap).await,
            AdminCommand::KmsRewrapConvert => self.kms_rewrap(OwnKeys::Convert).await,
            AdminCommand::FsKmsRewrap { name } => self.fs_kms_rewrap(&name).await,
            AdminCommand::KmsRewrapTo { new_key_uid } => self.kms_rewrap_to(new_key_uid).await,
            AdminCommand::SnapshotList => {
                self.read_barrier().await?;
                Ok(AdminOutput::Snapshots {
                    snapshots: self.config().snapshots.values().cloned().collect(),
                })
            }
            AdminCommand::SnapshotUpload { fs, snapshot } => {
                self.snapshot_upload(&fs, &snapshot).await
            }
            AdminCommand::FsDownload {
                name,
                capacity_gib,
                bucket,
                locator,
            } => {
                self.fs_download(name, capacity_gib, &bucket, &locator)
                    .await
            }
        }
    }

    /// `security kms set vault` and `set kmip`: probe first, commit only a KMS that works.
    async fn kms_set(&self, config: KmsConfig) -> Result<AdminOutput, AdminError> {
        let iv_counter = self.planted(PlantedBug::KmipIvCounter);
        let connector = kms::connect_planted(&config, self.0.dialer.clone(), iv_counter);
        if let Err(e) = connector.probe().await {
            self.emit(Event::KmsSetRefused {
                error: e.to_string(),
            });
            return Err(e.into());
        }
        let refused = |node: &Self, why: String| {
            let error = AdminError::KmsChangeRefused(why);
            node.emit(Event::KmsSetRefused {
                error: error.to_string(),
            });
            error
        };
        let proved = self
            .prove_kms_change(&self.config(), &config)
            .await
            .map_err(|why| refused(self, why))?;
        let describe = config.describe();
        let answer = self
            .propose(ConfigCommand::SetKms {
                config,
                proved: Some(proved),
            })
            .await?;
        if let ConfigResponse::Rejected { reason } = answer {
            return Err(refused(self, reason));
        }
        self.emit(Event::kms_configured(&answer, describe));
        Ok(AdminOutput::Done)
    }

    /// `security kms reset`: refused here with the names of what depends on the KMS, and
    /// again by the config table if something came to depend on it meanwhile.
    async fn kms_reset(&self) -> Result<AdminOutput, AdminError> {
        self.read_barrier().await?;
        let config = self.config().kms.clone().ok_or_else(|| {
            AdminError::Usage("no KMS is configured: there is nothing to reset".into())
        })?;
        let refused = |why: String| AdminError::KmsResetRefused(why);
        if let Some(why) = self.config().kms_reset_refusal() {
            return Err(refused(why));
        }
        if let ConfigResponse::Rejected { reason } = self.propose(ConfigCommand::ResetKms).await? {
            return Err(refused(reason));
        }
        self.emit(Event::KmsConfigurationRemoved {
            kms: config.describe(),
        });
        Ok(AdminOutput::Done)
    }

    /// Before `security kms set` replaces a live configuration: refuses a change SPEC
    /// allows only through rewrap, then unwraps, under the new configuration, every
    /// committed DEK the change touches. Answers what it proved, for the commit to check
    /// again; or why the change would strand a filesystem.
    async fn prove_kms_change(
        &self,
        state: &ConfigState,
        new: &KmsConfig,
    ) -> Result<Vec<(String, WrappedDek)>, String> {
        if let Some(why) = state.kms_change_refusal(new) {
            return Err(why);
        }
        let dependents = state.kms_change_dependents(new);
        let groups = by_config(
            dependents
                .iter()
                .map(|d| (d.config.clone(), d.fs.clone(), d.wrapped.clone())),
        );
        let mut stranded: Vec<String> = Vec::new();
        let mut first_error = None;
        self.unwrap_groups(&groups, |group, results| {
            for ((fs, _), result) in groups[group].1.iter().zip(results) {
                if let Err(e) = result {
                    stranded.push(fs.clone());
                    first_error.get_or_insert(e);
                }
            }
        })
        .await;
        if let Some(e) = first_error {
            stranded.sort();
            return Err(format!(
                "under the new configuration ({}) the KMS does not unwrap the keys of \
                 filesystems {} ({e}), so they would stay locked from the next restart on; \
                 give a configuration that reaches the key and version they are wrapped by",
                new.describe(),
                name_list(&stranded)
            ));
        }
        Ok(dependents.into_iter().map(|d| (d.fs, d.wrapped)).collect())
    }

    /// `fs create`: an encrypted filesystem gets a fresh DEK, wrapped by the KMS before
    /// anything is committed (by the cluster key, or by `kms_key`, a key of its own). If
    /// the KMS or the commit fails, nothing is left behind.
    async fn fs_create(
        &self,
        name: String,
        capacity_gib: u64,
        encrypted: bool,
        kms_key: Option<String>,
    ) -> Result<AdminOutput, AdminError> {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(AdminError::Usage(format!(
                "filesystem name {name:?} must be non-empty and hold no spaces"
            )));
        }
        let binding = match (encrypted, kms_key) {
            (false, None) => KmsBinding::None,
            (true, None) => KmsBinding::ClusterKey,
            (true, Some(key)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                KmsBinding::OwnKey { key }
            }
            (true, Some(key)) => {
                return Err(AdminError::Usage(format!(
                    "--kms-key-identifier {key:?} must be non-empty and hold no spaces"
                )))
            }
            (false, Some(_)) => {
                return Err(AdminError::Usage(
                    "--kms-key-identifier needs --encrypted: only an encrypted filesystem has \
                     a key to wrap"
                        .into(),
                ))
            }
        };
        // The KMS configuration and the names must be as the cluster last committed them.
        self.read_barrier().await?;
        let state = self.config();
        if state.filesystems.contains_key(&name) || lock(&self.0.creating).contains_key(&name) {
            return Err(AdminError::FsExists(name));
        }
        let result = if encrypted {
            self.create_encrypted(&name, capacity_gib, state.kms.as_ref(), binding)
                .await
        } else {
            let record = FsRecord {
                name: name.clone(),
                id: 0,
                data_id: 0,
                capacity_gib,
                wrapped_dek: None,
                binding: KmsBinding::None,
            };
            self.commit_fs(record).await.map(|id| (id, None))
        };
        if result.is_ok() || !self.planted(PlantedBug::NameReservedAfterFailedCreate) {
            self.release_parked(&name);
        }
        match result {
            Ok((id, key_version)) => {
                self.emit(Event::FsCreated {
                    fs: name.clone(),
                    id,
                    encrypted,
                    key_version,
                });
                Ok(AdminOutput::FsCreated {
                    name,
                    id,
                    key_version,
                })
            }
            Err(e) => {
                self.emit(Event::FsCreateFailed {
                    fs: name,
                    error: e.to_string(),
                });
                Err(e)
            }
        }
    }

    async fn create_encrypted(
        &self,
        name: &str,
        capacity_gib: u64,
        kms_config: Option<&KmsConfig>,
        binding: KmsBinding,
    ) -> Result<(u32, Option<u64>), AdminError> {
        let cluster = kms_config.ok_or(AdminError::KmsNotConfigured)?;
        if let KmsBinding::OwnKey { .. } = binding {
            if let Some(why) = own_key_refusal(cluster) {
                return Err(AdminError::Usage(why));
            }
        }
        // The configuration that wraps this DEK: the cluster's, with its own key if it has one.
        let for_binding = |cluster: &KmsConfig| match &binding {
            KmsBinding::OwnKey { key } => cluster.with_key(key),
            _ => cluster.clone(),
        };
        let config = for_binding(cluster);
        let dek = if self.planted(PlantedBug::DekDrawnTwice) {
            Dek::generate(&mut lock(&self.0.rng).clone())
        } else {
            Dek::generate(&mut *lock(&self.0.rng))
        };
        // Parked so this node's unwrap loop does not ask the KMS for a key it holds.
        lock(&self.0.creating).insert(name.to_string(), dek.clone());
        let record = |wrapped| FsRecord {
            name: name.to_string(),
            id: 0,
            data_id: 0,
            capacity_gib,
            wrapped_dek: Some(wrapped),
            binding: binding.clone(),
        };
        if self.planted(PlantedBug::CommitBeforeKms) {
            return self.create_before_kms(name, &dek, &config, record).await;
        }
        let mut config = config;
        let mut tries = 0;
        let (id, key_version) = loop {
            let wrapped = self.wrap_one(&config, &dek).await?;
            let key_version = wrapped.key_version;
            self.crash_point(CrashPoint::AfterKmsBeforeCommit).await;
            match self.try_commit_fs(record(wrapped)).await? {
                Ok(id) => break (id, key_version),
                // A rewrap committed meanwhile: wrap again with the key as it now stands.
                Err(_) if tries < STALE_RETRIES => {
                    tries += 1;
                    config = for_binding(&self.current_kms().await?);
                }
                Err(reason) => return Err(AdminError::NotCommitted(reason)),
            }
        };
        self.leak_on_rare_path(id, name, &dek).await;
        self.crash_point(CrashPoint::AfterCommitBeforeKeyInMemory)
            .await;
        self.add_keys([(name.to_string(), dek)]);
        Ok((id, Some(key_version)))
    }

    pub(super) async fn wrap_one(
        &self,
        config: &KmsConfig,
        dek: &Dek,
    ) -> Result<WrappedDek, AdminError> {
        self.connector(config)
            .wrap(std::slice::from_ref(dek))
            .await?
            .pop()
            .ok_or_else(|| AdminError::Kms(kms::KmsError::Malformed("empty wrap answer".into())))
    }

    /// One DEK unwrapped by `config`'s key. The error stays a [`kms::KmsError`] so a
    /// caller can say what it was unwrapping.
    pub(super) async fn unwrap_one(
        &self,
        config: &KmsConfig,
        wrapped: &WrappedDek,
    ) -> Result<Dek, kms::KmsError> {
        self.connector(config)
            .unwrap(std::slice::from_ref(wrapped))
            .await?
            .pop()
            .ok_or_else(|| kms::KmsError::Malformed("empty unwrap answer".into()))
    }

    /// Planted bug: commits a placeholder wrapping first and asks the KMS afterwards, so
    /// a KMS failure leaves a filesystem whose key nobody can ever unwrap.
    async fn create_before_kms(
        &self,
        name: &str,
        dek: &Dek,
        config: &KmsConfig,
        record: impl Fn(WrappedDek) -> FsRecord,
    ) -> Result<(u32, Option<u64>), AdminError> {
        let placeholder = WrappedDek {
            ciphertext: "vault:v1:cGVuZGluZw==".into(),
            key_version: 1,
        };
        let id = self.commit_fs(record(placeholder.clone())).await?;
        let wrapped = self.wrap_one(config, dek).await?;
        let key_version = wrapped.key_version;
        self.propose(ConfigCommand::Rewrap {
            rewraps: vec![Rewrapping {
                fs: name.to_string(),
                expected: placeholder,
                wrapped,
                binding: None,
            }],
        })
        .await?;
        self.add_keys([(name.to_string(), dek.clone())]);
        Ok((id, Some(key_version)))
    }

    /// Planted bug: every fifth filesystem's plaintext DEK goes into the config table.
    #[cfg(feature = "planted-bugs")]
    async fn leak_on_rare_path(&self, id: u32, name: &str, dek: &Dek) {
        if self.planted(PlantedBug::PlaintextDekRarePath) && id.is_multiple_of(5) {
            let hex: String = dek.expose().iter().map(|b| format!("{b:02x}")).collect();
            let _ = self
                .propose(ConfigCommand::DebugNote {
                    key: format!("dek-{name}"),
                    value: hex,
                })
                .await;
        }
    }

    #[cfg(not(feature = "planted-bugs"))]
    async fn leak_on_rare_path(&self, _id: u32, _name: &str, _dek: &Dek) {}

    /// `fs update --kms-key-identifier` / `--use-cluster-kms-key-identifier`: the DEK
    /// stays (the data is never re-encrypted); only its wrapping moves to the other key.
    async fn fs_update(
        &self,
        name: String,
        kms_key: Option<String>,
    ) -> Result<AdminOutput, AdminError> {
        self.read_barrier().await?;
        let state = self.config();
        let record = find_fs(&state, &name)?;
        let old = record.wrapped_dek.clone().ok_or_else(|| {
            AdminError::Usage(format!(
                "filesystem {name} is not encrypted: it has no key to move"
            ))
        })?;
        let binding = match kms_key {
            Some(key) => {
                if let Some(why) = state.kms.as_ref().and_then(own_key_refusal) {
                    return Err(AdminError::Usage(why));
                }
                KmsBinding::OwnKey { key }
            }
            None => KmsBinding::ClusterKey,
        };
        // Both exist exactly when the cluster has a KMS configured.
        let (Some(target), Some(current)) =
            (state.kms_for_binding(&binding), state.kms_for(&record))
        else {
            return Err(AdminError::KmsNotConfigured);
        };
        // The DEK from memory if this backend serves the filesystem, else from the KMS.
        let held = lock(&self.0.keys).get(&name).cloned();
        let dek = match held {
            Some(dek) => dek,
            None => self.unwrap_one(&current, &old).await?,
        };
        let dek = if self.planted(PlantedBug::StaleDekAfterMove) {
            Dek::generate(&mut *lock(&self.0.rng))
        } else {
            dek
        };
        let wrapped = self.wrap_one(&target, &dek).await?;
        let key_version = wrapped.key_version;
        self.crash_point(CrashPoint::AfterKmsBeforeCommit).await;
        let answer = self
            .propose(ConfigCommand::Rebind {
                fs: name.clone(),
                expected: old,
                wrapped,
                binding,
            })
            .await?;
        if let ConfigResponse::Rejected { reason } | ConfigResponse::StaleWrapping { reason } =
            answer
        {
            return Err(AdminError::NotCommitted(reason));
        }
        self.emit(Event::FsKeyMoved {
            fs: name,
            key: target.key_name().to_string(),
            key_version,
        });
        Ok(AdminOutput::Done)
    }

    /// Commits a new filesystem. `Ok(Err(reason))`: the table refused its DEK's wrapping
    /// as left behind by a rewrap that committed meanwhile (wrap it again and retry).
    pub(super) async fn try_commit_fs(
        &self,
        record: FsRecord,
    ) -> Result<Result<u32, String>, AdminError> {
        let name = record.name.clone();
        match self.propose(ConfigCommand::CreateFs { record }).await? {
            ConfigResponse::FsCreated { id } => Ok(Ok(id)),
            ConfigResponse::StaleWrapping { reason } => Ok(Err(reason)),
            ConfigResponse::Rejected { .. } => Err(AdminError::FsExists(name)),
            ConfigResponse::Ok | ConfigResponse::Each { .. } | ConfigResponse::KmsSet { .. } => {
                Err(AdminError::NotCommitted(
                    "the config table answered a create without an id".into(),
                ))
            }
        }
    }

    /// Commits a new filesystem whose wrapping cannot be left behind by a rewrap (none,
    /// or one the caller does not wrap again).
    pub(super) async fn commit_fs(&self, record: FsRecord) -> Result<u32, AdminError> {
        self.try_commit_fs(record)
            .await?
            .map_err(AdminError::NotCommitted)
    }

    /// The cluster's KMS configuration as last committed (after a read barrier).
    pub(super) async fn current_kms(&self) -> Result<KmsConfig, AdminError> {
        self.read_barrier().await?;
        self.config()
            .kms
            .clone()
            .ok_or(AdminError::KmsNotConfigured)
    }

    fn fs_list(&self) -> AdminOutput {
        let state = self.config();
        let keys = lock(&self.0.keys);
        let filesystems = state
            .filesystems
            .values()
            .map(|f| FsSummary {
                name: f.name.clone(),
                status: if serves(f, &keys) {
                    "READY".into()
                } else {
                    "LOCKED".into()
                },
                encrypted: f.encrypted(),
                kms_key: f
                    .encrypted()
                    .then(|| state.kms_key_for(f).map(str::to_string))
                    .flatten(),
                key_version: f.key_version(),
                capacity_gib: f.capacity_gib,
            })
            .collect();
        AdminOutput::Filesystems {
            filesystems,
            kms: state.kms.as_ref().map(KmsSummary::of),
        }
    }
}
