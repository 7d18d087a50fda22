//! A small HTTP/1 client over whatever [`Dialer`] the node was given, so the same KMS
//! connector code runs over turmoil in simulation and over real TCP live.

use std::sync::Arc;
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

#[derive(Clone)]
pub struct HttpClient {
    dialer: Arc<dyn Dialer>,
    timeout: Duration,
}

impl HttpClient {
    /// `timeout` bounds one whole exchange (connect, send, read the body): a KMS that
    /// hangs must turn into an error, never into a stuck backend.
    pub fn new(dialer: Arc<dyn Dialer>, timeout: Duration) -> Self {
        HttpClient { dialer, timeout }
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
        let stream = self
            .dialer
            .dial(authority)
            .await
            .map_err(|e| HttpError::Connect {
                addr: authority.to_string(),
                reason: e.to_string(),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| protocol(e.to_string()))?;
        tokio::spawn(async move {
            // The connection ends when the exchange is done or the peer goes away; either
            // way the result reaches the caller through `send_request`.
            let _ = conn.await;
        });

        // Origin-form target plus a Host header: what a real client sends.
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
        let req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| protocol(e.to_string()))?;
        let (parts, body) = resp.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| protocol(e.to_string()))?
            .to_bytes()
            .to_vec();
        Ok(http::Response::from_parts(parts, body))
    }
}
