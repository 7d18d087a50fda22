//! Serving a router over any byte stream, so one service runs on a turmoil host or a real port.

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

/// Serve one accepted connection (any AsyncRead+AsyncWrite stream: a turmoil TcpStream in
/// simulation, a tokio TcpStream on a real port) with hyper http1 and keep-alive on.
///
/// The `Date` header is off: hyper fills it from the real clock, which would make responses
/// differ between two runs of the same seed.
pub async fn serve_stream<S>(app: axum::Router, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        app.clone().oneshot(req.map(axum::body::Body::new))
    });
    let result = http1::Builder::new()
        .auto_date_header(false)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = result {
        // Peers hanging up mid-request are normal under fault injection.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
