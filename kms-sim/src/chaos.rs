//! Faults a scenario switches on and off in front of a service: the ways a KMS or an
//! object store fails in the field, short of being sealed (the Vault models that itself).
//!
//! Two layers carry them out, and each fault belongs to exactly one
//! ([`Fault::is_byte_level`]):
//! - the wire, below every protocol: `Refuse` at the connection, `Hang`, `Slow`,
//!   `Malformed` and `Truncated` on the bytes of each answer ([`crate::wire`]); every
//!   service (Vault, KMIP, the object store), simulated or live, is served through it;
//! - the protocol: `Error500`, `Error503` and `RateLimit` are HTTP answers of Vault's
//!   ([`Chaos::wrap`]); the KMIP server answers them with its own result codes.
//!
//! Every mode is deterministic: a fault applies to every request while it is on, so
//! the seed alone decides when requests meet it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};

use crate::vault::response::VaultError;

/// What the service does to each request while the fault is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
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
    /// Every byte of the answer replaced by garbage (0xFF).
    Malformed,
    /// The first half of the answer's first write, then the stream ends.
    Truncated,
}

impl Fault {
    /// Whether the wire carries this fault out, whatever the protocol above it (the
    /// others are answers of the protocol's own).
    pub fn is_byte_level(self) -> bool {
        matches!(
            self,
            Fault::Refuse | Fault::Hang | Fault::Slow | Fault::Malformed | Fault::Truncated
        )
    }
}

#[derive(Debug, Default)]
struct Inner {
    fault: Fault,
    delay: Duration,
    /// Where a protocol fault applies: every request (`None`), or only those on one
    /// Vault key (a tenant's namespace locked or unavailable, its key out of reach while
    /// the others answer).
    key: Option<String>,
    /// Requests that met a fault, for traces and reports.
    hits: u64,
    /// Every fault that met at least one request, for the sweep's coverage: a fault
    /// switched on while nothing asked proves nothing.
    met: BTreeSet<Fault>,
}

impl Inner {
    fn hit(&mut self) {
        self.hits += 1;
        self.met.insert(self.fault);
    }
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

    /// Limits the protocol's faults to requests on Vault key `key` (`None`: every
    /// request). The byte-level faults act below HTTP, where no key is seen: they always
    /// apply to every request.
    pub fn set_key(&self, key: Option<String>) {
        self.lock().key = key;
    }

    pub fn hits(&self) -> u64 {
        self.lock().hits
    }

    /// The faults that have met a request since this switch was made.
    pub fn met(&self) -> BTreeSet<Fault> {
        self.lock().met.clone()
    }

    /// A request met the current fault where the protocol answers it on the switch's
    /// behalf (KMIP's General Failure for an HTTP status fault), which [`Chaos::hits`]
    /// does not count.
    pub fn met_by_protocol(&self) {
        let mut inner = self.lock();
        let fault = inner.fault;
        inner.met.insert(fault);
    }

    /// The fault an answer meets now and the delay of [`Fault::Slow`], counting a hit if
    /// it is a byte-level fault (for the wire below the protocol: see [`crate::wire`]; the
    /// protocol counts its own).
    pub fn meet(&self) -> (Fault, Duration) {
        let mut inner = self.lock();
        if inner.fault.is_byte_level() {
            inner.hit();
        }
        (inner.fault, inner.delay)
    }

    /// Whether a new connection should be dropped unanswered.
    pub fn refuses(&self) -> bool {
        let mut inner = self.lock();
        if inner.fault == Fault::Refuse {
            inner.hit();
            true
        } else {
            false
        }
    }

    /// Puts the protocol's faults (HTTP 500, 503 and 429 with Vault's error bodies) in
    /// front of `app`; the byte-level ones pass through to the wire below it.
    pub fn wrap(&self, app: Router) -> Router {
        app.layer(middleware::from_fn_with_state(self.clone(), apply))
    }
}

