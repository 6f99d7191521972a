//! One plain-TCP client connection: wait for its first bytes holding nothing but the socket,
//! hand an h2c connection (prior knowledge) to the auto-detecting server, and serve HTTP/1.1 in
//! sessions of hyper's HTTP/1.1 server that end when the connection parks (`park.rs`). Between
//! sessions, and before the first, the connection holds only its socket: an idle keep-alive
//! connection costs about what its task does, not hyper's buffers.

use super::Conn;
use super::park::{Answer, Answering, Exchanges, ParkIo};
use super::watch::{self, Prefixed};
use crate::body::ProxyBody;
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a wait for the next request ended.
enum Woken {
    /// Bytes to read, the start of an HTTP/1 request as far as they tell.
    H1,
    /// Bytes to read that start like the HTTP/2 connection preface (`PRI * HTTP/2.0`).
    H2,
    /// The peer closed, idle for the whole idle timeout, shutting down, or a socket error.
    Close,
}

/// Serves one accepted plain-TCP connection until it closes.
pub async fn serve<H, F>(
    conn: Arc<Conn>,
    stream: TcpStream,
    remote: SocketAddr,
    handler: H,
    shutdown: Shutdown,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let name = conn.name;
    let exchanges = Arc::new(Exchanges::default());
    let h2 = handler.clone();
    let svc = {
        let exchanges = exchanges.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            exchanges.started(!req.body().is_end_stream());
            Answering::new(Box::pin(handler(req, remote)), exchanges.clone())
        })
    };
    let mut stream = stream;
    let mut prefix = Bytes::new();
    let mut first = true;
    loop {
        if prefix.is_empty() {
            let parked = crate::metrics::ParkedConnection::new(name);
            let woken = wait_for_bytes(&stream, &conn, &shutdown).await;
            drop(parked);
            match woken {
                Woken::Close => break,
                Woken::H2 if first => {
                    match read_preface(&mut stream, conn.idle_timeout).await {
                        Preface::H2(read) => {
                            // Boxed, like a session: it would size the task of every connection.
                            Box::pin(serve_h2c(&conn, stream, read, remote, h2, &shutdown)).await;
                            return;
                        }
                        Preface::H1(read) => prefix = read,
                        Preface::Bad => {
                            // An HTTP/2 client with a broken preface hears HTTP/2 (RFC 9113
                            // §3.4: a connection error of type PROTOCOL_ERROR).
                            let _ = stream.write_all(&GOAWAY_PROTOCOL_ERROR).await;
                            let _ = stream.shutdown().await;
                            return;
                        }
                        Preface::Close => return,
                    }
                }
                Woken::H1 | Woken::H2 => {}
            }
        }
        first = false;
        let io = ParkIo::new(stream, prefix, exchanges.clone(), conn.park_after);
        let session = conn.http1.serve_connection(TokioIo::new(io), svc.clone());
        // Boxed, so that a parked connection's task does not keep room for a session.
        let ended = Box::pin(run_session(session, &shutdown)).await;
        match ended {
            Ok(parts) => {
                let (io, parked) = parts.io.into_inner().into_parts();
                stream = io;
                // Bytes hyper read but did not parse (none, given when a connection parks). An
                // empty `Bytes` cut from hyper's read buffer still holds the whole buffer.
                prefix = if parts.read_buf.is_empty() {
                    Bytes::new()
                } else {
                    Bytes::copy_from_slice(&parts.read_buf)
                };
                if !parked || shutdown.is_triggered() {
                    // hyper closed (keep-alive off, the client's close, a graceful stop):
                    // the shutdown hyper skipped for us.
                    let _ = stream.shutdown().await;
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(listener = name, %remote, error = %e, "connection ended with an error");
                return;
            }
        }
    }
}

type Session<S> = hyper::server::conn::http1::Connection<TokioIo<ParkIo>, S>;

/// Runs one session to its end, without the socket shutdown (the socket may park); on shutdown
/// asks hyper to finish the request in flight and close.
async fn run_session<S>(
    mut session: Session<S>,
    shutdown: &Shutdown,
) -> hyper::Result<hyper::server::conn::http1::Parts<TokioIo<ParkIo>, S>>
where
    S: hyper::service::HttpService<Incoming, ResBody = Answer> + Unpin,
    S::Future: Send + Unpin + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    let mut stopping = shutdown.is_triggered();
    if stopping {
        Pin::new(&mut session).graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = poll_fn(|cx| session.poll_without_shutdown(cx)) => {
                r?;
                return Ok(session.into_parts());
            }
            _ = &mut stop, if !stopping => {
                stopping = true;
                Pin::new(&mut session).graceful_shutdown();
            }
        }
    }
}

/// Waits until `stream` has bytes to read (peeked, not consumed), for at most the idle timeout.
async fn wait_for_bytes(stream: &TcpStream, conn: &Conn, shutdown: &Shutdown) -> Woken {
    if shutdown.is_triggered() {
        return Woken::Close;
    }
    let mut first = [0u8; 3];
    tokio::select! {
        r = stream.peek(&mut first) => match r {
            Ok(n) if n > 0 && b"PRI".starts_with(&first[..n]) => Woken::H2,
            Ok(n) if n > 0 => Woken::H1,
            _ => Woken::Close,
        },
        _ = tokio::time::sleep(conn.idle_timeout) => Woken::Close,
        _ = shutdown.clone().wait() => Woken::Close,
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What bytes must start with to be taken for an HTTP/2 client (the preface's request line).
const PREFACE_LINE: &[u8] = b"PRI * HTTP/2.0";

/// A GOAWAY frame: last stream 0, PROTOCOL_ERROR.
const GOAWAY_PROTOCOL_ERROR: [u8; 17] = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// What the first bytes of a connection that may be h2c turned out to be.
enum Preface {
    /// The whole HTTP/2 preface (the bytes read, to be read again by hyper).
    H2(Bytes),
    /// Not HTTP/2: the bytes read, the start of an HTTP/1 request as far as they tell.
    H1(Bytes),
    /// `PRI * HTTP/2.0` followed by something else than the rest of the preface.
    Bad,
    /// The peer closed, a socket error, or the preface did not arrive within the deadline.
    Close,
}

/// Reads a connection's first bytes until they are the HTTP/2 preface or cannot be, within
/// `deadline` (a client that sends `P` and nothing more holds its slot only that long).
async fn read_preface(stream: &mut TcpStream, deadline: std::time::Duration) -> Preface {
    let read = async {
        let mut buf = [0u8; PREFACE.len()];
        let mut n = 0;
        loop {
            match stream.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => return Preface::Close,
                Ok(k) => n += k,
            }
            let got = &buf[..n];
            if got == PREFACE.as_slice() {
                return Preface::H2(Bytes::copy_from_slice(got));
            }
            if !PREFACE.starts_with(got) {
                return if got.starts_with(PREFACE_LINE) {
                    Preface::Bad
                } else {
                    Preface::H1(Bytes::copy_from_slice(got))
                };
            }
        }
    };
    tokio::time::timeout(deadline, read)
        .await
        .unwrap_or(Preface::Close)
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
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let activity = watch::Activity::new(conn.per_connection);
    let io = TokioIo::new(Prefixed::new(read, stream));
    let served = conn
        .http2
        .serve_connection(io, watch::service(handler, remote, activity.clone()));
    if let Err(e) = watch::drive(served, &activity, conn.idle_timeout, shutdown).await {
        tracing::debug!(listener = conn.name, %remote, error = %e, "connection ended with an error");
    }
}
