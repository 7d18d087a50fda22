//! PyKMIP servers this process spawns from `pykmip-server`: the real KMIP peer of live runs
//! and of the KMIP live tests.
//!
//! Each server gets a fresh temp dir holding the certificates made for it at start
//! ([`pki::LivePki`]), its config, its SQLite database and its logs, and listens with mutual
//! TLS on a loopback port. A server never outlives the process that spawned it, and its temp
//! dir goes with it. Private keys never leave the temp dir and `Secret`s; a start failure
//! quotes the server's logs, which hold none.

pub mod pki;

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use pki::{Identity, LivePki};

/// How often a start or a stop looks again.
const POLL: Duration = Duration::from_millis(50);
/// Until the port accepts: PyKMIP opens it after ~0.8 s on an idle machine; the machines
/// these tests run on are shared, and a Python start can take many times that.
const START_POLLS: u32 = 600; // 30 s
/// After SIGTERM, this many polls (12 s) before SIGKILL: PyKMIP takes ~10 s to exit.
const EXIT_POLLS: u32 = 240;
/// Lines of each log quoted in a start failure.
const LOG_TAIL: usize = 25;
/// Attempts at a fresh port when a new server finds its port taken.
const PORT_ATTEMPTS: usize = 4;

/// A PyKMIP server this process spawned, in a process group of its own with the helper
/// processes it forks. Dropping it kills the group and removes its temp dir (certificates, config, database, logs): on success, on error and on panic
/// unwinding alike. [`PyKmip::stop`] stops it gently first.
pub struct PyKmip {
    bin: PathBuf,
    port: u16,
    /// Certificates, config, database, policy dir and logs.
    dir: PathBuf,
    child: Option<Child>,
    pki: LivePki,
}

