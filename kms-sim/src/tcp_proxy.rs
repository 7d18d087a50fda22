//! A forwarding TCP proxy that puts [`Chaos`] faults in front of a **real** server whose
//! protocol it cannot read: a KMIP server, whose TTLV travels inside mutual TLS between
//! the cluster and the server. The proxy forwards raw bytes both ways, so TLS stays end to
//! end (the server sees the cluster's certificate; the cluster checks the server's).
//!
//! Live runs only: real TCP, real upstream, outside the determinism contract.
//!
//! Faults act on connections, when one is accepted (a KMIP client opens one per call):
//! - `Refuse`: the connection is closed at once, unanswered.
//! - `Hang`: the connection is held open and never forwarded: the client's timeout fires.
//! - `Slow`: the connection is forwarded after the chaos delay.
//!
//! The other modes change an answer inside TLS, which a byte forwarder cannot do without
//! breaking the records' integrity; they pass connections through unchanged, and the live
//! runner refuses scenarios that use them before anything starts.
//!
//! An upstream that cannot be reached (refused, no answer within the connect bound) closes
//! the client's connection, which the client sees as a server gone: that is what a stopped
//! KMS looks like.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::chaos::{Chaos, Fault};

/// Bound on connecting to the upstream.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Forwards every accepted connection to an upstream `host:port` that can change at run
/// time (a restarted server on another port). Cheap to clone; clones share the upstream
/// and the counts.
#[derive(Debug, Clone)]
pub struct TcpForward {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    upstream: Mutex<String>,
    /// Connections forwarded to the upstream (reached it or not).
    forwarded: AtomicU64,
}

impl TcpForward {
    /// A proxy to `upstream` (`host:port`).
    pub fn new(upstream: impl Into<String>) -> Self {
        TcpForward {
            shared: Arc::new(Shared {
                upstream: Mutex::new(upstream.into()),
                forwarded: AtomicU64::new(0),
            }),
        }
    }

    /// Points every later connection at `upstream`; open ones stay where they went.
    pub fn set_upstream(&self, upstream: impl Into<String>) {
        *self.lock() = upstream.into();
    }

    pub fn upstream(&self) -> String {
        self.lock().clone()
    }

    /// Connections the proxy tried to forward. Those a fault refused or held never
    /// reach the upstream and are not counted.
    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, String> {
        self.shared
            .upstream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Accepts connections on `listener` until the task is dropped, each meeting the
    /// fault `chaos` has on when it arrives.
    pub async fn serve(self, listener: TcpListener, chaos: Chaos) {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "tcp proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Refuse and hang end a connection here; every other fault, slowness included,
            // acts on what the connection carries (see `forward`).
            match chaos.fault() {
                Fault::Refuse => {
                    chaos.meet();
                    drop(stream)
                }
                Fault::Hang => {
                    chaos.meet();
                    tokio::spawn(hold(stream));
                }
                _ => {
                    tokio::spawn(self.clone().forward(stream, chaos.clone()));
                }
            }
        }
    }

    async fn forward(self, client: TcpStream, chaos: Chaos) {
        self.shared.forwarded.fetch_add(1, Ordering::Relaxed);
        let upstream = self.upstream();
        let server = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&upstream)).await;
        let server = match server {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%upstream, error = %e, "tcp proxy: upstream unreachable");
                return;
            }
            Err(_) => {
                tracing::debug!(%upstream, "tcp proxy: upstream did not accept in time");
                return;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        // A client may keep its connection between requests, so the faults also act on
        // what an open connection carries towards the server: `refuse` closes it, `hang`
        // swallows it (no answer ever comes), `slow` holds each chunk back. Either side
        // closing or failing ends both: the bytes carry one protocol session.
        let (mut from_client, mut to_client) = client.into_split();
        let (mut from_server, mut to_server) = server.into_split();
        let requests = async {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match from_client.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let (fault, delay) = chaos.meet();
                match fault {
                    Fault::Refuse => return,
                    Fault::Hang => continue,
                    Fault::Slow => tokio::time::sleep(delay).await,
                    _ => {}
                }
                if to_server.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        };
        let answers = tokio::io::copy(&mut from_server, &mut to_client);
        tokio::select! {
            _ = requests => {}
            _ = answers => {}
        }
    }
}

