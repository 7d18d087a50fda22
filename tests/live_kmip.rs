//! Live KMIP runs from the command line, against PyKMIP 0.11 (`.venv/bin/pykmip-server`,
//! which `bash tests/run.sh` installs; its absence fails these tests, loudly).
//!
//! - `--kmip HOST:PORT` against a PyKMIP the test started: kmip-startup-unwrap and
//!   kmip-rewrap pass, and afterwards PyKMIP holds exactly the objects it held before (each
//!   tenant's Locate-all, with every object's state), a key of the user's among them, also
//!   when that key is the run's own through `--kmip-key-uid`;
//! - `--pykmip`: the live variant of kmip-kms-outage (hang, slow, refuse, a PyKMIP killed and
//!   restarted on its database) passes and leaves no process or temp dir; the full
//!   kmip-kms-outage is refused before anything starts, naming the steps a live run cannot
//!   play;
//! - the preflight refuses with exit 2, naming the cause, before anything is created: an
//!   unreachable port, a client certificate of an unknown CA, a CA that did not sign the
//!   server's certificate, a server certificate for another name, a key UID that does not
//!   exist and one that is not Active; a Vault scenario with --kmip and a KMIP one with
//!   --vault; --kmip without --ca-cert.

mod live;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use live::{processes_naming, wekasim, LiveRun};
use scenarios::kms::kmip::KmipAdmin;
use scenarios::live::pykmip::{PyKmip, ServerCert};
use scenarios::live::runner::{PYKMIP_CLUSTER_CN, PYKMIP_OTHER_CN};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use ttlv::enums::{operation, state};
use ttlv::tag;

type Admin = KmipAdmin<TlsStream<TcpStream>>;

fn pykmip_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/pykmip-server");
    assert!(
        bin.is_file(),
        "{} is missing: these tests need PyKMIP 0.11.0. Install it with `bash tests/run.sh` \
         (or `python3 -m venv .venv && .venv/bin/pip install pykmip==0.11.0 \
         cryptography==50.0.2 sqlalchemy==2.1.9`)",
        bin.display()
    );
    bin
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A PyKMIP started by the test (killed and removed when dropped), with the certificate
/// files the command line is given.
struct Server {
    pykmip: PyKmip,
    files: Scratch,
    /// The test's admin connections live on this runtime.
    rt: tokio::runtime::Runtime,
}

impl Server {
    fn start(cert: ServerCert) -> Server {
        let rt = runtime();
        let pykmip = rt
            .block_on(PyKmip::start_as(
                &pykmip_bin(),
                &[PYKMIP_CLUSTER_CN, PYKMIP_OTHER_CN],
                cert,
            ))
            .unwrap_or_else(|e| panic!("starting PyKMIP: {e}"));
        let files = Scratch::new();
        let pki = pykmip.pki();
        let client = &pki.clients[PYKMIP_CLUSTER_CN];
        files.write("ca.pem", &pki.ca_pem);
        files.write("client.pem", &client.cert_pem);
        files.write("client.key", client.key_pem.expose());
        files.write("stranger.pem", &pki.unknown_ca_client.cert_pem);
        files.write("stranger.key", pki.unknown_ca_client.key_pem.expose());
        Server { pykmip, files, rt }
    }

    fn address(&self) -> String {
        self.pykmip.addr().to_string()
    }

    /// The private keys a run must never print.
    fn secrets(&self) -> Vec<String> {
        let pki = self.pykmip.pki();
        [&pki.clients[PYKMIP_CLUSTER_CN], &pki.unknown_ca_client]
            .iter()
            .flat_map(|id| key_lines(id.key_pem.expose()))
            .collect()
    }

    /// `wekasim run SCENARIO --kmip ADDRESS` with the cluster's certificates and `extra`.
    fn run(&self, scenario: &str, extra: &[&str]) -> LiveRun {
        let f = |name: &str| self.files.path(name).display().to_string();
        let (ca, cert, key) = (f("ca.pem"), f("client.pem"), f("client.key"));
        run_kmip(scenario, &self.address(), &cert, &key, &ca, extra)
    }

