//! The router's own HTTP/1.1 server, for the plain requests that are nearly all of its
//! traffic: a head (and a body, if any) read whole in one buffer, parsed without hyper
//! (`head.rs`), handed to the proxy, and the answer written back with hyper's framing
//! (`encode.rs`), request after request on a kept-alive connection, with no task, channel or
//! per-request timer of its own. Anything else (see `head.rs`) goes to a hyper session with
//! the bytes read so far, which hands the connection back once it holds nothing of it.
//!
//! A request's life here, in order: wait for bytes (parking the connection when none come
//! within `park_after`), parse, call the proxy, write the head and the body, then keep the
//! connection for the next request or close it (the client's `Connection: close`, the
//! answer's, a body that broke, shutdown).

use super::Conn;
use super::encode::{self, Asked, BodyLength, DATE_LEN, Framing};
use super::head::{self, Head};
use super::park::Transport;
use crate::body::{ClientBody, ProxyBody};
use crate::deadline::LazyDeadline;
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use std::cell::RefCell;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

/// The read buffer: a request's head and body must fit in it to be served here.
const READ_BUF: usize = 8 * 1024;

/// The write buffer holds up to this much of an answer's first `FIRST_MAX` bytes: an answer
/// that fits (most of Coopr's, lists included) goes out in one call. At 16 KiB from the start,
/// a 50 KiB answer took four writes and ~15% more of the router's CPU than one (load/SCALE.md).
const FIRST_MAX: usize = 64 * 1024;

/// Once `FIRST_MAX` bytes of an answer are written, the rest is written every time the buffer
/// would pass this much (a long body whose frames are all ready does not gather in memory),
/// and a buffer grown past it is given back. It is what a download whose client stopped
/// reading keeps in the router besides its upstream read: at 16 KiB (HAProxy's
/// `tune.bufsize`) a stalled download holds ~33 KiB, against 64-123 KiB with 64 KiB
/// throughout, and costs no more CPU per GiB (load/SCALE.md, "One router, many long-running
/// downloads").
const OUT_MAX: usize = 16 * 1024;

/// The most a chunk's framing adds around its data (a 16-digit size, two line ends): what the
/// buffer may hold past its limit.
const CHUNK_FRAMING: usize = 20;

/// A body chunk at least this large is written from its own bytes rather than copied into the
/// write buffer behind the head.
const COPY_MAX: usize = 16 * 1024;

/// How a run of this server ended.
#[derive(Debug)]
pub enum Ended {
    /// No bytes for `park_after`, nothing held: the connection parks.
    Park,
    /// The connection is done: the client closed, an error, the last answer, shutdown.
    Close,
    /// A request for hyper: the bytes read, from its first.
    Hyper(Bytes),
}

/// What a connection's requests need besides its socket.
pub struct Serving<'a, H> {
    pub conn: &'a Conn,
    pub remote: SocketAddr,
    pub handler: &'a H,
    pub shutdown: &'a Shutdown,
}

