//! One plain-TCP client connection, or a TLS one that ALPN made HTTP/1.1: wait for its first
//! bytes holding nothing but the socket, hand an h2c connection (prior knowledge, plain only)
//! to the router's own HTTP/2 server (`h2/`), and serve HTTP/1.1 with the router's own server (`fast.rs`), a
//! request it leaves to hyper in a session of hyper's HTTP/1.1 server that ends as soon as hyper
//! holds nothing of the connection (`park.rs`). Idle, the connection parks: it holds only its
//! socket (and rustls's state, over TLS) and costs what its task does (384 bytes) and tokio's
//! registration of the socket (256), not a server's buffers.

use super::fast;
use super::park::{Answer, Answering, Exchanges, ParkIo, Transport};
use super::{Conn, Slot};
use crate::body::{ClientBody, ProxyBody};
use crate::metrics::Counted;
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::futures::Notified;
use tokio::time::Sleep;

/// How a wait for the next request ended.
enum Woken {
    /// Bytes to read.
    Open,
    /// The peer closed, idle for the whole idle timeout, shutting down, or a socket error.
    Close,
}

/// Serves one accepted connection until it closes; its [`Slot`] (its place under the cap, its
/// gauge, and what the listener's connections share) is dropped with it. A plain connection's
/// first bytes tell h2c from HTTP/1.1; a TLS one (ALPN chose HTTP/1.1) starts its first
/// session at once (rustls may already hold the request). This future is the connection's
/// whole task, so what it keeps across a wait is what an idle connection costs: the socket,
/// the slot, the handler (an `Arc`) and the wait ([`WaitForBytes`]). Everything else (reading
/// the opening, requests, a hyper session, an h2c connection) runs in [`serve_awake`], boxed,
/// and lives only while the connection is awake. Even the peer's address is asked of the
/// socket when it wakes rather than kept: with it, the task would not fit tokio's next
/// smaller allocation (see the test `an_idle_connection_keeps_a_small_future`).
///
/// An `async` block over the arguments rather than an `async fn`: an `async fn`'s state keeps
/// its arguments twice (as arguments and as the body's locals), and the block mutates its
/// captures in place, so the state is the captures and the wait.
pub fn serve<T, H, F>(conn: Slot, mut stream: T, handler: H) -> impl Future<Output = ()>
where
    T: Transport,
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let mut first = true;
    async move {
        loop {
            if !(first && stream.as_plain().is_none()) {
                let Some(wait) = WaitForBytes::new(&stream, &conn) else {
                    return;
                };
                if matches!(wait.await, Woken::Close) {
                    return;
                }
            }
            let remote = match stream.peer_addr() {
                Ok(remote) => remote,
                Err(e) => {
                    tracing::debug!(listener = conn.name, error = %e, "connection gone before its request; closed");
                    return;
                }
            };
            let with = Serving {
                conn: &conn,
                remote,
                handler: &handler,
            };
            match Box::pin(serve_awake(with, stream, first)).await {
                Some(parked) => (stream, first) = (parked, false),
                None => return,
            }
        }
    }
}

/// What a connection's work needs besides its socket, borrowed from its task.
struct Serving<'a, H> {
    conn: &'a Conn,
    remote: SocketAddr,
    handler: &'a H,
}

