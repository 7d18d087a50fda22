//! Faults: the KMS (its fault switch, seal, tokens, process; rotation and trims by its
//! admin), the network, and what heals them all before the liveness phase. The fabric
//! carries each out; the runner keeps the books the oracles need.

use std::time::Duration;

use cluster::http::HttpClient;
use serde_json::{json, Value};

use cluster::admin::{AdminCommand, AdminOutput};

use super::fabric::KmsAction;
use super::steps::Answer;
use super::world::{RunnerEvent, World};
use super::{Failure, FailureKind};
use crate::scenario::{host_group, Step};
use crate::vault_setup::VaultAdmin;

const VAULT_ADMIN_BOUND: Duration = Duration::from_secs(30);

impl World<'_> {
    /// Runs `call` as the Vault admin (root token) on the admin host.
    fn as_vault_admin<T: 'static>(
        &mut self,
        call: impl AsyncFnOnce(VaultAdmin<'_>) -> Result<T, String> + 'static,
    ) -> Result<T, String> {
        let dialer = self.fabric.dialer();
        let (base, token) = self.fabric.vault_admin();
        let job = async move {
            let http = HttpClient::new(dialer, Duration::from_secs(5));
            call(VaultAdmin {
                http: &http,
                base: &base,
                root_token: &token,
            })
            .await
        };
        self.run_job(VAULT_ADMIN_BOUND, job)
            .unwrap_or_else(|_| Err(format!("no answer within {VAULT_ADMIN_BOUND:?}")))
    }

    /// The Vault an admin prepares before `security kms set`.
    pub(super) fn setup_vault(&mut self) -> Result<(), Failure> {
        let keys = self.scenario.kms.keys();
        let plan = self.setup.clone();
        let prepare = async move |admin: VaultAdmin<'_>| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            admin.prepare(&plan, &keys).await
        };
        match self.as_vault_admin(prepare) {
            Ok(mut creds) => {
                if let Some((role_id, secret_id)) = self.given_approle.clone() {
                    creds.role_id = role_id;
                    creds.secret_id = secret_id;
                }
                self.creds = Some(creds);
                Ok(())
            }
            Err(e) => Err(self.fail(FailureKind::Correctness, None, "vault-setup", e)),
        }
    }

    /// One call as the Vault admin. The admin reaches Vault out of band: a KMS fault
    /// is lifted for the few ticks the call takes (a seal is not).
    fn vault_admin(
        &mut self,
        method: &'static str,
        path: String,
        body: Value,
    ) -> Result<Value, String> {
        let fault = self.fabric.chaos().fault();
        self.fabric.chaos().set(kms_sim::chaos::Fault::None);
        let result =
            self.as_vault_admin(async move |admin| admin.call(method, &path, Some(body)).await);
        self.fabric.chaos().set(fault);
        result
    }

    /// What a careful admin checks before retiring versions of `key` below `version`:
    /// the cluster's list of uploaded snapshots, and the key and key version of each (a
    /// snapshot on another key does not need this one; one that names no key might).
    fn snapshot_needs(&mut self, key: &str, version: u64) -> Option<String> {
        let backend = self.pick_backend();
        match self.admin(backend, AdminCommand::SnapshotList) {
            Answer::Done(AdminOutput::Snapshots { snapshots }) => snapshots.iter().find_map(|s| {
                let on = s.key_version.filter(|v| *v < version)?;
                let named = s.kms_key.as_deref();
                named.is_none_or(|k| k == key).then(|| {
                    let key = named.unwrap_or("an unnamed key");
                    format!("snapshot {} is on {key} version {on}", s.locator)
                })
            }),
            _ => Some("the snapshot list could not be read".into()),
        }
    }

    pub(super) fn fault(&mut self, at: Option<usize>, step: &Step) -> Result<(), Failure> {
        let what = match step {
            Step::KmsFault { mode, delay } => {
                self.kms(at, KmsAction::Fault(*mode, delay.unwrap_or_default()))?
            }
            Step::KmsSeal => self.kms(at, KmsAction::Seal)?,
            Step::KmsRevokeTokens => self.kms(at, KmsAction::RevokeTokens)?,
            Step::KmsUnseal => self.kms(at, KmsAction::Unseal)?,
            Step::KmsStop => self.kms(at, KmsAction::Stop)?,
            Step::KmsStart => self.kms(at, KmsAction::Start)?,
            Step::KmsRotate => {
                let key = self.scenario.kms.key.clone();
                let path = format!("{}/keys/{key}/rotate", self.setup.mount);
                self.vault_admin("POST", path, json!({}))
                    .map_err(|e| self.fail(FailureKind::Correctness, at, "kms-rotate", e))?;
                format!("key rotated to v{}", self.keys.rotate(&key))
            }
            Step::KmsTrim {
                only_after_rewrap: true,
                ..
            } if !self.last_rewrap_ok => {
                "trim skipped: the last rewrap was not acknowledged".into()
            }
            Step::KmsTrim {
                min_decryption_version,
                only_after_rewrap,
            } => {
                let key = self.scenario.kms.key.clone();
                let version = min_decryption_version.unwrap_or(self.keys.latest(&key));
                if *only_after_rewrap {
                    if let Some(why) = self.snapshot_needs(&key, version) {
                        self.record(&RunnerEvent::Fault {
                            what: format!("trim skipped: {why}"),
                        });
                        return Ok(());
                    }
                }
                let path = format!("{}/keys/{key}/config", self.setup.mount);
                self.vault_admin("POST", path, json!({ "min_decryption_version": version }))
                    .map_err(|e| self.fail(FailureKind::Correctness, at, "kms-trim", e))?;
                // Safe when the cluster's own records said no snapshot needs the versions
                // below.
                self.keys.trim(&key, version, *only_after_rewrap);
                format!("key trimmed below v{version}")
            }
            Step::Partition { .. }
            | Step::Hold { .. }
            | Step::Release { .. }
            | Step::Heal
            | Step::Latency { .. } => {
                // Checked when the scenario was loaded.
                let backends = self.scenario.cluster.backends;
                let lookup = move |group: &str| host_group(group, backends).unwrap_or_default();
                self.fabric.network(step, &lookup)
            }
            _ => unreachable!("fault() is only called with fault steps"),
        };
        self.record(&RunnerEvent::Fault { what });
        Ok(())
    }

    /// Everything back to health for the liveness phase: network, KMS, every backend up.
    pub(super) fn heal_all(&mut self) {
        if let Err(e) = self.fabric.heal() {
            self.record(&RunnerEvent::Fault {
                what: format!("healing the KMS failed: {e}"),
            });
        }
        for i in 0..self.backends.len() {
            if !self.is_up(i) {
                self.start(i);
            }
        }
        self.record(&RunnerEvent::Fault {
            what: "all healed".into(),
        });
    }

    /// A KMS step through the fabric; a failure to carry it out fails the run.
    fn kms(&mut self, at: Option<usize>, action: KmsAction) -> Result<String, Failure> {
        self.fabric
            .kms(action)
            .map_err(|e| self.fail(FailureKind::Correctness, at, "kms", e))
    }
}
