//! A real Vault as the host of the KMS under test: reached by the cluster through the live
//! fabric's fault switch, by the admin directly; sealed, unsealed and revoked over its
//! HTTP API, stopped and started as the process or container it is.

use cluster::secret::Secret;
use kms_sim::proxy::Forward;
use tokio::runtime::Runtime;

use super::vault::{self, VaultProcess};
use crate::kms::vault::{AdminCall, VaultHost};
use crate::kms::Lifecycle;
use crate::runner::fabric::Fabric;

/// How many health polls (50 ms apart) an unsealed Vault gets to become active.
const ACTIVE_POLLS: u32 = 300;

pub struct LiveVaultHost {
    vault: VaultProcess,
    admin_token: Secret,
    unseal_key: Option<Secret>,
    /// The forwarding end of the fabric's KMS proxy: where it sends what passes the fault
    /// switch, and how many requests did.
    forward: Forward,
    /// The proxy's URL: the cluster's way to the Vault.
    proxy_url: String,
    /// Whether a `kms-stop` left the Vault down.
    down: bool,
    /// Where the host's own calls run: outside the simulation-shaped admin host, since a
    /// stop or start of a container takes longer than any admin bound.
    runtime: Runtime,
}

impl LiveVaultHost {
    /// `forward` is the fabric's proxy to `vault`, served at `proxy_url`.
    pub fn new(
        vault: VaultProcess,
        admin_token: Secret,
        unseal_key: Option<Secret>,
        forward: Forward,
        proxy_url: String,
    ) -> Result<LiveVaultHost, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the Vault host's runtime: {e}"))?;
        Ok(LiveVaultHost {
            vault,
            admin_token,
            unseal_key,
            forward,
            proxy_url,
            down: false,
            runtime,
        })
    }

    fn unseal(&mut self) -> Result<(), String> {
        let key = match (&self.vault, &self.unseal_key) {
            (VaultProcess::Managed(server), _) => server.unseal_key().cloned(),
            (_, key) => key.clone(),
        };
        let Some(key) = key else {
            return Err("no unseal key: give --unseal-key".into());
        };
        let base = self.vault.base();
        self.runtime.block_on(async {
            vault::unseal(&base, &key).await?;
            vault::wait_active(&base, ACTIVE_POLLS).await
        })
    }
}

impl VaultHost for LiveVaultHost {
    fn url(&self) -> String {
        self.proxy_url.clone()
    }

    fn admin(&self) -> (String, Secret) {
        (self.vault.base(), self.admin_token.clone())
    }

    fn lifecycle(&mut self, action: Lifecycle, _fabric: &mut dyn Fabric) -> Result<String, String> {
        let base = self.vault.base();
        match action {
            Lifecycle::Seal => {
                self.runtime
                    .block_on(vault::seal(&base, &self.admin_token))?;
                Ok("kms sealed".into())
            }
            Lifecycle::Unseal => {
                self.unseal()?;
                Ok("kms unsealed".into())
            }
            Lifecycle::RevokeCredentials => {
                let n = self
                    .runtime
                    .block_on(vault::revoke_other_tokens(&base, &self.admin_token))?;
                Ok(format!("{n} kms tokens revoked"))
            }
            Lifecycle::Stop => {
                self.runtime.block_on(self.vault.stop())?;
                self.down = true;
                Ok("kms stopped".into())
            }
            Lifecycle::Start => {
                self.runtime.block_on(self.vault.start())?;
                self.down = false;
                // A container may come back on another host port.
                self.forward.set_upstream(self.vault.base());
                Ok(format!("kms started (sealed) at {}", self.vault.base()))
            }
        }
    }

    fn heal(&mut self, fabric: &mut dyn Fabric) -> Result<(), String> {
        if self.down {
            self.lifecycle(Lifecycle::Start, fabric)?;
        }
        let base = self.vault.base();
        let health = self
            .runtime
            .block_on(vault::health(&base))
            .map_err(|e| e.to_string())?;
        if health.sealed {
            self.unseal()?;
        }
        Ok(())
    }

    fn requests(&self) -> u64 {
        self.forward.requests()
    }

    fn decrypts(
        &self,
        _namespace: Option<&str>,
        _mount: &str,
        _key: &str,
        _ciphertext: &str,
    ) -> Option<Result<Vec<u8>, String>> {
        None
    }

    fn outlives_run(&self) -> bool {
        // A managed OpenBao's process and storage go with the run.
        !matches!(self.vault, VaultProcess::Managed(_))
    }

    fn block_on(&mut self, call: AdminCall) -> Result<(), String> {
        self.runtime.block_on(call)
    }
}