/// A woken connection's work: its opening when it is a plain connection's first bytes (h2c is
/// served here to its end), then requests, by the router's own server (`fast.rs`) and, for
/// those it leaves to hyper, by a hyper session each, until the connection parks with nothing
/// read (the socket is given back) or is done (`None`).
async fn serve_awake<T, H, F>(with: Serving<'_, H>, mut stream: T, first: bool) -> Option<T>
where
    T: Transport,
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let Serving {
        conn,
        remote,
        handler,
    } = with;
    let shutdown = &conn.shutdown;
    let mut prefix = Bytes::new();
    if first && let Some(tcp) = stream.as_plain() {
        // Boxed, as is the h2c connection: the future of a session need not keep room for them.
        match Box::pin(read_opening(tcp, conn.idle_timeout)).await {
            Opening::H2(read) => {
                if let Some(tcp) = stream.into_plain() {
                    let h2 = handler.clone();
                    Box::pin(serve_h2c(conn, tcp, read, remote, h2, shutdown)).await;
                }
                return None;
            }
            Opening::H1(read) => prefix = read,
            Opening::Bad => {
                // A client that speaks neither HTTP/1 nor a well-formed HTTP/2 preface hears
                // HTTP/2 (RFC 9113 §3.4: a broken preface is a connection error of type
                // PROTOCOL_ERROR); an HTTP/1 answer would be noise to it.
                tracing::debug!(listener = conn.name, %remote, "neither an HTTP/1 request line nor the HTTP/2 preface; closed");
                let _ = tcp.write_all(&GOAWAY_PROTOCOL_ERROR).await;
                let _ = tcp.shutdown().await;
                return None;
            }
            Opening::Close => return None,
        }
    }
    // The router's own server takes the plain requests; a request it leaves to hyper gets a
    // session that ends as soon as hyper holds nothing of the connection (parked at once).
    let fast = fast::Serving {
        conn,
        remote,
        handler,
        shutdown,
    };
    loop {
        match fast::serve(&fast, &mut stream, prefix).await {
            fast::Ended::Park => return Some(stream),
            fast::Ended::Close => {
                let _ = stream.shutdown().await;
                return None;
            }
            fast::Ended::Hyper(read) => {
                crate::metrics::http1_to_hyper(conn.name);
                prefix = read;
            }
        }
        // Made per session: only hyper's sessions need it, so a parked connection does not.
        let exchanges = Arc::new(Exchanges::default());
        let session = Box::pin(session(conn, stream, prefix, remote, handler, &exchanges));
        match run_session(session, shutdown).await {
            Ok(parts) => {
                let (mut io, parked) = parts.io.into_inner().into_parts();
                if !parked || shutdown.is_triggered() {
                    // hyper closed (keep-alive off, the client's close, a graceful stop): the
                    // shutdown hyper skipped for us.
                    let _ = io.shutdown().await;
                    return None;
                }
                if parts.read_buf.is_empty() {
                    return Some(io);
                }
                // Bytes hyper read but did not parse: the next request, served at once. (An
                // empty `Bytes` cut from hyper's read buffer would still hold the whole
                // buffer, hence the copy.)
                (stream, prefix) = (io, Bytes::copy_from_slice(&parts.read_buf));
            }
            Err(e) => {
                tracing::debug!(listener = conn.name, %remote, error = %e, "connection ended with an error");
                return None;
            }
        }
    }
}

/// One hyper HTTP/1.1 session over the connection (and the bytes already read from it); its
/// service is made here, so the connection keeps only the handler between sessions.
#[allow(clippy::type_complexity)]
fn session<T, H, F>(
    conn: &Conn,
    stream: T,
    prefix: Bytes,
    remote: SocketAddr,
    handler: &H,
    exchanges: &Arc<Exchanges>,
) -> Session<
    T,
    impl hyper::service::HttpService<
        Incoming,
        ResBody = Answer,
        Future: Send + Unpin + 'static,
        Error = std::convert::Infallible,
    > + Unpin
    + use<T, H, F>,
>
where
    T: Transport,
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let svc = {
        let (exchanges, handler) = (exchanges.clone(), handler.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            exchanges.started(!req.body().is_end_stream());
            Answering::new(
                Box::pin(handler(req.map(ClientBody::Hyper), remote)),
                exchanges.clone(),
            )
        })
    };
    let io = ParkIo::new(
        stream,
        prefix,
        exchanges.clone(),
        Duration::ZERO,
        conn.idle_timeout,
    );
    conn.http1.serve_connection(TokioIo::new(io), svc)
}

type Session<T, S> = hyper::server::conn::http1::Connection<TokioIo<ParkIo<T>>, S>;

/// Runs one session to its end, without the socket shutdown (the socket may park); on shutdown
/// asks hyper to finish the request in flight and close. The shutdown waiter is polled once, to
/// register this task's waker; after that a wake-up reads the flag (a read lock) instead of
/// polling the waiter again (a few hundred instructions, several times per request).
async fn run_session<T, S>(
    mut session: Pin<Box<Session<T, S>>>,
    shutdown: &Shutdown,
) -> hyper::Result<hyper::server::conn::http1::Parts<TokioIo<ParkIo<T>>, S>>
where
    T: Transport,
    S: hyper::service::HttpService<Incoming, ResBody = Answer> + Unpin,
    S::Future: Send + Unpin + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stop = shutdown.triggered();
    let mut stop = std::pin::pin!(stop);
    let (mut registered, mut stopping) = (false, false);
    poll_fn(|cx| {
        if !stopping {
            let over = if registered {
                shutdown.is_over()
            } else {
                registered = true;
                stop.as_mut().poll(cx).is_ready()
            };
            if over {
                stopping = true;
                session.as_mut().graceful_shutdown();
            }
        }
        session.poll_without_shutdown(cx)
    })
    .await?;
    Ok(Pin::into_inner(session).into_parts())
}

pin_project_lite::pin_project! {
    /// Waits until `stream` has bytes to read (peeked, not consumed), for at most the idle
    /// timeout, or until shutdown. This is the state a parked connection sits in, so its size
    /// is most of what an idle connection costs: a struct of the three things it polls (the
    /// socket's own readiness, a timer, the shutdown waiter) and the parked gauge's count, not
    /// an `async fn`, whose state would also keep its arguments and its locals' pins.
    struct WaitForBytes<'a, T> {
        stream: &'a T,
        #[pin]
        stop: Notified<'a>,
        #[pin]
        idle: Sleep,
        _parked: Counted<'a>,
    }
}

