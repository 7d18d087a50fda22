//! docker-compose.yml on this machine: `up -d` as project `wekasim-test` (host ports
//! 18200-18203, apart from every other test's), then every service answers on 127.0.0.1:
//! openbao-dev and kms-sim are healthy, openbao-raft is uninitialised and sealed on raft
//! storage with its named volume, pykmip answers a Discover Versions over mutual TLS with
//! 1.2 among its versions, and `wekasim run kmip-startup-unwrap --kmip` passes against it.
//! `down -v` runs from a guard, so it also runs when the test fails.
//!
//! The images are built locally by `bash tests/images.sh`; a missing one fails the test (it
//! never skips). pykmip's certificates are made for the test by
//! `tests/compose/pykmip-certs.sh` in a temp dir (`WEKASIM_PYKMIP_CERTS`), so the test
//! neither needs nor touches the ones in tests/compose/pykmip-certs/. Works with
//! `docker compose` (the plugin) and `docker-compose` (Debian's).

mod docker_support;
mod live;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cluster::secret::Secret;
use docker_support::{require_image, wait_for_status, OPENBAO_IMAGE, OPENBAO_TAG};
use scenarios::kms::kmip::{connect_tls, KmipAdmin};
use serde_json::Value;
use ttlv::ProtocolVersion;

const PROJECT: &str = "wekasim-test";
const OPENBAO_DEV_PORT: u16 = 18200;
const OPENBAO_RAFT_PORT: u16 = 18201;
const KMS_SIM_PORT: u16 = 18202;
const PYKMIP_PORT: u16 = 18203;
const PYKMIP_IMAGE: &str = "wekasim/pykmip";
const PYKMIP_TAG: &str = "0.11.0";
/// Until PyKMIP answers: it starts in ~3 s in its container on an idle machine; the machines
/// these tests run on are shared. Docker's proxy accepts TCP before PyKMIP listens, so only
/// a full exchange counts.
const PYKMIP_POLL_EVERY: Duration = Duration::from_millis(250);
const PYKMIP_POLL_TRIES: u32 = 240; // 60 s

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The tag `tests/images.sh` gives the kms-sim image: kms-sim's crate version.
fn kms_sim_tag() -> String {
    let manifest = std::fs::read_to_string(repo().join("kms-sim/Cargo.toml"))
        .expect("read kms-sim/Cargo.toml");
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("a version line in kms-sim/Cargo.toml")
        .to_string()
}

/// `docker compose` if the plugin is installed, else `docker-compose`.
fn compose_program() -> Vec<&'static str> {
    let works = |argv: &[&str]| {
        Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if works(&["docker", "compose", "version"]) {
        vec!["docker", "compose"]
    } else if works(&["docker-compose", "version"]) {
        vec!["docker-compose"]
    } else {
        panic!("neither `docker compose` nor `docker-compose` works on this machine");
    }
}

struct Compose {
    program: Vec<&'static str>,
    dir: PathBuf,
    kms_sim_tag: String,
    /// What pykmip mounts as its certificates.
    pykmip_certs: PathBuf,
}

impl Compose {
    /// `<compose> -p wekasim-test -f docker-compose.yml ARGS`, with this test's ports.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(self.program[0])
            .args(&self.program[1..])
            .args(["-p", PROJECT, "-f"])
            .arg(self.dir.join("docker-compose.yml"))
            .args(args)
            .current_dir(&self.dir)
            .env("WEKASIM_OPENBAO_DEV_PORT", OPENBAO_DEV_PORT.to_string())
            .env("WEKASIM_OPENBAO_RAFT_PORT", OPENBAO_RAFT_PORT.to_string())
            .env("WEKASIM_KMS_SIM_PORT", KMS_SIM_PORT.to_string())
            .env("WEKASIM_KMS_SIM_TAG", &self.kms_sim_tag)
            .env("WEKASIM_PYKMIP_PORT", PYKMIP_PORT.to_string())
            .env("WEKASIM_PYKMIP_CERTS", &self.pykmip_certs)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.program))
    }

    fn down(&self) -> Output {
        self.run(&["down", "-v", "--remove-orphans", "--timeout", "5"])
    }

    fn logs(&self) -> String {
        describe(&self.run(&["logs", "--no-color"]))
    }
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Takes the project down (containers, network, volumes) when dropped, also on a panic.
struct Down<'a>(&'a Compose);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let out = self.0.down();
        if !out.status.success() {
            eprintln!("compose down -v failed: {}", describe(&out));
        }
    }
}

fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(out.status.success(), "docker {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn project_containers() -> Vec<String> {
    let label = format!("label=com.docker.compose.project={PROJECT}");
    docker_lines(&["ps", "-a", "-q", "--filter", &label])
}

fn project_volumes() -> Vec<String> {
    let label = format!("label=com.docker.compose.project={PROJECT}");
    docker_lines(&["volume", "ls", "-q", "--filter", &label])
}

fn wait_or_panic(compose: &Compose, service: &str, port: u16, path: &str, want: u16) -> String {
    let base = format!("http://127.0.0.1:{port}");
    wait_for_status(&base, path, want)
        .unwrap_or_else(|e| panic!("{service}: {e}\n--- compose logs ---\n{}", compose.logs()))
}

/// The certificates `tests/compose/pykmip-certs.sh` makes, in a temp dir removed when
/// dropped.
struct PyKmipCerts(PathBuf);

