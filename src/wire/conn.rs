//! One upstream HTTP/1.1 connection, driven in the task of the request that uses it: no task
//! of its own, no channel to it. The socket (plain or TLS) and its read buffer; the exchange
//! (the request head and body written while the response head is read, in one future); and
//! the response body, [`Wire`], which hands the connection back to its pool once the response
//! was read whole. The bytes on the wire are `wire.rs`'s and `chunked.rs`'s.
//!
//! A response that comes before the request body was sent whole (an early error answer) ends
//! the sending: the rest of the body is not sent and the connection is not used again.
//!
//! The response timeout (no response head within the wait once the request was sent whole)
//! is the connection's own timer, armed lazily (`deadline::LazyDeadline`).

use super::chunked::{Chunked, Step};
use super::head::{self as wire, BodyFraming, Framing, ResponseHead, WireError};
use crate::deadline::LazyDeadline;
use bytes::{Bytes, BytesMut};
use http::Method;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

/// The socket under a connection.
pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Bytes asked of the socket per read (the buffer grows by this much when it is short).
const READ_CHUNK: usize = 8 * 1024;

/// A connection: its socket, what was read from it and not yet used, and its response timer.
pub struct Conn {
    io: Io,
    buf: BytesMut,
    /// The response timeout.
    timer: LazyDeadline,
}

impl Conn {
    pub fn new(io: Io) -> Box<Conn> {
        Box::new(Conn {
            io,
            buf: BytesMut::new(),
            timer: LazyDeadline::default(),
        })
    }

    /// Whether an idle connection can take a request: nothing arrived on it while it was idle
    /// (no end of file from an upstream that closed it, no stray bytes). One non-blocking read;
    /// no syscall when the socket is known to have nothing.
    pub fn usable(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut probe = [0u8; 1];
        let mut rb = ReadBuf::new(&mut probe);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut rb),
            Poll::Pending
        )
    }

    /// Reads once into the buffer: the bytes read (0 at end of file).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 2 {
            self.buf.reserve(READ_CHUNK);
        }
        // tokio's `read_buf` reads into the spare capacity without zeroing it first.
        let read = tokio::io::AsyncReadExt::read_buf(&mut self.io, &mut self.buf);
        std::pin::pin!(read).poll(cx)
    }
}

/// The request on its way out: the encoded bytes not yet written, then the body.
pub struct Outgoing<B> {
    out: Vec<u8>,
    at: usize,
    /// Dropped as soon as it is done with (sent whole, or not to be sent): whoever watches it
    /// (`body::Progress`) hears of its end then.
    body: Option<B>,
    framing: Framing,
    /// Body bytes still allowed (`Framing::Length`).
    left: u64,
    body_done: bool,
    flushed: bool,
    /// Some bytes of it went to a connection (`at` restarts when `out` is reused).
    wrote: bool,
}

/// The most body bytes gathered before a write.
const GATHER: usize = 64 * 1024;

