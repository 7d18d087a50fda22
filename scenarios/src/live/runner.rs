//! A scenario in real time against a real KMS: a Vault, or a KMIP server.
//!
//! Before anything runs, the runner checks that the scenario can run live and that the
//! KMS is one WEKA supports and the credentials work; any "no" is a [`LiveError`] that
//! names what and where, and nothing has been created in the KMS. Then it prepares
//! the KMS (its keys, and for a Vault its policy and role, under names of its own), plays
//! the scenario on the live fabric, and removes what it created.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use cluster::http::HttpClient;
use cluster::net::TcpDialer;
use cluster::secret::Secret;
use kms_sim::object_store::ObjectStore;
use kms_sim::proxy::Forward;
use tokio::task::LocalSet;

use super::docker::DockerVault;
use super::fabric::{KmsFront, LiveFabric};
use super::kmip::{AdminLink, KmipServer, LiveKmipHost, LiveKmipParts};
use super::kms::LiveVaultHost;
use super::openbao::OpenBaoServer;
use super::preflight::{self, Flavour};
use super::preflight_kmip;
use super::pykmip::PyKmip;
use super::vault::VaultProcess;
use crate::kms::kmip::{ClientIdentity, KmipUnderTest, OTHER_TENANT_PREFIX};
use crate::kms::vault::{SetupPlan, VaultAdmin, VaultUnderTest};
use crate::kms::KmsUnderTest;
use crate::runner::fabric::Fabric;
use crate::runner::{self, RunReport, SimOptions, World};
use crate::scenario::{KmsKind, Scenario, Step};
use crate::PlantedBug;
use kms_sim::chaos::Fault;
use kms_sim::tcp_proxy::TcpForward;

/// The client certificates' Common Names of a run's own PyKMIP: the cluster's, and
/// another tenant's.
pub const PYKMIP_CLUSTER_CN: &str = "wekasim-cluster";
pub const PYKMIP_OTHER_CN: &str = "wekasim-other-tenant";

/// A KMIP server somebody else runs, and the cluster's identity towards it.
#[derive(Debug, Clone)]
pub struct KmipTarget {
    /// `host:port`; the server's certificate must name the host.
    pub address: String,
    pub client_cert_pem: String,
    pub client_key_pem: Secret,
    /// The CA that signed the server's certificate (the cluster is given it).
    pub ca_cert_pem: Option<String>,
    /// An existing Active key to stand for the scenario's cluster key, instead of one the
    /// run creates; the run never revokes or destroys it.
    pub key_uid: Option<String>,
}

/// Which KMS a live run uses.
#[derive(Debug, Clone)]
pub enum Target {
    /// A running Vault at this URL: never stopped or started by the run.
    Url(String),
    /// An OpenBao the run starts itself from this `bao` binary, on raft storage in a
    /// temp dir (so it survives `kms-stop` and `kms-start`); removed after the run.
    OpenBao(PathBuf),
    /// A Vault in this Docker container (id or name), port 8200 published; the run
    /// stops and starts the container for `kms-stop` and `kms-start`.
    Container(String),
    /// A running KMIP server: never stopped or started by the run.
    Kmip(KmipTarget),
    /// A PyKMIP the run starts itself from this `pykmip-server`, with certificates made
    /// for the run; killed and restarted on its database for `kms-stop` and `kms-start`,
    /// removed after the run.
    PyKmip(PathBuf),
}

