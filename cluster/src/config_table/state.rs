//! What the config table holds, and the only ways it changes.

use imbl::OrdMap;

use serde::{Deserialize, Serialize};

use crate::filesystem::{FsRecord, KmsBinding, SnapshotRecord};
use crate::kms::{self, KmsConfig, WrappedDek};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigState {
    pub kms: Option<KmsConfig>,
    /// By name. Persistent maps (here and below): a copy of the table shares them, so
    /// publishing the table after each apply costs the change, not the table.
    pub filesystems: OrdMap<String, FsRecord>,
    pub next_fs_id: u32,
    /// Snapshots uploaded to the object store, by locator.
    #[serde(default)]
    pub snapshots: OrdMap<String, SnapshotRecord>,
    /// Vault: the oldest version of the cluster key a DEK on it may still be committed
    /// under, raised by every rewrap's commit and cleared when the cluster key changes. A
    /// create, download or move that wrapped its DEK before a racing rewrap and commits
    /// after it is refused ([`ConfigResponse::StaleWrapping`]) instead of leaving a DEK on
    /// a version the admin, told the rewrap is done, may retire. (KMIP needs no floor: its
    /// wrappings name their key, which must be the cluster's.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_key_floor: Option<u64>,
    /// Only in a build that plants bugs: where one of them leaks a key.
    #[cfg(feature = "planted-bugs")]
    #[serde(default)]
    pub debug_notes: std::collections::BTreeMap<String, String>,
}

