//! Vault as the KMS under test: transit keys, the WEKA policy, an AppRole and a token,
//! prepared over Vault's HTTP API, which is the same for the simulated Vault and a real
//! one. What differs between those two (where the cluster and the admin reach the Vault,
//! how it is sealed, stopped and started) is its [`VaultHost`].

mod setup;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use cluster::admin::{AdminCommand, KmsSetVault};
use cluster::http::HttpClient;
use cluster::kms::{KmsConfig, WrappedDek};
use cluster::net::Dialer;
use cluster::secret::Secret;
use serde_json::json;

pub use setup::{weka_policy, SetupPlan, VaultAdmin, VaultCreds};

use super::{AdminJob, KeyVersions, KmsUnderTest, Lifecycle};
use crate::runner::fabric::Fabric;
use crate::scenario::Auth;

/// How long one admin call may take before the admin gives up on it.
const ADMIN_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a Vault runs, and what only its host can do to it.
pub trait VaultHost {
    /// Where the cluster reaches the Vault (through the fault switch).
    fn url(&self) -> String;

    /// Where an admin reaches it out of band, and the admin's token.
    fn admin(&self) -> (String, Secret);

    /// Carries out a lifecycle step; the answer says what happened, for the trace.
    fn lifecycle(&mut self, action: Lifecycle, fabric: &mut dyn Fabric) -> Result<String, String>;

    /// Running and unsealed again.
    fn heal(&mut self, fabric: &mut dyn Fabric) -> Result<(), String>;

    /// Requests that reached the Vault.
    fn requests(&self) -> u64;

    /// What `ciphertext` decrypts to now under `key` at `mount` in `namespace` (the root
    /// namespace if `None`), asked out of band; `None` where that cannot be asked without
    /// a request of the run's own.
    fn decrypts(
        &self,
        namespace: Option<&str>,
        mount: &str,
        key: &str,
        ciphertext: &str,
    ) -> Option<Result<Vec<u8>, String>>;

    /// Whether the Vault outlives the run, so that what the run created must be removed.
    fn outlives_run(&self) -> bool;

    /// Runs an admin call to completion outside the fabric (the run's teardown).
    fn block_on(&mut self, call: AdminCall) -> Result<(), String>;
}

/// An admin call that needs nothing from the run's fabric.
pub type AdminCall = Pin<Box<dyn Future<Output = Result<(), String>>>>;

/// What the run learnt of the Vault: the credentials the setup made, and each key's
/// versions as the run's rotations and retirements left them.
#[derive(Default)]
struct Books {
    creds: Option<VaultCreds>,
    versions: BTreeMap<String, KeyVersions>,
}

pub struct VaultUnderTest<H: VaultHost> {
    host: H,
    /// Where the setup puts things, and what it creates rather than finds.
    plan: SetupPlan,
    /// An AppRole the user gave (role-id, secret-id) for the cluster, instead of the one
    /// the setup creates.
    given_approle: Option<(String, Secret)>,
    /// Shared with the admin jobs, which fill it in as their answers arrive.
    books: Rc<RefCell<Books>>,
}

impl<H: VaultHost> VaultUnderTest<H> {
    pub fn new(host: H, plan: SetupPlan, given_approle: Option<(String, Secret)>) -> Self {
        VaultUnderTest {
            host,
            plan,
            given_approle,
            books: Rc::default(),
        }
    }

    /// Runs `call` as the Vault admin (its token) on the admin host.
    fn as_admin<T: 'static>(
        &self,
        dialer: Arc<dyn Dialer>,
        call: impl AsyncFnOnce(VaultAdmin<'_>) -> Result<T, String> + 'static,
    ) -> AdminJob<T> {
        let (base, token) = self.host.admin();
        Box::pin(async move {
            let http = HttpClient::new(dialer, ADMIN_CALL_TIMEOUT);
            call(VaultAdmin {
                http: &http,
                base: &base,
                root_token: token.expose(),
            })
            .await
        })
    }

    /// The transit mount `security kms set` names, when it is not the default one (a
    /// live run may keep its keys in a mount of its own).
    fn transit_path(&self) -> Option<String> {
        let mount = &self.plan.mount;
        (mount != "transit").then(|| mount.clone())
    }

    /// `f` with the setup's credentials.
    fn with_creds<T>(&self, f: impl FnOnce(&VaultCreds) -> T) -> T {
        let books = self.books.borrow();
        f(books.creds.as_ref().expect("the setup ran before any step"))
    }
}

