//! A KMIP server as the KMS under test: AES-256 keys created and activated as an admin
//! would, the cluster's client certificate, and the keys' lifecycle (revoke, destroy).
//!
//! KMIP keys have no versions. The harness still speaks of a key by the scenario's name
//! (`weka-key`) and of its versions: version N of a name is the Nth key the run created
//! under it, so "rotate" creates a new key and "retire below N" revokes and destroys the
//! earlier ones. The cluster names a KMIP key by its UID; [`KmsUnderTest::identify`] maps a
//! UID back to the name and version. What differs between the simulated server and a real
//! one is the [`KmipHost`]. The harness's own KMIP client, with which it administers a
//! real server out of band, is [`admin::KmipAdmin`].

pub mod admin;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use cluster::admin::{AdminCommand, KmsSetKmip};
use cluster::kms::{parse_wrapping, KmsConfig, WrappedDek, Wrapping};
use cluster::net::Dialer;
use cluster::secret::Secret;

use super::{AdminJob, KeyVersions, KmsUnderTest, Lifecycle};
use crate::runner::fabric::Fabric;
use crate::scenario::Auth;

pub use admin::{connect_tls, GcmSealed, KmipAdmin, KmipError};

/// Where the scenario's `$KMIP_CLIENT_CERT`, `$KMIP_CLIENT_KEY` and `$KMIP_CA_CERT` point:
/// files the KMS under test serves to the `weka` command line, not files on disk.
pub const CLIENT_CERT_PATH: &str = "/etc/wekasim/kmip/client.crt";
pub const CLIENT_KEY_PATH: &str = "/etc/wekasim/kmip/client.key";
pub const CA_CERT_PATH: &str = "/etc/wekasim/kmip/ca.crt";
/// `$KMIP_OTHER_CLIENT_CERT` and `$KMIP_OTHER_CLIENT_KEY`: another tenant of the same
/// server (another certificate CN), which must never see the cluster's keys.
pub const OTHER_CERT_PATH: &str = "/etc/wekasim/kmip/other-tenant.crt";
pub const OTHER_KEY_PATH: &str = "/etc/wekasim/kmip/other-tenant.key";

/// Keys whose scenario name starts with this belong to the other tenant.
pub const OTHER_TENANT_PREFIX: &str = "other-tenant";

/// Whose key a scenario's key name makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    /// The cluster's certificate.
    Cluster,
    /// Another certificate on the same server.
    Other,
}

impl Tenant {
    pub fn of(name: &str) -> Tenant {
        if name.starts_with(OTHER_TENANT_PREFIX) {
            Tenant::Other
        } else {
            Tenant::Cluster
        }
    }
}

/// The cluster's identity towards the KMIP server, and another tenant's.
#[derive(Clone)]
pub struct ClientIdentity {
    pub ca_cert_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: Secret,
    pub other_cert_pem: String,
    pub other_key_pem: Secret,
}

/// Where a KMIP server runs, and what only its host can do to it.
pub trait KmipHost {
    /// `host:port` where the cluster reaches the server (through the fault switch).
    fn address(&self) -> String;

    /// The certificates the cluster is given.
    fn identity(&self) -> &ClientIdentity;

    /// Creates and activates an AES-256 key named `name`, owned by `tenant`'s
    /// certificate; answers its UID.
    fn create_key(&self, dialer: Arc<dyn Dialer>, name: &str, tenant: Tenant) -> AdminJob<String>;

    /// Revokes `uid` (cessation of operation): Deactivated, not destroyed.
    fn revoke(&self, dialer: Arc<dyn Dialer>, uid: String) -> AdminJob<()>;

    /// Revokes (superseded) and destroys the keys `uids`.
    fn retire(&self, dialer: Arc<dyn Dialer>, uids: Vec<String>) -> AdminJob<()>;

    /// What the key `wrapping` names decrypts it to now, asked out of band; `None` where
    /// that cannot be asked without a request of the run's own.
    fn decrypts(&self, wrapping: &Wrapping) -> Option<Result<Vec<u8>, String>>;

    /// Carries out a lifecycle step; the answer says what happened, for the trace.
    fn lifecycle(&mut self, action: Lifecycle, fabric: &mut dyn Fabric) -> Result<String, String>;

