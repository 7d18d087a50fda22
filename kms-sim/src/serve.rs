//! Serving a router over any byte stream, so one service runs on a turmoil host or a real port,
//! behind the fault switch: the byte-level faults on the stream ([`Faulty`]), the protocol's
//! in front of the router ([`Chaos::wrap`], for services that have them).

use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

use crate::chaos::Chaos;
use crate::wire::Faulty;

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

/// Serve one accepted connection whose answers meet `chaos`'s byte-level faults.
pub async fn serve_faulty<S>(app: axum::Router, stream: S, chaos: Chaos)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    serve_stream(app, Faulty::new(stream, chaos)).await
}

/// Accepts connections on a real port until the task is dropped, each served with
/// [`serve_faulty`]. While `chaos` is [`Fault::Refuse`](crate::chaos::Fault::Refuse), a new
/// connection is dropped at once, as the simulated services' turmoil hosts do; a connection
/// already open (live clients keep theirs alive) is closed at its next request.
///
/// Compose as `serve_tcp(listener, chaos.wrap(router), chaos)` for a service with HTTP
/// faults of its own, or `serve_tcp(listener, router, chaos)` for the byte-level ones only.
pub async fn serve_tcp(listener: tokio::net::TcpListener, app: axum::Router, chaos: Chaos) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if chaos.refuses() {
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_faulty(app.clone(), stream, chaos.clone()));
    }
}
