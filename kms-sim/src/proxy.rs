//! A forwarding HTTP proxy that puts [`Chaos`] faults in front of a **real** Vault (OpenBao).
//!
//! Live runs only: this module talks to real peers over real TCP, and nothing in a simulated
//! run uses it (the simulation wraps [`crate::VaultSim`] with [`Chaos`] directly). Its
//! behaviour depends on the real network and the real upstream, so it is outside the
//! determinism contract; it still reads no real clock itself (timeouts use tokio's clock).
//!
//! Composition, on a real port:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use kms_sim::chaos::Chaos;
//! use kms_sim::proxy::Forward;
//! use kms_sim::serve::serve_tcp;
//!
//! let forward = Forward::new("http://127.0.0.1:8200");
//! let chaos = Chaos::default();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! tokio::spawn(serve_tcp(listener, chaos.wrap(forward.router()), chaos.clone()));
//! // Later: the OpenBao container came back on another port.
//! forward.set_upstream("http://127.0.0.1:32771");
//! # Ok(())
//! # }
//! ```
//!
//! Choices:
//! - An upstream that does not answer (connection refused, reset, no complete answer within
//!   the exchange bound, not a valid `http://host:port`) gets **502** with a Vault-shaped body
//!   `{"errors":["upstream Vault unreachable"]}`, as a load balancer in front of Vault answers.
//!   A client therefore sees a 5xx Vault error (which it retries) rather than a refused
//!   connection: refusal is a fault of its own ([`Fault::Refuse`](crate::chaos::Fault)).
//! - Each forwarded request opens its own upstream connection (no pool), so a changed upstream
//!   takes effect at the next request and no connection to a restarted Vault goes stale.
//! - Bodies are buffered whole (Vault's bodies are small; [`Chaos`]'s truncation buffers
//!   anyway), up to [`MAX_BODY`] each way, which is Vault's own default request limit.
//! - Hop-by-hop headers (RFC 9110 §7.6.1, and any the `Connection` header names) are not
//!   forwarded either way; `Host` is rewritten to the upstream's authority. Everything else,
//!   `X-Vault-Token` and `X-Vault-Namespace` included, passes unchanged.

use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;

use crate::vault::response::VaultError;

/// Default bound on one upstream exchange (connect, send, read the whole answer).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request or response body forwarded: Vault's default `max_request_size`, the
/// simulated Vault's limit too.
pub const MAX_BODY: usize = crate::vault::MAX_BODY;

/// The error message of the 502 answer when the upstream does not answer.
pub const UNREACHABLE: &str = "upstream Vault unreachable";

/// Forwards every request to an upstream Vault whose address can change at run time.
/// Cheap to clone; clones share the upstream address and the request count.
#[derive(Debug, Clone)]
pub struct Forward {
    shared: Arc<Shared>,
    timeout: Duration,
}

#[derive(Debug)]
struct Shared {
    /// The base URL as last set, `http://host:port`.
    upstream: Mutex<String>,
    requests: AtomicU64,
}

