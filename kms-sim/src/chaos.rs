//! Faults a scenario switches on and off in front of a simulated service: the ways a
//! KMS fails in the field, short of being sealed (the Vault models that itself).
//!
//! Every mode is deterministic: a fault applies to every request while it is on, so
//! the seed alone decides when requests meet it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::vault::response::VaultError;

/// What the service does to each request while the fault is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Serves normally.
    #[default]
    None,
    /// Accepts the connection and closes it at once (what a client sees as a refused or
    /// reset connection).
    Refuse,
    /// Accepts the request and never answers: the client's timeout must fire.
    Hang,
    /// HTTP 500 with a Vault error body.
    #[serde(rename = "error-500")]
    Error500,
    /// HTTP 503 with a Vault error body (an unavailable or standby node).
    #[serde(rename = "error-503")]
    Error503,
    /// HTTP 429, as Vault's rate-limit quotas answer.
    RateLimit,
    /// Answers after a delay (see [`Chaos::set_delay`]).
    Slow,
    /// HTTP 200 with a body that is not JSON.
    Malformed,
    /// HTTP 200 with the real answer cut in half.
    Truncated,
}

#[derive(Debug, Default)]
struct Inner {
    fault: Fault,
    delay: Duration,
    /// Requests that met a fault, for traces and reports.
    hits: u64,
}

/// The switch a scenario holds; cheap to clone, shared with the serving host.
#[derive(Debug, Clone, Default)]
pub struct Chaos(Arc<Mutex<Inner>>);

impl Chaos {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set(&self, fault: Fault) {
        self.lock().fault = fault;
    }

    pub fn fault(&self) -> Fault {
        self.lock().fault
    }

    /// The delay of [`Fault::Slow`].
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    pub fn hits(&self) -> u64 {
        self.lock().hits
    }

    /// The fault an answer meets now and the delay of [`Fault::Slow`], counting a hit if
    /// there is a fault (for services that apply the faults themselves, below their
    /// protocol: see [`crate::wire`]).
    pub fn meet(&self) -> (Fault, Duration) {
        let mut inner = self.lock();
        if inner.fault != Fault::None {
            inner.hits += 1;
        }
        (inner.fault, inner.delay)
    }

    /// Whether a new connection should be dropped unanswered.
    pub fn refuses(&self) -> bool {
        let mut inner = self.lock();
        if inner.fault == Fault::Refuse {
            inner.hits += 1;
            true
        } else {
            false
        }
    }

    /// Puts the faults in front of `app`.
    pub fn wrap(&self, app: Router) -> Router {
        app.layer(middleware::from_fn_with_state(self.clone(), apply))
    }
}

async fn apply(State(chaos): State<Chaos>, req: Request, next: Next) -> Response {
    let (fault, delay) = {
        let mut inner = chaos.lock();
        if inner.fault != Fault::None {
            inner.hits += 1;
        }
        (inner.fault, inner.delay)
    };
    match fault {
        Fault::None | Fault::Refuse => next.run(req).await,
        Fault::Hang => std::future::pending().await,
        Fault::Error500 => {
            VaultError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
        Fault::Error503 => VaultError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Vault is temporarily unavailable",
        )
        .into_response(),
        Fault::RateLimit => VaultError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "request rate limit quota exceeded",
        )
        .into_response(),
        Fault::Slow => {
            tokio::time::sleep(delay).await;
            next.run(req).await
        }
        Fault::Malformed => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"data\": <html>garbage"))
            .unwrap_or_default(),
        Fault::Truncated => {
            let resp = next.run(req).await;
            let (mut parts, body) = resp.into_parts();
            let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
            let cut = bytes.slice(..bytes.len() / 2);
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(cut))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    fn app(chaos: &Chaos) -> Router {
        chaos.wrap(Router::new().route("/v1/x", get(|| async { "{\"data\":{\"a\":1}}" })))
    }

    async fn call(app: Router) -> (u16, Vec<u8>) {
        crate::testing::call(app, Request::get("/v1/x").body(Body::empty()).unwrap()).await
    }

    const ANSWER: &[u8] = b"{\"data\":{\"a\":1}}";

    /// What each mode makes of a request that the service would answer with 200 ANSWER.
    #[tokio::test(start_paused = true)]
    async fn modes_change_the_answer() {
        let chaos = Chaos::default();
        assert_eq!(call(app(&chaos)).await, (200, ANSWER.to_vec()));
        assert_eq!(chaos.hits(), 0, "no fault, no hit");

        for (fault, status, message) in [
            (Fault::Error500, 500, "internal error"),
            (Fault::Error503, 503, "Vault is temporarily unavailable"),
            (Fault::RateLimit, 429, "request rate limit quota exceeded"),
        ] {
            chaos.set(fault);
            let (got, body) = call(app(&chaos)).await;
            assert_eq!(got, status, "{fault:?}");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("a Vault error");
            assert_eq!(body["errors"][0], message, "{fault:?}: {body}");
        }

        chaos.set(Fault::Malformed);
        let (status, body) = call(app(&chaos)).await;
        assert_eq!(status, 200);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());

        chaos.set(Fault::Truncated);
        let (status, body) = call(app(&chaos)).await;
        assert_eq!(
            (status, body.as_slice()),
            (200, &ANSWER[..ANSWER.len() / 2])
        );

        // The real answer, once the delay has passed (in paused time: no real wait).
        chaos.set(Fault::Slow);
        chaos.set_delay(Duration::from_secs(7));
        let start = tokio::time::Instant::now();
        assert_eq!(call(app(&chaos)).await, (200, ANSWER.to_vec()));
        assert!(
            start.elapsed() >= Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );

        chaos.set(Fault::None);
        assert_eq!(call(app(&chaos)).await, (200, ANSWER.to_vec()));
        assert_eq!(chaos.hits(), 6, "one hit per faulty answer");
    }

    /// `Refuse` acts on the connection, where the serving loop asks [`Chaos::refuses`]: a
    /// client gets no answer at all, and an answer again once it is off.
    #[tokio::test]
    async fn refuse_closes_the_connection_unanswered() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let chaos = Chaos::default();
        let server = tokio::spawn(crate::proxy::serve_tcp(
            listener,
            app(&chaos),
            chaos.clone(),
        ));
        let answer = || async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            // A peer that closes first may reset the connection: no answer either way.
            let _ = stream
                .write_all(b"GET /v1/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await;
            let mut got = Vec::new();
            let _ = stream.read_to_end(&mut got).await;
            String::from_utf8_lossy(&got).into_owned()
        };
        chaos.set(Fault::Refuse);
        assert_eq!(answer().await, "", "refused: not a byte back");
        assert_eq!(chaos.hits(), 1);
        chaos.set(Fault::None);
        let got = answer().await;
        assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
        assert!(got.ends_with("{\"data\":{\"a\":1}}"), "{got:?}");
        server.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn hang_never_answers() {
        let chaos = Chaos::default();
        chaos.set(Fault::Hang);
        let answered = tokio::time::timeout(Duration::from_secs(60), call(app(&chaos))).await;
        assert!(answered.is_err());
    }
}
