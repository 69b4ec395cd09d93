//! The simulated network latency (`netraven sim --latency-ms N`, fault `latency=N`): a delay
//! line on everything a device sends.
//!
//! Every byte the device writes reaches the client `N` ms after it was written; what the client
//! sends arrives at once. So each exchange in which the client waits for the device's answer
//! (SSH version and key exchange, authentication, channel open, PTY, shell, every command)
//! takes at least `N` ms longer: a round-trip time of `N` ms. Bytes written back to back are
//! delayed once, not once per write (a 30 KB configuration costs `N`, not `N` per packet), as
//! on a real link. The TCP handshake itself (answered by the kernel) is not delayed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the writer task does next.
enum Item {
    /// Write these bytes once the instant has passed.
    Data(Instant, Vec<u8>),
    /// Shut the write side down once the instant has passed (after everything before it).
    Shutdown(Instant),
}

/// A TCP connection whose writes reach the peer `delay` later (see the module docs). Reads are
/// not delayed.
pub(crate) struct DelayedStream {
    rd: OwnedReadHalf,
    wr: DelayedWriter,
}

impl DelayedStream {
    /// Wraps `stream`; spawns the task that writes each chunk when its time has come.
    pub(crate) fn new(stream: TcpStream, delay: Duration) -> Self {
        let (rd, wr) = stream.into_split();
        DelayedStream {
            rd,
            wr: DelayedWriter::new(wr, delay),
        }
    }
}

/// The write half of a connection behind the delay line.
pub(crate) struct DelayedWriter {
    tx: mpsc::UnboundedSender<Item>,
    delay: Duration,
}

impl DelayedWriter {
    /// Delays what is written to `wr` by `delay`; spawns the task that writes each chunk when
    /// its time has come.
    pub(crate) fn new(wr: OwnedWriteHalf, delay: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(wr, rx));
        DelayedWriter { tx, delay }
    }

    fn push(&self, item: Item) -> io::Result<()> {
        self.tx
            .send(item)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the connection is closed"))
    }
}

/// Writes each queued chunk at its instant, in order; ends when the stream is dropped, shut
/// down or a write fails (the next write of the stream then fails too).
async fn writer(mut wr: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Item>) {
    while let Some(item) = rx.recv().await {
        match item {
            Item::Data(at, data) => {
                tokio::time::sleep_until(at).await;
                if wr.write_all(&data).await.is_err() {
                    return;
                }
            }
            Item::Shutdown(at) => {
                tokio::time::sleep_until(at).await;
                let _ = wr.shutdown().await;
                return;
            }
        }
    }
}

impl AsyncRead for DelayedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.rd).poll_read(cx, buf)
    }
}

impl AsyncWrite for DelayedWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let at = Instant::now() + self.delay;
        Poll::Ready(self.push(Item::Data(at, buf.to_vec())).map(|()| buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let at = Instant::now() + self.delay;
        // Already closed (the writer failed): nothing left to shut down.
        let _ = self.push(Item::Shutdown(at));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for DelayedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.wr).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.wr).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.wr).poll_shutdown(cx)
    }
}
