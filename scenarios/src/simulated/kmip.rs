//! The simulated KMIP server's host: kms-sim's KMIP server on a turmoil host, behind mutual
//! TLS from the run's seeded PKI and the fabric's fault switch. The harness acts as its
//! administrator in process (creating, revoking and destroying keys), since a simulated
//! server is new in every run.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use cluster::kms::Wrapping;
use cluster::net::Dialer;
use kms_sim::chaos::Chaos;
use kms_sim::wire::Faulty;
use kms_sim::KmipSim;
use rustls::ServerConfig;

use super::tls::Pki;
use crate::kms::kmip::{ClientIdentity, KmipHost, Tenant};
use crate::kms::{AdminJob, Lifecycle};
use crate::runner::derive_seed;
use crate::runner::fabric::Fabric;

pub const KMIP_HOST: &str = "kmip";
/// KMIP's registered port.
pub const KMIP_PORT: u16 = 5696;
/// The Common Name of the cluster's client certificate: the owner of its keys.
pub const CLUSTER_CN: &str = "wekasim-cluster";
/// Another tenant of the same server, whose keys the cluster must never see.
pub const OTHER_TENANT_CN: &str = "wekasim-other-tenant";

/// What a run's KMIP server starts from: the server, the run's PKI, and the switch that
/// stops it accepting the cluster's certificate. Shared by the fabric, which serves it, and
/// the harness, which administers it.
#[derive(Clone)]
pub struct KmipSetup {
    pub kmip: KmipSim,
    pub pki: Arc<Pki>,
    pub distrusts_cluster: Arc<AtomicBool>,
}

impl KmipSetup {
    /// A fresh server and PKI for the run with seed `seed`: the server certificate names
    /// the KMIP host; the first client certificate is the cluster's.
    pub fn new(seed: u64) -> Result<Self, String> {
        let pki = Pki::from_seed(
            derive_seed(seed, "kmip pki"),
            &[KMIP_HOST],
            &[CLUSTER_CN, OTHER_TENANT_CN],
        )
        .map_err(|e| e.to_string())?;
        let clock: kms_sim::kmip::Clock =
            Arc::new(|| turmoil::since_epoch().map_or(0, |d| d.as_secs() as i64));
        Ok(KmipSetup {
            kmip: KmipSim::new(derive_seed(seed, "kmip"), clock),
            pki: Arc::new(pki),
            distrusts_cluster: Arc::default(),
        })
    }
}

/// What the fabric serves on the KMIP host.
#[derive(Clone)]
pub struct KmipService {
    pub kmip: KmipSim,
    tls: Arc<ServerConfig>,
    distrusts_cluster: Arc<AtomicBool>,
}

impl KmipService {
    /// The KMIP server for a run, its TLS from the seeded PKI and the dialer's seeded
    /// crypto (so client and server draw from one stream, in the simulation's order).
    pub fn new(setup: KmipSetup, dialer: &dyn Dialer) -> Result<Self, String> {
        let env = dialer.tls();
        let pki = &setup.pki;
        let tls = kms_sim::tls::server_config(
            env.provider.clone(),
            env.time.clone(),
            &pki.ca_pem,
            &pki.server.cert_pem,
            pki.server.key_pem.expose(),
        )
        .map_err(|e| format!("the simulated KMIP server's TLS: {e}"))?;
        Ok(KmipService {
            kmip: setup.kmip,
            tls,
            distrusts_cluster: setup.distrusts_cluster,
        })
    }

    /// Serves one accepted connection: the TLS handshake, the client's CN, then KMIP with
    /// the switch's byte-level faults on the answers. A handshake that fails, or a
    /// certificate the server no longer accepts, closes the connection unanswered.
    pub async fn serve<S>(self, stream: S, chaos: Chaos)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        let Ok(tls) = kms_sim::tls::accept(self.tls.clone(), stream).await else {
            return;
        };
        let cn = kms_sim::tls::peer_common_name(tls.get_ref().1).unwrap_or_default();
        if cn == CLUSTER_CN && self.distrusts_cluster.load(Ordering::Relaxed) {
            return;
        }
        self.kmip
            .serve_connection(Faulty::new(tls, chaos), cn)
            .await;
    }
}

pub struct SimKmipHost {
    kmip: KmipSim,
    distrusts_cluster: Arc<AtomicBool>,
    identity: ClientIdentity,
    /// Whether a `kms-stop` left its host down.
    down: bool,
}

