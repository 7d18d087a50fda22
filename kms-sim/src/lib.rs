//! Simulated external services for wekasim: a Vault (HTTP API v1 subset) and a KMIP server
//! (TTLV over any byte stream) that run inside a turmoil simulation or on a real port.

pub mod chaos;
pub mod kmip;
pub mod object_store;
pub mod proxy;
pub mod serve;
pub mod tcp_proxy;
pub mod tls;
pub mod vault;
pub mod wire;

pub use kmip::KmipSim;
pub use vault::VaultSim;

/// In-process requests for the services' unit tests.
#[cfg(test)]
mod testing {
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use axum::Router;
    use tower::ServiceExt;

    /// Sends `req` to `app` without a socket; returns the status and the whole body.
    pub(crate) async fn call(app: Router, req: Request<Body>) -> (u16, Vec<u8>) {
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = to_bytes(resp.into_body(), usize::MAX).await.unwrap();
        (status, body.to_vec())
    }
}
