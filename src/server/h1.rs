//! One plain-TCP client connection: wait for its first bytes holding nothing but the socket,
//! hand an h2c connection (prior knowledge) to the auto-detecting server, and serve HTTP/1.1 in
//! sessions of hyper's HTTP/1.1 server that end when the connection parks (`park.rs`). Between
//! sessions, and before the first, the connection holds only its socket: an idle keep-alive
//! connection costs about what its task does, not hyper's buffers.

use super::park::{Answer, Answering, Exchanges, ParkIo};
use super::{Conn, plain_service};
use crate::body::ProxyBody;
use crate::shutdown::Shutdown;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
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
    graceful: Watcher,
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
                    // Boxed, like a session: it would size the task of every connection.
                    Box::pin(serve_h2c(&conn, stream, remote, h2, graceful)).await;
                    return;
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

/// Serves a connection that opened with the HTTP/2 preface (h2c, prior knowledge).
async fn serve_h2c<H, F>(
    conn: &Conn,
    stream: TcpStream,
    remote: SocketAddr,
    handler: H,
    graceful: Watcher,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let served = conn
        .auto
        .serve_connection(TokioIo::new(stream), plain_service(handler, remote));
    if let Err(e) = graceful.watch(served.into_owned()).await {
        tracing::debug!(listener = conn.name, %remote, error = %e, "connection ended with an error");
    }
}