impl Target {
    /// The kind of KMS the target is.
    pub fn kind(&self) -> KmsKind {
        match self {
            Target::Url(_) | Target::OpenBao(_) | Target::Container(_) => KmsKind::Vault,
            Target::Kmip(_) | Target::PyKmip(_) => KmsKind::Kmip,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub target: Target,
    /// A token allowed to mount engines, write policies, manage AppRole and seal (the
    /// root token of a test Vault). Not needed for [`Target::OpenBao`].
    pub admin_token: Option<Secret>,
    /// Needed by scenarios that seal the Vault or stop it (it comes back sealed).
    pub unseal_key: Option<Secret>,
    /// An existing transit mount to create the scenario's keys in. Without it the run
    /// mounts one of its own and unmounts it afterwards.
    pub transit_mount: Option<String>,
    /// An existing AppRole (role-id, secret-id) for the cluster to log in with, instead
    /// of the one the run creates.
    pub approle: Option<(String, Secret)>,
    /// Seeds the cluster's own draws (DEKs, which backend serves a command, data).
    pub seed: u64,
    /// Bound for the liveness phase at the end of a run.
    pub liveness_bound: Duration,
    /// Prints each step as it starts (to stderr).
    pub show_progress: bool,
    /// Makes Ctrl-C end the run cleanly (backends stopped, the Vault cleaned up) instead
    /// of killing the process; for the command line.
    pub stop_on_ctrl_c: bool,
    /// Known bugs to plant in the cluster (only a `planted-bugs` build plants them): the
    /// proof that a gate against a real Vault catches them too.
    pub planted: BTreeSet<PlantedBug>,
}

impl LiveOptions {
    pub fn new(target: Target) -> LiveOptions {
        LiveOptions {
            target,
            admin_token: None,
            unseal_key: None,
            transit_mount: None,
            approle: None,
            seed: 0,
            liveness_bound: Duration::from_secs(60),
            show_progress: false,
            stop_on_ctrl_c: false,
            planted: BTreeSet::new(),
        }
    }
}

/// Why a live run did not start. Nothing was created in the Vault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// The scenario, the options or the Vault are not fit for the run.
    #[error("{0}")]
    BadInput(String),
    /// A peer the run starts itself (OpenBao) did not start.
    #[error("{0}")]
    Setup(String),
}

/// Plays `scenario` live. `Err` means the run did not start; a run that started ends in
/// a report, pass or fail.
pub fn run(scenario: &Scenario, opts: &LiveOptions) -> Result<RunReport, LiveError> {
    same_kind(scenario, &opts.target)?;
    if opts.target.kind() == KmsKind::Kmip {
        return run_kmip(scenario, opts);
    }
    can_run_live(scenario, opts)?;
    let admin = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LiveError::Setup(format!("cannot start a runtime: {e}")))?;
    let jobs = LocalSet::new();

    let (vault, admin_token) = jobs.block_on(&admin, open(opts))?;
    let base = vault.base();
    let info = jobs
        .block_on(
            &admin,
            preflight::check(
                &base,
                &admin_token,
                opts.transit_mount.as_deref(),
                opts.approle.as_ref().map(|(r, s)| (r.as_str(), s)),
            ),
        )
        .map_err(|e| LiveError::BadInput(e.to_string()))?;
    let plan = jobs.block_on(
        &admin,
        plan(&base, &admin_token, opts, &scenario.kms.keys()),
    )?;
    let flavour = match info.flavour {
        Flavour::OpenBao => "OpenBao",
        Flavour::Vault => "Vault",
    };
    let against = format!(
        "{flavour} {} at {base} ({})",
        info.version,
        describe(&vault)
    );

    let objects = ObjectStore::default();
    let forward = Forward::new(vault.base());
    let fabric = LiveFabric::new(admin, jobs, KmsFront::Http(forward.router()), &objects)
        .map_err(LiveError::Setup)?;
    let host = LiveVaultHost::new(
        vault,
        admin_token,
        opts.unseal_key.clone(),
        forward,
        fabric.kms_url().to_string(),
    )
    .map_err(LiveError::Setup)?;
    let kms = VaultUnderTest::new(host, plan, opts.approle.clone());
    play(scenario, opts, fabric, Box::new(kms), objects, against)
}

/// Plays `scenario` on `fabric` against `kms`; `against` names the KMS in the report.
fn play(
    scenario: &Scenario,
    opts: &LiveOptions,
    fabric: LiveFabric,
    kms: Box<dyn KmsUnderTest>,
    objects: ObjectStore,
    against: String,
) -> Result<RunReport, LiveError> {
    let sim_opts = SimOptions {
        liveness_bound: opts.liveness_bound,
        planted: opts.planted.clone(),
        ..SimOptions::new(opts.seed)
    };
    if opts.stop_on_ctrl_c {
        fabric.stop_on_ctrl_c();
    }
    let world_opts = sim_opts.clone();
    let show_progress = opts.show_progress;
    let mut report = runner::play_on(scenario, &sim_opts, move |trace| {
        let world = World::build(
            scenario,
            &world_opts,
            trace,
            Box::new(fabric) as Box<dyn Fabric>,
            kms,
            objects,
        );
        Ok(if show_progress {
            world.with_progress(Box::new(print_progress))
        } else {
            world
        })
    })
    .map_err(LiveError::Setup)?;
    report.live = Some(against);
    Ok(report)
}