impl SimKmipHost {
    /// The harness's hold on the server `setup` starts (which the fabric serves on
    /// [`KMIP_HOST`]); the cluster's identity is the PKI's first client.
    pub fn new(setup: &KmipSetup) -> Self {
        let pki = &setup.pki;
        let (client, other) = (&pki.clients[0], &pki.clients[1]);
        SimKmipHost {
            kmip: setup.kmip.clone(),
            distrusts_cluster: setup.distrusts_cluster.clone(),
            identity: ClientIdentity {
                ca_cert_pem: pki.ca_pem.clone(),
                client_cert_pem: client.cert_pem.clone(),
                client_key_pem: client.key_pem.clone(),
                other_cert_pem: other.cert_pem.clone(),
                other_key_pem: other.key_pem.clone(),
            },
            down: false,
        }
    }

    fn kmip(&self) -> &KmipSim {
        &self.kmip
    }
}

impl KmipHost for SimKmipHost {
    fn address(&self) -> String {
        format!("{KMIP_HOST}:{KMIP_PORT}")
    }

    fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    fn create_key(&self, _dialer: Arc<dyn Dialer>, name: &str, tenant: Tenant) -> AdminJob<String> {
        let owner = match tenant {
            Tenant::Cluster => CLUSTER_CN,
            Tenant::Other => OTHER_TENANT_CN,
        };
        let uid = self.kmip().create_key(owner, name);
        Box::pin(async move { Ok(uid) })
    }

    fn revoke(&self, _dialer: Arc<dyn Dialer>, uid: String) -> AdminJob<()> {
        // Revoking a key already revoked leaves it as it is.
        let result = match self.kmip().state(&uid) {
            Some(kms_sim::kmip::ObjectState::Active) => self
                .kmip()
                .revoke(&uid)
                .map(|_| ())
                .map_err(|e| format!("revoking KMIP key {uid}: {e}")),
            Some(_) => Ok(()),
            None => Err(format!("revoking KMIP key {uid}: no such key")),
        };
        Box::pin(async move { result })
    }

    fn retire(&self, _dialer: Arc<dyn Dialer>, uids: Vec<String>) -> AdminJob<()> {
        let kmip = self.kmip().clone();
        let result = uids.iter().try_for_each(|uid| {
            // A key revoked earlier (kms-revoke-key) is destroyed as it is.
            let revoked = match kmip.state(uid) {
                Some(kms_sim::kmip::ObjectState::Active) => kmip.revoke(uid).map(|_| ()),
                _ => Ok(()),
            };
            revoked
                .and_then(|_| kmip.destroy(uid))
                .map(|_| ())
                .map_err(|e| format!("retiring KMIP key {uid}: {e}"))
        });
        Box::pin(async move { result })
    }

    fn decrypts(&self, wrapping: &Wrapping) -> Option<Result<Vec<u8>, String>> {
        let Wrapping {
            uid,
            iv,
            ciphertext,
            tag,
        } = wrapping;
        // Whoever owns the key: a cluster may hold another tenant's certificate.
        if let Some(plaintext) = [CLUSTER_CN, OTHER_TENANT_CN]
            .iter()
            .find_map(|owner| self.kmip().decrypt(owner, uid, iv, ciphertext, tag))
        {
            return Some(Ok(plaintext));
        }
        Some(Err(match self.kmip().state(uid) {
            Some(state) => format!("KMIP key {uid} is {} and does not decrypt it", state.name()),
            None => format!("no KMIP key {uid}"),
        }))
    }

    fn lifecycle(&mut self, action: Lifecycle, fabric: &mut dyn Fabric) -> Result<String, String> {
        Ok(match action {
            Lifecycle::Seal | Lifecycle::Unseal => {
                return Err("a KMIP server has no seal".into());
            }
            Lifecycle::RevokeCredentials => {
                self.distrusts_cluster.store(true, Ordering::Relaxed);
                "kms no longer accepts the cluster's client certificate".into()
            }
            Lifecycle::Stop => {
                if !self.down {
                    fabric.stop_host(KMIP_HOST)?;
                    self.down = true;
                }
                "kms stopped".into()
            }
            Lifecycle::Start => {
                fabric.restart_host(KMIP_HOST)?;
                self.down = false;
                "kms started".into()
            }
        })
    }

    fn heal(&mut self, fabric: &mut dyn Fabric) -> Result<(), String> {
        if self.down {
            fabric.restart_host(KMIP_HOST)?;
            self.down = false;
        }
        self.distrusts_cluster.store(false, Ordering::Relaxed);
        self.kmip().set_fault(kms_sim::kmip::Fault::None);
        Ok(())
    }

    fn requests(&self) -> u64 {
        self.kmip().messages_served()
    }

    fn outlives_run(&self) -> bool {
        false
    }

    fn remove(&mut self, _uids: Vec<String>) -> Result<(), String> {
        Err("a simulated KMIP server is gone with its run".into())
    }
}
