//! The async shell around one HTTP/2 connection's state (`conn.rs`): one task reads the socket,
//! runs each stream's request through the proxy's handler (on this task: no task per stream),
//! sends the answers' bodies within the client's windows, and writes everything that is ready
//! in one write per turn. Also the connection's clocks, checked once per `idle` tick and not
//! per request: a connection with no stream for a whole tick gets GOAWAY, one that sent
//! nothing for a tick with streams open gets a PING, and one that then stays silent another
//! tick is closed; a listener's shutdown sends GOAWAY and leaves the open streams `idle` to end.
//! A request held for its small body (`conn.rs`) goes on at the tick with what came of it.

use super::conn::{self, Body, Conn, Event};
use crate::body::{ClientBody, ProxyBody};
use crate::h2::frame::Reason;
use crate::shutdown::Shutdown;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How one connection is served.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub limits: conn::Limits,
    /// The idle tick (see the module's header).
    pub idle: Duration,
    /// Requests of the connection handed to the handler at once (each until its answer is
    /// sent); more wait their turn.
    pub per_connection: usize,
}

/// Reads stop while this much is waiting to be written (a client that does not read).
const OUT_HIGH: usize = 256 * 1024;
/// Bytes read per read call.
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// Where reads land before what they gave is copied to the connection's buffer.
    static SCRATCH: std::cell::RefCell<Box<[u8; READ_CHUNK]>> =
        std::cell::RefCell::new(Box::new([0; READ_CHUNK]));
}

/// Serves `io` until the client or the connection's clocks end it. `read`: what was already
/// read from it (an h2c connection's preface and what came with it; nothing over TLS). A
/// connection that does not open with the HTTP/2 preface within `idle` gets GOAWAY.
pub async fn serve<T, H, F>(
    io: T,
    read: Bytes,
    remote: SocketAddr,
    handler: H,
    opts: Options,
    shutdown: &Shutdown,
) where
    T: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<ClientBody>, SocketAddr) -> F,
    F: Future<Output = Response<ProxyBody>>,
{
    let mut io = io;
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    rbuf.extend_from_slice(&read);
    if !preface(&mut io, &mut rbuf, opts.idle).await {
        let mut out = BytesMut::new();
        crate::h2::frame::put_goaway(&mut out, 0, Reason::PROTOCOL_ERROR);
        let _ = tokio::io::AsyncWriteExt::write_all(&mut io, &out).await;
        return;
    }
    let stop = shutdown.triggered();
    let mut stop = std::pin::pin!(stop);
    let mut s = Serving {
        io,
        conn: Conn::new(opts.limits),
        rbuf,
        handler,
        remote,
        opts,
        running: FuturesUnordered::new(),
        waiting: VecDeque::new(),
        answers: Vec::new(),
        busy: 0,
        ticks: 0,
        seen: 0,
        pinged: false,
        tick: Box::pin(tokio::time::sleep(opts.idle)),
        ending: false,
        state: State::Open,
    };
    // What came with the preface.
    s.take();
    std::future::poll_fn(|cx| s.poll(cx, stop.as_mut())).await;
}

