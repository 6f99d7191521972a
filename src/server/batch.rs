//! Batched writes for an HTTP/2 connection. hyper answers each stream in a task of its own, and
//! a stream that finishes wakes the connection's task, which tokio runs next (its LIFO slot):
//! the connection wrote each answer as it came, one system call per answer, while the answers
//! of its other streams were ready in the same tick. [`Batched`] makes the first write of a
//! batch wait one turn of the scheduler: it wakes its own task and says "not yet", and tokio
//! puts a task that woke itself at the back of the run queue, so the streams ready now add
//! their frames first and one write carries them all. The batch ends when the connection
//! flushes; the next write waits its turn again. Reads pass through.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An IO whose first write after each flush yields once (see the module's header).
pub struct Batched<T> {
    inner: T,
    /// The current batch has waited its turn: writes go through until the next flush.
    waited: bool,
}

impl<T> Batched<T> {
    pub fn new(inner: T) -> Self {
        Batched {
            inner,
            waited: false,
        }
    }

    /// Whether a write may go through now; if not, the task is woken to come back after the
    /// tasks already queued.
    fn ready(&mut self, cx: &mut Context<'_>) -> bool {
        if self.waited {
            return true;
        }
        self.waited = true;
        cx.waker().wake_by_ref();
        false
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Batched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Batched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if !me.ready(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut me.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if !me.ready(cx) {
            return Poll::Pending;
        }
        Pin::new(&mut me.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let flushed = Pin::new(&mut me.inner).poll_flush(cx);
        if flushed.is_ready() {
            me.waited = false;
        }
        flushed
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
