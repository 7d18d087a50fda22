//! The forwarding proxy on real loopback ports, in front of the simulated Vault on another
//! real port: what passes through unchanged, and what the chaos faults do in front of it.
//! Every listener is bound before its server is spawned, so no test waits for readiness.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{b64, ROOT};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use kms_sim::chaos::{Chaos, Fault};
use kms_sim::proxy::Forward;
use kms_sim::serve::serve_tcp;
use kms_sim::VaultSim;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

/// Serves `app` on a fresh loopback port, as `kms-sim vault --listen` does.
async fn serve_vault(app: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(kms_sim::serve::serve_stream(app.clone(), stream));
        }
    });
    addr
}

struct Setup {
    sim: VaultSim,
    vault: SocketAddr,
    proxy: SocketAddr,
    forward: Forward,
    chaos: Chaos,
}

async fn setup(seed: u64) -> Setup {
    let sim = VaultSim::new(seed, ROOT);
    let vault = serve_vault(sim.router()).await;
    let forward = Forward::new(format!("http://{vault}"));
    let chaos = Chaos::default();
    let proxy = serve_proxy(&forward, &chaos).await;
    Setup {
        sim,
        vault,
        proxy,
        forward,
        chaos,
    }
}

/// The proxy on a fresh loopback port, composed as a live runner composes it.
async fn serve_proxy(forward: &Forward, chaos: &Chaos) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(
        listener,
        chaos.wrap(forward.router()),
        chaos.clone(),
    ));
    addr
}

/// A client connection; its driver runs on its own task.
async fn connect(addr: SocketAddr) -> hyper::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> hyper::Request<Full<Bytes>> {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    req.body(Full::new(Bytes::from(body))).unwrap()
}

async fn send_on(
    sender: &mut SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> hyper::Result<Answer> {
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// One request on a fresh connection.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> hyper::Result<Answer> {
    let mut sender = connect(addr).await?;
    send_on(&mut sender, request(addr, method, path, headers, body)).await
}

async fn ok_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    call(addr, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} via {addr}: {e}"))
}

/// `GET /v1/sys/health` on a fresh connection: the request most tests probe with.
async fn health(addr: SocketAddr) -> Answer {
    ok_call(addr, "GET", "/v1/sys/health", &[], None).await
}

#[tokio::test]
async fn health_answers_as_direct() {
    let s = setup(1).await;
    let direct = health(s.vault).await;
    let proxied = health(s.proxy).await;
    assert_eq!((direct.status, proxied.status), (200, 200));
    let (mut d, mut p) = (direct.json(), proxied.json());
    // The one field that reads the (tokio) clock.
    d["server_time_utc"].take();
    p["server_time_utc"].take();
    assert_eq!(d, p);
    assert_eq!(
        proxied.headers.get("content-type"),
        direct.headers.get("content-type")
    );
    assert_eq!(s.forward.requests(), 1);
    assert_eq!(s.sim.requests_served(), 2);
}

