//! Byte-level faults: what a failing server does to the bytes of its answers, whatever
//! protocol they carry. A service puts [`Faulty`] around the stream it answers on (for
//! KMIP, the plaintext stream inside TLS, so that a garbled answer reaches the client's
//! decoder rather than its TLS layer).
//!
//! Each answer meets the fault that is on when the server starts writing it:
//! - `Hang`: the answer is swallowed; the client waits for its timeout.
//! - `Slow`: the answer is held back for the chaos delay, then sent whole.
//! - `Malformed`: every byte of the answer is 0xFF (for TTLV: an unknown item type).
//! - `Truncated`: the first half of the answer's first write goes out, then the stream
//!   ends.
//!
//! `Refuse` acts on connections (see [`Chaos::refuses`]), and the HTTP status faults are
//! the protocol's, so both pass through here untouched.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::chaos::{Chaos, Fault};

/// A server-side stream whose answers meet the chaos switch's byte-level faults.
pub struct Faulty<S> {
    inner: S,
    chaos: Chaos,
    /// The fault the answer being written met; `None` between answers.
    answering: Option<Fault>,
    /// The hold of a `Slow` answer.
    hold: Option<Pin<Box<Sleep>>>,
    /// A `Truncated` answer went out: everything after is refused.
    cut: bool,
}

impl<S> Faulty<S> {
    pub fn new(inner: S, chaos: Chaos) -> Self {
        Faulty {
            inner,
            chaos,
            answering: None,
            hold: None,
            cut: false,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Faulty<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Reading again means the answer before is complete: the next one meets the
        // fault that is on then.
        self.answering = None;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Faulty<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.cut {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let fault = match this.answering {
            Some(f) => f,
            None => {
                let (fault, delay) = this.chaos.meet();
                if fault == Fault::Slow {
                    this.hold = Some(Box::pin(tokio::time::sleep(delay)));
                }
                this.answering = Some(fault);
                fault
            }
        };
        if let Some(hold) = this.hold.as_mut() {
            ready!(hold.as_mut().poll(cx));
            this.hold = None;
        }
        match fault {
            Fault::Hang => Poll::Ready(Ok(buf.len())),
            Fault::Malformed => {
                let garbage = vec![0xFF; buf.len()];
                Pin::new(&mut this.inner).poll_write(cx, &garbage)
            }
            Fault::Truncated => {
                let half = buf.len() / 2;
                if half > 0 {
                    ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..half]))?;
                }
                this.cut = true;
                Poll::Ready(Ok(buf.len()))
            }
            _ => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers each 4-byte request with "ANSWER!!" through `Faulty`.
    async fn exchange(chaos: &Chaos) -> (Vec<u8>, Duration) {
        let (client, server) = tokio::io::duplex(1024);
        let chaos2 = chaos.clone();
        let serve = tokio::spawn(async move {
            let mut s = Faulty::new(server, chaos2);
            let mut req = [0u8; 4];
            if s.read_exact(&mut req).await.is_ok() {
                let _ = s.write_all(b"ANSWER!!").await;
                let _ = s.flush().await;
            }
            // Hold the stream open briefly so a hung answer is a silence, not an EOF.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let mut client = client;
        let start = tokio::time::Instant::now();
        client.write_all(b"ask!").await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.len() >= 8 {
                        break;
                    }
                }
            }
        }
        serve.abort();
        (got, start.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn each_fault_changes_the_answer_bytes() {
        let chaos = Chaos::default();
        assert_eq!(exchange(&chaos).await.0, b"ANSWER!!");
        chaos.set(Fault::Hang);
        assert_eq!(exchange(&chaos).await.0, b"");
        chaos.set(Fault::Malformed);
        assert_eq!(exchange(&chaos).await.0, vec![0xFF; 8]);
        chaos.set(Fault::Truncated);
        assert_eq!(exchange(&chaos).await.0, b"ANSW");
        chaos.set(Fault::Slow);
        chaos.set_delay(Duration::from_secs(3));
        let (got, took) = exchange(&chaos).await;
        assert_eq!(got, b"ANSWER!!");
        assert!(took >= Duration::from_secs(3), "{took:?}");
        // Protocol-level faults pass through: the protocol answers them itself.
        chaos.set(Fault::Error500);
        assert_eq!(exchange(&chaos).await.0, b"ANSWER!!");
        assert_eq!(chaos.hits(), 5, "one hit per answer that met a fault");
    }
}
