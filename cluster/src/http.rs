//! A small HTTP/1 client over whatever [`Dialer`] the node was given, so the same KMS
//! connector code runs over turmoil in simulation and over real TCP live.
//!
//! Over a dialer that allows it ([`Dialer::reuse_connections`]: real TCP) a connection is
//! kept alive after an exchange and reused by the next one to the same address; otherwise
//! (the simulation) each exchange opens its own connection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::net::Dialer;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("cannot connect to {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("no answer from {addr} within {ms} ms")]
    Timeout { addr: String, ms: u64 },
    #[error("HTTP exchange with {addr} failed: {reason}")]
    Protocol { addr: String, reason: String },
    #[error("bad request URL {0}")]
    BadUrl(String),
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle kept-alive connections kept per `host:port` (only when the dialer allows reuse).
const MAX_IDLE_PER_AUTHORITY: usize = 8;

#[derive(Clone)]
pub struct HttpClient {
    dialer: Arc<dyn Dialer>,
    timeout: Duration,
    /// Idle connections by authority, when [`Dialer::reuse_connections`] says so. A
    /// connection is here only between exchanges; one in use belongs to its exchange, and
    /// an exchange that fails or times out drops it (closing it) instead of returning it.
    idle: Arc<Mutex<BTreeMap<String, Vec<Sender>>>>,
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
        let req = origin_form(authority, req)?;

        // A kept-alive connection first (when the dialer allows reuse). If it turns out
        // closed, or refuses the request before sending any of it, the request goes out on a
        // fresh connection instead: it was never sent, so this cannot repeat it.
        let mut req = Some(req);
        let mut reused = self.take_idle(authority).await;
        let (resp, sender) = loop {
            let (mut sender, fresh) = match reused.take() {
                Some(s) => (s, false),
                None => (self.connect(authority).await?, true),
            };
            let r = req.take().expect("a request to send");
            match sender.try_send_request(r).await {
                Ok(resp) => break (resp, sender),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => req = Some(unsent),
                    _ => return Err(protocol(e.into_error().to_string())),
                },
            }
        };
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .to_bytes()
            .to_vec();
        self.put_idle(authority, sender);
        Ok(http::Response::from_parts(parts, body))
    }

    /// A new connection and its HTTP/1 handshake; the connection is driven by its own task.
    async fn connect(&self, authority: &str) -> Result<Sender, HttpError> {
        let stream = self
            .dialer
            .dial(authority)
            .await
            .map_err(|e| HttpError::Connect {
                addr: authority.to_string(),
                reason: e.to_string(),
            })?;
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
        Ok(sender)
    }

    /// An idle kept-alive connection to `authority` that is still open, if any.
    async fn take_idle(&self, authority: &str) -> Option<Sender> {
        if !self.dialer.reuse_connections() {
            return None;
        }
        loop {
            let mut sender = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.get_mut(authority)?.pop()?
            };
            // A connection the peer closed while idle fails here: drop it, try the next.
            if sender.ready().await.is_ok() {
                return Some(sender);
            }
        }
    }

    /// Keeps a connection whose exchange completed for the next request to `authority`.
    fn put_idle(&self, authority: &str, sender: Sender) {
        if !self.dialer.reuse_connections() || sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.entry(authority.to_string()).or_default();
        if conns.len() < MAX_IDLE_PER_AUTHORITY {
            conns.push(sender);
        }
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