async fn apply(State(chaos): State<Chaos>, req: Request, next: Next) -> Response {
    let fault = {
        let inner = chaos.lock();
        // A Vault path on a key ends with its name: `transit/decrypt/<key>`, `transit/keys/<key>`.
        match &inner.key {
            Some(key) if req.uri().path().rsplit('/').next() != Some(key.as_str()) => Fault::None,
            _ => inner.fault,
        }
    };
    let (status, message) = match fault {
        Fault::Error500 => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        Fault::Error503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Vault is temporarily unavailable",
        ),
        Fault::RateLimit => (
            StatusCode::TOO_MANY_REQUESTS,
            "request rate limit quota exceeded",
        ),
        _ => return next.run(req).await,
    };
    chaos.lock().hit();
    VaultError::new(status, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;

    fn app(chaos: &Chaos) -> Router {
        chaos.wrap(Router::new().route("/v1/x", get(|| async { "{\"data\":{\"a\":1}}" })))
    }

    async fn call(app: Router) -> (u16, Vec<u8>) {
        crate::testing::call(app, Request::get("/v1/x").body(Body::empty()).unwrap()).await
    }

    const ANSWER: &[u8] = b"{\"data\":{\"a\":1}}";

    /// What the protocol layer makes of a request that the service would answer with 200
    /// ANSWER: Vault's error answers for the protocol's faults, the answer untouched (and
    /// no hit) for the byte-level ones, which the wire below carries out.
    #[tokio::test(start_paused = true)]
    async fn the_protocol_layer_answers_its_own_faults_only() {
        let chaos = Chaos::default();
        assert_eq!(call(app(&chaos)).await, (200, ANSWER.to_vec()));
        assert_eq!(chaos.hits(), 0, "no fault, no hit");

        for (fault, status, message) in [
            (Fault::Error500, 500, "internal error"),
            (Fault::Error503, 503, "Vault is temporarily unavailable"),
            (Fault::RateLimit, 429, "request rate limit quota exceeded"),
        ] {
            assert!(!fault.is_byte_level());
            chaos.set(fault);
            let (got, body) = call(app(&chaos)).await;
            assert_eq!(got, status, "{fault:?}");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("a Vault error");
            assert_eq!(body["errors"][0], message, "{fault:?}: {body}");
        }
        assert_eq!(chaos.hits(), 3, "one hit per protocol answer");

        for fault in [
            Fault::Refuse,
            Fault::Hang,
            Fault::Slow,
            Fault::Malformed,
            Fault::Truncated,
        ] {
            assert!(fault.is_byte_level());
            chaos.set(fault);
            assert_eq!(call(app(&chaos)).await, (200, ANSWER.to_vec()), "{fault:?}");
        }
        assert_eq!(chaos.hits(), 3, "byte-level faults are the wire's to count");
    }

    /// A protocol fault limited to one key answers requests on that key only.
    #[tokio::test(start_paused = true)]
    async fn a_fault_on_one_key_spares_the_others() {
        let chaos = Chaos::default();
        let app = chaos.wrap(
            Router::new()
                .route("/v1/transit/decrypt/tenant-key", get(|| async { "{}" }))
                .route("/v1/transit/decrypt/weka-key", get(|| async { "{}" })),
        );
        let on = |key: &str| {
            Request::get(format!("/v1/transit/decrypt/{key}"))
                .body(Body::empty())
                .unwrap()
        };
        chaos.set(Fault::Error503);
        chaos.set_key(Some("tenant-key".into()));
        let (status, _) = crate::testing::call(app.clone(), on("tenant-key")).await;
        assert_eq!(status, 503);
        let (status, _) = crate::testing::call(app.clone(), on("weka-key")).await;
        assert_eq!(status, 200, "another key's requests pass");
        assert_eq!(chaos.hits(), 1);
        chaos.set_key(None);
        let (status, _) = crate::testing::call(app, on("weka-key")).await;
        assert_eq!(status, 503, "unscoped again: every request");
    }

    /// One exchange with a server on a real port: what comes back within a second.
    async fn answer(addr: std::net::SocketAddr) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A peer that closes first may reset the connection: no answer either way.
        let _ = stream
            .write_all(b"GET /v1/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await;
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.read_to_end(&mut got)).await;
        got
    }

    /// Both layers on a real port (`serve_tcp`): each byte-level fault changes the bytes
    /// on the wire, HTTP framing included, and the protocol's are well-formed answers.
    #[tokio::test]
    async fn both_layers_on_a_real_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let chaos = Chaos::default();
        let server = tokio::spawn(crate::serve::serve_tcp(
            listener,
            app(&chaos),
            chaos.clone(),
        ));
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();

        let whole = text(answer(addr).await);
        assert!(whole.starts_with("HTTP/1.1 200"), "{whole:?}");
        assert!(whole.ends_with("{\"data\":{\"a\":1}}"), "{whole:?}");

        chaos.set(Fault::Refuse);
        assert_eq!(text(answer(addr).await), "", "refused: not a byte back");
        chaos.set(Fault::Hang);
        assert_eq!(
            text(answer(addr).await),
            "",
            "hung: silence until the timeout"
        );
        chaos.set(Fault::Malformed);
        let garbage = answer(addr).await;
        assert_eq!(garbage.len(), whole.len());
        assert!(garbage.iter().all(|&b| b == 0xFF), "{garbage:?}");
        chaos.set(Fault::Truncated);
        let cut = text(answer(addr).await);
        assert_eq!(cut, whole[..whole.len() / 2], "half of the first write");
        chaos.set(Fault::Error503);
        assert!(text(answer(addr).await).starts_with("HTTP/1.1 503"));
        assert_eq!(chaos.hits(), 5, "one hit per faulty answer");

        chaos.set(Fault::None);
        assert_eq!(text(answer(addr).await), whole);
        server.abort();
    }
}