impl<'a, T: Transport> WaitForBytes<'a, T> {
    /// `None` when the listener is already shutting down.
    fn new(stream: &'a T, conn: &'a Conn) -> Option<Self> {
        let stop = conn.shutdown.notified();
        // Read after the waiter is made: a trigger in between still reaches it.
        if conn.shutdown.is_over() {
            return None;
        }
        Some(WaitForBytes {
            stream,
            stop,
            idle: tokio::time::sleep(conn.idle_timeout),
            _parked: Counted::new(&conn.parked),
        })
    }
}

impl<T: Transport> Future for WaitForBytes<'_, T> {
    type Output = Woken;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Woken> {
        let this = self.project();
        match this.stream.poll_bytes(cx) {
            Poll::Ready(true) => return Poll::Ready(Woken::Open),
            Poll::Ready(false) => return Poll::Ready(Woken::Close),
            Poll::Pending => {}
        }
        if this.idle.poll(cx).is_ready() || this.stop.poll(cx).is_ready() {
            return Poll::Ready(Woken::Close);
        }
        Poll::Pending
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What bytes must start with to be taken for an HTTP/2 client (the preface's request line).
const PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0";

/// How many bytes of a first request line are read to judge it; a longer line goes to hyper,
/// which answers it by its own limits.
const OPENING_LINE_MAX: usize = 1024;

/// A GOAWAY frame: last stream 0, PROTOCOL_ERROR.
const GOAWAY_PROTOCOL_ERROR: [u8; 17] = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// What the first bytes of a plain connection turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Opening {
    /// The whole HTTP/2 preface (the bytes read, to be read again by hyper).
    H2(Bytes),
    /// An HTTP/1 request line, or a line too long to judge (the bytes read, to be read again).
    H1(Bytes),
    /// Neither: `PRI * HTTP/2.0` followed by something else than the rest of the preface, or a
    /// first line that does not end in an `HTTP/` version.
    Bad,
    /// The peer closed, a socket error, or the opening did not arrive within the deadline.
    Close,
}

/// What the bytes read so far tell (a pure function of them).
#[derive(Debug, PartialEq, Eq)]
enum Judged {
    H2,
    H1,
    Bad,
    /// Not enough bytes yet.
    More,
}

/// Judges a connection's first bytes: the HTTP/2 preface, an HTTP/1 request line (it ends in
/// an `HTTP/` version; hyper checks the rest and answers a wrong one in HTTP/1), or neither.
fn judge_opening(got: &[u8]) -> Judged {
    if got.len() >= PREFACE.len() && got.starts_with(PREFACE) {
        return Judged::H2;
    }
    if PREFACE.starts_with(got) {
        return Judged::More;
    }
    if got.starts_with(PREFACE_LINE) {
        return Judged::Bad;
    }
    // Empty lines before a request line are ignored (RFC 9112 §2.2).
    let read = got.len();
    let start = got
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(read);
    let got = &got[start..];
    let Some(end) = got.iter().position(|&b| b == b'\n') else {
        return if read >= OPENING_LINE_MAX {
            Judged::H1
        } else {
            Judged::More
        };
    };
    let line = got[..end].strip_suffix(b"\r").unwrap_or(&got[..end]);
    let version = line.rsplit(|&b| b == b' ').next().unwrap_or(line);
    if line.contains(&b' ') && version.starts_with(b"HTTP/") {
        Judged::H1
    } else {
        Judged::Bad
    }
}

/// Reads a connection's first bytes until they are the HTTP/2 preface, an HTTP/1 request line
/// or neither, within `deadline` (a client that sends `P` and nothing more holds its slot only
/// that long).
async fn read_opening(stream: &mut TcpStream, deadline: std::time::Duration) -> Opening {
    let read = async {
        let mut buf = Vec::with_capacity(PREFACE.len());
        let mut chunk = [0u8; 512];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Opening::Close,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
            match judge_opening(&buf) {
                Judged::H2 => return Opening::H2(Bytes::from(buf)),
                Judged::H1 => return Opening::H1(Bytes::from(buf)),
                Judged::Bad => return Opening::Bad,
                Judged::More => {}
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Opening::Close)
}

/// Serves a connection that opened with the HTTP/2 preface (h2c, prior knowledge), `read`
/// being the preface already read from it, until it ends, is idle for the idle timeout
/// (GOAWAY), or the listener shuts down.
async fn serve_h2c<H, F>(
    conn: &Conn,
    stream: TcpStream,
    read: Bytes,
    remote: SocketAddr,
    handler: H,
    shutdown: &Shutdown,
) where
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    super::h2::serve(stream, read, remote, handler, conn.h2, shutdown).await;
}

#[cfg(test)]
mod tests {
    use super::{Judged, OPENING_LINE_MAX, judge_opening};

    #[test]
    fn openings_are_judged_by_their_first_line() {
        let long = format!("GET /{} HTTP/1.1", "a".repeat(OPENING_LINE_MAX));
        let cases: &[(&[u8], Judged)] = &[
            (b"", Judged::More),
            (b"P", Judged::More),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r", Judged::More),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Judged::H2),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04", Judged::H2),
            (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", Judged::Bad),
            (b"PRI * HTTP/2.0 nope", Judged::Bad),
            (b"GET / HTTP/1.1\r\n", Judged::H1),
            (b"GET / HTTP/1.0\n", Judged::H1),
            (b"\r\nGET / HTTP/1.1\r\n", Judged::H1),
            (b"GET / HTTP/1.1", Judged::More),
            (b"POST /v2/clusters HTTP/1.1\r\nHost: x\r\n\r\n", Judged::H1),
            (b"PUT /x HTTP/1.9\r\n", Judged::H1),
            (b"GET / HTTP/2.0\r\n", Judged::H1),
            (b"GET / HTTP/7.1\r\n", Judged::H1),
            // h2spec 3.5/2: neither HTTP/1 nor HTTP/2.
            (b"INVALID CONNECTION PREFACE\r\n\r\n", Judged::Bad),
            (b"GET /\r\n", Judged::Bad),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
                Judged::Bad,
            ),
            (b"hello\n", Judged::Bad),
            (long.as_bytes(), Judged::H1),
            (&[b'\n'; OPENING_LINE_MAX], Judged::H1),
            (&[b'\n'; 10], Judged::More),
        ];
        for (got, want) in cases {
            assert_eq!(
                &judge_opening(got),
                want,
                "{:?}",
                String::from_utf8_lossy(got)
            );
        }
    }
}