    /// Running and accepting the cluster's certificate again.
    fn heal(&mut self, fabric: &mut dyn Fabric) -> Result<(), String>;

    /// Requests that reached the server.
    fn requests(&self) -> u64;

    /// Whether the server outlives the run, so that what the run created must be removed.
    fn outlives_run(&self) -> bool;

    /// Revokes and destroys `uids` (the server outlives the run).
    fn remove(&mut self, uids: Vec<String>) -> Result<(), String>;
}

/// Each key name's keys, oldest first, and how many of them were retired.
#[derive(Default)]
struct Books {
    keys: BTreeMap<String, Vec<String>>,
    retired: BTreeMap<String, usize>,
    /// The cluster key: `$KMIP_KEY_UID` is its newest UID.
    first: Option<String>,
}

impl Books {
    fn latest(&self, name: &str) -> Option<&String> {
        self.keys.get(name).and_then(|uids| uids.last())
    }
}

pub struct KmipUnderTest<H: KmipHost> {
    host: H,
    /// Shared with the admin jobs, which fill it in as their answers arrive.
    books: Rc<RefCell<Books>>,
}

impl<H: KmipHost> KmipUnderTest<H> {
    pub fn new(host: H) -> Self {
        KmipUnderTest {
            host,
            books: Rc::default(),
        }
    }

    /// The newest UID of `name`, or a placeholder a command will refuse (the setup had
    /// not created it).
    fn uid_of(&self, name: &str) -> String {
        let books = self.books.borrow();
        books
            .latest(name)
            .cloned()
            .unwrap_or_else(|| format!("<no key {name}>"))
    }

    fn add_key(&self, dialer: Arc<dyn Dialer>, name: &str) -> AdminJob<()> {
        let job = self.host.create_key(dialer, name, Tenant::of(name));
        let (books, name) = (self.books.clone(), name.to_string());
        Box::pin(async move {
            let uid = job.await?;
            books.borrow_mut().keys.entry(name).or_default().push(uid);
            Ok(())
        })
    }
}

impl<H: KmipHost> KmsUnderTest for KmipUnderTest<H> {
    fn prepare(&self, dialer: Arc<dyn Dialer>, keys: &[String]) -> AdminJob<()> {
        self.books.borrow_mut().first = keys.first().cloned();
        let jobs: Vec<_> = keys
            .iter()
            .map(|k| self.add_key(dialer.clone(), k))
            .collect();
        Box::pin(async move {
            for job in jobs {
                job.await?;
            }
            Ok(())
        })
    }

    fn kms_set(&self, key: &str, _auth: Auth) -> AdminCommand {
        let id = self.host.identity();
        AdminCommand::KmsSetKmip(KmsSetKmip {
            address: self.host.address(),
            key_uid: self.uid_of(key),
            client_cert_pem: Some(id.client_cert_pem.clone()),
            client_key_pem: Some(id.client_key_pem.clone()),
            ca_cert_pem: Some(id.ca_cert_pem.clone()),
            vault_flags: Vec::new(),
        })
    }

    fn substitute(&self, line: &str) -> String {
        let mut line = line.replace("$KMIP_ADDRESS", &self.host.address());
        // `$KMIP_KEY_UID(name)`: the newest UID of another key the setup created.
        while let Some(start) = line.find("$KMIP_KEY_UID(") {
            let open = start + "$KMIP_KEY_UID(".len();
            let Some(len) = line[open..].find(')') else {
                break;
            };
            let uid = self.uid_of(&line[open..open + len]);
            line.replace_range(start..open + len + 1, &uid);
        }
        let first = self.books.borrow().first.clone().unwrap_or_default();
        line.replace("$KMIP_KEY_UID", &self.uid_of(&first))
            .replace("$KMIP_OTHER_CLIENT_CERT", OTHER_CERT_PATH)
            .replace("$KMIP_OTHER_CLIENT_KEY", OTHER_KEY_PATH)
            .replace("$KMIP_CLIENT_CERT", CLIENT_CERT_PATH)
            .replace("$KMIP_CLIENT_KEY", CLIENT_KEY_PATH)
            .replace("$KMIP_CA_CERT", CA_CERT_PATH)
    }