    fn admin(&self, cn: &str) -> Admin {
        let id = self.pykmip.client(cn).unwrap();
        let tls = self
            .rt
            .block_on(scenarios::kms::kmip::connect_tls(
                self.pykmip.addr(),
                &self.pykmip.server_name(),
                self.pykmip.ca_pem(),
                &id.cert_pem,
                &id.key_pem,
            ))
            .unwrap_or_else(|e| panic!("the test's admin cannot connect as {cn}: {e}"));
        KmipAdmin::new(tls)
    }

    /// Every object each tenant sees, with its state: what "holds the same" compares.
    fn objects(&self) -> Vec<(String, String, u32)> {
        let rt = &self.rt;
        let mut all = Vec::new();
        for cn in [PYKMIP_CLUSTER_CN, PYKMIP_OTHER_CN] {
            let mut admin = self.admin(cn);
            let uids: Vec<String> = rt
                .block_on(admin.call(operation::LOCATE, Vec::new()))
                .unwrap_or_else(|e| panic!("Locate as {cn}: {e}"))
                .all(tag::UNIQUE_IDENTIFIER)
                .map(|i| i.as_text().expect("a UID"))
                .collect();
            for uid in uids {
                let s = rt
                    .block_on(admin.state(&uid))
                    .unwrap_or_else(|e| panic!("the state of {uid}: {e}"));
                all.push((cn.to_string(), uid, s));
            }
        }
        all.sort();
        all
    }

    /// A key of the user's: created (and activated if `active`) by the cluster's CN.
    fn user_key(&self, name: &str, active: bool) -> String {
        let rt = &self.rt;
        let mut admin = self.admin(PYKMIP_CLUSTER_CN);
        let uid = rt.block_on(admin.create_aes256(name)).unwrap();
        if active {
            rt.block_on(admin.activate(&uid)).unwrap();
        }
        uid
    }
}

/// `wekasim run SCENARIO --kmip ADDRESS --client-cert CERT --client-key KEY --ca-cert CA
/// EXTRA...`.
fn run_kmip(
    scenario: &str,
    address: &str,
    cert: &str,
    key: &str,
    ca: &str,
    extra: &[&str],
) -> LiveRun {
    let mut args = vec![
        "run",
        scenario,
        "--kmip",
        address,
        "--client-cert",
        cert,
        "--client-key",
        key,
        "--ca-cert",
        ca,
    ];
    args.extend_from_slice(extra);
    wekasim(&args, &[])
}

/// The lines of a PEM key between its armour: any of them in output is a leak.
fn key_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A temp dir for the certificate files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wekasim-live-kmip-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn kmip_runs_against_a_running_pykmip_leave_it_as_it_was() {
    let server = Server::start(ServerCert::Right);
    let secrets = server.secrets();
    // The server holds something of the user's before the run, which must stay.
    let users = server.user_key("users-own-key", true);
    let before = server.objects();
    assert_eq!(before.len(), 1, "{before:?}");

    for scenario in ["kmip-startup-unwrap", "kmip-rewrap"] {
        let run = server.run(scenario, &[]);
        run.assert_live_pass(&refs(&secrets));
        assert!(
            run.stdout
                .contains(&format!("KMIP server at {}", server.address())),
            "{}",
            run.describe()
        );
        assert_eq!(
            server.objects(),
            before,
            "after {scenario}\n{}",
            run.describe()
        );
    }

    // The user's key as the scenario's key: used, and neither revoked nor destroyed.
    let run = server.run("kmip-startup-unwrap", &["--kmip-key-uid", &users]);
    run.assert_live_pass(&refs(&secrets));
    assert_eq!(server.objects(), before, "{}", run.describe());
    assert!(before.contains(&(PYKMIP_CLUSTER_CN.into(), users, state::ACTIVE)));
}