impl<B> Outgoing<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    /// `head` already encoded (`wire::encode_head`).
    pub fn new(head: Vec<u8>, body: B, framing: Framing) -> Outgoing<B> {
        let left = match framing {
            Framing::Length(n) => n,
            Framing::Chunked => 0,
        };
        let body_done = framing == Framing::Length(0);
        let body = (!body_done).then_some(body);
        Outgoing {
            out: head,
            at: 0,
            body,
            framing,
            left,
            body_done,
            flushed: false,
            wrote: false,
        }
    }

    /// Nothing of it has been written yet: it may go on another connection.
    pub fn unsent(&self) -> bool {
        !self.wrote
    }

    /// Moves ready body frames into `out` (at most [`GATHER`] bytes): `Pending` when the body
    /// waits for its client.
    fn gather(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        while self.out.len() - self.at < GATHER {
            let Some(body) = self.body.as_mut() else {
                break;
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers of a request are not sent
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if self.at > 0 && self.at == self.out.len() {
                        self.out.clear();
                        self.at = 0;
                    }
                    match self.framing {
                        Framing::Length(_) => {
                            // hyper's client sends no more than the length it announced.
                            let n = usize::try_from(self.left)
                                .unwrap_or(usize::MAX)
                                .min(data.len());
                            self.out.extend_from_slice(&data[..n]);
                            self.left -= n as u64;
                            if self.left == 0 {
                                self.body_done = true;
                                self.body = None;
                            }
                        }
                        Framing::Chunked => {
                            wire::chunk_size_line(data.len(), &mut self.out);
                            self.out.extend_from_slice(&data);
                            self.out.extend_from_slice(b"\r\n");
                        }
                    }
                }
                Some(Err(e)) => return Poll::Ready(Err(ExchangeError::RequestBody(e.to_string()))),
                None => {
                    if self.left > 0 {
                        return Poll::Ready(Err(ExchangeError::RequestBody(format!(
                            "the request body ended {} bytes short of its length",
                            self.left
                        ))));
                    }
                    if self.framing == Framing::Chunked {
                        self.out.extend_from_slice(wire::LAST_CHUNK);
                    }
                    self.body_done = true;
                    self.body = None;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Writes what is gathered and gathers more until the body is sent whole and flushed:
    /// `Ready(Ok)` once it is, `Pending` while the socket or the body waits.
    fn poll_send(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<Result<(), ExchangeError>> {
        loop {
            let gathered = self.gather(cx)?;
            if self.at < self.out.len() {
                match Pin::new(&mut *io).poll_write(cx, &self.out[self.at..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(self.broke(io::ErrorKind::WriteZero.into())));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.at += n;
                        self.wrote = true;
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(self.broke(e))),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if gathered.is_pending() {
                // Written out; the body waits for its client.
                ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(|e| self.broke(e))?;
                return Poll::Pending;
            }
            if self.body_done {
                if !self.flushed {
                    ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(|e| self.broke(e))?;
                    self.flushed = true;
                    self.out = Vec::new();
                    self.at = 0;
                }
                return Poll::Ready(Ok(()));
            }
        }
    }

    fn broke(&self, e: io::Error) -> ExchangeError {
        if !self.wrote {
            ExchangeError::NotSent(e.to_string())
        } else {
            ExchangeError::Broken(e.to_string())
        }
    }
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum ExchangeError {
    /// Nothing was written: the request may go on another connection.
    NotSent(String),
    /// It broke once bytes were written (the request may have been applied).
    Broken(String),
    /// The client's request body failed.
    RequestBody(String),
    /// No response head within the wait after the request was sent whole (it may have been
    /// applied).
    Timeout,
}

/// Sends `out` on `conn` and reads the response head, waiting at most `wait` for it once the
/// request was sent whole. The connection comes back with the head (its body is then read from
/// it, [`Wire`]) and whether it may carry another request once that body was read whole.
pub async fn exchange<B>(
    mut conn: Box<Conn>,
    out: &mut Outgoing<B>,
    method: &Method,
    max_head: usize,
    wait: Duration,
) -> Result<(Box<Conn>, ResponseHead, bool), ExchangeError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut sent = false;
    let mut due = None;
    let (head, keep_alive) = std::future::poll_fn(|cx| {
        if !sent {
            sent = out.poll_send(&mut conn.io, cx)?.is_ready();
        }
        loop {
            match wire::parse_response(&mut conn.buf, method, max_head) {
                // An answer before the body was sent whole ends the sending, and the connection.
                Ok(Some(head)) => {
                    let keep_alive = head.keep_alive && sent;
                    return Poll::Ready(Ok((head, keep_alive)));
                }
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(ExchangeError::Broken(e.to_string()))),
            }
            match conn.poll_fill(cx) {
                Poll::Ready(Ok(0)) => {
                    let eof = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the connection closed before a response",
                    );
                    return Poll::Ready(Err(out.broke(eof)));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(out.broke(e))),
                Poll::Pending => {
                    if sent {
                        let due = *due.get_or_insert_with(|| Instant::now() + wait);
                        if conn.timer.expired(due, cx) {
                            return Poll::Ready(Err(ExchangeError::Timeout));
                        }
                    }
                    return Poll::Pending;
                }
            }
        }
    })
    .await?;
    Ok((conn, head, keep_alive))
}

/// Where a connection goes back once its response was read whole: its pool.
pub trait Home: Send + Sync {
    /// Takes back an idle connection to the upstream numbered `host`.
    fn take_back(&self, host: usize, conn: Box<Conn>);
}

/// How the rest of a response body is read.
#[derive(Debug)]
enum Decoder {
    Length(u64),
    /// Boxed: rarer than a length, and it keeps every `ProxyBody` small.
    Chunked(Box<Chunked>),
    Close,
    Done,
}

/// A response body read from its connection as the client takes it (one buffer's worth at
/// a time, so a slow client holds at most that much); the connection goes back to its pool
/// once the body was read whole, or is closed when the body is dropped before.
pub struct Wire {
    /// Boxed once when connected and kept boxed in the pool: the body stays small.
    conn: Option<Box<Conn>>,
    decoder: Decoder,
    home: Option<(Weak<dyn Home>, usize)>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("decoder", &self.decoder)
            .finish()
    }
}

impl Wire {
    /// The body of `head`, read from `conn`; `home` takes the connection back after it when
    /// the exchange allows (`keep_alive`).
    pub fn new(
        conn: Box<Conn>,
        framing: BodyFraming,
        home: Option<(Weak<dyn Home>, usize)>,
    ) -> Wire {
        let decoder = match framing {
            BodyFraming::Length(n) => Decoder::Length(n),
            BodyFraming::Chunked => Decoder::Chunked(Box::default()),
            BodyFraming::Close => Decoder::Close,
        };
        let mut w = Wire {
            conn: Some(conn),
            decoder,
            home,
        };
        if matches!(w.decoder, Decoder::Length(0)) {
            w.finish();
        }
        w
    }

    /// The body was read whole: the connection goes home if it may carry another request and
    /// holds nothing more.
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        if let Some(conn) = self.conn.take()
            && conn.buf.is_empty()
            && let Some((home, host)) = self.home.take()
            && let Some(pool) = home.upgrade()
        {
            pool.take_back(host, conn);
        }
    }

    fn fail(&mut self, e: WireError) -> Poll<Option<Result<Frame<Bytes>, WireError>>> {
        self.decoder = Decoder::Done;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Body for Wire {
    type Data = Bytes;
    type Error = WireError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WireError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match &mut this.decoder {
                Decoder::Done => return Poll::Ready(None),
                Decoder::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Decoder::Length(left) if !conn.buf.is_empty() => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(conn.buf.len());
                    *left -= n as u64;
                    let data = conn.buf.split_to(n).freeze();
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoder::Chunked(c) => match c.decode(&mut conn.buf) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::Trailers(t)) => return Poll::Ready(Some(Ok(Frame::trailers(t)))),
                    Ok(Step::End) => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(Step::More) => {}
                    Err(e) => return this.fail(e),
                },
                Decoder::Close if !conn.buf.is_empty() => {
                    let data = conn.buf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoder::Length(_) | Decoder::Close => {}
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.decoder, Decoder::Close) => {
                    // The end of a body delimited by the close; the connection is done.
                    this.decoder = Decoder::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(WireError::Incomplete),
                Ok(_) => {}
                Err(e) => return this.fail(WireError::Io(e.to_string())),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decoder, Decoder::Done | Decoder::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
