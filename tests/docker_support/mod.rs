//! Helpers for the tests that run wekasim's container images (tests/container_gate.rs,
//! tests/compose.rs): the images are built locally by `bash tests/images.sh` (no registry is
//! reachable, so nothing is ever pulled), a test fails when one is missing, and every wait is
//! a bounded poll.
//!
//! [`OpenBaoContainer::start`] starts a real OpenBao dev server for a test (in memory: it does
//! not survive a restart); [`OpenBaoRaftContainer::start`] one on raft storage, initialised
//! and unsealed, that survives `docker stop` / `docker start` with its keys and comes back
//! sealed, for `wekasim run --vault-container`.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cluster::secret::Secret;
use scenarios::live::vault;
use testcontainers::clients::Cli;
use testcontainers::{Container, GenericImage, RunnableImage};

/// The OpenBao image `tests/images.sh` builds: `FROM scratch` and the static `bao` binary.
pub const OPENBAO_IMAGE: &str = "wekasim/openbao";
pub const OPENBAO_TAG: &str = "2.7.2";
/// The dev server's root token.
pub const ROOT_TOKEN: &str = "root";
/// The port OpenBao listens on inside the container.
const OPENBAO_PORT: u16 = 8200;

/// How often and how many times a readiness poll tries: 100 ms apart, 30 s in all.
const POLL_EVERY: Duration = Duration::from_millis(100);
const POLL_TRIES: u32 = 300;

/// Fails the test unless the image `name:tag` is in the local engine. testcontainers would
/// try to pull a missing image, and no registry is reachable: say how to build it instead.
pub fn require_image(name: &str, tag: &str) {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}"])
        .arg(format!("{name}:{tag}"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `docker image inspect` ({e}): is Docker installed?")
        });
    assert!(
        out.status.success(),
        "the image {name}:{tag} is missing: build it with `bash tests/images.sh` \
         (no image registry is reachable, images are built locally)\n{}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// A real OpenBao 2.7.2 dev server (in memory, unsealed, root token [`ROOT_TOKEN`]) in a
/// container started by testcontainers. Dropping it removes the container, also when the test
/// panics: never `mem::forget` it.
pub struct OpenBaoContainer<'d> {
    container: Container<'d, GenericImage>,
    /// Dropped after the container: its port is published on 127.0.0.1 only.
    _network: LoopbackNetwork,
    base_url: String,
}

impl<'d> OpenBaoContainer<'d> {
    /// Starts the container, publishes its port 8200 on a free loopback port (a dev server
    /// with a well-known root token must not be reachable from elsewhere), and returns once
    /// `/v1/sys/health` answers 200 (active, unsealed). Panics with a message naming
    /// `bash tests/images.sh` if the image is missing, or with OpenBao's log if it never
    /// becomes healthy.
    pub fn start(docker: &'d Cli) -> Self {
        require_image(OPENBAO_IMAGE, OPENBAO_TAG);
        let image = GenericImage::new(OPENBAO_IMAGE, OPENBAO_TAG).with_exposed_port(OPENBAO_PORT);
        let args = vec![
            "server".to_string(),
            "-dev".to_string(),
            format!("-dev-root-token-id={ROOT_TOKEN}"),
            format!("-dev-listen-address=0.0.0.0:{OPENBAO_PORT}"),
        ];
        // No log-line wait inside testcontainers: a container whose wait fails there is never
        // handed back, so nothing would remove it. Wait for health here instead, with the
        // container already owned by `Self`.
        let network = LoopbackNetwork::create();
        let container = docker.run(RunnableImage::from((image, args)).with_network(network.name()));
        let port = container.get_host_port_ipv4(OPENBAO_PORT);
        let bao = OpenBaoContainer {
            container,
            _network: network,
            base_url: format!("http://127.0.0.1:{port}"),
        };
        if let Err(e) = wait_for_status(&bao.base_url, "/v1/sys/health", 200) {
            panic!(
                "OpenBao in container {} never became healthy: {e}\n--- its log ---\n{}",
                bao.id(),
                container_logs(bao.id())
            );
        }
        bao
    }

