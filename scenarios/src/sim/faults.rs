//! Faults: the KMS (through its fault switch and its own seal), the network (turmoil's
//! partitions, holds and latency), and what heals them all before the liveness phase.

use std::time::Duration;

use cluster::http::HttpClient;
use serde_json::{json, Value};

use super::world::{RunnerEvent, World, ROOT_TOKEN, VAULT_HOST, VAULT_PORT};
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
        let key = self.scenario.kms.key.clone();
        match self.as_vault_admin(async move |admin| admin.prepare("transit", &key).await) {
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

    fn hosts(&self, group: &str) -> Vec<String> {
        // Checked when the scenario was loaded.
        host_group(group, self.scenario.cluster.backends).unwrap_or_default()
    }

    fn all_hosts(&self) -> Vec<String> {
        let mut hosts = vec![VAULT_HOST.to_string()];
        hosts.extend(self.backends.iter().map(|b| b.host.clone()));
        hosts
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
                ..
            } => {
                let version = min_decryption_version.unwrap_or(self.key_latest);
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
                        if *oneway {
                            self.sim.partition_oneway(x.as_str(), y.as_str());
                        } else {
                            self.sim.partition(x.as_str(), y.as_str());
                        }
                    }
                }
                format!("partition {a} {} {b}", if *oneway { "->" } else { "<->" })
            }
            Step::Hold { a, b } | Step::Release { a, b } => {
                let hold = matches!(step, Step::Hold { .. });
                for x in self.hosts(a) {
                    for y in self.hosts(b) {
                        if hold {
                            self.sim.hold(x.as_str(), y.as_str());
                        } else {
                            self.sim.release(x.as_str(), y.as_str());
                        }
                    }
                }
                format!("{} {a} <-> {b}", if hold { "hold" } else { "release" })
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