impl fmt::Debug for PyKmip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PyKmip")
            .field("addr", &self.addr())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("dir", &self.dir)
            .field("clients", &self.pki.clients.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for PyKmip {
    fn drop(&mut self) {
        // No gentle stop here: a drop cannot wait 10 s, and nothing of the server is kept.
        if let Some(mut child) = self.child.take() {
            signal_group(&child, libc::SIGKILL);
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which certificate a server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCert {
    /// Its own, for 127.0.0.1 and localhost.
    Right,
    /// [`LivePki::wrong_name_server`]: signed by the right CA for another name, which a
    /// client must refuse.
    WrongName,
}

impl PyKmip {
    /// A server with fresh certificates for the clients `client_cns`, accepting connections
    /// when this returns.
    pub async fn start(bin: &Path, client_cns: &[&str]) -> Result<PyKmip, String> {
        PyKmip::start_as(bin, client_cns, ServerCert::Right).await
    }

    /// As [`PyKmip::start`], presenting `cert`.
    pub async fn start_as(
        bin: &Path,
        client_cns: &[&str],
        cert: ServerCert,
    ) -> Result<PyKmip, String> {
        if !bin.is_file() {
            return Err(format!(
                "the PyKMIP server {} does not exist",
                bin.display()
            ));
        }
        // The server runs in its temp dir: a relative path would be looked up there.
        let bin = std::path::absolute(bin)
            .map_err(|e| format!("the PyKMIP server {}: {e}", bin.display()))?;
        let mut pki = LivePki::generate(client_cns)?;
        if cert == ServerCert::WrongName {
            pki.server = pki.wrong_name_server.clone();
        }
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut server = PyKmip {
                bin: bin.clone(),
                port,
                dir: make_temp_dir(port)?,
                child: None,
                pki: pki.clone(),
            };
            server.write_files()?;
            server.spawn()?;
            match server.wait_accepting().await {
                Ok(()) => return Ok(server),
                Err(e)
                    if server
                        .log_text()
                        .to_lowercase()
                        .contains("address already in use") =>
                {
                    last = e
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Where it listens: `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((pki::SERVER_IP, self.port))
    }

    /// The name its certificate is checked against (its IP; `localhost` is in it too).
    pub fn server_name(&self) -> String {
        pki::SERVER_IP.to_string()
    }

    /// The CA that signed its certificate and the clients'.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// The client certificate and key for `cn`, one of the CNs it was started with.
    pub fn client(&self, cn: &str) -> Result<&Identity, String> {
        self.pki.clients.get(cn).ok_or_else(|| {
            format!(
                "PyKMIP at {} has no client certificate for CN {cn:?} (it has {:?})",
                self.addr(),
                self.pki.clients.keys().collect::<Vec<_>>()
            )
        })
    }

    /// Every certificate of this server, the refused ones included.
    pub fn pki(&self) -> &LivePki {
        &self.pki
    }

    /// Its temp dir (certificates, config, database, logs), removed by a stop or drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's pid while it runs; also the id of its process group.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, up to 12 s for it to exit, then SIGKILL; then its temp dir goes. Stopping a
    /// stopped server succeeds.
    pub async fn stop(&mut self) -> Result<(), String> {
        let addr = self.addr();
        // The child stays in `self` until it is reaped: if this is cancelled, Drop kills it.
        if let Some(child) = self.child.as_mut() {
            signal_group(child, libc::SIGTERM);
            for _ in 0..EXIT_POLLS {
                if has_exited(child) {
                    break;
                }
                tokio::time::sleep(POLL).await;
            }
            // Whatever of the group is left (all of it after 12 s; a helper process that
            // outlived the server otherwise). The server is not reaped yet, so the group's
            // id is still ours.
            signal_group(child, libc::SIGKILL);
            child
                .wait()
                .map_err(|e| format!("PyKMIP at {addr}: waiting for it to exit: {e}"))?;
            self.child = None;
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!(
                "PyKMIP at {addr}: removing {}: {e}",
                self.dir.display()
            )),
        }
    }

    /// Kills the server (its whole process group) at once and keeps its temp dir: its
    /// database survives for [`PyKmip::resume`]. A crash, as far as clients can tell; SQLite
    /// keeps what was committed. Halting a halted server succeeds.
    pub fn halt(&mut self) -> Result<(), String> {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, libc::SIGKILL);
            child
                .wait()
                .map_err(|e| format!("PyKMIP at {}: waiting for it to exit: {e}", self.addr()))?;
        }
        Ok(())
    }

    /// Starts a halted server again on the same port, config and database; returns once
    /// it accepts connections. Resuming a running server succeeds.
    pub async fn resume(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn()?;
        self.wait_accepting().await
    }

    /// Whether the server process runs (it may not accept yet).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Its stdout and stderr: a Python traceback before its logging starts lands here.
    fn console_path(&self) -> PathBuf {
        self.dir.join("console.log")
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("server.conf")
    }

    /// Certificates, its key (readable by us only), an empty policy dir, and the config.
    fn write_files(&self) -> Result<(), String> {
        let write = |name: &str, text: &str, mode: u32| write_new_file(&self.dir, name, text, mode);
        let ca = write("ca.pem", &self.pki.ca_pem, 0o644)?;
        let cert = write("server.pem", &self.pki.server.cert_pem, 0o644)?;
        let key = write("server.key", self.pki.server.key_pem.expose(), 0o600)?;
        let policies = self.dir.join("policies");
        std::fs::create_dir(&policies).map_err(|e| format!("{}: {e}", policies.display()))?;
        let db = self.dir.join("pykmip.db");
        let config = format!(
            "[server]\n\
             hostname=127.0.0.1\n\
             port={port}\n\
             certificate_path={cert}\n\
             key_path={key}\n\
             ca_path={ca}\n\
             auth_suite=TLS1.2\n\
             policy_path={policies}\n\
             enable_tls_client_auth=True\n\
             database_path={db}\n\
             logging_level=INFO\n",
            port = self.port,
            cert = cert.display(),
            key = key.display(),
            ca = ca.display(),
            policies = policies.display(),
            db = db.display(),
        );
        write("server.conf", &config, 0o644).map(|_| ())
    }

    fn spawn(&mut self) -> Result<(), String> {
        let console_path = self.console_path();
        let console = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console_path)
            .map_err(|e| format!("{}: {e}", console_path.display()))?;
        let err = console
            .try_clone()
            .map_err(|e| format!("{}: {e}", console_path.display()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-f")
            .arg(self.config_path())
            .arg("-l")
            .arg(self.log_path());
        // If this process dies without dropping the server (killed, Ctrl-C), the kernel
        // kills the server too. Its helper processes do not inherit this and outlive it
        // (they are left in its process group, `wekasim-pykmip-*` in their command line).
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
            // Its own process group, so a stop reaches the processes it forks as well.
            .process_group(0)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(console))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Until its port accepts a TCP connection; fails early (with its logs' tails) if the
    /// process exits, and after [`START_POLLS`].
    async fn wait_accepting(&mut self) -> Result<(), String> {
        let addr = self.addr();
        for _ in 0..START_POLLS {
            let Some(child) = self.child.as_mut() else {
                return Err(self.with_log(format!("PyKMIP at {addr} is not running")));
            };
            if has_exited(child) {
                // Reaped only after its group is gone (see `has_exited`).
                signal_group(child, libc::SIGKILL);
                let status = match child.wait() {
                    Ok(s) => s.to_string(),
                    Err(e) => e.to_string(),
                };
                self.child = None;
                return Err(self.with_log(format!("PyKMIP for {addr} exited ({status})")));
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Err(self.with_log(format!(
            "PyKMIP at {addr} did not accept connections within {} s",
            (POLL * START_POLLS).as_secs()
        )))
    }

    fn log_text(&self) -> String {
        let read = |p: PathBuf| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        format!("{}{}", read(self.console_path()), read(self.log_path()))
    }

    /// `msg`, then the last lines of its stdout/stderr and of its log.
    fn with_log(&self, msg: String) -> String {
        let mut out = msg;
        for path in [self.console_path(), self.log_path()] {
            let text = std::fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
            if tail.is_empty() {
                out.push_str(&format!("; {} is empty", path.display()));
            } else {
                out.push_str(&format!("; the end of {}:\n{tail}", path.display()));
            }
        }
        out
    }
}

/// `signal` to the server's process group: the server and the helper processes it forks
/// (PyKMIP's policy monitor and multiprocessing manager), which a signal to the server alone
/// would leave behind.
fn signal_group(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours. The group's id
        // is the pid of our own child, which is not reaped before its group is killed, so
        // the id cannot have been reused by another process's group.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

/// Whether the server has exited, without reaping it: while it is a zombie its pid, the id
/// of its process group, cannot be reused, so the group can still be signalled safely.
fn has_exited(child: &Child) -> bool {
    let pid: libc::id_t = child.id();
    // SAFETY: siginfo_t is plain data, for which all zero bytes is a valid value; waitid
    // writes only into it, and WNOWAIT leaves the child unreaped.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // -1: not our child any more (already reaped), which counts as exited.
        r == -1 || info.si_pid() != 0
    }
}

/// A fresh directory under the system temp dir, unique per process, port and call, that
/// only this user can read (it holds the server's private key).
fn make_temp_dir(port: u16) -> Result<PathBuf, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = std::env::temp_dir();
    for _ in 0..100 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = tmp.join(format!("wekasim-pykmip-{}-{port}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
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

/// A loopback port that was free a moment ago: the kernel's pick for port 0. Another
/// process may take it before PyKMIP binds it; [`PyKmip::start`] then tries another.
fn free_port() -> Result<u16, String> {
    let probe = StdListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind a loopback port: {e}"))?;
    probe
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot bind a loopback port: {e}"))
}

/// Writes `text` to a new file `name` in `dir` with permissions `mode` (a key: 0o600) and
/// answers its path; a file already there is an error, never overwritten.
pub(crate) fn write_new_file(
    dir: &Path,
    name: &str,
    text: &str,
    mode: u32,
) -> Result<PathBuf, String> {
    let path = dir.join(name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_binary_is_an_error() {
        let e = PyKmip::start(Path::new("/nonexistent/pykmip-server"), &["a"])
            .await
            .unwrap_err();
        assert!(e.contains("/nonexistent/pykmip-server"), "{e}");
    }

    #[tokio::test]
    async fn a_server_that_exits_is_reported_with_its_output() {
        // `false` exits at once without listening: the start fails early and says so.
        let e = PyKmip::start(Path::new("/bin/false"), &["a"])
            .await
            .unwrap_err();
        assert!(e.contains("exited"), "{e}");
        assert!(e.contains("console.log is empty"), "{e}");
    }
}