/// A hung server: reads and drops what the client sends, answers nothing, and closes
/// only when the client does.
async fn hold(mut stream: TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// An echo server on loopback, and its address.
    async fn echo() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    /// A proxy in front of `upstream`, and its address.
    async fn proxy(forward: &TcpForward, chaos: &Chaos) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(forward.clone().serve(listener, chaos.clone()));
        addr
    }

    /// What one exchange through the proxy reads back within `wait`: the echo, nothing
    /// (closed), or `None` (silence).
    async fn ask(addr: &str, wait: Duration) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"ping").await.unwrap();
        let mut got = vec![0u8; 4];
        match tokio::time::timeout(wait, s.read(&mut got)).await {
            Err(_) => None,
            Ok(Ok(n)) => Some(got[..n].to_vec()),
            Ok(Err(_)) => Some(Vec::new()),
        }
    }

    #[tokio::test]
    async fn faults_act_on_connections() {
        let forward = TcpForward::new(echo().await);
        let chaos = Chaos::default();
        let addr = proxy(&forward, &chaos).await;
        let wait = Duration::from_secs(5);
        assert_eq!(ask(&addr, wait).await.as_deref(), Some(&b"ping"[..]));
        chaos.set(Fault::Refuse);
        assert_eq!(ask(&addr, wait).await.as_deref(), Some(&b""[..]));
        chaos.set(Fault::Hang);
        assert_eq!(ask(&addr, Duration::from_millis(300)).await, None);
        chaos.set(Fault::Slow);
        chaos.set_delay(Duration::from_millis(200));
        let start = tokio::time::Instant::now();
        assert_eq!(ask(&addr, wait).await.as_deref(), Some(&b"ping"[..]));
        assert!(start.elapsed() >= Duration::from_millis(200));
        chaos.set(Fault::None);
        assert_eq!(ask(&addr, wait).await.as_deref(), Some(&b"ping"[..]));
        assert_eq!(
            forward.forwarded(),
            3,
            "refused and held connections are not forwarded"
        );
        assert_eq!(chaos.hits(), 3);
    }

    #[tokio::test]
    async fn an_unreachable_upstream_closes_the_client_and_a_new_one_takes_over() {
        // A port nothing listens on: bound, then closed.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let forward = TcpForward::new(dead);
        let chaos = Chaos::default();
        let addr = proxy(&forward, &chaos).await;
        let wait = Duration::from_secs(5);
        assert_eq!(ask(&addr, wait).await.as_deref(), Some(&b""[..]));
        forward.set_upstream(echo().await);
        assert_eq!(ask(&addr, wait).await.as_deref(), Some(&b"ping"[..]));
    }

    /// A client that keeps its connection open meets the faults too: a hang swallows its
    /// next request, a refusal closes the connection.
    #[tokio::test]
    async fn faults_act_on_open_connections() {
        let forward = TcpForward::new(echo().await);
        let chaos = Chaos::default();
        let addr = proxy(&forward, &chaos).await;
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let mut got = [0u8; 4];
        s.write_all(b"ping").await.unwrap();
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        chaos.set(Fault::Hang);
        s.write_all(b"pong").await.unwrap();
        let silent = tokio::time::timeout(Duration::from_millis(300), s.read(&mut got)).await;
        assert!(silent.is_err(), "a hung connection answers nothing");
        let mut t = TcpStream::connect(&addr).await.unwrap();
        chaos.set(Fault::None);
        t.write_all(b"ping").await.unwrap();
        t.read_exact(&mut got).await.unwrap();
        chaos.set(Fault::Refuse);
        t.write_all(b"ping").await.unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(5), t.read(&mut got)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    }
}