    /// `http://127.0.0.1:PORT`: the Vault address for clients on this host (no `/v1`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn root_token(&self) -> &str {
        ROOT_TOKEN
    }

    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// The network it is on (removed with it).
    pub fn network(&self) -> &str {
        self._network.name()
    }
}

/// Health polls (50 ms apart) an unsealed container gets to become active: 30 s.
const UNSEAL_POLLS: u32 = 600;

/// Runs one of the project's async Vault calls from a blocking test.
fn block_on<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(fut)
}

/// Where [`OpenBaoRaftContainer`] finds its config inside the container (bind-mounted,
/// read-only, from a temp dir of the test's).
const RAFT_CONFIG_DIR: &str = "/openbao/config";

/// The raft config of [`OpenBaoRaftContainer`]: one node, plain HTTP. Its data goes to
/// `/tmp` in the container's own filesystem (the image is `FROM scratch`: `/tmp` is its only
/// writable directory, and the raft path must exist), which survives `docker stop` and
/// `docker start` and goes away with the container; no file the container writes as root
/// lands on the host. `performance_multiplier = 1`: raft's fast timings, so the single node
/// elects itself within a second of an unseal (the default 5 makes it wait 5–10 s).
const RAFT_CONFIG: &str = r#"storage "raft" {
  path                   = "/tmp"
  node_id                = "wekasim-gate-1"
  performance_multiplier = 1
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  # Plain HTTP: the port is published on 127.0.0.1 only (see LoopbackNetwork).
  tls_disable = true
}

# A single node: it only ever talks to itself.
api_addr     = "http://127.0.0.1:8200"
cluster_addr = "https://127.0.0.1:8201"

ui = false
"#;

/// A real OpenBao 2.7.2 on raft storage in a container started by testcontainers, on a
/// [`LoopbackNetwork`] (its port 8200 is published on 127.0.0.1 only), initialised with one
/// key share and unsealed through the HTTP API, and active when [`OpenBaoRaftContainer::start`]
/// returns. Like a production Vault it survives `docker stop` / `docker start` with its data
/// and comes back sealed.
///
/// Dropping it removes the container, then the network, then the temp dir holding the
/// config: also when the test panics. The fields drop in this order (declaration order).
pub struct OpenBaoRaftContainer<'d> {
    container: Container<'d, GenericImage>,
    _network: LoopbackNetwork,
    _config: ScratchDir,
    base_url: String,
    root_token: String,
    unseal_key: String,
}

impl<'d> OpenBaoRaftContainer<'d> {
    /// Starts, initialises and unseals the server. Panics (after which everything is removed)
    /// with a message naming `bash tests/images.sh` if the image is missing, or with
    /// OpenBao's log if it never answers or never becomes active. No panic message carries
    /// the root token or the unseal key.
    pub fn start(docker: &'d Cli) -> Self {
        require_image(OPENBAO_IMAGE, OPENBAO_TAG);
        // Declared before the container, so dropped after it if anything below panics.
        let config = ScratchDir::new("openbao-raft");
        config.write("config.hcl", RAFT_CONFIG);
        let network = LoopbackNetwork::create();
        let image = GenericImage::new(OPENBAO_IMAGE, OPENBAO_TAG).with_exposed_port(OPENBAO_PORT);
        let args = vec![
            "server".to_string(),
            format!("-config={RAFT_CONFIG_DIR}/config.hcl"),
        ];
        let runnable = RunnableImage::from((image, args))
            .with_network(network.name())
            .with_volume((
                config.path().display().to_string(),
                format!("{RAFT_CONFIG_DIR}:ro"),
            ));
        let container = docker.run(runnable);
        let port = container.get_host_port_ipv4(OPENBAO_PORT);
        let mut bao = OpenBaoRaftContainer {
            container,
            _network: network,
            _config: config,
            base_url: format!("http://127.0.0.1:{port}"),
            root_token: String::new(),
            unseal_key: String::new(),
        };
        bao.initialise();
        bao.unseal();
        bao
    }

