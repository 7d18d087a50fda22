//! A real KMIP server as the host of the KMS under test.
//!
//! - The cluster is given the server's own address, so that TLS checks the server's
//!   certificate against its real name; the live fabric's dialer sends the connections to
//!   that address through its TCP proxy, which carries the fault switch (see
//!   `kms_sim::tcp_proxy`: refuse, hang and slow act on connections).
//! - The admin goes to the server directly with [`KmipAdmin`] over mutual TLS, with the
//!   cluster's own certificate (a KMIP server gives the objects a client creates to that
//!   client's identity, so keys the cluster must use are created under it), or the other
//!   tenant's for that tenant's keys.
//! - A server somebody else runs outlives the run: every key the run created is revoked
//!   and destroyed at the end ([`KmipHost::remove`]); a key UID the user named is never
//!   touched. A PyKMIP the run started is halted and resumed for `kms-stop` and
//!   `kms-start` (its database kept), and removed with the run.
//!
//! Live only: real sockets, real time. Private keys stay in [`Secret`]s.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use cluster::kms::Wrapping;
use cluster::net::Dialer;
use cluster::secret::Secret;
use kms_sim::tcp_proxy::TcpForward;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_rustls::client::TlsStream;
use ttlv::enums::{result_reason, revocation_reason_code};
use ttlv::ProtocolVersion;

use super::pykmip::PyKmip;
use crate::kms::kmip::{connect_tls, ClientIdentity, KmipAdmin, KmipError, KmipHost, Tenant};
use crate::kms::{AdminJob, Lifecycle};
use crate::runner::fabric::Fabric;

/// The KMIP server of a live run.
pub enum KmipServer {
    /// Somebody else's server: talked to, never stopped or started.
    External,
    /// A PyKMIP this run started, removed with the run.
    Managed(Box<PyKmip>),
}

/// How the admin reaches the server: directly, with one tenant's certificate.
#[derive(Clone)]
pub struct AdminLink {
    pub addr: SocketAddr,
    /// What the server's certificate must name.
    pub server_name: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: Secret,
    /// The version the admin's requests carry (agreed in the preflight).
    pub version: ProtocolVersion,
}

impl AdminLink {
    /// A fresh connection (one per admin job: the admin's calls are few).
    pub async fn open(&self) -> Result<KmipAdmin<TlsStream<TcpStream>>, String> {
        let tls = connect_tls(
            self.addr,
            &self.server_name,
            &self.ca_pem,
            &self.cert_pem,
            &self.key_pem,
        )
        .await
        .map_err(|e| format!("KMIP admin: {e}"))?;
        Ok(KmipAdmin::new(tls).with_version(self.version))
    }

    /// Creates an AES-256 key named `name` and activates it; its UID.
    async fn create(&self, name: &str) -> Result<String, String> {
        let mut admin = self.open().await?;
        let uid = admin.create_aes256(name).await.map_err(|e| e.to_string())?;
        admin.activate(&uid).await.map_err(|e| e.to_string())?;
        Ok(uid)
    }

    /// Revokes (as `reason`) and destroys `uid`. A key already gone counts as destroyed
    /// (a run may have retired it before its end); one already revoked is destroyed.
    async fn revoke_and_destroy(&self, uid: &str, reason: u32) -> Result<(), String> {
        let mut admin = self.open().await?;
        let gone = |e: &KmipError| e.reason() == Some(result_reason::ITEM_NOT_FOUND);
        match admin.revoke(uid, reason).await {
            Ok(()) => {}
            Err(e) if gone(&e) => return Ok(()),
            // Revoked before (a Revoke of a Deactivated key may be refused): Destroy says.
            Err(_) => {}
        }
        match admin.destroy(uid).await {
            Ok(()) => Ok(()),
            Err(e) if gone(&e) => Ok(()),
            Err(e) => Err(format!("KMIP key {uid}: {e}")),
        }
    }
}

pub struct LiveKmipHost {
    server: KmipServer,
    /// What the cluster is given: the server's `host:port` as the user named it.
    address: String,
    identity: ClientIdentity,
    /// The admin's way in for the cluster's keys, and for the other tenant's (`None`
    /// against a server where the run has no second certificate).
    cluster: AdminLink,
    other: Option<AdminLink>,
    /// Names the run gives its keys start with this, so they never meet the server's own.
    prefix: String,
    /// A key UID the user named: the cluster key's first version, never created,
    /// revoked or destroyed by the run.
    given_uid: Option<String>,
    given_used: Cell<bool>,
    /// Which tenant owns each key the run created, filled in as the creations answer.
    owners: Rc<RefCell<BTreeMap<String, Tenant>>>,
    /// The fabric's proxy in front of the server.
    forward: TcpForward,
    /// Whether a `kms-stop` left the server down.
    down: bool,
    /// Where the host's own calls run, outside the admin host's jobs.
    runtime: Runtime,
}

/// What a live KMIP host is made of.
pub struct LiveKmipParts {
    pub server: KmipServer,
    pub address: String,
    pub identity: ClientIdentity,
    pub cluster: AdminLink,
    pub other: Option<AdminLink>,
    pub prefix: String,
    pub given_uid: Option<String>,
    pub forward: TcpForward,
}