impl PyKmipCerts {
    fn make() -> PyKmipCerts {
        let dir =
            std::env::temp_dir().join(format!("wekasim-compose-pykmip-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new("bash")
            .arg(repo().join("tests/compose/pykmip-certs.sh"))
            .arg(&dir)
            .output()
            .expect("run bash tests/compose/pykmip-certs.sh");
        assert!(out.status.success(), "pykmip-certs.sh: {}", describe(&out));
        PyKmipCerts(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", self.path(name)))
    }
}

impl Drop for PyKmipCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One Discover Versions over mutual TLS as the certificates' client (for 127.0.0.1).
async fn discover_versions(
    certs: &PyKmipCerts,
    addr: SocketAddr,
) -> Result<Vec<ProtocolVersion>, String> {
    let key = Secret::new(certs.read("client.key"));
    let tls = connect_tls(
        addr,
        "127.0.0.1",
        &certs.read("ca.pem"),
        &certs.read("client.pem"),
        &key,
    )
    .await?;
    KmipAdmin::new(tls)
        .discover_versions()
        .await
        .map_err(|e| format!("Discover Versions: {e}"))
}

/// The versions pykmip offers, once it answers; panics with the compose logs if it never
/// does.
fn wait_for_pykmip(compose: &Compose, certs: &PyKmipCerts) -> Vec<ProtocolVersion> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let addr = SocketAddr::from(([127, 0, 0, 1], PYKMIP_PORT));
    let mut last = String::new();
    for _ in 0..PYKMIP_POLL_TRIES {
        match rt.block_on(discover_versions(certs, addr)) {
            Ok(versions) => return versions,
            Err(e) => last = e,
        }
        std::thread::sleep(PYKMIP_POLL_EVERY);
    }
    panic!(
        "pykmip never answered a Discover Versions at {addr}: {last}\n--- compose logs ---\n{}",
        compose.logs()
    );
}

fn field<'v>(v: &'v Value, name: &str) -> &'v Value {
    v.get(name).unwrap_or_else(|| panic!("no {name:?} in {v}"))
}

#[test]
fn compose_services_come_up_and_answer() {
    let kms_sim_tag = kms_sim_tag();
    require_image(OPENBAO_IMAGE, OPENBAO_TAG);
    require_image("wekasim/kms-sim", &kms_sim_tag);
    require_image(PYKMIP_IMAGE, PYKMIP_TAG);
    let certs = PyKmipCerts::make();
    let compose = Compose {
        program: compose_program(),
        dir: repo(),
        kms_sim_tag,
        pykmip_certs: certs.0.clone(),
    };
    assert!(Path::new(&compose.dir.join("docker-compose.yml")).is_file());

    // What a run killed before its guard could act left behind (raft would come up
    // initialised from the old volume).
    let _ = compose.down();
    let guard = Down(&compose);
    let up = compose.run(&["up", "-d"]);
    assert!(
        up.status.success(),
        "compose up -d failed: {}",
        describe(&up)
    );

    wait_or_panic(
        &compose,
        "openbao-dev",
        OPENBAO_DEV_PORT,
        "/v1/sys/health",
        200,
    );
    let sim = wait_or_panic(&compose, "kms-sim", KMS_SIM_PORT, "/v1/sys/health", 200);
    let sim: Value = serde_json::from_str(&sim).expect("kms-sim's health is JSON");
    assert_eq!(field(&sim, "sealed"), false, "kms-sim: {sim}");

    // A fresh raft node: uninitialised and sealed, on raft storage.
    let raft = wait_or_panic(
        &compose,
        "openbao-raft",
        OPENBAO_RAFT_PORT,
        "/v1/sys/seal-status",
        200,
    );
    let raft: Value = serde_json::from_str(&raft).expect("openbao-raft's seal-status is JSON");
    assert_eq!(field(&raft, "initialized"), false, "openbao-raft: {raft}");
    assert_eq!(field(&raft, "sealed"), true, "openbao-raft: {raft}");
    assert_eq!(field(&raft, "storage_type"), "raft", "openbao-raft: {raft}");
    // And its health says so: 501, not initialised.
    let (status, _) = docker_support::http_get(
        &format!("http://127.0.0.1:{OPENBAO_RAFT_PORT}"),
        "/v1/sys/health",
    )
    .expect("openbao-raft's health");
    assert_eq!(status, 501, "openbao-raft's health while uninitialised");
    // Its storage is the named volume, which `down -v` removes.
    let volume = format!("{PROJECT}_openbao-raft-data");
    assert!(
        project_volumes().contains(&volume),
        "no volume {volume}: {:?}",
        project_volumes()
    );

    // pykmip: a real KMIP server behind mutual TLS with the certificates made above.
    let versions = wait_for_pykmip(&compose, &certs);
    assert!(
        versions.contains(&ProtocolVersion::V1_2),
        "pykmip offers {versions:?}, not 1.2"
    );
    let address = format!("127.0.0.1:{PYKMIP_PORT}");
    let run = live::wekasim(
        &[
            "run",
            "kmip-startup-unwrap",
            "--kmip",
            &address,
            "--client-cert",
            &certs.path("client.pem"),
            "--client-key",
            &certs.path("client.key"),
            "--ca-cert",
            &certs.path("ca.pem"),
        ],
        &[],
    );
    let key = certs.read("client.key");
    let key_lines: Vec<&str> = key
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .collect();
    run.assert_live_pass(&key_lines);

    assert_eq!(project_containers().len(), 4, "four services running");

    drop(guard);
    assert!(
        project_containers().is_empty(),
        "containers left after down -v: {:?}",
        project_containers()
    );
    assert!(
        project_volumes().is_empty(),
        "volumes left after down -v: {:?}",
        project_volumes()
    );
}
