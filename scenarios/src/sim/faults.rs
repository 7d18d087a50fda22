//! Faults: the KMS (through its fault switch and its own seal), the network (turmoil's
//! partitions, holds and latency), and what heals them all before the liveness phase.

use std::time::Duration;

use cluster::http::HttpClient;
use serde_json::{json, Value};

use cluster::admin::{AdminCommand, AdminOutput};

use super::steps::Answer;
use super::world::{Cut, Net, RunnerEvent, World, ROOT_TOKEN, VAULT_HOST, VAULT_PORT};
use super::{Failure, FailureKind};
use crate::net::TurmoilDialer;
use crate::scenario::{host_group, Step};
use crate::vault_setup::VaultAdmin;

const VAULT_ADMIN_BOUND: Duration = Duration::from_secs(30);
/// The latency range every run starts with.
pub(super) const MAX_LATENCY: Duration = Duration::from_millis(25);

impl World<'_> {
    /// Runs `call` as the Vault admin (root token) on the admin host.
    fn as_vault_admin<T: 'static>(
        &mut self,
        call: impl AsyncFnOnce(VaultAdmin<'_>) -> Result<T, String> + 'static,
    ) -> Result<T, String> {
        let job = async move {
            let http = HttpClient::new(std::sync::Arc::new(TurmoilDialer), Duration::from_secs(5));
            let base = format!("http://{VAULT_HOST}:{VAULT_PORT}");
            call(VaultAdmin {
                http: &http,
                base: &base,
                root_token: ROOT_TOKEN,
            })
            .await
        };
        self.run_job(VAULT_ADMIN_BOUND, job)
            .unwrap_or_else(|_| Err(format!("no answer within {VAULT_ADMIN_BOUND:?}")))
    }

    /// The Vault an admin prepares before `security kms set`.
    pub(super) fn setup_vault(&mut self) -> Result<(), Failure> {
        let mut keys = vec![self.scenario.kms.key.clone()];
        keys.extend(self.scenario.kms.extra_keys.iter().cloned());
        let prepare = async move |admin: VaultAdmin<'_>| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            admin.prepare("transit", &keys).await
        };
        match self.as_vault_admin(prepare) {
            Ok(creds) => {
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
        let fault = self.chaos.fault();
        self.chaos.set(kms_sim::chaos::Fault::None);
        let result =
            self.as_vault_admin(async move |admin| admin.call(method, &path, Some(body)).await);
        self.chaos.set(fault);
        result
    }

    /// What a careful admin checks before retiring key versions below `version`: the
    /// cluster's list of uploaded snapshots and the key version of each.
    fn snapshot_needs(&mut self, version: u64) -> Result<Option<String>, Failure> {
        let backend = self.pick_backend();
        match self.admin(backend, AdminCommand::SnapshotList)? {
            Answer::Done(AdminOutput::Snapshots { snapshots }) => Ok(snapshots
                .iter()
                .find(|s| s.key_version.is_some_and(|v| v < version))
                .map(|s| {
                    format!(
                        "snapshot {} is on key version {:?}",
                        s.locator, s.key_version
                    )
                })),
            _ => Ok(Some("the snapshot list could not be read".into())),
        }
    }

    fn hosts(&self, group: &str) -> Vec<String> {
        // Checked when the scenario was loaded.
        host_group(group, self.scenario.cluster.backends).unwrap_or_default()
    }

    fn all_hosts(&self) -> Vec<String> {
        self.net.hosts.clone()
    }

    pub(super) fn fault(&mut self, at: Option<usize>, step: &Step) -> Result<(), Failure> {
        let what = match step {
            Step::KmsFault { mode, delay } => {
                self.chaos.set_delay(delay.unwrap_or_default());
                self.chaos.set(*mode);
                format!("kms {mode:?}")
            }
            Step::KmsSeal => {
                self.vault.seal();
                "kms sealed".into()
            }
            Step::KmsRevokeTokens => {
                format!("{} kms tokens revoked", self.vault.revoke_tokens())
            }
            Step::KmsUnseal => {
                self.vault.unseal();
                "kms unsealed".into()
            }
            Step::KmsRotate => {
                let key = self.scenario.kms.key.clone();
                self.vault_admin("POST", format!("transit/keys/{key}/rotate"), json!({}))
                    .map_err(|e| self.fail(FailureKind::Correctness, at, "kms-rotate", e))?;
                self.key_latest += 1;
                format!("key rotated to v{}", self.key_latest)
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
                let version = min_decryption_version.unwrap_or(self.key_latest);
                if *only_after_rewrap {
                    if let Some(why) = self.snapshot_needs(version)? {
                        self.record(&RunnerEvent::Fault {
                            what: format!("trim skipped: {why}"),
                        });
                        return Ok(());
                    }
                    // The cluster's own records said no snapshot needs the versions below.
                    self.safe_trim_min = self.safe_trim_min.max(version);
                }
                let key = self.scenario.kms.key.clone();
                self.vault_admin(
                    "POST",
                    format!("transit/keys/{key}/config"),
                    json!({ "min_decryption_version": version }),
                )
                .map_err(|e| self.fail(FailureKind::Correctness, at, "kms-trim", e))?;
                self.key_min_decryption = version;
                format!("key trimmed below v{version}")
            }
            Step::Partition { a, b, oneway } => {
                for x in self.hosts(a) {
                    for y in self.hosts(b) {
                        let cut = if *oneway {
                            Cut::OneWay(x.clone(), y)
                        } else {
                            Cut::Both(x.clone(), y)
                        };
                        Net::apply(&self.sim, &cut);
                        self.net.cuts.push(cut);
                    }
                }
                format!("partition {a} {} {b}", if *oneway { "->" } else { "<->" })
            }
            Step::Hold { a, b } => {
                for x in self.hosts(a) {
                    for y in self.hosts(b) {
                        let cut = Cut::Hold(x.clone(), y);
                        Net::apply(&self.sim, &cut);
                        self.net.cuts.push(cut);
                    }
                }
                format!("hold {a} <-> {b}")
            }
            Step::Release { a, b } => {
                for x in self.hosts(a) {
                    for y in self.hosts(b) {
                        self.sim.release(x.as_str(), y.as_str());
                        let held = Cut::Hold(x.clone(), y);
                        self.net.cuts.retain(|c| *c != held);
                    }
                }
                format!("release {a} <-> {b}")
            }
            Step::Heal => {
                self.heal_network();
                "network healed".into()
            }
            Step::Latency { max } => {
                self.sim.set_max_message_latency(*max);
                format!("max latency {} ms", max.as_millis())
            }
            _ => unreachable!("fault() is only called with fault steps"),
        };
        self.record(&RunnerEvent::Fault { what });
        Ok(())
    }

    fn heal_network(&mut self) {
        self.net.cuts.clear();
        let hosts = self.all_hosts();
        for (i, x) in hosts.iter().enumerate() {
            for y in &hosts[i + 1..] {
                self.sim.repair(x.as_str(), y.as_str());
                self.sim.release(x.as_str(), y.as_str());
            }
        }
        self.sim.set_max_message_latency(MAX_LATENCY);
    }

    /// Everything back to health for the liveness phase: network, KMS, every backend up.
    pub(super) fn heal_all(&mut self) {
        self.heal_network();
        self.chaos.set(kms_sim::chaos::Fault::None);
        self.vault.unseal();
        for i in 0..self.backends.len() {
            if !self.is_up(i) {
                self.start(i);
            }
        }
        self.record(&RunnerEvent::Fault {
            what: "all healed".into(),
        });
    }
}