impl Forward {
    /// A proxy to `base` (`http://host:port`, a trailing `/` allowed), with the default
    /// exchange bound of [`DEFAULT_TIMEOUT`].
    pub fn new(base: impl Into<String>) -> Self {
        Forward {
            shared: Arc::new(Shared {
                upstream: Mutex::new(base.into()),
                requests: AtomicU64::new(0),
            }),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Bounds each upstream exchange by `timeout` instead. Applies to routers made after it.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Points every later request at `base` (`http://host:port`), e.g. after the upstream's
    /// container restarted on another port. Requests already in flight finish where they went.
    ///
    /// An invalid base is not refused here: requests answer 502 (and log why) until it is
    /// set to a valid one.
    pub fn set_upstream(&self, base: impl Into<String>) {
        *self.lock_upstream() = base.into();
    }

    /// The base URL as last set.
    pub fn upstream(&self) -> String {
        self.lock_upstream().clone()
    }

    /// Requests the proxy tried to forward (answered by the upstream or not). Requests a
    /// [`Chaos`] fault answered in front of the proxy never reach it and are not counted.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// The router that forwards every method and path.
    pub fn router(&self) -> Router {
        Router::new().fallback(forward).with_state(self.clone())
    }

    fn lock_upstream(&self) -> std::sync::MutexGuard<'_, String> {
        self.shared
            .upstream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `http://host:port[/]` to `host:port`.
fn authority_of(base: &str) -> Result<http::uri::Authority, String> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("upstream {base:?} is not an http:// URL"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let authority: http::uri::Authority = rest
        .parse()
        .map_err(|_| format!("upstream {base:?} is not http://host:port"))?;
    if authority.port().is_none() || authority.as_str().contains('@') {
        return Err(format!("upstream {base:?} is not http://host:port"));
    }
    Ok(authority)
}

/// Headers that belong to one connection, not to the message (RFC 9110 §7.6.1), plus
/// `Expect` (the whole body is already read) and `Host` (rewritten).
const HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::EXPECT,
];

/// Removes hop-by-hop headers, and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::HOST);
}

/// The 502 a load balancer in front of Vault answers when the upstream does not.
fn bad_gateway() -> Response {
    VaultError::new(StatusCode::BAD_GATEWAY, UNREACHABLE).into_response()
}

async fn forward(State(fwd): State<Forward>, req: Request) -> Response {
    fwd.shared.requests.fetch_add(1, Ordering::Relaxed);
    let base = fwd.upstream();
    let authority = match authority_of(&base) {
        Ok(a) => a,
        Err(reason) => {
            tracing::warn!(%reason, "proxy: no valid upstream");
            return bad_gateway();
        }
    };

    let (mut parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            tracing::debug!(error = %e, "proxy: cannot read the request body");
            return VaultError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
                .into_response();
        }
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = match target.parse() {
        Ok(uri) => uri,
        Err(_) => return VaultError::bad_request("bad request target").into_response(),
    };
    strip_hop_by_hop(&mut parts.headers);
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        parts.headers.insert(header::HOST, host);
    }
    let upstream_req = hyper::Request::from_parts(parts, Full::new(body));

    match tokio::time::timeout(fwd.timeout, exchange(authority.as_str(), upstream_req)).await {
        Ok(Ok((mut parts, body))) => {
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Body::from(body))
        }
        Ok(Err(reason)) => {
            tracing::debug!(upstream = %base, %reason, "proxy: upstream did not answer");
            bad_gateway()
        }
        Err(_) => {
            let ms = fwd.timeout.as_millis() as u64;
            tracing::debug!(upstream = %base, ms, "proxy: no answer from upstream in time");
            bad_gateway()
        }
    }
}

/// One request on a fresh connection to `authority`, and its whole answer.
///
/// The connection is driven inside this future (not by a spawned task), so when the caller's
/// timeout drops it, the socket closes with it: a hung upstream holds nothing afterwards.
async fn exchange(
    authority: &str,
    req: hyper::Request<Full<Bytes>>,
) -> Result<(http::response::Parts, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let mut work = pin!(async move {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("read answer: {e}"))?
            .to_bytes();
        Ok((parts, body))
    });
    let mut conn = pin!(conn);
    let mut conn_done = false;
    loop {
        tokio::select! {
            biased;
            result = &mut work => return result,
            // The connection ended (the upstream closed it, or failed): whatever it delivered
            // is in the answer's channels, and `work` finishes or fails on its next poll.
            _ = &mut conn, if !conn_done => conn_done = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_base_urls() {
        assert_eq!(
            authority_of("http://127.0.0.1:8200").unwrap().as_str(),
            "127.0.0.1:8200"
        );
        assert_eq!(
            authority_of("http://vault:8200/").unwrap().as_str(),
            "vault:8200"
        );
        for bad in [
            "127.0.0.1:8200",
            "https://127.0.0.1:8200",
            "http://127.0.0.1",
            "http://127.0.0.1:8200/v1",
            "http://u@127.0.0.1:8200",
            "http://",
        ] {
            assert!(authority_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("host", "proxy:1"),
            ("x-private", "1"),
            ("x-vault-token", "root"),
            ("x-vault-namespace", "tenant-a"),
            ("content-type", "application/json"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-vault-namespace", "x-vault-token"]);
    }
}
