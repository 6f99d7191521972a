//! The async shell around one HTTP/2 client connection's state (`conn.rs`): a [`Link`] is
//! the handle requests open streams through, shared with one task that connects, reads the
//! socket, hands what it read to the state (which wakes the streams' waiters) and writes
//! everything owed out in one write per turn: the requests opened since the last turn leave
//! together. The task ends when the connection does (closed by the peer, a protocol error,
//! or going away with no stream left).
//!
//! A peer that falls silent (a partition drops its packets; nothing closes the socket) is
//! found out by the link, not by each request's response timeout. A link whose peer sent no
//! SETTINGS within a [`LIVENESS`] tick is closed: its streams never left, so they are refused
//! (sent again once, then held for the next owner). A link that has streams
//! open and has read nothing for [`SUSPECT`] takes no new stream: the next request opens a new
//! connection, which fails to connect if the peer is cut off (nothing sent: the write is held
//! for the next owner), as a request on HTTP/1.1 took a connection of its own. When a whole
//! [`LIVENESS`] tick passes with streams open and nothing read, the link sends a PING and
//! retires; when the next tick passes silent too, it is closed and its streams fail (they
//! may have been acted on).

use super::conn::{Answer, Busy, Conn, Failure, Limits};
use crate::wire::Io;
use bytes::{Buf, Bytes, BytesMut};
use http::response::Parts;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Bytes read per read call.
const READ_CHUNK: usize = 16 * 1024;
/// Reads per turn at most, so that writes are not starved by a peer that keeps sending.
const READS_PER_TURN: usize = 8;
/// How long a link with streams open may read nothing before it is pinged (see above).
pub const LIVENESS: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a link with streams open may read nothing and still take new streams.
pub const SUSPECT: std::time::Duration = std::time::Duration::from_millis(200);

struct State {
    conn: Conn,
    /// When the task last read something from the peer.
    last_read: Instant,
    /// The task's waker, woken when a stream owes frames out.
    driver: Option<Waker>,
}

/// One HTTP/2 connection to a peer router (cheap to clone).
#[derive(Clone)]
pub struct Link(Arc<Mutex<State>>);