#[cfg(test)]
mod idle_size {
    use super::*;

    /// What an idle plain connection keeps is this future (its task's state): a bound on its
    /// size catches a change that puts a session, a buffer or the opening read back into it
    /// (it was 2,120 bytes, release build, before they were boxed out, and 880 before
    /// `serve_awake` took what runs while the connection is awake).
    #[test]
    fn an_idle_connection_keeps_a_small_future() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let remote = l.local_addr().unwrap();
            let s = TcpStream::connect(remote).await.unwrap();
            let (_trigger, shutdown) = crate::shutdown::ShutdownTrigger::new();
            let conn = Arc::new(Conn {
                name: "test",
                http1: hyper::server::conn::http1::Builder::new(),
                h2: super::super::h2::Options {
                    limits: super::super::h2::Limits {
                        max_streams: 1,
                        max_header_list: 1,
                        stream_window: 1,
                        conn_window: 1,
                    },
                    idle: std::time::Duration::ZERO,
                    per_connection: 1,
                },
                park_after: std::time::Duration::ZERO,
                head: super::super::head::HeadLimits {
                    max_head: 8192,
                    max_headers: 100,
                },
                idle_timeout: std::time::Duration::ZERO,
                shutdown,
                tls: None,
                max_connections: 1,
                permits: tokio::sync::Semaphore::new(1),
                open: crate::metrics::open_connections("test"),
                parked: crate::metrics::parked_connections("test"),
            });
            let slot = Slot::take(&conn).unwrap();
            assert!(Slot::take(&conn).is_none(), "one place under a cap of one");
            // The proxy's handler is an `Arc` and the origin; so is this one.
            let p: Arc<u64> = Arc::new(1);
            let handler = move |_r: Request<ClientBody>, _a: SocketAddr| {
                let p = p.clone();
                async move {
                    drop(p);
                    Response::new(ProxyBody::Empty)
                }
            };
            let wait = std::mem::size_of_val(&WaitForBytes::new(&s, &conn));
            assert!(wait <= 200, "the wait for bytes is {wait} bytes");
            let whole = std::mem::size_of_val(&serve(slot, s, handler));
            // tokio allocates a task as its future and ~120 bytes more, in steps of 128 bytes
            // (the task is aligned to 128): 384 bytes for a future of up to ~260 bytes, 512
            // above. 248 bytes (release and debug); 352 before the socket's address, the
            // shutdown signal and the cap's permit left it (a 512-byte task), 880 while it was
            // an `async fn` that also awaited the opening and the session itself.
            assert!(whole <= 256, "a plain connection's future is {whole} bytes");
            // Given back when the slot goes.
            assert!(
                Slot::take(&conn).is_some(),
                "the place under the cap came back"
            );
        });
    }
}
