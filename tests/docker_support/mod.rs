//! Helpers for the tests that run wekasim's container images (tests/container_gate.rs,
//! tests/compose.rs): the images are built locally by `bash tests/images.sh` (no registry is
//! reachable, so nothing is ever pulled), a test fails when one is missing, and every wait is
//! a bounded poll.
//!
//! [`OpenBaoContainer::start`] is the one place that starts a real OpenBao for a test: a live
//! runner that plays scenario files against a real Vault can take its [`base_url`] as the
//! Vault's address.
//!
//! [`base_url`]: OpenBaoContainer::base_url

#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::Duration;

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
    base_url: String,
}

impl<'d> OpenBaoContainer<'d> {
    /// Starts the container, publishes its port 8200 on a free host port, and returns once
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
        let container = docker.run(RunnableImage::from((image, args)));
        let port = container.get_host_port_ipv4(OPENBAO_PORT);
        let bao = OpenBaoContainer {
            container,
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
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| format!("{addr}: {e}"))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")
        .map_err(|e| format!("send to {addr}: {e}"))?;
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
