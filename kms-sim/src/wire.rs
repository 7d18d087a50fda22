//! Byte-level faults: what a failing server does to the bytes of its answers, whatever
//! protocol they carry. Every service puts [`Faulty`] around the stream it answers on: the
//! simulated Vault and object store and their live fronts around the TCP stream, the KMIP
//! server around the plaintext stream inside TLS (so that a garbled answer reaches the
//! client's decoder rather than its TLS layer).
//!
//! Each answer meets the fault that is on when the server starts writing it:
//! - `Hang`: the answer is swallowed; the client waits for its timeout.
//! - `Slow`: the answer is held back for the chaos delay, then sent whole.
//! - `Malformed`: every byte of the answer is 0xFF (for TTLV an unknown item type, for
//!   HTTP not a status line).
//! - `Truncated`: the first half of the answer's first write goes out, then the stream
//!   ends.
//! - `Refuse`: a new connection is dropped where it is accepted ([`Chaos::refuses`]); on a
//!   connection already open, the server reads end-of-stream when the next request
//!   arrives, and answers nothing (clients that keep connections alive meet it too).
//!
//! The protocol's own faults (HTTP 500, 503 and 429; KMIP result codes) pass through here
//! untouched: each protocol answers them itself.

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
    /// A request arrived while `Refuse` was on: the server reads end-of-stream from then on.
    refused: bool,
}

impl<S> Faulty<S> {
    pub fn new(inner: S, chaos: Chaos) -> Self {
        Faulty {
            inner,
            chaos,
            answering: None,
            hold: None,
            cut: false,
            refused: false,
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
        if self.refused || self.cut {
            return Poll::Ready(Ok(()));
        }
        let filled = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > filled {
            // Checked when bytes arrive, so refusals count one per connection closed.
            if self.chaos.refuses() {
                buf.set_filled(filled);
                self.refused = true;
                return poll;
            }
            // A new request: its answer meets the fault that is on when it is written.
            // (Only bytes count: a server that polls for the next request while its answer
            // is held back must not restart the hold.)
            if self.hold.is_none() {
                self.answering = None;
            }
        }
        poll
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
                // The stream ends here, whatever the server does next (an HTTP server
                // would otherwise keep the connection open for the next request, and the
                // client would wait for the rest instead of reading a cut answer). Loopback
                // and turmoil shut down at once; one that is still pending is left to the
                // server's own close.
                let _ = Pin::new(&mut this.inner).poll_shutdown(cx);
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
        // A connection already open when refusal starts: its request is read as the end.
        chaos.set(Fault::Refuse);
        assert_eq!(exchange(&chaos).await.0, b"");
        chaos.set(Fault::Slow);
        chaos.set_delay(Duration::from_secs(3));
        let (got, took) = exchange(&chaos).await;
        assert_eq!(got, b"ANSWER!!");
        assert!(took >= Duration::from_secs(3), "{took:?}");
        // Protocol-level faults pass through: the protocol answers them itself.
        chaos.set(Fault::Error500);
        assert_eq!(exchange(&chaos).await.0, b"ANSWER!!");
        assert_eq!(
            chaos.hits(),
            5,
            "one hit per answer that met a byte-level fault"
        );
    }
}
