//! Parking idle HTTP/1.1 connections. hyper keeps a connection's buffers (an 8 KiB write
//! buffer, a read buffer of 8-16 KiB) and its connection state for as long as the connection is
//! open, idle or not. [`ParkIo`] sits between hyper and the socket and, once a connection has
//! been idle for `park_after`, reports end of stream to hyper — when, and only when, hyper has
//! nothing of the connection left ([`may_park`]): every request answered and flushed, no request
//! body outstanding, no partial request read — and the socket has nothing to read. hyper then
//! ends the connection gracefully without shutting the socket down, and `h1.rs` waits for the
//! next request holding only the socket.

use crate::body::{Guarded, ProxyBody};
use crate::deadline::LazyDeadline;
use bytes::Bytes;
use http::Response;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// What the service side of one connection tells its IO side. Both run in the connection's
/// task, so relaxed ordering suffices; atomics only because hyper wants `Send + Sync` services.
#[derive(Debug, Default)]
pub struct Exchanges {
    /// Requests handed to the service whose response body hyper has not dropped yet.
    open: AtomicUsize,
    /// The last request came with a body (hyper may still be reading it).
    last_had_body: AtomicBool,
    /// Requests handed to the service so far (tells one wait for a request head from the next).
    begun: AtomicUsize,
}

impl Exchanges {
    /// hyper handed a request to the service.
    pub fn started(&self, has_body: bool) {
        self.open.fetch_add(1, Relaxed);
        self.begun.fetch_add(1, Relaxed);
        self.last_had_body.store(has_body, Relaxed);
    }

    fn finished(&self) {
        self.open.fetch_sub(1, Relaxed);
    }
}

/// The facts [`may_park`] decides on.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    /// Requests not yet answered in full (see [`Exchanges`]).
    pub open_exchanges: usize,
    /// The last request had a body.
    pub last_had_body: bool,
    /// hyper wrote bytes that it has not flushed since.
    pub unflushed: bool,
    /// The last four bytes read were `\r\n\r\n`: the end of a request head. A partial request
    /// head cannot end so (its first empty line ends it), so hyper holds no partial request.
    pub at_head_end: bool,
}

/// Whether hyper can be told "end of stream" without losing anything of the connection.
pub fn may_park(s: Idle) -> bool {
    s.open_exchanges == 0 && !s.last_had_body && !s.unflushed && s.at_head_end
}

/// A connection's transport, as a parked connection waits on it for its next request.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready once the peer sent something or closed: `true` when there may be bytes to read,
    /// `false` when it closed. Polled with nothing buffered above the socket (hyper parked
    /// only after a read found nothing), so the socket's own readiness tells.
    fn poll_bytes(&self, cx: &mut Context<'_>) -> Poll<bool>;
    /// The peer's address (asked of the socket when the connection wakes, not kept).
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr>;
    /// The plain socket, when this is one (its first bytes tell h2c from HTTP/1.1).
    fn as_plain(&mut self) -> Option<&mut TcpStream>;
    /// The same, by value.
    fn into_plain(self) -> Option<TcpStream>;
}

impl Transport for TcpStream {
    fn poll_bytes(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut first = [0u8; 1];
        self.poll_peek(cx, &mut ReadBuf::new(&mut first))
            .map(|peeked| matches!(peeked, Ok(n) if n > 0))
    }
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        TcpStream::peer_addr(self)
    }
    fn as_plain(&mut self) -> Option<&mut TcpStream> {
        Some(self)
    }
    fn into_plain(self) -> Option<TcpStream> {
        Some(self)
    }
}

/// A TLS connection parks too: hyper's buffers go, rustls's state stays. rustls 0.23 keeps
/// ~10 KB per connection once it has served a request, and has no call that gives any of it
/// back: its record reader's 4,096-byte buffer (shrunk back to 4 KiB, never freed), its
/// handshake deframer's list of 16 fragment spans (3,712 bytes, made with the connection and
/// kept after the handshake), the two directions' keys (560 bytes each) and its state
/// (load/README.md). Bytes on the socket (a record: the next request, or the peer's close)
/// start a session, which reads them.
impl Transport for tokio_rustls::server::TlsStream<TcpStream> {
    fn poll_bytes(&self, cx: &mut Context<'_>) -> Poll<bool> {
        self.get_ref()
            .0
            .poll_read_ready(cx)
            .map(|ready| ready.is_ok())
    }
    fn peer_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.get_ref().0.peer_addr()
    }
    fn as_plain(&mut self) -> Option<&mut TcpStream> {
        None
    }
    fn into_plain(self) -> Option<TcpStream> {
        None
    }
}

