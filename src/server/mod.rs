//! Serving a listener: accept, cap concurrent connections, speak HTTP/1.1 or h2c (prior
//! knowledge) per connection, over TLS when the listener has a [`TlsSource`] (ALPN `h2` or
//! `http/1.1`), and shut down gracefully (stop accepting, let in-flight requests
//! finish up to a grace period). Plain HTTP/1.1 connections park when idle (`h1.rs`); HTTP/2
//! is the router's own server (`h2/`).

pub mod encode;
mod fast;
mod h1;
pub mod h2;
pub mod head;
mod park;
mod workers;

use workers::Placer;
pub use workers::Workers;

use crate::body::{ClientBody, ProxyBody};
use crate::config::Limits;
use crate::shutdown::Shutdown;
use crate::tls::server::TlsSource;
use http::{Request, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How a listener serves its connections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub name: &'static str,
    pub limits: Limits,
    pub request_head_timeout: Duration,
    pub grace: Duration,
    /// TLS on this listener (None: plain HTTP/1.1 and h2c).
    pub tls: Option<TlsSource>,
    /// A plain HTTP/1.1 connection idle this long gives its buffers back (parks).
    pub park_after: Duration,
    /// The threads that serve this listener's connections (`listen.threads`); None: the
    /// runtime the accept loop runs on.
    pub workers: Option<Workers>,
}

/// What every connection of one listener shares.
struct Conn {
    name: &'static str,
    http1: hyper::server::conn::http1::Builder,
    /// How an HTTP/2 connection (h2c, or TLS with ALPN `h2`) is served (`h2/`).
    h2: h2::Options,
    park_after: Duration,
    /// What a request head may be, for the router's own HTTP/1.1 server (`fast.rs`).
    head: head::HeadLimits,
    /// How long a connection may wait for (the start of) its next request, how long an
    /// HTTP/1.1 request head may take (`park::ParkIo`), and how long a TLS or h2c connection
    /// may stay open with no request in flight.
    idle_timeout: Duration,
    /// The listener's shutdown signal, which every connection watches.
    shutdown: Shutdown,
    /// TLS on this listener (None: plain HTTP/1.1 and h2c).
    tls: Option<TlsSource>,
    /// The connection cap (`limits.max_connections`), for the log.
    max_connections: usize,
    /// Places under the connection cap (`max_connections`); see [`Slot`].
    permits: Semaphore,
    /// The listener's open and parked connections.
    open: ::metrics::Gauge,
    parked: ::metrics::Gauge,
}

/// One connection's place under its listener's cap and in its open-connections gauge, given
/// back when dropped (also when the task is cancelled), and what the listener's connections
/// share. One pointer: a parked connection's task keeps little else besides its socket.
struct Slot(Arc<Conn>);

impl Slot {
    /// A place for one more connection, if the cap allows it.
    fn take(conn: &Arc<Conn>) -> Option<Slot> {
        // Given back by `drop`, not by the permit (whose `Arc` would be a second pointer).
        conn.permits.try_acquire().ok()?.forget();
        conn.open.increment(1.0);
        Some(Slot(conn.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.decrement(1.0);
        self.0.permits.add_permits(1);
    }
}

impl std::ops::Deref for Slot {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.0
    }
}

/// Serves one TLS connection: handshake, then HTTP/1.1 or h2 as ALPN chose (HTTP/1.1 without
/// ALPN). HTTP/1.1 is served as a plain connection is (`h1.rs`): it parks when idle, giving
/// hyper's buffers back (rustls keeps its own). Every state has a deadline: the handshake its
/// own, a silent HTTP/1.1 session hyper's head timeout, a parked one the idle timeout, an h2
/// connection the idle watchdog.
async fn serve_tls<H, F>(
    conn: Slot,
    tls: TlsSource,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    handler: H,
) where
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let name = conn.name;
    // Boxed, as the h2 branch below: what an idle HTTP/1.1 connection keeps is this future.
    let handshake = Box::pin(crate::tls::server::handshake(&tls, stream, name, remote));
    let Some(stream) = handshake.await else {
        return;
    };
    // The DC a peer's client certificate names goes with each of its requests.
    let peer = crate::tls::server::peer_dc(&stream);
    let handler = move |mut req: Request<ClientBody>, remote| {
        if let Some(dc) = &peer {
            req.extensions_mut().insert(dc.clone());
        }
        handler(req, remote)
    };
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return h1::serve(conn, stream, handler).await;
    }
    Box::pin(serve_h2(conn, stream, remote, handler)).await;
}

