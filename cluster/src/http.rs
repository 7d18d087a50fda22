//! A small HTTP/1 client over whatever [`Dialer`] the node was given, so the same KMS
//! connector code runs over turmoil in simulation and over real TCP live.
//!
//! Over a dialer that allows it ([`Dialer::reuse_connections`]: real TCP) a connection is
//! kept alive after an exchange and reused by the next one to the same address; otherwise
//! (the simulation) each exchange opens its own connection.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::net::{BoxStream, Dialer};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no answer from {addr} within {ms} ms")]
    Timeout { addr: String, ms: u64 },
    #[error("HTTP exchange with {addr} failed: {reason}")]
    Protocol { addr: String, reason: String },
    /// The peer answered, but with bytes that are not an HTTP answer, or cut one short:
    /// something reached it, so this is not "unreachable".
    #[error("HTTP answer from {addr} unreadable: {reason}")]
    Garbled { addr: String, reason: String },
    #[error("bad request URL {0}")]
    BadUrl(String),
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A connection, and how many bytes were ever read from it: an exchange that fails after
/// its answer began to arrive met an answer cut short, not a peer that was gone.
struct Conn {
    sender: Sender,
    read: Arc<AtomicU64>,
}

/// Idle kept-alive connections kept per `host:port` (only when the dialer allows reuse).
const MAX_IDLE_PER_AUTHORITY: usize = 8;

#[derive(Clone)]
pub struct HttpClient {
    dialer: Arc<dyn Dialer>,
    timeout: Duration,
    /// Idle connections by authority, when [`Dialer::reuse_connections`] says so. A
    /// connection is here only between exchanges; one in use belongs to its exchange, and
    /// an exchange that fails or times out drops it (closing it) instead of returning it.
    idle: Arc<Mutex<BTreeMap<String, Vec<Conn>>>>,
}

impl HttpClient {
    /// `timeout` bounds one whole exchange (connect, send, read the body): a KMS that
    /// hangs must turn into an error, never into a stuck backend.
    pub fn new(dialer: Arc<dyn Dialer>, timeout: Duration) -> Self {
        HttpClient {
            dialer,
            timeout,
            idle: Arc::default(),
        }
    }

    pub async fn send(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .ok_or_else(|| HttpError::BadUrl(req.uri().to_string()))?;
        let ms = self.timeout.as_millis() as u64;
        match tokio::time::timeout(self.timeout, self.exchange(&authority, req)).await {
            Ok(result) => result,
            Err(_) => Err(HttpError::Timeout {
                addr: authority,
                ms,
            }),
        }
    }

    async fn exchange(
        &self,
        authority: &str,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let protocol = |reason: String| HttpError::Protocol {
            addr: authority.to_string(),
            reason,
        };
        let garbled = |reason: String| HttpError::Garbled {
            addr: authority.to_string(),
            reason,
        };
        let req = origin_form(authority, req)?;

        // A kept-alive connection first (when the dialer allows reuse). If it turns out
        // closed, or refuses the request before sending any of it, the request goes out on a
        // fresh connection instead: it was never sent, so this cannot repeat it.
        let mut req = Some(req);
        let mut reused = self.take_idle(authority).await;
        let (resp, conn) = loop {
            let (mut conn, fresh) = match reused.take() {
                Some(c) => (c, false),
                None => (self.connect(authority).await?, true),
            };
            let r = req.take().expect("a request to send");
            let before = conn.read.load(Ordering::Relaxed);
            match conn.sender.try_send_request(r).await {
                Ok(resp) => break (resp, conn),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = Some(unsent),
                    _ => {
                        let e = e.into_error();
                        let answered = conn.read.load(Ordering::Relaxed) > before;
                        return Err(if e.is_parse() || answered {
                            garbled(e.to_string())
                        } else {
                            protocol(e.to_string())
                        });
                    }
                },
            }
        };
        let (parts, body) = resp.into_parts();
        // The head arrived: a body that breaks off or fails to parse is an answer cut short.
        let body = body
            .collect()
            .await
            .map_err(|e| garbled(e.to_string()))?
            .to_bytes()
            .to_vec();
        self.put_idle(authority, conn);
        Ok(http::Response::from_parts(parts, body))
    }

    /// A new connection and its HTTP/1 handshake; the connection is driven by its own task.
    async fn connect(&self, authority: &str) -> Result<Conn, HttpError> {
        let stream = self
            .dialer
            .dial(authority)
            .await
            .map_err(|e| HttpError::Connect {
                addr: authority.to_string(),
                reason: e.to_string(),
            })?;
        let read = Arc::new(AtomicU64::new(0));
        let stream = Counted {
            inner: stream,
            read: read.clone(),
        };
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| HttpError::Protocol {
                addr: authority.to_string(),
                reason: e.to_string(),
            })?;
        tokio::spawn(async move {
            // The connection ends when its sender is dropped or the peer goes away; either
            // way the result reaches the caller through `send_request`.
            let _ = conn.await;
        });
        Ok(Conn { sender, read })
    }

    /// An idle kept-alive connection to `authority` that is still open, if any.
    async fn take_idle(&self, authority: &str) -> Option<Conn> {
        if !self.dialer.reuse_connections() {
            return None;
        }
        loop {
            let mut conn = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.get_mut(authority)?.pop()?
            };
            // A connection the peer closed while idle fails here: drop it, try the next.
            if conn.sender.ready().await.is_ok() {
                return Some(conn);
            }
        }
    }

    /// Keeps a connection whose exchange completed for the next request to `authority`.
    fn put_idle(&self, authority: &str, conn: Conn) {
        if !self.dialer.reuse_connections() || conn.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.entry(authority.to_string()).or_default();
        if conns.len() < MAX_IDLE_PER_AUTHORITY {
            conns.push(conn);
        }
    }
}

/// A dialed stream that counts the bytes read from it.
struct Counted {
    inner: BoxStream,
    read: Arc<AtomicU64>,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before) as u64;
        self.read.fetch_add(n, Ordering::Relaxed);
        poll
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Origin-form target plus a Host header: what a real client sends.
fn origin_form(
    authority: &str,
    req: http::Request<Vec<u8>>,
) -> Result<http::Request<Full<Bytes>>, HttpError> {
    let (mut parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    parts.uri = target.parse().map_err(|_| HttpError::BadUrl(target))?;
    parts.headers.insert(
        http::header::HOST,
        http::HeaderValue::from_str(authority)
            .map_err(|_| HttpError::BadUrl(authority.to_string()))?,
    );
    if !body.is_empty() {
        parts.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    Ok(http::Request::from_parts(
        parts,
        Full::new(Bytes::from(body)),
    ))
}