impl LiveKmipHost {
    pub fn new(parts: LiveKmipParts) -> Result<LiveKmipHost, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the KMIP host's runtime: {e}"))?;
        Ok(LiveKmipHost {
            server: parts.server,
            address: parts.address,
            identity: parts.identity,
            cluster: parts.cluster,
            other: parts.other,
            prefix: parts.prefix,
            given_uid: parts.given_uid,
            given_used: Cell::new(false),
            owners: Rc::default(),
            forward: parts.forward,
            down: false,
            runtime,
        })
    }

    fn link(&self, tenant: Tenant) -> Result<&AdminLink, String> {
        match tenant {
            Tenant::Cluster => Ok(&self.cluster),
            Tenant::Other => self.other.as_ref().ok_or_else(|| {
                "another tenant's key needs a second client certificate, which only a run \
                 with --pykmip has"
                    .to_string()
            }),
        }
    }

    fn owner_link(&self, uid: &str) -> Result<AdminLink, String> {
        let tenant = self
            .owners
            .borrow()
            .get(uid)
            .copied()
            .unwrap_or(Tenant::Cluster);
        self.link(tenant).cloned()
    }
}

impl KmipHost for LiveKmipHost {
    fn address(&self) -> String {
        self.address.clone()
    }

    fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    fn create_key(&self, _dialer: Arc<dyn Dialer>, name: &str, tenant: Tenant) -> AdminJob<String> {
        // The user's key stands for the cluster key's first version.
        if let Some(uid) = &self.given_uid {
            if tenant == Tenant::Cluster && !self.given_used.replace(true) {
                let uid = uid.clone();
                return Box::pin(async move { Ok(uid) });
            }
        }
        let link = match self.link(tenant) {
            Ok(link) => link.clone(),
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let full = format!("{}{name}", self.prefix);
        let owners = self.owners.clone();
        Box::pin(async move {
            let uid = link
                .create(&full)
                .await
                .map_err(|e| format!("creating KMIP key {full}: {e}"))?;
            owners.borrow_mut().insert(uid.clone(), tenant);
            Ok(uid)
        })
    }

    fn revoke(&self, _dialer: Arc<dyn Dialer>, uid: String) -> AdminJob<()> {
        let e = format!(
            "revoking KMIP key {uid} alone is not supported live (the live preflight refuses \
             kms-revoke-key)"
        );
        Box::pin(async move { Err(e) })
    }

    fn retire(&self, _dialer: Arc<dyn Dialer>, uids: Vec<String>) -> AdminJob<()> {
        if let Some(given) = uids.iter().find(|u| Some(*u) == self.given_uid.as_ref()) {
            let e = format!(
                "KMIP key {given} was named with --kmip-key-uid: the run does not revoke or \
                 destroy a key it did not create"
            );
            return Box::pin(async move { Err(e) });
        }
        let links: Result<Vec<_>, String> = uids
            .iter()
            .map(|u| self.owner_link(u).map(|l| (u.clone(), l)))
            .collect();
        Box::pin(async move {
            for (uid, link) in links? {
                link.revoke_and_destroy(&uid, revocation_reason_code::SUPERSEDED)
                    .await
                    .map_err(|e| format!("retiring KMIP key {uid}: {e}"))?;
            }
            Ok(())
        })
    }

    fn decrypts(&self, _wrapping: &Wrapping) -> Option<Result<Vec<u8>, String>> {
        // Asking would take a connection of its own at moments the server may be down or
        // held by a fault; the cluster's own reads prove the keys.
        None
    }

    fn lifecycle(&mut self, action: Lifecycle, _fabric: &mut dyn Fabric) -> Result<String, String> {
        match action {
            Lifecycle::Seal | Lifecycle::Unseal => Err("a KMIP server has no seal".into()),
            Lifecycle::RevokeCredentials => Err(
                "kms-revoke-tokens is not supported live against KMIP: a run cannot make a \
                 real KMIP server stop accepting a client certificate"
                    .into(),
            ),
            Lifecycle::Stop => match &mut self.server {
                KmipServer::External => Err(format!(
                    "the KMIP server at {} is not this run's: it cannot stop it (use --pykmip)",
                    self.address
                )),
                KmipServer::Managed(pykmip) => {
                    pykmip.halt()?;
                    self.down = true;
                    Ok("kms stopped (PyKMIP killed, its database kept)".into())
                }
            },
            Lifecycle::Start => match &mut self.server {
                KmipServer::External => Err(format!(
                    "the KMIP server at {} is not this run's: it cannot start it (use --pykmip)",
                    self.address
                )),
                KmipServer::Managed(pykmip) => {
                    self.runtime.block_on(pykmip.resume())?;
                    self.down = false;
                    Ok("kms started".into())
                }
            },
        }
    }

    fn heal(&mut self, fabric: &mut dyn Fabric) -> Result<(), String> {
        if self.down {
            self.lifecycle(Lifecycle::Start, fabric)?;
        }
        Ok(())
    }

    fn requests(&self) -> u64 {
        // The cluster's connector opens one connection per operation.
        self.forward.forwarded()
    }

    fn outlives_run(&self) -> bool {
        matches!(self.server, KmipServer::External)
    }

    fn remove(&mut self, uids: Vec<String>) -> Result<(), String> {
        let mut failures = Vec::new();
        for uid in uids {
            if Some(&uid) == self.given_uid.as_ref() {
                continue;
            }
            let link = match self.owner_link(&uid) {
                Ok(link) => link,
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            };
            let reason = revocation_reason_code::CESSATION_OF_OPERATION;
            if let Err(e) = self.runtime.block_on(link.revoke_and_destroy(&uid, reason)) {
                failures.push(e);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "removing the run's KMIP keys: {}",
                failures.join("; ")
            ))
        }
    }
}