/// One filesystem's part of a [`ConfigCommand::Rewrap`]: its DEK wrapped anew, if it is
/// still wrapped as `expected`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewrapping {
    pub fs: String,
    pub expected: WrappedDek,
    pub wrapped: WrappedDek,
    /// The filesystem moves to this binding too, as with [`ConfigCommand::Rebind`]
    /// (`security kms rewrap --convert-to-cluster-key-on-fs`); `None`: it stays bound as
    /// it is. Left out of the wire form when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<KmsBinding>,
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
    /// Replaces DEK wrappings, each only if its filesystem is still wrapped as its
    /// `expected` (so two racing rewraps cannot lose one another's result). A whole KMS
    /// batch is one proposal, so a rewrap of n filesystems commits n / `KMS_BATCH` times,
    /// not n; each filesystem is still decided on its own, and the answer is
    /// [`ConfigResponse::Each`], in order.
    Rewrap { rewraps: Vec<Rewrapping> },
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
    /// `security kms reset`: the KMS configuration removed, only if nothing encrypted
    /// depends on it when the command applies (see [`ConfigState::kms_reset_refusal`]).
    ResetKms,
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
    /// A DEK to be put on the cluster key was wrapped by a key or version a rewrap has
    /// since left behind: wrap it again with the cluster key as it now stands, and retry.
    StaleWrapping {
        reason: String,
    },
    /// A command that decides several filesystems, each on its own: one answer per
    /// filesystem, in the command's order.
    Each {
        outcomes: Vec<ConfigResponse>,
    },
    /// A KMS configuration committed: `replaced` if it took the place of another (WEKA's
    /// `KmsConfigurationUpdated`), not if the cluster had none (`KmsConfigurationAdded`).
    /// Decided by the table, so two admins racing to configure a new cluster cannot both
    /// be told they added it.
    KmsSet {
        replaced: bool,
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
                if self.kms_key() != Some(config.key_name()) {
                    self.cluster_key_floor = None;
                }
                let replaced = self.kms.replace(config.clone()).is_some();
                ConfigResponse::KmsSet { replaced }
            }
            ConfigCommand::CreateFs { record } => {
                if let Some(existing) = self.filesystems.get(&record.name) {
                    // The same create again (a retry whose answer was lost): the same
                    // answer. A wrapped DEK is drawn fresh by every create, so only a
                    // retry carries the one committed.
                    if same_create(existing, record) {
                        return ConfigResponse::FsCreated { id: existing.id };
                    }
                    return ConfigResponse::Rejected {
                        reason: format!("filesystem {} already exists", record.name),
                    };
                }
                if let Some(stale) = self.stale_on_cluster_key(&record.binding, &record.wrapped_dek)
                {
                    return stale;
                }
                // A DEK wrapped under a configuration a `security kms reset` removed
                // meanwhile: committed, nothing could ever unwrap it.
                if record.wrapped_dek.is_some() && self.kms.is_none() {
                    return ConfigResponse::StaleWrapping {
                        reason: "the cluster's KMS configuration was reset meanwhile".into(),
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
            ConfigCommand::Rewrap { rewraps } => ConfigResponse::Each {
                outcomes: rewraps
                    .iter()
                    .map(|r| self.rebind(&r.fs, &r.expected, &r.wrapped, r.binding.as_ref()))
                    .collect(),
            },
            ConfigCommand::Rebind {
                fs,
                expected,
                wrapped,
                binding,
            } => self.rebind(fs, expected, wrapped, Some(binding)),
            ConfigCommand::ResetKms => {
                if let Some(reason) = self.kms_reset_refusal() {
                    return ConfigResponse::Rejected { reason };
                }
                self.kms = None;
                self.cluster_key_floor = None;
                ConfigResponse::Ok
            }
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

    /// `Rewrap` and `Rebind`: a new wrapping (and, with `binding`, a new binding), only if
    /// the DEK is still wrapped as `expected`, so two racing changes cannot lose one
    /// another's result; and a move refused as stale if it would join the cluster key
    /// behind a rewrap.
    fn rebind(
        &mut self,
        fs: &str,
        expected: &WrappedDek,
        wrapped: &WrappedDek,
        binding: Option<&KmsBinding>,
    ) -> ConfigResponse {
        if let Some(stale) =
            binding.and_then(|b| self.stale_on_cluster_key(b, &Some(wrapped.clone())))
        {
            return stale;
        }
        match self.filesystems.get_mut(fs) {
            // The same change again (a retry whose answer was lost): already applied.
            Some(rec)
                if rec.wrapped_dek.as_ref() == Some(wrapped)
                    && binding.is_none_or(|b| *b == rec.binding) =>
            {
                ConfigResponse::Ok
            }
            Some(rec) if rec.wrapped_dek.as_ref() == Some(expected) => {
                rec.wrapped_dek = Some(wrapped.clone());
                if let Some(binding) = binding {
                    rec.binding = binding.clone();
                }
                // A rewrap of a Vault DEK on the cluster key: nothing older may join it.
                if binding.is_none()
                    && rec.binding == KmsBinding::ClusterKey
                    && kms::wrapping_key(&wrapped.ciphertext).is_none()
                {
                    self.cluster_key_floor = self.cluster_key_floor.max(Some(wrapped.key_version));
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

    /// Whether a DEK bound as `binding` and wrapped as `wrapped` would join the cluster
    /// key behind a rewrap: a KMIP wrapping by another key than the cluster's, a Vault
    /// wrapping by a version below [`Self::cluster_key_floor`].
    fn stale_on_cluster_key(
        &self,
        binding: &KmsBinding,
        wrapped: &Option<WrappedDek>,
    ) -> Option<ConfigResponse> {
        let (KmsBinding::ClusterKey, Some(wrapped)) = (binding, wrapped) else {
            return None;
        };
        let reason = match kms::wrapping_key(&wrapped.ciphertext) {
            Some(by) => {
                let current = self.kms_key()?;
                (by != current).then(|| {
                    format!("its DEK is wrapped by key {by}, but the cluster key is now {current}")
                })?
            }
            None => {
                let floor = self.cluster_key_floor?;
                (wrapped.key_version < floor).then(|| {
                    format!(
                        "its DEK is wrapped by key version {}, but the cluster key was \
                         rewrapped to version {floor}",
                        wrapped.key_version
                    )
                })?
            }
        };
        Some(ConfigResponse::StaleWrapping { reason })
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

/// Whether `proposed` is the create that committed `existing` (proposed again): the same
/// wrapped DEK (drawn fresh by every create) and the same settings. An unencrypted
/// filesystem has no DEK to tell two creates apart; the same settings answer the same.
fn same_create(existing: &FsRecord, proposed: &FsRecord) -> bool {
    existing.wrapped_dek == proposed.wrapped_dek
        && existing.binding == proposed.binding
        && existing.capacity_gib == proposed.capacity_gib
        && (proposed.data_id == 0 || proposed.data_id == existing.data_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault(version: u64) -> WrappedDek {
        WrappedDek {
            ciphertext: format!("vault:v{version}:AAAA"),
            key_version: version,
        }
    }

    /// A table with a Vault configured, as every table that holds encrypted filesystems has.
    fn configured() -> ConfigState {
        let mut args = crate::admin::KmsSetVault::new("http://vault:8200", "weka-key");
        args.token = Some(crate::secret::Secret::new("t"));
        ConfigState {
            kms: Some(args.into_config().unwrap()),
            ..ConfigState::default()
        }
    }

    fn create(name: &str, wrapped: WrappedDek, binding: KmsBinding) -> ConfigCommand {
        ConfigCommand::CreateFs {
            record: FsRecord {
                name: name.into(),
                id: 0,
                data_id: 0,
                capacity_gib: 1,
                wrapped_dek: Some(wrapped),
                binding,
            },
        }
    }

    #[test]
    fn a_dek_left_behind_by_a_rewrap_cannot_join_the_cluster_key() {
        let mut state = configured();
        let created = |r: ConfigResponse| matches!(r, ConfigResponse::FsCreated { .. });
        assert!(created(state.apply(&create(
            "a",
            vault(1),
            KmsBinding::ClusterKey
        ))));
        // Before any rewrap, any version joins.
        assert!(created(state.apply(&create(
            "b",
            vault(1),
            KmsBinding::ClusterKey
        ))));
        let rewrap = ConfigCommand::Rewrap {
            rewraps: vec![Rewrapping {
                fs: "a".into(),
                expected: vault(1),
                wrapped: vault(3),
                binding: None,
            }],
        };
        assert_eq!(
            state.apply(&rewrap),
            ConfigResponse::Each {
                outcomes: vec![ConfigResponse::Ok]
            }
        );
        assert_eq!(state.cluster_key_floor, Some(3));
        // Wrapped before the rewrap, committed after it: refused, to be wrapped again.
        match state.apply(&create("c", vault(2), KmsBinding::ClusterKey)) {
            ConfigResponse::StaleWrapping { reason } => {
                assert!(
                    reason.contains("version 2") && reason.contains("version 3"),
                    "{reason}"
                )
            }
            other => panic!("expected a stale wrapping, got {other:?}"),
        }
        assert!(!state.filesystems.contains_key("c"));
        assert!(created(state.apply(&create(
            "c",
            vault(3),
            KmsBinding::ClusterKey
        ))));
        // A key of its own has no floor; a move back to the cluster key has the floor's.
        let own = KmsBinding::OwnKey { key: "k2".into() };
        assert!(created(state.apply(&create("d", vault(1), own))));
        let back = |wrapped| ConfigCommand::Rebind {
            fs: "d".into(),
            expected: vault(1),
            wrapped,
            binding: KmsBinding::ClusterKey,
        };
        assert!(matches!(
            state.apply(&back(vault(2))),
            ConfigResponse::StaleWrapping { .. }
        ));
        assert_eq!(state.apply(&back(vault(3))), ConfigResponse::Ok);
        // A change proposed twice applies once and answers the same both times.
        let again = state.apply(&create("c", vault(3), KmsBinding::ClusterKey));
        assert_eq!(
            again,
            ConfigResponse::FsCreated {
                id: state.filesystems["c"].id
            }
        );
        assert!(matches!(
            state.apply(&create("c", vault(4), KmsBinding::ClusterKey)),
            ConfigResponse::Rejected { .. }
        ));
        assert_eq!(state.apply(&back(vault(3))), ConfigResponse::Ok);
        assert_eq!(state.filesystems["d"].binding, KmsBinding::ClusterKey);
        // b, left at version 1 by the rewrap, is what the rewrap's rescan moves.
        assert_eq!(state.filesystems["b"].wrapped_dek, Some(vault(1)));
    }

    #[test]
    fn a_create_proposed_again_gets_the_same_answer_and_any_other_is_refused() {
        let mut state = configured();
        let fresh = create("a", vault(1), KmsBinding::ClusterKey);
        assert_eq!(state.apply(&fresh), ConfigResponse::FsCreated { id: 1 });
        assert_eq!(state.apply(&fresh), ConfigResponse::FsCreated { id: 1 });
        // A download names the data it was made from: proposed again, the same data.
        let mut download = create("b", vault(1), KmsBinding::ClusterKey);
        if let ConfigCommand::CreateFs { record } = &mut download {
            record.data_id = 7;
        }
        assert_eq!(state.apply(&download), ConfigResponse::FsCreated { id: 2 });
        assert_eq!(state.filesystems["b"].data_id, 7);
        assert_eq!(state.apply(&download), ConfigResponse::FsCreated { id: 2 });
        // The same name with anything else different is another create, refused.
        let refused = |r: ConfigResponse| matches!(r, ConfigResponse::Rejected { .. });
        let mut other_data = download.clone();
        if let ConfigCommand::CreateFs { record } = &mut other_data {
            record.data_id = 8;
        }
        assert!(refused(state.apply(&other_data)));
        assert!(refused(state.apply(&create(
            "a",
            vault(2),
            KmsBinding::ClusterKey
        ))));
        let mut bigger = fresh.clone();
        if let ConfigCommand::CreateFs { record } = &mut bigger {
            record.capacity_gib = 2;
        }
        assert!(refused(state.apply(&bigger)));
        let own_key = KmsBinding::OwnKey {
            key: "fs-key".into(),
        };
        assert!(refused(state.apply(&create("a", vault(1), own_key))));
        assert_eq!(state.filesystems.len(), 2);
    }
}
