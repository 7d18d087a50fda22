//! turmoil's simulated TCP as the cluster's [`Dialer`].

use std::io;

use cluster::net::{BoxFuture, BoxStream, Dialer};

#[derive(Debug, Default, Clone, Copy)]
pub struct TurmoilDialer;

impl Dialer for TurmoilDialer {
    fn dial(&self, addr: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let addr = addr.to_string();
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}