/// The socket as hyper sees it on a connection that may park (see the module doc).
pub struct ParkIo<T> {
    stream: T,
    /// Bytes read before this session that hyper has not seen yet.
    prefix: Bytes,
    exchanges: Arc<Exchanges>,
    tail: [u8; 4],
    unflushed: bool,
    park_after: Duration,
    /// Armed once the connection may park; it parks when the timer fires with no read since.
    timer: Option<Pin<Box<Sleep>>>,
    read_since_armed: bool,
    parked: bool,
    /// How long a request head may take, from when the wait for it starts (the previous
    /// answer done, or the session's start) to its end: the request-head timeout, kept here
    /// rather than by hyper, whose timer is a new `Sleep` registered and dropped per request.
    head_wait: Duration,
    /// The current wait for a head: the requests begun when it started, and its deadline.
    head_due: Option<(usize, Instant)>,
    head_timer: LazyDeadline,
}

impl<T> ParkIo<T> {
    pub fn new(
        stream: T,
        prefix: Bytes,
        exchanges: Arc<Exchanges>,
        park_after: Duration,
        head_wait: Duration,
    ) -> Self {
        ParkIo {
            stream,
            prefix,
            exchanges,
            // A session starts where a request starts (the connection's start, or where it
            // parked), as if after a head: a session woken with nothing to read parks again.
            tail: *b"\r\n\r\n",
            unflushed: false,
            park_after,
            timer: None,
            read_since_armed: false,
            parked: false,
            head_wait,
            head_due: None,
            head_timer: LazyDeadline::default(),
        }
    }

    /// The socket back, and whether hyper let go of it because the connection parked (rather
    /// than because the client closed it or hyper closed it).
    pub fn into_parts(self) -> (T, bool) {
        (self.stream, self.parked)
    }

    fn idle(&self) -> Idle {
        Idle {
            open_exchanges: self.exchanges.open.load(Relaxed),
            last_had_body: self.exchanges.last_had_body.load(Relaxed),
            unflushed: self.unflushed,
            at_head_end: &self.tail == b"\r\n\r\n",
        }
    }

