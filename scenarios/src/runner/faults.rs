//! Faults: the wire in front of the KMS (its fault switch), the KMS itself (seal,
//! credentials, process; rotation and trims by its admin), the network, and what heals
//! them all before the liveness phase. The fabric carries out what happens to hosts and
//! wires, the KMS under test what happens to the KMS; the runner keeps the books the
//! oracles need.

use std::time::Duration;

use cluster::admin::{AdminCommand, AdminOutput};
use cluster::kms::{KmsConfig, VaultAuth};

use super::steps::Answer;
use super::world::{RunnerEvent, World};
use super::{Failure, FailureKind};
use crate::kms::{AdminJob, Lifecycle};
use crate::scenario::{host_group, Auth, Step};

/// How often the liveness phase gives the cluster a new secret-id before it fails.
const SECRET_ID_TRIES: u32 = 10;

pub(super) const KMS_ADMIN_BOUND: Duration = Duration::from_secs(30);

impl World<'_> {
    /// Runs an admin call to the KMS on the admin host.
    fn as_kms_admin<T: 'static>(&mut self, job: AdminJob<T>) -> Result<T, String> {
        self.run_job(KMS_ADMIN_BOUND, job)
            .unwrap_or_else(|_| Err(format!("no answer within {KMS_ADMIN_BOUND:?}")))
    }

    /// The KMS an admin prepares before `security kms set`.
    pub(super) fn setup_kms(&mut self) -> Result<(), Failure> {
        let job = self
            .kms
            .prepare(self.fabric.dialer(), &self.scenario.kms.keys());
        self.as_kms_admin(job)
            .map_err(|e| self.fail(FailureKind::Correctness, None, "vault-setup", e))
    }

    /// A key change by the KMS's admin. The admin reaches the KMS out of band: a fault on
    /// the wire is lifted for the few ticks the call takes (a seal is not).
    fn key_admin(&mut self, job: AdminJob<()>) -> Result<(), String> {
        let fault = self.fabric.chaos().fault();
        self.fabric.chaos().set(kms_sim::chaos::Fault::None);
        let result = self.as_kms_admin(job);
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
                let (named, on) = match (s.kms_key.as_deref(), s.key_version) {
                    (Some(k), Some(v)) => {
                        let (k, v) = self.kms.identify(k, v);
                        (Some(k), v)
                    }
                    (None, Some(v)) => (None, v),
                    (_, None) => return None,
                };
                (on < version && named.as_deref().is_none_or(|k| k == key)).then(|| {
                    let key = named.as_deref().unwrap_or("an unnamed key");
                    format!("snapshot {} is on {key} version {on}", s.locator)
                })
            }),
            _ => Some("the snapshot list could not be read".into()),
        }
    }

    /// Told that a rewrap was answered: `all` for `security kms rewrap --all`, which
    /// covers the keys filesystems have of their own as well as the cluster key.
    pub(super) fn rewrapped(&mut self, all: bool, acknowledged: bool) {
        self.last_rewrap_ok = acknowledged;
        if all {
            self.last_rewrap_all_ok = acknowledged;
        }
    }

    /// Whether the last rewrap that covers a key was acknowledged: of a filesystem's own
    /// key (`own`), or of the cluster key.
    fn rewrap_covers(&self, own: bool) -> bool {
        if own {
            self.last_rewrap_all_ok
        } else {
            self.last_rewrap_ok
        }
    }

    pub(super) fn fault(&mut self, at: Option<usize>, step: &Step) -> Result<(), Failure> {
        let what = match step {
            Step::KmsFault { mode, delay, key } => {
                let chaos = self.fabric.chaos();
                chaos.set_delay(delay.unwrap_or_default());
                chaos.set_key(key.clone());
                chaos.set(*mode);
                match key {
                    Some(key) => format!("kms {mode:?} on key {key}"),
                    None => format!("kms {mode:?}"),
                }
            }
            Step::ObjectStoreFault { mode, delay } => {
                let chaos = self.fabric.store_chaos();
                chaos.set_delay(delay.unwrap_or_default());
                chaos.set(*mode);
                format!("object store {mode:?}")
            }
            Step::KmsSeal => self.lifecycle(at, Lifecycle::Seal)?,
            Step::KmsRevokeTokens => self.lifecycle(at, Lifecycle::RevokeCredentials)?,
            Step::KmsRevokeSecretId => {
                let job = self.kms.replace_secret_id(self.fabric.dialer());
                match self.key_admin(job) {
                    // A sealed or stopped Vault takes no admin call: nothing was revoked.
                    Err(e) => format!("kms-revoke-secret-id skipped: the admin's call failed: {e}"),
                    Ok(()) => {
                        let revoked = self.lifecycle(at, Lifecycle::RevokeCredentials)?;
                        self.secret_id_replaced = true;
                        format!("the cluster's secret-id destroyed and a new one minted; {revoked}")
                    }
                }
            }
            Step::KmsUnseal => self.lifecycle(at, Lifecycle::Unseal)?,
            Step::KmsStop => self.lifecycle(at, Lifecycle::Stop)?,
            Step::KmsStart => self.lifecycle(at, Lifecycle::Start)?,
            Step::KmsRevokeKey => {
                let key = self.scenario.kms.key.clone();
                let job = self.kms.revoke_key(self.fabric.dialer(), &key);
                self.key_admin(job)
                    .map_err(|e| self.fail(FailureKind::Correctness, at, "kms-revoke-key", e))?;
                format!("key {key} v{} revoked", self.kms.versions(&key).latest)
            }
            Step::KmsRotate { key: own } => {
                let key = own.clone().unwrap_or_else(|| self.scenario.kms.key.clone());
                let job = self.kms.rotate(self.fabric.dialer(), &key);
                self.key_admin(job)
                    .map_err(|e| self.fail(FailureKind::Correctness, at, "kms-rotate", e))?;
                match own {
                    Some(_) => format!("key {key} rotated to v{}", self.kms.versions(&key).latest),
                    None => format!("key rotated to v{}", self.kms.versions(&key).latest),
                }
            }
            Step::KmsTrim {
                only_after_rewrap: true,
                key,
                ..
            } if !self.rewrap_covers(key.is_some()) => {
                "trim skipped: the last rewrap was not acknowledged".into()
            }
            Step::KmsTrim {
                key: own,
                min_decryption_version,
                only_after_rewrap,
            } => {
                let key = own.clone().unwrap_or_else(|| self.scenario.kms.key.clone());
                let version = min_decryption_version.unwrap_or(self.kms.versions(&key).latest);
                if *only_after_rewrap {
                    if let Some(why) = self.snapshot_needs(&key, version) {
                        self.record(&RunnerEvent::Fault {
                            what: format!("trim skipped: {why}"),
                        });
                        return Ok(());
                    }
                }
                let job = self.kms.retire_below(self.fabric.dialer(), &key, version);
                self.key_admin(job)
                    .map_err(|e| self.fail(FailureKind::Correctness, at, "kms-trim", e))?;
                if *only_after_rewrap {
                    // The cluster's own records said no snapshot needs the versions below.
                    self.safe_trims.record(&key, version);
                }
                match own {
                    Some(_) => format!("key {key} trimmed below v{version}"),
                    None => format!("key trimmed below v{version}"),
                }
            }
            Step::Partition { .. }
            | Step::Hold { .. }
            | Step::Release { .. }
            | Step::Heal
            | Step::Latency { .. } => {
                // Checked when the scenario was loaded.
                let backends = self.scenario.cluster.backends;
                let kms_host = self.scenario.kms.kind.host();
                let lookup =
                    move |group: &str| host_group(group, backends, kms_host).unwrap_or_default();
                self.fabric.network(step, &lookup)
            }
            _ => unreachable!("fault() is only called with fault steps"),
        };
        self.record(&RunnerEvent::Fault { what });
        Ok(())
    }

    /// Everything back to health for the liveness phase: network, KMS, disks (no new
    /// faults), every backend up.
    pub(super) fn heal_all(&mut self) {
        self.fabric.heal();
        self.heal_disks();
        if let Err(e) = self.kms.heal(self.fabric.as_mut()) {
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

    /// The liveness phase's fix for a destroyed secret-id (`kms-revoke-secret-id`) that no
    /// step replaced: `security kms set` again, with the key the cluster is configured
    /// with and the admin's new secret-id, as an admin would before expecting the cluster
    /// to unlock. Nothing to do for a cluster on a token or on KMIP (the revoked tokens
    /// lock a token-configured cluster out, as `kms-revoke-tokens` does).
    pub(super) fn give_new_secret_id(&mut self) -> Result<(), Failure> {
        if !std::mem::take(&mut self.secret_id_replaced) {
            return Ok(());
        }
        let config = self.most_advanced(0).and_then(|b| b.applied.state().kms);
        let key = match config {
            Some(KmsConfig::Vault(v)) if matches!(v.auth, VaultAuth::AppRole { .. }) => v.key_name,
            _ => return Ok(()),
        };
        // The admin tries again while the cluster settles (a leader to elect, a fault
        // site that fails a request): what must hold is that the new secret-id works.
        let mut last = String::new();
        self.current = 0;
        for _ in 0..SECRET_ID_TRIES {
            let cmd = self.kms.kms_set(&key, Auth::Approle);
            let backend = self.pick_backend();
            match self.admin(backend, cmd) {
                Answer::Done(_) => return Ok(()),
                Answer::Refused(e) => last = format!("backend{backend}: {e}"),
                Answer::Lost(e) => last = format!("backend{backend}: {e}"),
            }
            self.idle(None, Duration::from_secs(1))?;
        }
        Err(self.fail(
            FailureKind::Liveness,
            None,
            "security kms set",
            format!("the new secret-id, given {SECRET_ID_TRIES} times, never took: {last}"),
        ))
    }

    /// A KMS lifecycle step; a failure to carry it out fails the run.
    fn lifecycle(&mut self, at: Option<usize>, action: Lifecycle) -> Result<String, Failure> {
        self.kms
            .lifecycle(action, self.fabric.as_mut())
            .map_err(|e| self.fail(FailureKind::Correctness, at, "kms", e))
    }
}