#[test]
fn kmip_kms_outage_runs_live_against_its_own_pykmip() {
    // The full scenario is refused before anything starts, naming what cannot run live.
    let run = wekasim(&["run", "kmip-kms-outage", "--pykmip"], &[]);
    run.assert_refused("kmip-kms-outage cannot run live", &[]);
    for step in [
        "step 8 (kms-fault) changes the KMIP server's answers inside TLS",
        "(kms-revoke-key) is not supported live against KMIP",
        "(kms-revoke-tokens) is not supported live against KMIP",
    ] {
        assert!(run.stderr.contains(step), "{step}\n{}", run.describe());
    }

    let run = wekasim(&["run", "kmip-kms-outage-live", "--pykmip"], &[]);
    run.assert_live_pass(&[]);
    assert!(
        run.stdout.contains("PyKMIP started by this run"),
        "{}",
        run.describe()
    );
    for step in ["kms-stop", "kms-start", "kms-fault"] {
        assert!(run.stderr.contains(step), "{step}\n{}", run.describe());
    }
    // Nothing of its PyKMIP is left: no temp dir, no process.
    let prefix = format!("wekasim-pykmip-{}-", run.pid);
    let dirs: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(dirs.is_empty(), "{dirs:?}");
    let procs = processes_naming(&prefix);
    assert!(procs.is_empty(), "{procs:?}");
}

#[test]
fn the_kmip_preflight_refuses_before_anything_is_created() {
    let server = Server::start(ServerCert::Right);
    let wrong_name = Server::start(ServerCert::WrongName);
    let secrets = [server.secrets(), wrong_name.secrets()].concat();
    let secrets = refs(&secrets);
    let inactive = server.user_key("users-pre-active-key", false);
    let before = server.objects();
    let scenario = "kmip-startup-unwrap";
    let f = |s: &Server, name: &str| s.files.path(name).display().to_string();
    let (ca, cert, key) = (
        f(&server, "ca.pem"),
        f(&server, "client.pem"),
        f(&server, "client.key"),
    );

    // Nothing listens on the port.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let run = run_kmip(scenario, &dead, &cert, &key, &ca, &[]);
    run.assert_refused(
        &format!("the KMIP server at {dead} is unreachable: "),
        &secrets,
    );

    // A client certificate of a CA the server does not know: the server refuses it.
    let (stranger, stranger_key) = (f(&server, "stranger.pem"), f(&server, "stranger.key"));
    let address = server.address();
    let run = run_kmip(scenario, &address, &stranger, &stranger_key, &ca, &[]);
    run.assert_refused("the server rejected the client certificate", &secrets);

    // A CA that did not sign the server's certificate: this side refuses it.
    let other_ca = f(&wrong_name, "ca.pem");
    let run = run_kmip(scenario, &address, &cert, &key, &other_ca, &[]);
    run.assert_refused("it is not signed by the CA given (--ca-cert)", &secrets);

    // The server's certificate names another host.
    let run = wrong_name.run(scenario, &[]);
    run.assert_refused(
        "its certificate is refused: it is for another name: it does not name 127.0.0.1",
        &secrets,
    );

    // Key UIDs: one that does not exist, one that is not Active.
    let run = server.run(scenario, &["--kmip-key-uid", "999999"]);
    run.assert_refused(
        "key UID 999999 is unknown to this client certificate",
        &secrets,
    );
    let run = server.run(scenario, &["--kmip-key-uid", &inactive]);
    run.assert_refused(
        &format!("key UID {inactive} is Pre-Active, not Active"),
        &secrets,
    );

    // A Vault scenario with a KMIP server, and a KMIP flag without --kmip.
    let run = server.run("startup-unwrap", &[]);
    run.assert_refused("startup-unwrap is a Vault scenario", &secrets);
    let run = wekasim(
        &[
            "run",
            scenario,
            "--vault",
            "http://127.0.0.1:1",
            "--token",
            "x",
        ],
        &[],
    );
    run.assert_refused("kmip-startup-unwrap is a KMIP scenario", &secrets);
    let run = wekasim(
        &[
            "run",
            scenario,
            "--kmip",
            &address,
            "--client-cert",
            &cert,
            "--client-key",
            &key,
        ],
        &[],
    );
    run.assert_refused("a live KMIP run needs --ca-cert", &secrets);
    let run = wekasim(&["run", scenario, "--pykmip", "--client-cert", &cert], &[]);
    assert_eq!(run.code, Some(live::EXIT_USAGE), "{}", run.describe());
    assert!(run.stderr.contains("--kmip"), "{}", run.describe());

    assert_eq!(server.objects(), before, "a refused run created something");
}
