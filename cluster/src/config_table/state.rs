//! What the config table holds, and the only ways it changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::filesystem::{FsRecord, KmsBinding, SnapshotRecord};
use crate::kms::{KmsConfig, WrappedDek};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigState {
    pub kms: Option<KmsConfig>,
    pub filesystems: BTreeMap<String, FsRecord>,
    pub next_fs_id: u32,
    /// Snapshots uploaded to the object store, by locator.
    #[serde(default)]
    pub snapshots: BTreeMap<String, SnapshotRecord>,
    /// Only in a build that plants bugs: where one of them leaks a key.
    #[cfg(feature = "planted-bugs")]
    #[serde(default)]
    pub debug_notes: BTreeMap<String, String>,
}

/// A change to the config table. Each is checked again when applied, because the node
/// that proposed it may have seen an older table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ConfigCommand {
    /// A new KMS configuration. `proved` lists the wrapped DEKs its proposer unwrapped
    /// under it (see [`ConfigState::kms_change_dependents`]); the change commits only if
    /// they are still every DEK it touches. `None` (entries from before the proof, and
    /// the last step of a rewrap to a new KMIP key, which moved every DEK itself) commits
    /// unchecked.
    SetKms {
        config: KmsConfig,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proved: Option<Vec<(String, WrappedDek)>>,
    },
    /// A filesystem, with its DEK already wrapped by the KMS (never the plaintext).
    CreateFs { record: FsRecord },
    /// Replaces a DEK's wrapping, only if it is still wrapped as `expected` (so two
    /// racing rewraps cannot lose one another's result).
    Rewrap {
        fs: String,
        expected: WrappedDek,
        wrapped: WrappedDek,
    },
    /// Moves a filesystem to another key: its DEK re-wrapped by that key, only if it is
    /// still wrapped as `expected`.
    Rebind {
        fs: String,
        expected: WrappedDek,
        wrapped: WrappedDek,
        binding: KmsBinding,
    },
    /// Records an uploaded snapshot.
    AddSnapshot { record: SnapshotRecord },
    /// Planted-bug builds only.
    #[cfg(feature = "planted-bugs")]
    DebugNote { key: String, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigResponse {
    Ok,
    /// The filesystem got this id.
    FsCreated {
        id: u32,
    },
    Rejected {
        reason: String,
    },
}

impl ConfigState {
    pub fn apply(&mut self, cmd: &ConfigCommand) -> ConfigResponse {
        match cmd {
            ConfigCommand::SetKms { config, proved } => {
                if let Some(reason) = proved
                    .as_ref()
                    .and_then(|proved| self.kms_change_unproved(config, proved))
                {
                    return ConfigResponse::Rejected { reason };
                }
                self.kms = Some(config.clone());
                ConfigResponse::Ok
            }
            ConfigCommand::CreateFs { record } => {
                if self.filesystems.contains_key(&record.name) {
                    return ConfigResponse::Rejected {
                        reason: format!("filesystem {} already exists", record.name),
                    };
                }
                self.next_fs_id += 1;
                let id = self.next_fs_id;
                let mut record = record.clone();
                record.id = id;
                if record.data_id == 0 {
                    record.data_id = id;
                }
                self.filesystems.insert(record.name.clone(), record);
                ConfigResponse::FsCreated { id }
            }
            ConfigCommand::Rewrap {
                fs,
                expected,
                wrapped,
            } => self.replace_wrapping(fs, expected, wrapped, None),
            ConfigCommand::Rebind {
                fs,
                expected,
                wrapped,
                binding,
            } => self.replace_wrapping(fs, expected, wrapped, Some(binding)),
            ConfigCommand::AddSnapshot { record } => {
                self.snapshots
                    .insert(record.locator.clone(), record.clone());
                ConfigResponse::Ok
            }
            #[cfg(feature = "planted-bugs")]
            ConfigCommand::DebugNote { key, value } => {
                self.debug_notes.insert(key.clone(), value.clone());
                ConfigResponse::Ok
            }
        }
    }

    /// `Rewrap` and `Rebind`: a new wrapping (and, for `Rebind`, a new binding), only if
    /// the DEK is still wrapped as `expected`, so two racing changes cannot lose one
    /// another's result.
    fn replace_wrapping(
        &mut self,
        fs: &str,
        expected: &WrappedDek,
        wrapped: &WrappedDek,
        binding: Option<&KmsBinding>,
    ) -> ConfigResponse {
        match self.filesystems.get_mut(fs) {
            Some(rec) if rec.wrapped_dek.as_ref() == Some(expected) => {
                rec.wrapped_dek = Some(wrapped.clone());
                if let Some(binding) = binding {
                    rec.binding = binding.clone();
                }
                ConfigResponse::Ok
            }
            Some(_) => ConfigResponse::Rejected {
                reason: format!("filesystem {fs} was re-wrapped concurrently"),
            },
            None => ConfigResponse::Rejected {
                reason: format!("no filesystem {fs}"),
            },
        }
    }

    /// The KMS configuration that wraps `fs`'s DEK: the cluster's, with the
    /// filesystem's own key if it has one.
    pub fn kms_for(&self, fs: &FsRecord) -> Option<KmsConfig> {
        self.kms_for_binding(&fs.binding)
    }

    /// The KMS configuration a DEK bound as `binding` is wrapped with, reached with this
    /// cluster's KMS address and credentials (also for a snapshot from elsewhere).
    pub fn kms_for_binding(&self, binding: &KmsBinding) -> Option<KmsConfig> {
        let cluster = self.kms.as_ref()?;
        Some(match binding {
            KmsBinding::OwnKey { key } => cluster.with_key(key),
            _ => cluster.clone(),
        })
    }

    /// The name of the KMS key that wraps `fs`'s DEK (the name [`Self::kms_for`] would
    /// give, without cloning a whole configuration to read it).
    pub fn kms_key_for<'a>(&'a self, fs: &'a FsRecord) -> Option<&'a str> {
        let cluster = self.kms_key()?;
        Some(match &fs.binding {
            KmsBinding::OwnKey { key } => key,
            _ => cluster,
        })
    }

    /// The name of the KMS key the cluster is configured with.
    pub fn kms_key(&self) -> Option<&str> {
        self.kms.as_ref().map(KmsConfig::key_name)
    }

    pub fn members_encrypted(&self) -> impl Iterator<Item = &FsRecord> {
        self.filesystems.values().filter(|f| f.encrypted())
    }
}