#[tokio::test]
async fn transit_round_trip_with_token_and_namespace() {
    let s = setup(2).await;
    let p = s.proxy;
    let root = [("X-Vault-Token", ROOT)];
    let in_ns = [("X-Vault-Token", ROOT), ("X-Vault-Namespace", "tenant-a")];
    let r = ok_call(
        p,
        "POST",
        "/v1/sys/namespaces/tenant-a",
        &root,
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = ok_call(
        p,
        "POST",
        "/v1/sys/mounts/transit",
        &in_ns,
        Some(json!({"type": "transit"})),
    )
    .await;
    assert_eq!(r.status, 204);
    let r = ok_call(p, "POST", "/v1/transit/keys/fs", &in_ns, Some(json!({}))).await;
    assert_eq!(r.status, 200);
    // Vault's own method, LIST, passes too.
    let r = ok_call(p, "LIST", "/v1/transit/keys", &in_ns, None).await;
    assert_eq!(
        (r.status, r.json()["data"]["keys"].clone()),
        (200, json!(["fs"]))
    );
    // And so does the query string (`?list=true` is a LIST to Vault).
    let r = ok_call(p, "GET", "/v1/transit/keys?list=true", &in_ns, None).await;
    assert_eq!(
        (r.status, r.json()["data"]["keys"].clone()),
        (200, json!(["fs"]))
    );

    let r = ok_call(
        p,
        "POST",
        "/v1/transit/encrypt/fs",
        &in_ns,
        Some(json!({"plaintext": b64("dek")})),
    )
    .await;
    assert_eq!(r.status, 200);
    let ct = r.json()["data"]["ciphertext"].clone();
    assert!(ct.as_str().unwrap().starts_with("vault:v1:"), "{ct}");
    let r = ok_call(
        p,
        "POST",
        "/v1/transit/decrypt/fs",
        &in_ns,
        Some(json!({"ciphertext": ct})),
    )
    .await;
    assert_eq!(
        (r.status, r.json()["data"]["plaintext"].clone()),
        (200, json!(b64("dek")))
    );
    // Without the namespace header the key is not there: the header really was forwarded.
    let r = ok_call(
        p,
        "POST",
        "/v1/transit/decrypt/fs",
        &root,
        Some(json!({"ciphertext": ct})),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(s.forward.requests(), 8);
}

#[tokio::test]
async fn client_errors_pass_through_unchanged() {
    let s = setup(3).await;
    let bad = [("X-Vault-Token", "not-a-token")];
    let direct = ok_call(s.vault, "GET", "/v1/sys/mounts", &bad, None).await;
    let proxied = ok_call(s.proxy, "GET", "/v1/sys/mounts", &bad, None).await;
    assert_eq!((direct.status, proxied.status), (403, 403));
    assert_eq!(proxied.body, direct.body);
    assert_eq!(proxied.json(), json!({"errors": ["permission denied"]}));
    let root = [("X-Vault-Token", ROOT)];
    let direct = ok_call(s.vault, "GET", "/v1/nowhere/x", &root, None).await;
    let proxied = ok_call(s.proxy, "GET", "/v1/nowhere/x", &root, None).await;
    assert_eq!((direct.status, proxied.status), (404, 404));
    assert_eq!(proxied.body, direct.body);
}

#[tokio::test]
async fn error_503_answers_without_the_upstream() {
    let s = setup(4).await;
    assert_eq!(health(s.proxy).await.status, 200);
    let (forwarded, served) = (s.forward.requests(), s.sim.requests_served());
    s.chaos.set(Fault::Error503);
    let r = health(s.proxy).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.json(),
        json!({"errors": ["Vault is temporarily unavailable"]})
    );
    assert_eq!(s.forward.requests(), forwarded);
    assert_eq!(s.sim.requests_served(), served);
    assert_eq!(s.chaos.hits(), 1);
    s.chaos.set(Fault::None);
    assert_eq!(health(s.proxy).await.status, 200);
}

/// The byte-level faults act on the bytes the proxy sends back, below HTTP: the real
/// answer is forwarded, then cut or garbled on the way to the client, which cannot read
/// it as an HTTP answer at all.
#[tokio::test]
async fn truncated_and_malformed_break_the_real_answer_on_the_wire() {
    let s = setup(5).await;
    assert_eq!(health(s.proxy).await.status, 200);
    for fault in [Fault::Truncated, Fault::Malformed] {
        s.chaos.set(fault);
        let got = call(s.proxy, "GET", "/v1/sys/health", &[], None).await;
        assert!(got.is_err(), "{fault:?}: {:?}", got.map(|a| a.status));
    }
    assert_eq!(s.chaos.hits(), 2);
    assert_eq!(
        s.forward.requests(),
        3,
        "both answers came from the upstream"
    );
    s.chaos.set(Fault::None);
    assert_eq!(health(s.proxy).await.status, 200);
}

#[tokio::test]
async fn refuse_drops_new_and_kept_alive_connections() {
    let s = setup(6).await;
    // A connection opened and used before the fault.
    let mut kept = connect(s.proxy).await.unwrap();
    let req = || request(s.proxy, "GET", "/v1/sys/health", &[], None);
    assert_eq!(send_on(&mut kept, req()).await.unwrap().status, 200);

    s.chaos.set(Fault::Refuse);
    // A new connection is closed before it answers anything.
    assert!(call(s.proxy, "GET", "/v1/sys/health", &[], None)
        .await
        .is_err());
    // So is the kept-alive one, at its next request.
    assert!(send_on(&mut kept, req()).await.is_err());
    assert_eq!(s.chaos.hits(), 2);
    assert_eq!(s.forward.requests(), 1);

    s.chaos.set(Fault::None);
    assert_eq!(health(s.proxy).await.status, 200);
}

#[tokio::test]
async fn unreachable_upstream_is_502_until_set_back() {
    let s = setup(7).await;
    // A port nothing listens on: bound, then closed.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    s.forward.set_upstream(format!("http://{dead}"));
    let r = health(s.proxy).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json(), json!({"errors": ["upstream Vault unreachable"]}));
    assert_eq!(r.headers.get("content-type").unwrap(), "application/json");
    // Not a base URL at all: the same answer.
    s.forward.set_upstream("vault:8200");
    assert_eq!(health(s.proxy).await.status, 502);

    s.forward.set_upstream(format!("http://{}/", s.vault));
    assert_eq!(health(s.proxy).await.status, 200);
    assert_eq!(s.forward.requests(), 3);
    assert_eq!(s.sim.requests_served(), 1);
}

#[tokio::test]
async fn hung_upstream_is_502_within_the_bound() {
    // The upstream accepts and never answers: the simulated Vault behind a Hang fault.
    let hang = Chaos::default();
    hang.set(Fault::Hang);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vault = listener.local_addr().unwrap();
    tokio::spawn(serve_tcp(
        listener,
        VaultSim::new(8, ROOT).router(),
        hang.clone(),
    ));
    let forward = Forward::new(format!("http://{vault}")).with_timeout(Duration::from_millis(200));
    let proxy = serve_proxy(&forward, &Chaos::default()).await;
    let answered = tokio::time::timeout(Duration::from_secs(5), health(proxy))
        .await
        .expect("the proxy answers within its bound");
    assert_eq!(answered.status, 502);
    assert_eq!(
        answered.json(),
        json!({"errors": ["upstream Vault unreachable"]})
    );
    assert_eq!(hang.hits(), 1);
}