/// A Vault scenario needs a Vault target, a KMIP one a KMIP target.
fn same_kind(scenario: &Scenario, target: &Target) -> Result<(), LiveError> {
    let (wanted, given) = (scenario.kms.kind, target.kind());
    if wanted == given {
        return Ok(());
    }
    let name = &scenario.scenario.name;
    Err(LiveError::BadInput(match wanted {
        KmsKind::Kmip => format!(
            "{name} is a KMIP scenario: run it live with --kmip HOST:PORT (and --client-cert, \
             --client-key, --ca-cert) or --pykmip, not against a Vault"
        ),
        KmsKind::Vault => format!(
            "{name} is a Vault scenario: run it live with --vault, --openbao or \
             --vault-container, not against a KMIP server"
        ),
    }))
}

/// Plays a KMIP scenario against a real KMIP server: a PyKMIP the run starts, or the
/// user's. The preflight runs before anything is created on the server.
fn run_kmip(scenario: &Scenario, opts: &LiveOptions) -> Result<RunReport, LiveError> {
    can_run_kmip(scenario, &opts.target)?;
    let admin = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LiveError::Setup(format!("cannot start a runtime: {e}")))?;
    let jobs = LocalSet::new();

    let (server, address, identity, key_uid) = match &opts.target {
        Target::Kmip(t) => {
            let ca = t.ca_cert_pem.clone().ok_or_else(|| {
                LiveError::BadInput(
                    "a live KMIP run needs --ca-cert: the CA that signed the KMIP server's \
                     certificate, which the cluster is given too"
                        .into(),
                )
            })?;
            // No second tenant: `can_run_kmip` refused scenarios that need one.
            let identity = ClientIdentity {
                ca_cert_pem: ca,
                client_cert_pem: t.client_cert_pem.clone(),
                client_key_pem: t.client_key_pem.clone(),
                other_cert_pem: t.client_cert_pem.clone(),
                other_key_pem: t.client_key_pem.clone(),
            };
            (
                KmipServer::External,
                t.address.clone(),
                identity,
                t.key_uid.clone(),
            )
        }
        Target::PyKmip(bin) => {
            let pykmip = jobs
                .block_on(
                    &admin,
                    PyKmip::start(bin, &[PYKMIP_CLUSTER_CN, PYKMIP_OTHER_CN]),
                )
                .map_err(LiveError::Setup)?;
            let client = pykmip.client(PYKMIP_CLUSTER_CN).map_err(LiveError::Setup)?;
            let other = pykmip.client(PYKMIP_OTHER_CN).map_err(LiveError::Setup)?;
            let identity = ClientIdentity {
                ca_cert_pem: pykmip.ca_pem().to_string(),
                client_cert_pem: client.cert_pem.clone(),
                client_key_pem: client.key_pem.clone(),
                other_cert_pem: other.cert_pem.clone(),
                other_key_pem: other.key_pem.clone(),
            };
            let address = pykmip.addr().to_string();
            (
                KmipServer::Managed(Box::new(pykmip)),
                address,
                identity,
                None,
            )
        }
        _ => unreachable!("run_kmip is called for KMIP targets only"),
    };
    let info = jobs
        .block_on(
            &admin,
            preflight_kmip::check(
                &address,
                &identity.ca_cert_pem,
                &identity.client_cert_pem,
                &identity.client_key_pem,
                key_uid.as_deref(),
            ),
        )
        .map_err(|e| LiveError::BadInput(e.to_string()))?;
    let link = |cert: &str, key: &Secret| AdminLink {
        addr: info.addr,
        server_name: info.server_name.clone(),
        ca_pem: identity.ca_cert_pem.clone(),
        cert_pem: cert.to_string(),
        key_pem: key.clone(),
        version: info.admin_version,
    };
    let cluster = link(&identity.client_cert_pem, &identity.client_key_pem);
    let managed = matches!(server, KmipServer::Managed(_));
    let other = managed.then(|| link(&identity.other_cert_pem, &identity.other_key_pem));
    let versions: Vec<String> = info.versions.iter().map(|v| v.to_string()).collect();
    let against = format!(
        "KMIP server at {address}, offering {} ({})",
        versions.join(", "),
        if managed {
            "PyKMIP started by this run"
        } else {
            "external"
        }
    );

    let objects = ObjectStore::default();
    let forward = TcpForward::new(info.addr.to_string());
    let front = KmsFront::Tcp {
        forward: forward.clone(),
        address: address.clone(),
    };
    let fabric = LiveFabric::new(admin, jobs, front, &objects).map_err(LiveError::Setup)?;
    let host = LiveKmipHost::new(LiveKmipParts {
        server,
        address,
        identity,
        cluster,
        other,
        prefix: format!("wekasim-{}-{}-", opts.seed, crate::wall::unique_suffix()),
        given_uid: key_uid,
        forward,
    })
    .map_err(LiveError::Setup)?;
    let kms = KmipUnderTest::new(host);
    play(scenario, opts, fabric, Box::new(kms), objects, against)
}