/// Serves requests on `stream` (after `prefix`, bytes already read) until it parks, closes or
/// meets a request for hyper.
pub async fn serve<T, H, F>(with: &Serving<'_, H>, stream: &mut T, prefix: Bytes) -> Ended
where
    T: Transport,
    H: Fn(Request<ClientBody>, SocketAddr) -> F,
    F: Future<Output = Response<ProxyBody>>,
{
    let Some(mut read) = Reader::new(&prefix) else {
        return Ended::Hyper(prefix);
    };
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    let mut idle = LazyDeadline::default();
    let stop = with.shutdown.triggered();
    let mut stop = std::pin::pin!(stop);
    let mut registered = false;
    loop {
        let parsed = loop {
            if !read.is_empty() {
                match head::parse(read.data(), with.conn.head) {
                    Head::Request(p) => break p,
                    Head::Hyper => return Ended::Hyper(read.take()),
                    Head::More if read.is_full() => return Ended::Hyper(read.take()),
                    // The rest of a request that came in pieces: what is already here, else
                    // hyper (with its head timeout) waits for it.
                    Head::More => match read.fill_now(stream).await {
                        Fill::Bytes => continue,
                        Fill::Pending => return Ended::Hyper(read.take()),
                        Fill::Closed => return Ended::Close,
                    },
                }
            }
            let due = Instant::now() + with.conn.park_after;
            let waited = poll_fn(|cx| {
                match read.poll_fill(stream, cx) {
                    Poll::Ready(f) => return Poll::Ready(f),
                    Poll::Pending => {}
                }
                let over = if registered {
                    with.shutdown.is_over()
                } else {
                    registered = true;
                    stop.as_mut().poll(cx).is_ready()
                };
                if over {
                    return Poll::Ready(Fill::Closed);
                }
                if idle.expired(due, cx) {
                    return Poll::Ready(Fill::Pending);
                }
                Poll::Pending
            })
            .await;
            match waited {
                Fill::Bytes => {}
                Fill::Pending => return Ended::Park,
                Fill::Closed => return Ended::Close,
            }
        };
        read.consume(parsed.len);
        let method = parsed.parts.method.clone();
        let req = Request::from_parts(parsed.parts, ClientBody::Whole(parsed.body));
        let resp = (with.handler)(req, with.remote).await;
        let keep_alive = !parsed.close && !with.shutdown.is_triggered();
        let (mut parts, mut body) = resp.into_parts();
        let length = BodyLength::of(&body);
        out.clear();
        let asked = Asked {
            method: &method,
            keep_alive,
        };
        let Ok(encoder) = encode::response_head(&mut out, &mut parts, length, asked, &date())
        else {
            tracing::warn!(listener = with.conn.name, remote = %with.remote, status = %parts.status, "the answer's framing headers contradict each other or its body; connection closed");
            return Ended::Close;
        };
        drop(parts);
        if let Err(e) = write_body(stream, &mut out, &mut body, encoder.framing).await {
            tracing::debug!(listener = with.conn.name, remote = %with.remote, error = %e, "answer not written whole; connection closed");
            return Ended::Close;
        }
        drop(body);
        if out.capacity() > FIRST_MAX + COPY_MAX {
            // What a long answer grew it to is not kept for the next request (an answer's
            // first write, up to `FIRST_MAX`, is).
            out = Vec::with_capacity(1024);
        }
        if encoder.last || encoder.framing == Framing::Close {
            return Ended::Close;
        }
    }
}

/// Writes the head in `out` and the body after it, framed as the head says; flushes once
/// the body is written or waits for more of itself. An error or a body that does not match
/// its length ends the connection (as hyper ends it).
async fn write_body<T: AsyncWrite + Unpin>(
    stream: &mut T,
    out: &mut Vec<u8>,
    body: &mut ProxyBody,
    framing: Framing,
) -> io::Result<()> {
    let mut left = match framing {
        Framing::Length(0) => {
            // No body goes out (a HEAD, a 204, a 304, an empty one): hyper does not poll it.
            stream.write_all(out).await?;
            return stream.flush().await;
        }
        Framing::Length(n) => n,
        Framing::Chunked | Framing::Close => u64::MAX,
    };
    // How much the buffer may hold before it is written (`FIRST_MAX`, then `OUT_MAX`), and how
    // much of the answer is written.
    let (mut limit, mut written) = (FIRST_MAX, 0);
    loop {
        let polled = poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx))).await;
        let frame = match polled {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                // Nothing more for now: what is written so far goes out while the body waits.
                if !out.is_empty() {
                    send(stream, out, (&mut limit, &mut written)).await?;
                }
                stream.flush().await?;
                body.frame().await
            }
        };
        let data = match frame {
            None => break,
            Some(Err(e)) => return Err(io::Error::other(e)),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Empty data and trailers: nothing to write (trailers are not forwarded).
                _ => continue,
            },
        };
        let n = data.len() as u64;
        if framing != Framing::Chunked {
            if n > left {
                return Err(io::Error::other(
                    "the body is longer than its Content-Length",
                ));
            }
            left -= n;
        }
        // A body whose frames keep coming is written as it goes, not gathered whole: a frame
        // that would take the buffer past its limit goes after what the buffer holds, so the
        // buffer never holds more (what a client that stopped reading leaves in it).
        if !out.is_empty() && out.len() + data.len() > limit {
            send(stream, out, (&mut limit, &mut written)).await?;
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(hex(n, &mut [0; 16]));
            out.extend_from_slice(b"\r\n");
        }
        if data.len() >= COPY_MAX {
            if !out.is_empty() {
                send(stream, out, (&mut limit, &mut written)).await?;
            }
            stream.write_all(&data).await?;
            written += data.len();
        } else {
            out.extend_from_slice(&data);
        }
        if framing == Framing::Chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    match framing {
        Framing::Length(_) if left > 0 => {
            return Err(io::Error::other("the body ended before its Content-Length"));
        }
        Framing::Chunked => out.extend_from_slice(b"0\r\n\r\n"),
        _ => {}
    }
    if !out.is_empty() {
        stream.write_all(out).await?;
    }
    stream.flush().await
}