    /// `PUT sys/init` with one key share, once the server answers (uninitialised: 501).
    fn initialise(&mut self) {
        if let Err(e) = wait_for_status(&self.base_url, "/v1/sys/health", 501) {
            self.fail(&format!("never answered as an uninitialised OpenBao: {e}"));
        }
        match block_on(vault::initialise(&self.base_url, Duration::from_secs(30))) {
            Ok((root, key)) => {
                self.root_token = root.expose().to_string();
                self.unseal_key = key.expose().to_string();
            }
            Err(e) => self.fail(&e),
        }
    }

    /// `PUT sys/unseal` with the key, then waits until the node is active (200).
    pub fn unseal(&self) {
        let key = Secret::new(self.unseal_key.as_str());
        let unsealed = block_on(async {
            vault::unseal(&self.base_url, &key).await?;
            vault::wait_active(&self.base_url, UNSEAL_POLLS).await
        });
        if let Err(e) = unsealed {
            self.fail(&e);
        }
    }

    fn fail(&self, what: &str) -> ! {
        let log = redact(
            &container_logs(self.id()),
            &[&self.root_token, &self.unseal_key],
        );
        panic!(
            "OpenBao (raft) in container {} at {}: {what}\n--- its log ---\n{log}",
            self.id(),
            self.base_url
        )
    }

    /// `http://127.0.0.1:PORT` as published when it started (a restart may change the port:
    /// see [`published_base_url`]).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The root token `sys/init` returned.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The one unseal key `sys/init` returned.
    pub fn unseal_key(&self) -> &str {
        &self.unseal_key
    }

    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// The network it is on and the host dir holding its config (both removed with it).
    pub fn leftovers_to_be(&self) -> (String, PathBuf) {
        (
            self._network.name().to_string(),
            self._config.path().to_path_buf(),
        )
    }

    /// The container's state as `docker inspect` says it (`running`, `exited`, ...).
    pub fn state(&self) -> String {
        container_state(self.id())
    }

    /// When the container was last started.
    pub fn started_at(&self) -> String {
        container_started_at(self.id())
    }
}

/// `State.Status` of a container (`running`, `exited`, ...), or the error.
pub fn container_state(id: &str) -> String {
    inspect(id, "{{.State.Status}}")
}

/// `State.StartedAt` of a container: it changes when the container is started again.
pub fn container_started_at(id: &str) -> String {
    inspect(id, "{{.State.StartedAt}}")
}

/// One field of `docker inspect`, or the error in parentheses.
fn inspect(id: &str, format: &str) -> String {
    match Command::new("docker")
        .args(["inspect", "--format", format, id])
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Ok(out) => format!(
            "(docker inspect failed: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("(cannot run docker inspect: {e})"),
    }
}

/// Every host address a container's ports are published on (`HostIp` of each binding in
/// `docker inspect`), or the error.
pub fn published_host_ips(id: &str) -> Result<Vec<String>, String> {
    let text = inspect(id, "{{json .NetworkSettings.Ports}}");
    let ports: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("container {id}: port bindings {text:?}: {e}"))?;
    let bindings = ports
        .as_object()
        .ok_or_else(|| format!("container {id}: no port bindings: {text}"))?;
    Ok(bindings
        .values()
        .filter_map(serde_json::Value::as_array)
        .flatten()
        .map(|b| b["HostIp"].as_str().unwrap_or("?").to_string())
        .collect())
}

/// Fails the test unless the container publishes at least one port and every one on
/// 127.0.0.1 only (a Vault with a known root token must not be reachable from elsewhere).
pub fn assert_published_on_loopback_only(id: &str) {
    let ips = published_host_ips(id).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !ips.is_empty() && ips.iter().all(|ip| ip == "127.0.0.1"),
        "container {id} publishes its ports on {ips:?}, not on 127.0.0.1 only"
    );
}