impl Link {
    /// A link whose connection `connect` makes, driven by a task of its own on this thread's
    /// runtime. Streams may be opened at once: they leave once it is connected.
    pub fn start<C>(limits: Limits, connect: C) -> Link
    where
        C: Future<Output = Result<Io, String>> + Send + 'static,
    {
        let link = Link(Arc::new(Mutex::new(State {
            conn: Conn::new(limits),
            last_read: Instant::now(),
            driver: None,
        })));
        tokio::spawn(drive(link.clone(), connect));
        link
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a stream for a request ([`Conn::open`]) and wakes the task to send it.
    pub fn open(&self, block: &[u8], body: Option<&Bytes>) -> Result<u32, Busy> {
        let mut s = self.state();
        if s.conn.ready() && s.conn.open_streams() > 0 && s.last_read.elapsed() > SUSPECT {
            return Err(Busy);
        }
        let id = s.conn.open(block, body)?;
        if let Some(w) = s.driver.take() {
            w.wake();
        }
        Ok(id)
    }

    /// Whether the connection takes new streams.
    pub fn usable(&self) -> bool {
        self.state().conn.usable()
    }

    /// Waits for stream `id`'s answer head ([`Conn::poll_head`]).
    pub fn poll_head(
        &self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Parts, Answer), Failure>> {
        self.state().conn.poll_head(id, cx)
    }

    /// The waiter of stream `id` gave up: the stream is reset.
    pub fn cancel(&self, id: u32) {
        let mut s = self.state();
        s.conn.cancel(id);
        if let Some(w) = s.driver.take() {
            w.wake();
        }
    }

    /// No new streams on this connection (it is suspect: an answer did not come in time).
    pub fn retire(&self) {
        let mut s = self.state();
        s.conn.retire();
        if let Some(w) = s.driver.take() {
            w.wake();
        }
    }
}

/// The connection's task: connect, then read and write until it is over.
async fn drive<C: Future<Output = Result<Io, String>>>(link: Link, connect: C) {
    let io = match connect.await {
        Ok(io) => io,
        Err(e) => {
            link.state().conn.closed(&e);
            return;
        }
    };
    let mut d = Driver {
        io,
        link,
        rbuf: BytesMut::with_capacity(READ_CHUNK),
        scratch: vec![0; READ_CHUNK].into_boxed_slice(),
        wbuf: Bytes::new(),
        tick: Box::pin(tokio::time::sleep(LIVENESS)),
        heard: false,
        pinged: false,
    };
    std::future::poll_fn(|cx| d.poll(cx)).await;
    let _ = std::future::poll_fn(|cx| Pin::new(&mut d.io).poll_shutdown(cx)).await;
}

struct Driver {
    io: Io,
    link: Link,
    rbuf: BytesMut,
    scratch: Box<[u8]>,
    /// Being written.
    wbuf: Bytes,
    /// The liveness tick, whether anything was read since the last one, and whether a PING
    /// went unanswered.
    tick: Pin<Box<tokio::time::Sleep>>,
    heard: bool,
    pinged: bool,
}

impl Driver {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.tick.as_mut().poll(cx).is_ready() {
            let next = Instant::now() + LIVENESS;
            self.tick.as_mut().reset(next);
            let _ = self.tick.as_mut().poll(cx);
            let mut s = self.link.state();
            if !s.conn.ready() {
                s.conn
                    .closed("the peer did not open HTTP/2 (no SETTINGS) within a second");
                return Poll::Ready(());
            }
            if self.heard || s.conn.open_streams() == 0 {
                (self.heard, self.pinged) = (false, false);
            } else if !self.pinged {
                s.conn.ping();
                s.conn.retire();
                self.pinged = true;
            } else {
                s.conn
                    .closed("the peer answered nothing, not even a PING, for two seconds");
                return Poll::Ready(());
            }
        }
        loop {
            let mut progress = false;
            let mut gone = None;
            let mut read = false;
            for _ in 0..READS_PER_TURN {
                let mut rb = ReadBuf::new(&mut self.scratch);
                match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                        gone = Some("closed by the peer".to_string());
                        break;
                    }
                    Poll::Ready(Ok(())) => {
                        self.rbuf.extend_from_slice(rb.filled());
                        read = true;
                        self.heard = true;
                    }
                    Poll::Ready(Err(e)) => {
                        gone = Some(e.to_string());
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            let finished = {
                let mut s = self.link.state();
                if read {
                    s.conn.recv(&mut self.rbuf);
                    s.last_read = Instant::now();
                    progress = true;
                }
                if let Some(why) = &gone {
                    s.conn.closed(why);
                    return Poll::Ready(());
                }
                s.conn.release(cx);
                if self.wbuf.is_empty() {
                    // From here on its requests may reach the peer: a failure is no longer
                    // one that sent nothing.
                    let (out, below) = s.conn.take_out();
                    s.conn.written(below);
                    self.wbuf = out;
                }
                match &s.driver {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.driver = Some(cx.waker().clone()),
                }
                s.conn.finished()
            };
            let had = !self.wbuf.is_empty();
            while !self.wbuf.is_empty() {
                match Pin::new(&mut self.io).poll_write(cx, &self.wbuf) {
                    Poll::Ready(Ok(0)) => return self.gone("the socket took no bytes"),
                    Poll::Ready(Ok(n)) => self.wbuf.advance(n),
                    Poll::Ready(Err(e)) => return self.gone(&e.to_string()),
                    Poll::Pending => break,
                }
            }
            if had && self.wbuf.is_empty() {
                if let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
                    return self.gone(&e.to_string());
                }
                progress = true;
            }
            if finished && self.wbuf.is_empty() {
                return Poll::Ready(());
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    fn gone(&mut self, why: &str) -> Poll<()> {
        self.link.state().conn.closed(why);
        Poll::Ready(())
    }
}