/// What a KMIP scenario needs that a live run cannot give: the simulated network, faults
/// inside TLS, a revoked certificate, or (against a server somebody else runs) a server
/// the run can stop and a second tenant.
fn can_run_kmip(scenario: &Scenario, target: &Target) -> Result<(), LiveError> {
    let external = matches!(target, Target::Kmip(_));
    let given_uid = matches!(
        target,
        Target::Kmip(KmipTarget {
            key_uid: Some(_),
            ..
        })
    );
    let mut problems = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let at = format!("step {} ({})", i + 1, step.action());
        match step {
            Step::Partition { .. }
            | Step::Hold { .. }
            | Step::Release { .. }
            | Step::Latency { .. } => problems.push(format!(
                "{at} needs the simulated network and cannot run against a real KMIP server"
            )),
            Step::KmsFault { mode, .. }
                if !matches!(
                    mode,
                    Fault::None | Fault::Refuse | Fault::Hang | Fault::Slow
                ) =>
            {
                problems.push(format!(
                    "{at} changes the KMIP server's answers inside TLS, which a live run cannot \
                     do (live KMIP faults: none, refuse, hang, slow)"
                ))
            }
            Step::KmsRevokeKey => problems.push(format!(
                "{at} is not supported live against KMIP: the run revokes keys only at its \
                 teardown"
            )),
            Step::KmsRevokeTokens => problems.push(format!(
                "{at} is not supported live against KMIP: a run cannot make a real KMIP server \
                 stop accepting a client certificate"
            )),
            Step::KmsStop | Step::KmsStart if external => problems.push(format!(
                "{at} stops or starts the KMIP server, which a run against --kmip cannot do: \
                 use --pykmip"
            )),
            Step::KmsTrim { .. } if given_uid => problems.push(format!(
                "{at} revokes and destroys old keys, and the run never destroys the key named \
                 with --kmip-key-uid: leave it out"
            )),
            _ => {}
        }
        let text = serde_json::to_string(step).unwrap_or_default();
        if external && text.contains("$KMIP_OTHER_") {
            problems.push(format!(
                "{at} uses another tenant's certificate, which only a run with --pykmip has"
            ));
        }
    }
    if external {
        for key in scenario.kms.keys() {
            if key.starts_with(OTHER_TENANT_PREFIX) {
                problems.push(format!(
                    "key {key} belongs to another tenant, whose certificate only a run with \
                     --pykmip has"
                ));
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(LiveError::BadInput(format!(
        "{} cannot run live:\n  - {}",
        scenario.scenario.name,
        problems.join("\n  - ")
    )))
}

/// One line per step on stderr: a live run takes real time.
fn print_progress(step: usize, steps: usize, action: &str, at: Duration) {
    if step == 0 {
        eprintln!(
            "  [{:7.1}s] liveness: every filesystem ready, every write read back",
            at.as_secs_f64()
        );
    } else {
        eprintln!("  [{:7.1}s] step {step}/{steps} {action}", at.as_secs_f64());
    }
}

/// Steps that need what only the simulation has, and steps that need a Vault the run
/// can stop, start or unseal.
fn can_run_live(scenario: &Scenario, opts: &LiveOptions) -> Result<(), LiveError> {
    let managed = matches!(opts.target, Target::OpenBao(_));
    let restartable = !matches!(opts.target, Target::Url(_));
    let steps = |wanted: &dyn Fn(&Step) -> bool| -> Vec<String> {
        scenario
            .steps
            .iter()
            .enumerate()
            .filter(|(_, step)| wanted(step))
            .map(|(i, step)| format!("{} ({})", i + 1, step.action()))
            .collect()
    };
    // "step 3 (kms-stop) needs", "steps 3 (kms-stop), 5 (kms-start) need"
    let steps_do = |list: &[String], one: &str, many: &str| match list {
        [single] => format!("step {single} {one}"),
        _ => format!("steps {} {many}", list.join(", ")),
    };
    let mut problems = Vec::new();
    let network = steps(&|s| {
        matches!(
            s,
            Step::Partition { .. }
                | Step::Hold { .. }
                | Step::Release { .. }
                | Step::Latency { .. }
        )
    });
    if !network.is_empty() {
        problems.push(steps_do(
            &network,
            "needs the simulated network and cannot run against a real Vault",
            "need the simulated network and cannot run against a real Vault",
        ));
    }
    let restarts = steps(&|s| matches!(s, Step::KmsStop | Step::KmsStart));
    if !restartable && !restarts.is_empty() {
        problems.push(steps_do(
            &restarts,
            "stops or starts the Vault, which a run against --vault URL cannot do: use \
             --openbao or --vault-container",
            "stop and start the Vault, which a run against --vault URL cannot do: use \
             --openbao or --vault-container",
        ));
    }
    let unseals = steps(&|s| matches!(s, Step::KmsSeal | Step::KmsUnseal | Step::KmsStart));
    if !managed && opts.unseal_key.is_none() && !unseals.is_empty() {
        problems.push(steps_do(
            &unseals,
            "needs the Vault's unseal key: give --unseal-key (or VAULT_UNSEAL_KEY)",
            "need the Vault's unseal key: give --unseal-key (or VAULT_UNSEAL_KEY)",
        ));
    }
    if !managed && opts.admin_token.is_none() {
        problems
            .push("a live run needs the Vault's admin token: give --token (or VAULT_TOKEN)".into());
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(LiveError::BadInput(format!(
        "{} cannot run live:\n  - {}",
        scenario.scenario.name,
        problems.join("\n  - ")
    )))
}

/// Starts or attaches to the Vault, and the admin token to use with it.
async fn open(opts: &LiveOptions) -> Result<(VaultProcess, Secret), LiveError> {
    let token = || opts.admin_token.clone().unwrap_or_else(|| Secret::new(""));
    Ok(match &opts.target {
        Target::Url(url) => (VaultProcess::External { base: url.clone() }, token()),
        Target::OpenBao(bin) => {
            let server = OpenBaoServer::raft(bin).await.map_err(LiveError::Setup)?;
            let root = server.root_token().clone();
            (VaultProcess::Managed(server), root)
        }
        Target::Container(id) => {
            let container = DockerVault::attach(id).await.map_err(LiveError::BadInput)?;
            (VaultProcess::Container(container), token())
        }
        Target::Kmip(_) | Target::PyKmip(_) => {
            return Err(LiveError::BadInput("a KMIP server is not a Vault".into()))
        }
    })
}

fn describe(vault: &VaultProcess) -> String {
    match vault {
        VaultProcess::External { .. } => "external".into(),
        VaultProcess::Managed(_) => "started by this run, raft storage".into(),
        VaultProcess::Container(c) => format!("container {}", c.id()),
    }
}

/// Names of the run's own for what it creates, so it neither meets nor clobbers what the
/// Vault already holds; keys in a named mount must not exist yet (the run rotates and
/// trims them).
async fn plan(
    base: &str,
    token: &Secret,
    opts: &LiveOptions,
    keys: &[String],
) -> Result<SetupPlan, LiveError> {
    let http = HttpClient::new(std::sync::Arc::new(TcpDialer), Duration::from_secs(10));
    let admin = VaultAdmin {
        http: &http,
        base,
        root_token: token.expose(),
    };
    let name = format!("wekasim-{}-{}", opts.seed, crate::wall::unique_suffix());
    let auth = admin
        .call("GET", "sys/auth", None)
        .await
        .map_err(LiveError::BadInput)?;
    let approle_enabled = auth
        .pointer("/data/approle~1")
        .or_else(|| auth.get("approle/"))
        .is_some();
    let (mount, create_mount) = match &opts.transit_mount {
        Some(mount) => {
            let mount = mount.trim_matches('/').to_string();
            for key in keys {
                if admin
                    .call("GET", &format!("{mount}/keys/{key}"), None)
                    .await
                    .is_ok()
                {
                    return Err(LiveError::BadInput(format!(
                        "the key {key} already exists in {mount}/ at {base}: a live run \
                         rotates and trims its keys, so it creates them; name a mount \
                         without it, or leave out --transit-mount"
                    )));
                }
            }
            (mount, false)
        }
        None => (name.clone(), true),
    };
    Ok(SetupPlan {
        mount,
        create_mount,
        enable_approle: !approle_enabled,
        name,
    })
}
