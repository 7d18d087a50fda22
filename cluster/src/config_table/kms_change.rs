//! A change of the KMS configuration over a live one (`security kms set` once more).
//!
//! Whatever the new configuration, the DEKs already committed stay wrapped as they are:
//! `kms set` re-wraps nothing. So a change is safe only if every wrapped DEK it touches
//! still unwraps under it, and the cluster proves that with the KMS before it commits.
//! A new key is never reached by `kms set`: SPEC gives it only through rewrap (a Vault key
//! rotates in place, then `security kms rewrap`; a KMIP key moves with `security kms
//! rewrap --new-key-uid`). Per-filesystem keys need a Vault configured by AppRole.

use super::ConfigState;
use crate::filesystem::KmsBinding;
use crate::kms::{KmsConfig, VaultAuth, WrappedDek};

/// A filesystem whose DEK a new KMS configuration would reach differently: it must
/// unwrap under `config` before the change commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    pub fs: String,
    /// The configuration its DEK would be unwrapped with after the change.
    pub config: KmsConfig,
    pub wrapped: WrappedDek,
}

/// Up to five names, then how many more: an error stays one readable line.
pub fn name_list<S: AsRef<str>>(names: &[S]) -> String {
    const SHOWN: usize = 5;
    let shown: Vec<&str> = names.iter().take(SHOWN).map(AsRef::as_ref).collect();
    match names.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Why a filesystem may not have a key of its own under `cluster`: SPEC's per-filesystem
/// mode is Vault with AppRole only, and a token-configured Vault has no AppRole for it.
pub fn own_key_refusal(cluster: &KmsConfig) -> Option<String> {
    by_token(cluster).then(|| {
        "per-filesystem KMS keys need a Vault configured by AppRole, and this cluster's \
         Vault is configured by token: configure it with `weka security kms set vault \
         <url> <key-name> --role-id <role-id> --secret-id <secret-id>` first"
            .into()
    })
}

/// A Vault the cluster logs in to with a token rather than an AppRole.
fn by_token(config: &KmsConfig) -> bool {
    matches!(config, KmsConfig::Vault(v) if matches!(v.auth, VaultAuth::Token { .. }))
}

impl ConfigState {
    /// Why `security kms reset` may not remove the KMS configuration: encrypted
    /// filesystems, or uploaded snapshots of encrypted ones, whose DEKs only it unwraps.
    /// (`--allow-downgrade`, which would re-wrap them under a local key, and `--force`
    /// are not modelled.)
    pub fn kms_reset_refusal(&self) -> Option<String> {
        let filesystems: Vec<&str> = self.members_encrypted().map(|f| f.name.as_str()).collect();
        let snapshots: Vec<&str> = self
            .snapshots
            .values()
            .filter(|s| s.key_version.is_some() || s.kms_key.is_some())
            .map(|s| s.locator.as_str())
            .collect();
        let mut depend = Vec::new();
        if !filesystems.is_empty() {
            depend.push(format!("encrypted filesystems {}", name_list(&filesystems)));
        }
        if !snapshots.is_empty() {
            depend.push(format!("uploaded snapshots {}", name_list(&snapshots)));
        }
        (!depend.is_empty()).then(|| {
            format!(
                "{} depend on the KMS: their keys would never unwrap again",
                depend.join(" and ")
            )
        })
    }

    /// The encrypted filesystems whose DEK `new` would reach through another KMS
    /// configuration than today's: those on the cluster key whenever anything changes,
    /// those on a key of their own when more than the cluster key's name changes (the
    /// address, credentials, namespace or mounts they share).
    pub fn kms_change_dependents(&self, new: &KmsConfig) -> Vec<Dependent> {
        let candidate = ConfigState {
            kms: Some(new.clone()),
            ..ConfigState::default()
        };
        self.members_encrypted()
            .filter_map(|f| {
                let after = candidate.kms_for_binding(&f.binding)?;
                let wrapped = f.wrapped_dek.clone()?;
                (self.kms_for(f).as_ref() != Some(&after)).then(|| Dependent {
                    fs: f.name.clone(),
                    config: after,
                    wrapped,
                })
            })
            .collect()
    }

    /// Why `new` may not replace the committed configuration whatever the KMS answers:
    /// another key (or kind of KMS) under filesystems on the cluster key, or a token
    /// under filesystems with keys of their own.
    pub fn kms_change_refusal(&self, new: &KmsConfig) -> Option<String> {
        let current = self.kms.as_ref()?;
        let on = |want: fn(&KmsBinding) -> bool| -> Vec<&str> {
            self.members_encrypted()
                .filter(|f| want(&f.binding))
                .map(|f| f.name.as_str())
                .collect()
        };
        let on_cluster_key = on(|b| *b == KmsBinding::ClusterKey);
        let same_kind = matches!(
            (current, new),
            (KmsConfig::Vault(_), KmsConfig::Vault(_)) | (KmsConfig::Kmip(_), KmsConfig::Kmip(_))
        );
        if !on_cluster_key.is_empty() && (!same_kind || current.key_name() != new.key_name()) {
            let (old_key, new_key) = (current.key_name(), new.key_name());
            let how = match (current, new) {
                (KmsConfig::Kmip(_), KmsConfig::Kmip(_)) => format!(
                    "move them to the new key with `weka security kms rewrap --new-key-uid \
                     {new_key}`, which also points the configuration at it"
                ),
                (KmsConfig::Vault(_), KmsConfig::Vault(_)) => format!(
                    "a Vault key changes only by rotation: rotate {old_key} in Vault, then run \
                     `weka security kms rewrap`"
                ),
                _ => "a KMS of another kind cannot unwrap them".into(),
            };
            return Some(format!(
                "filesystems {} have their keys wrapped by KMS key {old_key}, and `security \
                 kms set` re-wraps nothing, so under {new_key} they would stay locked from \
                 the next restart on; {how}",
                name_list(&on_cluster_key)
            ));
        }
        let own_keys = on(|b| matches!(b, KmsBinding::OwnKey { .. }));
        if !own_keys.is_empty() && by_token(new) {
            return Some(format!(
                "filesystems {} have KMS keys of their own, which need a Vault configured by \
                 AppRole (--role-id and --secret-id), not by token; keep AppRole, or first move \
                 them back with `weka fs update <name> --use-cluster-kms-key-identifier`",
                name_list(&own_keys)
            ));
        }
        None
    }

    /// At commit: why `new` may not replace the configuration, given the wrapped DEKs its
    /// proposer proved under it. Checked again here because a filesystem may have been
    /// created or re-wrapped between the proof and the commit.
    pub(super) fn kms_change_unproved(
        &self,
        new: &KmsConfig,
        proved: &[(String, WrappedDek)],
    ) -> Option<String> {
        if let Some(why) = self.kms_change_refusal(new) {
            return Some(why);
        }
        let unproved: Vec<String> = self
            .kms_change_dependents(new)
            .into_iter()
            .filter(|d| !proved.iter().any(|(fs, w)| *fs == d.fs && *w == d.wrapped))
            .map(|d| d.fs)
            .collect();
        (!unproved.is_empty()).then(|| {
            format!(
                "filesystems {} were created or re-wrapped while the new configuration was \
                 being proved; run `security kms set` again",
                name_list(&unproved)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_table::{ConfigCommand, ConfigResponse};
    use crate::filesystem::FsRecord;
    use crate::kms::{KmipConfig, VaultConfig};
    use crate::secret::Secret;

    fn vault(key: &str, auth: VaultAuth) -> KmsConfig {
        KmsConfig::Vault(VaultConfig {
            url: "http://vault:8200".into(),
            key_name: key.into(),
            transit_path: "transit".into(),
            auth_path: "approle".into(),
            namespace: None,
            auth,
        })
    }

    fn approle(key: &str) -> KmsConfig {
        vault(
            key,
            VaultAuth::AppRole {
                role_id: "r".into(),
                secret_id: Secret::new("s"),
            },
        )
    }

    fn token(key: &str) -> KmsConfig {
        vault(
            key,
            VaultAuth::Token {
                token: Secret::new("t"),
            },
        )
    }

    fn kmip(uid: &str) -> KmsConfig {
        KmsConfig::Kmip(KmipConfig {
            address: "kms:5696".into(),
            key_uid: uid.into(),
            client_cert_pem: "cert".into(),
            client_key_pem: Secret::new("key"),
            ca_cert_pem: None,
        })
    }

    fn wrapped(n: u8) -> WrappedDek {
        WrappedDek {
            ciphertext: format!("vault:v1:{n}"),
            key_version: 1,
        }
    }

    /// A table on `config` with `enc` on the cluster key and `own` on `fs-key`.
    fn table(config: KmsConfig) -> ConfigState {
        let fs = |name: &str, n: u8, binding: KmsBinding| FsRecord {
            name: name.into(),
            id: n.into(),
            data_id: n.into(),
            capacity_gib: 10,
            wrapped_dek: Some(wrapped(n)),
            binding,
        };
        let mut state = ConfigState {
            kms: Some(config),
            ..ConfigState::default()
        };
        for f in [
            fs("enc", 1, KmsBinding::ClusterKey),
            fs(
                "own",
                2,
                KmsBinding::OwnKey {
                    key: "fs-key".into(),
                },
            ),
        ] {
            state.filesystems.insert(f.name.clone(), f);
        }
        state
    }

    fn names(deps: &[Dependent]) -> Vec<&str> {
        deps.iter().map(|d| d.fs.as_str()).collect()
    }

    #[test]
    fn another_key_under_live_filesystems_goes_through_rewrap() {
        let why = table(approle("weka-key"))
            .kms_change_refusal(&approle("other-key"))
            .unwrap();
        assert!(
            why.contains("filesystems enc have their keys wrapped by KMS key weka-key")
                && why.contains("rotate weka-key in Vault, then run `weka security kms rewrap`"),
            "{why}"
        );
        let why = table(kmip("uid-1"))
            .kms_change_refusal(&kmip("uid-2"))
            .unwrap();
        assert!(
            why.contains("`weka security kms rewrap --new-key-uid uid-2`"),
            "{why}"
        );
        let why = table(approle("weka-key"))
            .kms_change_refusal(&kmip("weka-key"))
            .unwrap();
        assert!(why.contains("another kind"), "{why}");
        // Nothing on the cluster key: a new cluster key strands nobody.
        let mut only_own = table(approle("weka-key"));
        only_own.filesystems.remove("enc");
        assert_eq!(only_own.kms_change_refusal(&approle("other-key")), None);
    }

    #[test]
    fn a_token_is_refused_while_filesystems_have_keys_of_their_own() {
        let why = table(approle("weka-key"))
            .kms_change_refusal(&token("weka-key"))
            .unwrap();
        assert!(
            why.contains("filesystems own have KMS keys of their own")
                && why.contains("--use-cluster-kms-key-identifier"),
            "{why}"
        );
        let why = own_key_refusal(&token("weka-key")).unwrap();
        assert!(why.contains("need a Vault configured by AppRole"), "{why}");
        assert_eq!(own_key_refusal(&approle("weka-key")), None);
        assert_eq!(own_key_refusal(&kmip("uid-1")), None);
    }

    #[test]
    fn what_a_change_must_prove() {
        let state = table(approle("weka-key"));
        // The same configuration again touches nothing.
        assert!(state.kms_change_dependents(&approle("weka-key")).is_empty());
        // Other credentials: both DEKs are reached through them.
        let mut other_secret = approle("weka-key");
        if let KmsConfig::Vault(v) = &mut other_secret {
            v.namespace = Some("tenant".into());
        }
        let deps = state.kms_change_dependents(&other_secret);
        assert_eq!(names(&deps), ["enc", "own"]);
        assert_eq!(deps[1].config.key_name(), "fs-key");
        // Only the cluster key's name: its own filesystems' configuration is unchanged.
        let mut no_cluster_key = state.clone();
        no_cluster_key.filesystems.remove("enc");
        assert!(no_cluster_key
            .kms_change_dependents(&approle("other-key"))
            .is_empty());
    }

    #[test]
    fn the_commit_checks_the_proof_again() {
        let mut state = table(approle("weka-key"));
        let mut new = approle("weka-key");
        if let KmsConfig::Vault(v) = &mut new {
            v.url = "http://vault-dr:8200".into();
        }
        let set = |proved| ConfigCommand::SetKms {
            config: new.clone(),
            proved,
        };
        // A DEK re-wrapped since the proof (or a filesystem created) is not proved.
        let stale = vec![
            ("enc".to_string(), wrapped(9)),
            ("own".to_string(), wrapped(2)),
        ];
        match state.clone().apply(&set(Some(stale))) {
            ConfigResponse::Rejected { reason } => {
                assert!(
                    reason.contains("filesystems enc were created or re-wrapped"),
                    "{reason}"
                )
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        let proved = vec![
            ("enc".to_string(), wrapped(1)),
            ("own".to_string(), wrapped(2)),
        ];
        assert_eq!(
            state.apply(&set(Some(proved))),
            ConfigResponse::KmsSet { replaced: true }
        );
        assert_eq!(state.kms, Some(new.clone()));
        // A refused change stays refused at the commit, proof or not.
        let mut state = table(approle("weka-key"));
        let other_key = ConfigCommand::SetKms {
            config: approle("other-key"),
            proved: Some(Vec::new()),
        };
        assert!(matches!(
            state.apply(&other_key),
            ConfigResponse::Rejected { .. }
        ));
    }

    #[test]
    fn a_reset_waits_until_nothing_encrypted_depends_on_the_kms() {
        let mut state = table(approle("weka-key"));
        let refused = match state.apply(&ConfigCommand::ResetKms) {
            ConfigResponse::Rejected { reason } => reason,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(
            refused.contains("encrypted filesystems enc, own depend on the KMS"),
            "{refused}"
        );
        assert!(state.kms.is_some());
        state.filesystems.clear();
        assert_eq!(state.apply(&ConfigCommand::ResetKms), ConfigResponse::Ok);
        assert_eq!(state.kms, None);
        // A create that wrapped its DEK before the reset committed is turned back.
        let record = FsRecord {
            name: "late".into(),
            id: 0,
            data_id: 0,
            capacity_gib: 1,
            wrapped_dek: Some(wrapped(1)),
            binding: KmsBinding::ClusterKey,
        };
        assert!(matches!(
            state.apply(&ConfigCommand::CreateFs { record }),
            ConfigResponse::StaleWrapping { .. }
        ));
        assert!(state.filesystems.is_empty());
    }

    #[test]
    fn long_name_lists_stay_one_line() {
        let names: Vec<String> = (1..=7).map(|i| format!("fs{i}")).collect();
        assert_eq!(name_list(&names), "fs1, fs2, fs3, fs4, fs5 and 2 more");
        assert_eq!(name_list(&["a"]), "a");
    }
}