impl<H: VaultHost> KmsUnderTest for VaultUnderTest<H> {
    fn prepare(&self, dialer: Arc<dyn Dialer>, keys: &[String]) -> AdminJob<()> {
        // Every key the setup may create, so that a teardown removes it even when the
        // setup stopped half-way.
        for key in keys {
            let mut books = self.books.borrow_mut();
            books.versions.insert(key.clone(), KeyVersions::default());
        }
        let (plan, keys) = (self.plan.clone(), keys.to_vec());
        let (books, given) = (self.books.clone(), self.given_approle.clone());
        self.as_admin(dialer, async move |admin: VaultAdmin<'_>| {
            let names: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut creds = admin.prepare(&plan, &names).await?;
            if let Some((role_id, secret_id)) = given {
                creds.role_id = role_id;
                creds.secret_id = secret_id;
            }
            books.borrow_mut().creds = Some(creds);
            Ok(())
        })
    }

    fn kms_set(&self, key: &str, auth: Auth) -> AdminCommand {
        let mut args = KmsSetVault::new(self.host.url(), key.to_string());
        args.transit_path = self.transit_path();
        self.with_creds(|creds| match auth {
            Auth::Token => args.token = Some(creds.token.clone()),
            Auth::Approle => {
                args.role_id = Some(creds.role_id.clone());
                args.secret_id = Some(creds.secret_id.clone());
            }
        });
        AdminCommand::KmsSet(args)
    }

    fn substitute(&self, line: &str) -> String {
        let url = self.host.url();
        self.with_creds(|creds| {
            crate::scenario::substitute(
                line,
                &url,
                creds.token.expose(),
                &creds.role_id,
                creds.secret_id.expose(),
            )
        })
    }

    fn complete(&self, cmd: &mut AdminCommand) {
        if let AdminCommand::KmsSet(args) = cmd {
            if args.transit_path.is_none() {
                args.transit_path = self.transit_path();
            }
        }
    }

    fn replace_secret_id(&self, dialer: Arc<dyn Dialer>) -> AdminJob<()> {
        let (books, role) = (self.books.clone(), self.plan.name.clone());
        let old = self.with_creds(|c| c.secret_id.clone());
        self.as_admin(dialer, async move |admin: VaultAdmin<'_>| {
            let secret_id = admin.replace_secret_id(&role, &old).await?;
            if let Some(creds) = books.borrow_mut().creds.as_mut() {
                creds.secret_id = secret_id;
            }
            Ok(())
        })
    }

    fn rotate(&self, dialer: Arc<dyn Dialer>, key: &str) -> AdminJob<()> {
        let path = format!("{}/keys/{key}/rotate", self.plan.mount);
        let (books, key) = (self.books.clone(), key.to_string());
        self.as_admin(dialer, async move |admin: VaultAdmin<'_>| {
            admin.call("POST", &path, Some(json!({}))).await?;
            books.borrow_mut().versions.entry(key).or_default().latest += 1;
            Ok(())
        })
    }

    fn retire_below(&self, dialer: Arc<dyn Dialer>, key: &str, version: u64) -> AdminJob<()> {
        let path = format!("{}/keys/{key}/config", self.plan.mount);
        let (books, key) = (self.books.clone(), key.to_string());
        self.as_admin(dialer, async move |admin: VaultAdmin<'_>| {
            let body = json!({ "min_decryption_version": version });
            admin.call("POST", &path, Some(body)).await?;
            books
                .borrow_mut()
                .versions
                .entry(key)
                .or_default()
                .min_decryption = version;
            Ok(())
        })
    }

    fn versions(&self, key: &str) -> KeyVersions {
        let books = self.books.borrow();
        books.versions.get(key).copied().unwrap_or_default()
    }

    fn unwraps(&self, config: &KmsConfig, wrapped: &WrappedDek) -> Option<Result<Vec<u8>, String>> {
        let KmsConfig::Vault(v) = config else {
            return Some(Err(format!(
                "the cluster is configured with {}, which does not unwrap a Vault-wrapped DEK",
                config.describe()
            )));
        };
        // In the namespace and mount the configuration names: the same key name elsewhere
        // is another key.
        self.host.decrypts(
            v.namespace.as_deref(),
            &v.transit_path,
            &v.key_name,
            &wrapped.ciphertext,
        )
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
        if !self.host.outlives_run() {
            return Ok(());
        }
        // A run that failed mid-outage leaves the Vault as the user gave it: running and
        // unsealed (and then cleans it up).
        self.host.heal(fabric)?;
        let (base, token) = self.host.admin();
        let keys: Vec<String> = self.books.borrow().versions.keys().cloned().collect();
        let created = self.books.borrow().creds.as_ref().map(|c| c.token.clone());
        let plan = self.plan.clone();
        let removal: AdminCall = Box::pin(async move {
            let http = HttpClient::new(Arc::new(cluster::net::TcpDialer), Duration::from_secs(10));
            let admin = VaultAdmin {
                http: &http,
                base: &base,
                root_token: token.expose(),
            };
            admin.remove(&plan, &keys, created.as_ref()).await
        });
        self.host.block_on(removal)
    }
}