/// Reads the client's preface (a TLS connection's; h2c's was read to tell it from HTTP/1.1)
/// within `within`, and takes it off `rbuf`; `false` if it is not the HTTP/2 preface.
async fn preface<T: AsyncRead + Unpin>(io: &mut T, rbuf: &mut BytesMut, within: Duration) -> bool {
    let want = crate::h2::frame::PREFACE;
    let read = async {
        while rbuf.len() < want.len() {
            match tokio::io::AsyncReadExt::read_buf(io, rbuf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        true
    };
    let whole = matches!(tokio::time::timeout(within, read).await, Ok(true));
    if !whole || !rbuf.starts_with(want) {
        return false;
    }
    let _ = rbuf.split_to(want.len());
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// A connection error was framed: write it, then close.
    Failing,
    /// The client closed its side, or a write failed: stop.
    Gone,
}

/// One stream's handler, and its stream; `fut` is taken out when the stream is cancelled.
struct Running<F> {
    id: u32,
    fut: Option<Pin<Box<F>>>,
    waker: Option<Waker>,
}

impl<F: Future<Output = Response<ProxyBody>>> Future for Running<F> {
    type Output = (u32, Option<Response<ProxyBody>>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let me = self.get_mut();
        let Some(fut) = me.fut.as_mut() else {
            return Poll::Ready((me.id, None));
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(resp) => Poll::Ready((me.id, Some(resp))),
            Poll::Pending => {
                if !me.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    me.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// An answer whose body is being sent.
struct Answer {
    id: u32,
    body: ProxyBody,
    /// Data taken from the body that the windows did not let out yet.
    pending: Bytes,
}

struct Serving<T, H, F> {
    io: T,
    conn: Conn,
    rbuf: BytesMut,
    handler: H,
    remote: SocketAddr,
    opts: Options,
    running: FuturesUnordered<Running<F>>,
    /// Requests waiting for a place (`per_connection`).
    waiting: VecDeque<(u32, Request<ClientBody>)>,
    answers: Vec<Answer>,
    /// Requests handed to the handler whose answer is not sent whole yet.
    busy: usize,
    /// Reads that brought bytes, and their count at the last tick.
    ticks: u64,
    seen: u64,
    pinged: bool,
    tick: Pin<Box<tokio::time::Sleep>>,
    /// GOAWAY was sent for the idle tick or a shutdown: closed once no stream is left, or at
    /// the next tick.
    ending: bool,
    state: State,
}

impl<T, H, F> Serving<T, H, F>
where
    T: AsyncRead + AsyncWrite + Unpin,
    H: Fn(Request<ClientBody>, SocketAddr) -> F,
    F: Future<Output = Response<ProxyBody>>,
{
    fn poll(&mut self, cx: &mut Context<'_>, stop: Pin<&mut impl Future<Output = ()>>) -> Poll<()> {
        let mut stop = stop;
        loop {
            let read = self.read(cx);
            self.events();
            self.handlers(cx);
            self.bodies(cx);
            self.conn.release(cx);
            // A place an answer gave back goes to a waiting request, which is polled next turn.
            let started = self.start_waiting();
            self.clocks(cx, stop.as_mut());
            if self.write(cx).is_ready() {
                return Poll::Ready(());
            }
            if self.state == State::Gone {
                return Poll::Ready(());
            }
            if self.done() && self.conn.out.is_empty() {
                let _ = Pin::new(&mut self.io).poll_shutdown(cx);
                return Poll::Ready(());
            }
            if !read && !started {
                return Poll::Pending;
            }
        }
    }

    /// Whether the connection has nothing left to do: it failed, or it is going away and
    /// every stream ended.
    fn done(&self) -> bool {
        self.state == State::Failing
            || (self.conn.closing()
                && self.conn.open_streams() == 0
                && self.running.is_empty()
                && self.answers.is_empty())
    }

    /// Reads what the socket has and hands it to the state; `true` if bytes came.
    fn read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.state != State::Open || self.conn.out.len() >= OUT_HIGH {
            return false;
        }
        let got = SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut buf = ReadBuf::new(&mut scratch[..]);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => None,
                Poll::Ready(Err(_)) => Some(0),
                Poll::Ready(Ok(())) => {
                    self.rbuf.extend_from_slice(buf.filled());
                    Some(buf.filled().len())
                }
            }
        });
        match got {
            None => false,
            Some(0) => {
                self.conn.fail(Reason::NO_ERROR);
                self.state = State::Gone;
                false
            }
            Some(_) => {
                self.ticks += 1;
                self.take();
                true
            }
        }
    }

    /// Hands the bytes read to the connection's state.
    fn take(&mut self) {
        if let Err(e) = self.conn.recv(&mut self.rbuf) {
            if e.0 == Reason::ENHANCE_YOUR_CALM {
                // A flood of resets or errors: worth an operator's eye (CVE-2023-44487).
                tracing::warn!(remote = %self.remote, "HTTP/2 client reset or broke too many streams; connection closed (GOAWAY ENHANCE_YOUR_CALM)");
            } else {
                tracing::debug!(remote = %self.remote, reason = e.0.0, "HTTP/2 connection error; GOAWAY");
            }
            self.conn.fail(e.0);
            self.state = State::Failing;
        }
    }

    fn events(&mut self) {
        while let Some(ev) = self.conn.events.pop_front() {
            match ev {
                Event::Request { stream, head, body } => {
                    let body = match body {
                        Body::Whole(b) => ClientBody::Whole(b),
                        Body::Streamed(b) => ClientBody::H2(b),
                    };
                    self.waiting.push_back((stream, head.map(|()| body)));
                }
                Event::Cancel(id) => self.cancel(id),
            }
        }
    }

    /// Hands waiting requests to the handler while there is a place; `true` if one was.
    fn start_waiting(&mut self) -> bool {
        let mut started = false;
        while self.busy < self.opts.per_connection.max(1) {
            let Some((id, req)) = self.waiting.pop_front() else {
                break;
            };
            started = true;
            self.busy += 1;
            self.running.push(Running {
                id,
                fut: Some(Box::pin((self.handler)(req, self.remote))),
                waker: None,
            });
        }
        started
    }

    fn cancel(&mut self, id: u32) {
        if let Some(at) = self.waiting.iter().position(|(w, _)| *w == id) {
            self.waiting.remove(at);
            return;
        }
        if let Some(at) = self.answers.iter().position(|a| a.id == id) {
            self.answers.swap_remove(at);
            self.busy -= 1;
            return;
        }
        for r in self.running.iter_mut() {
            if r.id == id && r.fut.is_some() {
                r.fut = None;
                if let Some(w) = r.waker.take() {
                    w.wake();
                }
            }
        }
    }

    /// Takes the handlers' answers and sends their heads.
    fn handlers(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some((id, resp))) = self.running.poll_next_unpin(cx) {
            let Some(resp) = resp else {
                self.busy -= 1;
                continue;
            };
            let (mut parts, body) = resp.into_parts();
            // As hyper: a `Date`, and a length the body knows, when the answer has none.
            if !parts.headers.contains_key(header::DATE) {
                let date = crate::server::fast::date();
                if let Ok(v) = HeaderValue::from_bytes(&date) {
                    parts.headers.insert(header::DATE, v);
                }
            }
            let end = body.is_end_stream();
            if !end
                && let Some(n) = body.size_hint().exact()
                && !parts.headers.contains_key(header::CONTENT_LENGTH)
            {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
            }
            self.conn.respond(id, parts.status, &parts.headers, end);
            if end {
                self.busy -= 1;
            } else {
                self.answers.push(Answer {
                    id,
                    body,
                    pending: Bytes::new(),
                });
            }
        }
    }

    /// Sends what the answers' bodies have, within the windows.
    fn bodies(&mut self, cx: &mut Context<'_>) {
        let mut i = 0;
        while i < self.answers.len() {
            if self.conn.out.len() >= OUT_HIGH {
                return;
            }
            match self.body(cx, i) {
                Some(()) => {
                    self.answers.swap_remove(i);
                    self.busy -= 1;
                }
                None => i += 1,
            }
        }
    }

    /// Sends what answer `i` may; `Some` once it is sent whole (or failed).
    fn body(&mut self, cx: &mut Context<'_>, i: usize) -> Option<()> {
        let conn = &mut self.conn;
        let a = &mut self.answers[i];
        loop {
            let room = conn.send_capacity(a.id);
            if !a.pending.is_empty() {
                let n = room.min(a.pending.len());
                if n == 0 {
                    return None;
                }
                let chunk = a.pending.split_to(n);
                conn.send_data(a.id, &chunk, false);
                if !a.pending.is_empty() {
                    return None;
                }
                continue;
            }
            if !conn.is_open(a.id) {
                return Some(());
            }
            match Pin::new(&mut a.body).poll_frame(cx) {
                Poll::Pending => return None,
                Poll::Ready(None) => {
                    conn.send_data(a.id, &[], true);
                    return Some(());
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(stream = a.id, error = %e, "HTTP/2 answer body failed; stream reset");
                    conn.abort(a.id, Reason::INTERNAL_ERROR);
                    return Some(());
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(mut data) => {
                        let end = a.body.is_end_stream();
                        let n = room.min(data.len());
                        if n == data.len() {
                            conn.send_data(a.id, &data, end);
                            if end {
                                return Some(());
                            }
                        } else {
                            if n > 0 {
                                conn.send_data(a.id, &data[..n], false);
                            }
                            data.advance(n);
                            a.pending = data;
                            if end {
                                // The end goes with the last of the data, once it fits.
                                a.body = ProxyBody::Empty;
                            }
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            conn.send_trailers(a.id, &trailers);
                            return Some(());
                        }
                    }
                },
            }
        }
    }

    /// The idle tick, the keep-alive and the listener's shutdown.
    fn clocks(&mut self, cx: &mut Context<'_>, stop: Pin<&mut impl Future<Output = ()>>) {
        if self.state != State::Open {
            return;
        }
        if !self.ending && stop.poll(cx).is_ready() {
            self.conn.go_away();
            self.ending = true;
            self.conn.start_held();
            let next = tokio::time::Instant::now() + self.opts.idle;
            self.tick.as_mut().reset(next);
        }
        while self.tick.as_mut().poll(cx).is_ready() {
            let quiet = self.ticks == self.seen;
            self.seen = self.ticks;
            let idle = self.conn.open_streams() == 0 && self.busy == 0;
            match self.ending {
                // A whole tick after GOAWAY: whatever is left is cut.
                true => {
                    self.conn.fail(Reason::NO_ERROR);
                    self.state = State::Failing;
                    return;
                }
                false if quiet && idle => {
                    self.conn.go_away();
                    self.ending = true;
                }
                false if quiet && self.pinged => {
                    tracing::debug!(remote = %self.remote, "HTTP/2 client answers no PING; closing");
                    self.state = State::Gone;
                    return;
                }
                false if quiet => {
                    self.conn.ping();
                    self.pinged = true;
                }
                false => self.pinged = false,
            }
            self.conn.start_held();
            let next = tokio::time::Instant::now() + self.opts.idle;
            self.tick.as_mut().reset(next);
        }
    }

    /// Writes what is framed; `Ready` when the connection is to end (a write failed).
    fn write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.conn.out.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.conn.out) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(n)) => self.conn.out.advance(n),
                Poll::Pending => return Poll::Pending,
            }
        }
        if self.conn.out.capacity() > 4 * OUT_HIGH {
            self.conn.out = BytesMut::with_capacity(4096);
        }
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Ready(Err(_)) => Poll::Ready(()),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
#[path = "serve_tests.rs"]
mod tests;
