//! The simulated Vault's host: kms-sim's Vault on a turmoil host, behind the fabric's
//! fault switch. Sealing and revoking act on it directly; stopping crashes its host.

use cluster::secret::Secret;
use kms_sim::VaultSim;

use super::{VAULT_HOST, VAULT_PORT};
use crate::kms::vault::{AdminCall, VaultHost};
use crate::kms::Lifecycle;
use crate::runner::fabric::Fabric;

/// The simulated Vault's root token (a simulated Vault is new in every run).
pub const ROOT_TOKEN: &str = "root";

pub struct SimVaultHost {
    vault: VaultSim,
    /// Whether a `kms-stop` left its host down.
    down: bool,
}

impl SimVaultHost {
    /// `vault` must be served on [`VAULT_HOST`] by the fabric.
    pub fn new(vault: VaultSim) -> Self {
        SimVaultHost { vault, down: false }
    }

    /// Boots the Vault host again. Its storage survives; like a real Vault it comes back
    /// sealed.
    fn restart(&mut self, fabric: &mut dyn Fabric) -> Result<(), String> {
        self.vault.seal();
        fabric.restart_host(VAULT_HOST)?;
        self.down = false;
        Ok(())
    }
}

impl VaultHost for SimVaultHost {
    fn url(&self) -> String {
        format!("http://{VAULT_HOST}:{VAULT_PORT}")
    }

    fn admin(&self) -> (String, Secret) {
        (self.url(), Secret::new(ROOT_TOKEN))
    }

    fn lifecycle(&mut self, action: Lifecycle, fabric: &mut dyn Fabric) -> Result<String, String> {
        Ok(match action {
            Lifecycle::Seal => {
                self.vault.seal();
                "kms sealed".into()
            }
            Lifecycle::Unseal => {
                self.vault.unseal();
                "kms unsealed".into()
            }
            Lifecycle::RevokeCredentials => {
                format!("{} kms tokens revoked", self.vault.revoke_tokens())
            }
            Lifecycle::Stop => {
                if !self.down {
                    fabric.stop_host(VAULT_HOST)?;
                    self.down = true;
                }
                "kms stopped".into()
            }
            Lifecycle::Start => {
                self.restart(fabric)?;
                "kms started (sealed)".into()
            }
        })
    }

    fn heal(&mut self, fabric: &mut dyn Fabric) -> Result<(), String> {
        if self.down {
            self.restart(fabric)?;
        }
        self.vault.unseal();
        Ok(())
    }

    fn requests(&self) -> u64 {
        self.vault.requests_served()
    }

    fn decrypts(
        &self,
        namespace: Option<&str>,
        mount: &str,
        key: &str,
        ciphertext: &str,
    ) -> Option<Result<Vec<u8>, String>> {
        Some(self.vault.decrypt_in(namespace, mount, key, ciphertext))
    }

    fn outlives_run(&self) -> bool {
        false
    }

    fn block_on(&mut self, _call: AdminCall) -> Result<(), String> {
        Err("a simulated Vault is gone with its run".into())
    }
}