    fn read_file(&self, path: &str) -> Option<String> {
        let id = self.host.identity();
        match path {
            CLIENT_CERT_PATH => Some(id.client_cert_pem.clone()),
            CLIENT_KEY_PATH => Some(id.client_key_pem.expose().to_string()),
            CA_CERT_PATH => Some(id.ca_cert_pem.clone()),
            OTHER_CERT_PATH => Some(id.other_cert_pem.clone()),
            OTHER_KEY_PATH => Some(id.other_key_pem.expose().to_string()),
            _ => None,
        }
    }

    fn complete(&self, _cmd: &mut AdminCommand) {}

    fn revoke_key(&self, dialer: Arc<dyn Dialer>, key: &str) -> AdminJob<()> {
        let uid = self.uid_of(key);
        self.host.revoke(dialer, uid)
    }

    fn rotate(&self, dialer: Arc<dyn Dialer>, key: &str) -> AdminJob<()> {
        self.add_key(dialer, key)
    }

    fn retire_below(&self, dialer: Arc<dyn Dialer>, key: &str, version: u64) -> AdminJob<()> {
        let (uids, from) = {
            let books = self.books.borrow();
            let all = books.keys.get(key).cloned().unwrap_or_default();
            let from = books.retired.get(key).copied().unwrap_or(0);
            let to = (version.saturating_sub(1) as usize).min(all.len());
            (all[from.min(to)..to].to_vec(), to.max(from))
        };
        let job = self.host.retire(dialer, uids);
        let (books, key) = (self.books.clone(), key.to_string());
        Box::pin(async move {
            job.await?;
            books.borrow_mut().retired.insert(key, from);
            Ok(())
        })
    }

    fn versions(&self, key: &str) -> KeyVersions {
        let (name, _) = self.identify(key, 0);
        let books = self.books.borrow();
        let created = books.keys.get(&name).map_or(1, |uids| uids.len().max(1));
        let retired = books.retired.get(&name).copied().unwrap_or(0);
        KeyVersions {
            latest: created as u64,
            min_decryption: retired as u64 + 1,
        }
    }

    fn identify(&self, cluster_key: &str, version: u64) -> (String, u64) {
        let books = self.books.borrow();
        for (name, uids) in &books.keys {
            if let Some(i) = uids.iter().position(|u| u == cluster_key) {
                return (name.clone(), i as u64 + 1);
            }
        }
        (cluster_key.to_string(), version)
    }

    fn identify_wrapped(&self, cluster_key: &str, wrapped: &WrappedDek) -> (String, u64) {
        match parse_wrapping(&wrapped.ciphertext) {
            Ok(wrapping) => self.identify(&wrapping.uid, 0),
            Err(_) => self.identify(cluster_key, wrapped.key_version),
        }
    }

    /// A KMIP wrapping names the key that made it, and the cluster decrypts with that key
    /// whatever its configuration's key UID; another kind of KMS cannot.
    fn unwraps(&self, config: &KmsConfig, wrapped: &WrappedDek) -> Option<Result<Vec<u8>, String>> {
        if !matches!(config, KmsConfig::Kmip(_)) {
            return Some(Err(format!(
                "the cluster is configured with {}, which does not unwrap a KMIP-wrapped DEK",
                config.describe()
            )));
        }
        match parse_wrapping(&wrapped.ciphertext) {
            Ok(wrapping) => self.host.decrypts(&wrapping),
            Err(e) => Some(Err(e.to_string())),
        }
    }

    fn lifecycle(&mut self, action: Lifecycle, fabric: &mut dyn Fabric) -> Result<String, String> {
        self.host.lifecycle(action, fabric)
    }

    fn heal(&mut self, fabric: &mut dyn Fabric) -> Result<(), String> {
        self.host.heal(fabric)
    }

    fn requests(&self) -> u64 {
        self.host.requests()
    }

    fn teardown(&mut self, fabric: &mut dyn Fabric) -> Result<(), String> {
        let uids: Vec<String> = {
            let books = self.books.borrow();
            books.keys.values().flatten().cloned().collect()
        };
        if uids.is_empty() || !self.host.outlives_run() {
            return Ok(());
        }
        self.host.heal(fabric)?;
        self.host.remove(uids)
    }
}