/// Whether a container (or network) with this id or name still exists.
pub fn docker_object_exists(kind: &str, id: &str) -> bool {
    Command::new("docker")
        .args([kind, "inspect", id])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// `http://127.0.0.1:PORT` for the host port 8200/tcp of a container is published on now.
pub fn published_base_url(id: &str) -> Result<String, String> {
    let out = Command::new("docker")
        .args(["port", id, "8200/tcp"])
        .output()
        .map_err(|e| format!("cannot run docker port: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let port = text
        .lines()
        .filter_map(|l| l.trim().rsplit_once(':'))
        .find_map(|(_, p)| p.parse::<u16>().ok())
        .ok_or_else(|| format!("container {id} publishes no port for 8200/tcp: {text:?}"))?;
    Ok(format!("http://127.0.0.1:{port}"))
}

/// Every non-empty secret replaced by `<redacted>`.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_string(), |t, s| t.replace(s, "<redacted>"))
}

/// A user-defined bridge network whose published ports bind on 127.0.0.1 only
/// (`com.docker.network.bridge.host_binding_ipv4`): testcontainers 0.15 publishes with
/// `-P`, which otherwise binds 0.0.0.0, and its port mappings cannot name a host address.
/// testcontainers finds it existing and leaves it alone; dropping this removes it.
pub struct LoopbackNetwork {
    name: String,
}

impl LoopbackNetwork {
    pub fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "wekasim-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("docker")
            .args([
                "network",
                "create",
                "--driver",
                "bridge",
                "--opt",
                "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
                &name,
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `docker network create` ({e})"));
        assert!(
            out.status.success(),
            "docker network create {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        LoopbackNetwork { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for LoopbackNetwork {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.name])
            .output();
    }
}

/// A fresh directory under the system temp dir, removed with its contents when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "wekasim-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        ScratchDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` in this directory and returns its full path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a container printed (stdout and stderr), for a failure message.
pub fn container_logs(id: &str) -> String {
    match Command::new("docker").args(["logs", id]).output() {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("(cannot run `docker logs`: {e})"),
    }
}

/// One plain HTTP/1.0 GET (the server closes the connection after its answer): the status
/// code and the body.
pub fn http_get(base_url: &str, path: &str) -> Result<(u16, String), String> {
    http_call(base_url, "GET", path, None, None)
}

/// One plain HTTP/1.0 request (the server closes the connection after its answer), with an
/// optional `X-Vault-Token` and JSON body: the status code and the body. An error never
/// carries the token or the body sent.
pub fn http_call(
    base_url: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let authority = base_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {base_url}"))?;
    let addr = authority
        .to_socket_addrs()
        .map_err(|e| format!("{authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("{authority}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {authority}\r\n");
    if let Some(token) = token {
        request.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send {method} {path} to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{addr}: no complete HTTP answer ({} bytes)", raw.len()))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}: no status in {:?}", head.lines().next()))?;
    Ok((status, body.to_string()))
}

/// Polls `GET base_url + path` until it answers `want` (every 100 ms, at most 30 s) and
/// returns that answer's body; else the last answer or error.
pub fn wait_for_status(base_url: &str, path: &str, want: u16) -> Result<String, String> {
    let mut last = String::from("no attempt");
    for _ in 0..POLL_TRIES {
        match http_get(base_url, path) {
            Ok((status, body)) if status == want => return Ok(body),
            Ok((status, body)) => last = format!("HTTP {status}: {}", body.trim()),
            Err(e) => last = e,
        }
        std::thread::sleep(POLL_EVERY);
    }
    Err(format!(
        "GET {base_url}{path} did not answer {want} within {:?}; last: {last}",
        POLL_EVERY * POLL_TRIES
    ))
}
