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
use std::sync::Arc;
use std::time::Duration;

use cluster::http::{HttpClient, HttpError};
use cluster::net::TcpDialer;
use cluster::secret::Secret;
use serde_json::{json, Value};

use super::docker::DockerVault;
use super::openbao::OpenBaoServer;
use crate::kms::vault::VaultAdmin;

/// How often a wait polls, and how many polls make its deadline (wall time, not simulated:
/// a count of polls `POLL` apart, each bounded by [`POLL_TIMEOUT`]).
pub(crate) const POLL: Duration = Duration::from_millis(50);
/// 30 s of polls: a raft server answers after ~0.3 s; a container may take longer.
pub(crate) const ANSWER_POLLS: u32 = 600;
/// One health request while waiting.
pub(crate) const POLL_TIMEOUT: Duration = Duration::from_secs(1);
/// An ordinary admin request.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
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

pub(crate) fn client(timeout: Duration) -> HttpClient {
    HttpClient::new(Arc::new(TcpDialer), timeout)
}

/// Why a request got no answer, without the address (the caller names the Vault).
fn no_answer_reason(e: &HttpError) -> String {
    let reason = match e {
        HttpError::Connect { reason, .. } => reason.clone(),
        HttpError::Timeout { ms, .. } => format!("no answer within {ms} ms"),
        HttpError::Protocol { reason, .. } => reason.clone(),
        HttpError::Garbled { reason, .. } => format!("unreadable answer: {reason}"),
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

pub(crate) async fn health_with(http: &HttpClient, base: &str) -> Result<Health, HealthError> {
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

/// Initialises a new Vault with one key share (`PUT sys/init`; on raft it waits for the node
/// to elect itself, so give `timeout` seconds): its root token and its unseal key. Only
/// those two are taken from the answer.
pub async fn initialise(base: &str, timeout: Duration) -> Result<(Secret, Secret), String> {
    let answer = exchange(
        &client(timeout),
        base,
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    )
    .await
    .map_err(|e| e.to_string())?;
    if answer.status != 200 {
        return Err(format!(
            "Vault at {base} refused PUT sys/init: {}",
            answer.describe(&[])
        ));
    }
    let v = answer.json().unwrap_or(Value::Null);
    let field = |pointer: &str| v.pointer(pointer).and_then(Value::as_str).map(Secret::new);
    match (field("/root_token"), field("/keys/0")) {
        (Some(root), Some(key)) => Ok((root, key)),
        _ => Err(format!(
            "Vault at {base}: PUT sys/init answered without root_token and keys"
        )),
    }
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
    let admin = VaultAdmin {
        http: &http,
        base,
        root_token: token.expose(),
    };
    let at = |e: String| format!("Vault at {base}: {e}");
    // lookup-self's answer carries the token itself (data.id): only two fields are read.
    let me = admin
        .call("GET", "auth/token/lookup-self", None)
        .await
        .map_err(at)?;
    let own = me
        .pointer("/data/accessor")
        .and_then(Value::as_str)
        .ok_or_else(|| at("GET auth/token/lookup-self answered without data.accessor".into()))?;
    if me.pointer("/data/orphan").and_then(Value::as_bool) == Some(false) {
        return Err(at(
            "the token given to revoke the other tokens is not an orphan: revoking its parent \
             would revoke it too (use a root or orphan token)"
                .into(),
        ));
    }
    let mut revoked = 0;
    for accessor in admin.token_accessors().await.map_err(at)? {
        if accessor != own && admin.revoke_accessor(&accessor).await.map_err(at)? {
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
pub(crate) async fn wait_answers(
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

/// Polls until the Vault at `base` is the active node (200, unsealed, not standby), at most
/// `polls` times: a raft node needs a moment to elect itself after an unseal. A poll
/// without an answer counts as not yet.
pub async fn wait_active(base: &str, polls: u32) -> Result<(), String> {
    let http = client(POLL_TIMEOUT);
    let mut last = String::from("no poll yet");
    for _ in 0..polls {
        match health_with(&http, base).await {
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
    Err(format!(
        "Vault at {base} did not become active within {:.0} s (last: {last})",
        (POLL * polls).as_secs_f64()
    ))
}

/// Polls until `sys/health` no longer answers at all.
pub(crate) async fn wait_silent(base: &str, polls: u32) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::tests_support::root_call;
    use super::*;
    use crate::live::openbao::{free_port_pair, test_bao_bin};

    fn bao_bin() -> PathBuf {
        test_bao_bin()
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
    async fn external_cannot_restart() {
        let mut v = VaultProcess::External {
            base: "http://127.0.0.1:1".into(),
        };
        assert!(!v.can_restart());
        assert!(v.stop().await.unwrap_err().contains("external"));
        assert!(v.start().await.unwrap_err().contains("external"));
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
}

/// Test helpers shared with the tests of the other live modules.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    pub(crate) async fn root_call(
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
}
