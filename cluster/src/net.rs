//! The one seam between the cluster and the network it runs on.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::OnceLock;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::tls::TlsEnv;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connected byte stream: a turmoil `TcpStream` in a seeded run, a tokio one live.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

pub type BoxStream = Box<dyn Stream>;

/// Opens connections to `host:port` addresses. The simulation hands nodes a dialer over
/// turmoil's network; live mode hands them [`TcpDialer`].
pub trait Dialer: Send + Sync + 'static {
    fn dial(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>>;

    /// Whether [`crate::http::HttpClient`] may keep a connection open after an exchange and
    /// reuse it for the next one to the same address (HTTP/1 keep-alive). Off by default:
    /// the simulation's dialers open one connection per request, so their runs stay what
    /// they were; [`TcpDialer`] turns it on.
    fn reuse_connections(&self) -> bool {
        false
    }

    /// The crypto and clock for TLS over this dialer's connections. Real ones by default;
    /// the simulation's dialer overrides it with a seeded provider and simulated time.
    fn tls(&self) -> TlsEnv {
        static REAL: OnceLock<TlsEnv> = OnceLock::new();
        REAL.get_or_init(TlsEnv::real).clone()
    }
}

/// Real TCP, for live runs against real peers.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpDialer;

impl Dialer for TcpDialer {
    fn dial(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn reuse_connections(&self) -> bool {
        true
    }
}
