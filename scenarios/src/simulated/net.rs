//! turmoil's simulated TCP as the cluster's [`Dialer`], with TLS that replays by seed.

use std::io;
use std::sync::{Arc, OnceLock};

use cluster::net::{BoxFuture, BoxStream, Dialer};
use cluster::tls::TlsEnv;

use super::tls;
use crate::runner::derive_seed;

/// Dials over turmoil. Clones share one TLS environment, so every host of a run draws
/// from the same seeded stream, in the order the simulation runs them.
#[derive(Debug, Clone)]
pub struct TurmoilDialer {
    tls: Arc<SeededTls>,
}

/// The run's TLS environment, built on first use: a run that speaks no TLS builds none
/// (and draws nothing).
#[derive(Debug)]
struct SeededTls {
    seed: u64,
    env: OnceLock<TlsEnv>,
}

impl TurmoilDialer {
    /// A dialer for the run with seed `run_seed`.
    pub fn new(run_seed: u64) -> TurmoilDialer {
        TurmoilDialer {
            tls: Arc::new(SeededTls {
                seed: derive_seed(run_seed, "tls"),
                env: OnceLock::new(),
            }),
        }
    }
}

impl Dialer for TurmoilDialer {
    fn dial(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }

    fn tls(&self) -> TlsEnv {
        self.tls
            .env
            .get_or_init(|| tls::sim_env(self.tls.seed))
            .clone()
    }
}