/// Serves one TLS connection over h2 (ALPN) until it ends, is idle for the idle timeout
/// (GOAWAY), or the listener shuts down.
async fn serve_h2<H, F>(
    conn: Slot,
    stream: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    remote: SocketAddr,
    handler: H,
) where
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    h2::serve(
        stream,
        bytes::Bytes::new(),
        remote,
        handler,
        conn.h2,
        &conn.shutdown,
    )
    .await;
}

/// Accepts connections on `listener` until the listener's shutdown, each served where the
/// placer says (a serving thread's accept loop), or on this runtime.
async fn accept<H, F>(listener: TcpListener, conn: Arc<Conn>, handler: H, placer: Option<Placer>)
where
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let stop = conn.shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener = conn.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = Slot::take(&conn) else {
            tracing::warn!(listener = conn.name, %remote, limit = conn.max_connections, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let started = match conn.tls.clone() {
            // The plain connection's future is its whole task (what an idle one costs).
            None => start(&placer, stream, move |s| h1::serve(slot, s, handler)),
            // Boxed: the handshake and an h2 connection are large and not what an idle
            // HTTP/1.1 connection keeps.
            Some(tls) => start(&placer, stream, move |s| async move {
                Box::pin(serve_tls(slot, tls, s, remote, handler)).await;
            }),
        };
        if let Err(e) = started {
            tracing::warn!(listener = conn.name, %remote, error = %e, "cannot hand the connection to a serving thread; closing it");
        }
    }
}

/// Starts serving an accepted connection: `serve(socket)` as a task where the placer says, or
/// on this runtime.
fn start<S, F>(
    placer: &Option<Placer>,
    stream: tokio::net::TcpStream,
    serve: S,
) -> std::io::Result<()>
where
    S: FnOnce(tokio::net::TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    match placer {
        Some(p) => p.place(stream, serve),
        None => {
            tokio::spawn(serve(stream));
            Ok(())
        }
    }
}

/// Serves `listener` with `handler` until `shutdown`, then drains for at most `grace`.
pub async fn serve<H, F>(listener: TcpListener, handler: H, opts: ServeOptions, shutdown: Shutdown)
where
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let h2 = h2::Options {
        limits: h2::Limits {
            max_streams: opts.limits.h2_max_concurrent_streams,
            max_header_list: u32::try_from(opts.limits.max_header_bytes).unwrap_or(u32::MAX),
            // hyper's defaults, which the router served HTTP/2 with before.
            stream_window: 1024 * 1024,
            conn_window: 1024 * 1024,
        },
        idle: opts.request_head_timeout,
        per_connection: opts.limits.upstream_per_connection,
    };
    let mut http1 = hyper::server::conn::http1::Builder::new();
    // The request-head timeout is `park::ParkIo`'s (one lazily moved timer per session), not
    // hyper's (a new timer per request).
    http1
        .header_read_timeout(None)
        // An exact head limit: `max_buf_size` alone trips only if the buffer fills before the
        // head is complete, which depends on how the bytes arrived.
        .max_header_size(opts.limits.max_header_bytes)
        .max_buf_size(opts.limits.max_header_bytes.max(8192))
        .max_headers(opts.limits.max_headers)
        .keep_alive(true);
    let conn = Arc::new(Conn {
        name: opts.name,
        http1,
        h2,
        park_after: opts.park_after,
        head: head::HeadLimits {
            max_head: opts.limits.max_header_bytes,
            max_headers: opts.limits.max_headers,
        },
        idle_timeout: opts.request_head_timeout,
        shutdown: shutdown.clone(),
        tls: opts.tls.clone(),
        max_connections: opts.limits.max_connections,
        permits: Semaphore::new(opts.limits.max_connections),
        open: crate::metrics::open_connections(opts.name),
        parked: crate::metrics::parked_connections(opts.name),
    });
    match &opts.workers {
        None => accept(listener, conn.clone(), handler, None).await,
        Some(workers) => {
            let loops = workers.accept_on_each(listener, |l, placer| {
                accept(l, conn.clone(), handler.clone(), Some(placer))
            });
            match loops {
                Ok(loops) => loops.join().await,
                Err(e) => {
                    tracing::error!(listener = opts.name, error = %e, "cannot accept on the serving threads; this listener serves nothing");
                }
            }
        }
    }
    // Every connection task holds a permit until it ends: all of them back means all done
    // (every connection watches `shutdown` and finishes gracefully).
    let all = u32::try_from(opts.limits.max_connections).unwrap_or(u32::MAX);
    let drained = async {
        let _ = conn.permits.acquire_many(all).await;
    };
    if tokio::time::timeout(opts.grace, drained).await.is_err() {
        tracing::warn!(listener = opts.name, grace = ?opts.grace, "in-flight requests did not finish within the grace period");
    }
}
