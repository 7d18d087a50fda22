//! Admin commands as a backend carries them out.

use super::{lock, Node};
use crate::admin::{AdminCommand, AdminError, AdminOutput, FsSummary, KmsSetVault, KmsSummary};
use crate::config_table::{ConfigCommand, ConfigResponse};
use crate::dek::Dek;
use crate::events::Event;
use crate::filesystem::{FsRecord, KmsBinding};
use crate::kms::{self, KmsConfig};
use crate::rpc::ProposeError;

impl From<ProposeError> for AdminError {
    fn from(e: ProposeError) -> Self {
        AdminError::NotCommitted(e.to_string())
    }
}

impl Node {
    pub async fn admin(&self, cmd: AdminCommand) -> Result<AdminOutput, AdminError> {
        match cmd {
            AdminCommand::KmsSet(args) => self.kms_set(args).await,
            AdminCommand::KmsShow => Ok(AdminOutput::Kms {
                kms: self.config().kms.as_ref().map(KmsSummary::of),
            }),
            AdminCommand::FsCreate {
                name,
                capacity_gib,
                encrypted,
            } => self.fs_create(name, capacity_gib, encrypted).await,
            AdminCommand::FsList => Ok(self.fs_list()),
            AdminCommand::Write { fs, block, data } => self.write_block(&fs, block, &data).await,
            AdminCommand::Read { fs, block } => self.read_block(&fs, block).await,
            AdminCommand::Status => Ok(AdminOutput::Status(self.status())),
        }
    }

    /// `security kms set vault`: probe first, commit only a KMS that works.
    async fn kms_set(&self, args: KmsSetVault) -> Result<AdminOutput, AdminError> {
        let config = args.into_config()?;
        let connector = kms::connect(&config, self.0.dialer.clone());
        if let Err(e) = connector.probe().await {
            self.emit(Event::KmsSetRefused {
                error: e.to_string(),
            });
            return Err(e.into());
        }
        let describe = config.describe();
        self.propose(ConfigCommand::SetKms { config }).await?;
        self.emit(Event::KmsConfigured { kms: describe });
        Ok(AdminOutput::Done)
    }

    /// `fs create`: an encrypted filesystem gets a fresh DEK, wrapped by the KMS before
    /// anything is committed. If the KMS or the commit fails, nothing is left behind.
    async fn fs_create(
        &self,
        name: String,
        capacity_gib: u64,
        encrypted: bool,
    ) -> Result<AdminOutput, AdminError> {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(AdminError::Usage(format!(
                "filesystem name {name:?} must be non-empty and hold no spaces"
            )));
        }
        // The KMS configuration and the names must be as the cluster last committed them.
        self.read_barrier().await?;
        let state = self.config();
        if state.filesystems.contains_key(&name) || lock(&self.0.creating).contains_key(&name) {
            return Err(AdminError::FsExists(name));
        }
        let result = if encrypted {
            self.create_encrypted(&name, capacity_gib, state.kms.as_ref())
                .await
        } else {
            let record = FsRecord {
                name: name.clone(),
                id: 0,
                capacity_gib,
                wrapped_dek: None,
                binding: KmsBinding::None,
            };
            self.commit_fs(record).await.map(|id| (id, None))
        };
        lock(&self.0.creating).remove(&name);
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
    ) -> Result<(u32, Option<u64>), AdminError> {
        let config = kms_config.ok_or(AdminError::KmsNotConfigured)?;
        let dek = Dek::generate(&mut *lock(&self.0.rng));
        // Parked so this node's unwrap loop does not ask the KMS for a key it holds.
        lock(&self.0.creating).insert(name.to_string(), dek.clone());
        let wrapped = self
            .connector(config)
            .wrap(std::slice::from_ref(&dek))
            .await?
            .pop()
            .ok_or_else(|| AdminError::Kms(kms::KmsError::Malformed("empty wrap answer".into())))?;
        let key_version = wrapped.key_version;
        let record = FsRecord {
            name: name.to_string(),
            id: 0,
            capacity_gib,
            wrapped_dek: Some(wrapped),
            binding: KmsBinding::ClusterKey,
        };
        let id = self.commit_fs(record).await?;
        self.add_keys([(name.to_string(), dek)]);
        Ok((id, Some(key_version)))
    }

    async fn commit_fs(&self, record: FsRecord) -> Result<u32, AdminError> {
        let name = record.name.clone();
        match self.propose(ConfigCommand::CreateFs { record }).await? {
            ConfigResponse::FsCreated { id } => Ok(id),
            ConfigResponse::Rejected { .. } => Err(AdminError::FsExists(name)),
            ConfigResponse::Ok => Err(AdminError::NotCommitted(
                "the config table answered a create without an id".into(),
            )),
        }
    }

    fn fs_list(&self) -> AdminOutput {
        let state = self.config();
        let keys = lock(&self.0.keys);
        let key_name = state.kms.as_ref().map(|k| match k {
            KmsConfig::Vault(v) => v.key_name.clone(),
        });
        let filesystems = state
            .filesystems
            .values()
            .map(|f| FsSummary {
                name: f.name.clone(),
                status: if !f.encrypted() || keys.contains_key(&f.name) {
                    "READY".into()
                } else {
                    "LOCKED".into()
                },
                encrypted: f.encrypted(),
                kms_key: f.encrypted().then(|| key_name.clone()).flatten(),
                key_version: f.wrapped_dek.as_ref().map(|w| w.key_version),
            })
            .collect();
        AdminOutput::Filesystems { filesystems }
    }
}