    fn saw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.read_since_armed = true;
        if let Some(last4) = bytes.last_chunk::<4>() {
            self.tail = *last4;
        } else {
            let keep = 4 - bytes.len();
            self.tail.copy_within(bytes.len().., 0);
            self.tail[keep..].copy_from_slice(bytes);
        }
    }

    /// Whether the wait for a request head has lasted `head_wait` (registering `cx` to be
    /// woken when it will have). Only while no request is being answered: a request's body
    /// has its own timeouts.
    fn head_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.exchanges.open.load(Relaxed) > 0 {
            return false;
        }
        let begun = self.exchanges.begun.load(Relaxed);
        let due = match self.head_due {
            Some((b, due)) if b == begun => due,
            _ => {
                let due = Instant::now() + self.head_wait;
                self.head_due = Some((begun, due));
                due
            }
        };
        self.head_timer.expired(due, cx)
    }

    /// Whether the connection has been parkable for `park_after` with nothing read meanwhile.
    /// Arms (or re-arms) the timer, registering `cx` to be woken when it fires.
    fn park_due(&mut self, cx: &mut Context<'_>) -> bool {
        if !may_park(self.idle()) {
            return false;
        }
        if self.park_after.is_zero() {
            return true;
        }
        let Some(timer) = self.timer.as_mut() else {
            let mut timer = Box::pin(tokio::time::sleep(self.park_after));
            self.read_since_armed = false;
            // The first poll registers this task's waker: it is woken when the timer fires.
            let due = timer.as_mut().poll(cx).is_ready();
            self.timer = Some(timer);
            return due;
        };
        if !timer.is_elapsed() {
            // Registered when armed (a task's waker does not change): no need to poll again.
            return false;
        }
        if self.read_since_armed {
            // It fired for an earlier idle spell: count this one from now.
            timer
                .as_mut()
                .reset(tokio::time::Instant::now() + self.park_after);
            self.read_since_armed = false;
            return timer.as_mut().poll(cx).is_ready();
        }
        true
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ParkIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if !me.prefix.is_empty() {
            let n = me.prefix.len().min(buf.remaining());
            let chunk = me.prefix.split_to(n);
            buf.put_slice(&chunk);
            me.saw(&chunk);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut me.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                me.saw(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if me.park_due(cx) => {
                // Nothing filled: end of stream, as far as hyper is concerned.
                me.parked = true;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if me.head_expired(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no whole request head within the request head timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ParkIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.unflushed = true;
        Pin::new(&mut me.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        me.unflushed = true;
        Pin::new(&mut me.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// hyper flushes its own buffer into the socket first and calls this only once that is
    /// done; a TCP socket has nothing more to flush.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let flushed = Pin::new(&mut me.stream).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            me.unflushed = false;
            // hyper reads before it writes and flushes; if the connection became parkable
            // only now, make sure hyper reads again once the timer fires.
            if me.park_due(cx) {
                cx.waker().wake_by_ref();
            }
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// The service's future for one request: the handler's (boxed: hyper keeps room for one per
/// connection, and the proxy's is several KiB; built in place, so it is copied once), and the
/// response body wrapped in [`Answer`]. Unpin, as `poll_without_shutdown` wants.
pub struct Answering<F> {
    inner: Pin<Box<F>>,
    exchanges: Arc<Exchanges>,
}

impl<F> Answering<F> {
    pub fn new(inner: Pin<Box<F>>, exchanges: Arc<Exchanges>) -> Self {
        Answering { inner, exchanges }
    }
}

impl<F: Future<Output = Response<ProxyBody>>> Future for Answering<F> {
    type Output = Result<Response<Answer>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        me.inner.as_mut().poll(cx).map(|response| {
            Ok(response.map(|body| Answer::new(body, Finishes(me.exchanges.clone()))))
        })
    }
}

/// A response body that tells [`Exchanges`] when hyper is done with it (dropped: sent whole,
/// or the connection failed).
pub type Answer = Guarded<Finishes>;

/// Tells [`Exchanges`] that an exchange finished when dropped (with its response body).
pub struct Finishes(Arc<Exchanges>);

impl Drop for Finishes {
    fn drop(&mut self) {
        self.0.finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(open: usize, body: bool, unflushed: bool, head_end: bool) -> Idle {
        Idle {
            open_exchanges: open,
            last_had_body: body,
            unflushed,
            at_head_end: head_end,
        }
    }

    #[test]
    fn parks_only_when_hyper_holds_nothing_of_the_connection() {
        // (open exchanges, last had a body, unflushed, last bytes end a head) -> may park
        let table = [
            ((0, false, false, true), true),
            ((1, false, false, true), false), // a request is being answered
            ((2, false, false, true), false),
            ((0, true, false, true), false), // a body may still be read
            ((0, false, true, true), false), // a response is still in hyper's buffer
            ((0, false, false, false), false), // a partial pipelined request may be buffered
            ((0, true, true, false), false),
        ];
        for ((open, body, unflushed, head_end), want) in table {
            assert_eq!(
                may_park(idle(open, body, unflushed, head_end)),
                want,
                "{open} {body} {unflushed} {head_end}"
            );
        }
    }

    #[test]
    fn the_tail_is_the_last_four_bytes_read_across_reads() {
        let stream_pair = || {
            // A ParkIo needs a socket; tail tracking does not touch it.
            let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = std.local_addr().unwrap();
            let c = std::net::TcpStream::connect(addr).unwrap();
            c.set_nonblocking(true).unwrap();
            (std, c)
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (_l, c) = stream_pair();
            let stream = TcpStream::from_std(c).unwrap();
            let mut io = ParkIo::new(
                stream,
                Bytes::new(),
                Arc::default(),
                Duration::ZERO,
                Duration::from_secs(60),
            );
            for (chunk, head_end) in [
                (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], true),
                (b"GET / HTTP/1.1\r\n", false),
                (b"\r", false),
                (b"\n", true),
                (b"\r\n\r", false),
                (b"\n", true),
                (b"{}", false),
            ] {
                io.saw(chunk);
                assert_eq!(io.idle().at_head_end, head_end, "{chunk:?}");
            }
        });
    }
}