/// Writes what `out` holds and empties it, counting it in `written`. Once `FIRST_MAX` bytes of
/// the answer are out, the buffer is written every [`OUT_MAX`], and one grown past that is
/// given back (once: a long answer, a download, keeps no more than that while its client
/// stops reading).
async fn send<T: AsyncWrite + Unpin>(
    stream: &mut T,
    out: &mut Vec<u8>,
    (limit, written): (&mut usize, &mut usize),
) -> io::Result<()> {
    stream.write_all(out).await?;
    *written += out.len();
    out.clear();
    if *written >= FIRST_MAX {
        *limit = OUT_MAX;
        if out.capacity() > OUT_MAX + CHUNK_FRAMING {
            *out = Vec::with_capacity(OUT_MAX + CHUNK_FRAMING);
        }
    }
    Ok(())
}

/// `n` in hexadecimal (upper case, as hyper writes a chunk size), at the end of `buf`.
fn hex(mut n: u64, buf: &mut [u8; 16]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b"0123456789ABCDEF"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// What a read gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Bytes,
    /// Nothing to read now (or, waiting, nothing within `park_after`).
    Pending,
    /// The peer closed, a socket error, or shutdown.
    Closed,
}

/// The bytes read and not yet taken (`buf[start..]`). A read goes into the thread's scratch
/// buffer ([`SCRATCH`]) and only what it gave is copied here, so a connection holds room for
/// the bytes it actually has (a request is ~200 bytes), not `READ_BUF`: a burst of new
/// connections, each awake until it parks, holds that much less.
struct Reader {
    buf: Vec<u8>,
    start: usize,
}

impl Reader {
    /// A buffer holding `prefix`; `None` when it does not fit.
    fn new(prefix: &[u8]) -> Option<Reader> {
        if prefix.len() > READ_BUF {
            return None;
        }
        Some(Reader {
            buf: prefix.to_vec(),
            start: 0,
        })
    }

    fn data(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.start >= self.buf.len()
    }

    /// Holds `READ_BUF` bytes not taken: a request longer than that is not served here.
    fn is_full(&self) -> bool {
        self.data().len() >= READ_BUF
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.is_empty() {
            // The capacity stays: the next request is likely as long as this one.
            self.buf.clear();
            self.start = 0;
        }
    }

    /// What is read and not taken, as hyper's prefix.
    fn take(&mut self) -> Bytes {
        let b = Bytes::copy_from_slice(self.data());
        self.buf.clear();
        self.start = 0;
        b
    }

    fn poll_fill<T: AsyncRead + Unpin>(
        &mut self,
        stream: &mut T,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Fill> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let room = READ_BUF.saturating_sub(self.buf.len());
        SCRATCH.with(|scratch| {
            // Borrowed only within this poll, so never held twice; should it be, this read
            // makes a buffer of its own.
            let mut own;
            let mut borrowed = scratch.try_borrow_mut();
            let into: &mut [u8] = match borrowed.as_mut() {
                Ok(s) => &mut s[..room],
                Err(_) => {
                    own = vec![0; room];
                    &mut own
                }
            };
            let mut rb = ReadBuf::new(into);
            match Pin::new(stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Fill::Closed),
                Poll::Ready(Ok(())) => {
                    self.buf.extend_from_slice(rb.filled());
                    Poll::Ready(Fill::Bytes)
                }
                Poll::Ready(Err(_)) => Poll::Ready(Fill::Closed),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Reads what is there to read now, without waiting.
    async fn fill_now<T: AsyncRead + Unpin>(&mut self, stream: &mut T) -> Fill {
        poll_fn(|cx| match self.poll_fill(stream, cx) {
            Poll::Ready(f) => Poll::Ready(f),
            Poll::Pending => Poll::Ready(Fill::Pending),
        })
        .await
    }
}

thread_local! {
    /// Where reads land before what they gave is copied to the connection's [`Reader`].
    static SCRATCH: RefCell<Box<[u8; READ_BUF]>> = RefCell::new(Box::new([0; READ_BUF]));
    /// The `Date` value, rendered at most once a second per thread (hyper's `CachedDate`).
    static DATE: RefCell<(SystemTime, [u8; DATE_LEN])> =
        const { RefCell::new((SystemTime::UNIX_EPOCH, [b' '; DATE_LEN])) };
}

/// The current `Date` value.
pub(super) fn date() -> [u8; DATE_LEN] {
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        let now = SystemTime::now();
        if now >= cached.0 {
            let text = httpdate::fmt_http_date(now);
            if text.len() == DATE_LEN {
                cached.1.copy_from_slice(text.as_bytes());
            }
            let into = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            cached.0 = now + Duration::from_secs(1) - Duration::from_nanos(u64::from(into));
        }
        cached.1
    })
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
