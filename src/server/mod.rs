//! Serving a listener: accept, cap concurrent connections, speak HTTP/1.1 or h2c (prior
//! knowledge) per connection, over TLS when the listener has a [`TlsSource`] (ALPN `h2` or
//! `http/1.1`), and shut down gracefully (stop accepting, let in-flight requests
//! finish up to a grace period). Plain HTTP/1.1 connections park when idle (`h1.rs`).

mod h1;
mod park;

use crate::body::ProxyBody;
use crate::config::Limits;
use crate::shutdown::Shutdown;
use crate::tls::server::TlsSource;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
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
}

/// What every connection of one listener shares.
struct Conn {
    name: &'static str,
    auto: auto::Builder<TokioExecutor>,
    http1: hyper::server::conn::http1::Builder,
    park_after: Duration,
    /// How long a connection may wait for (the start of) its next request.
    idle_timeout: Duration,
}

/// Serves one TLS connection: handshake, then HTTP/1.1 or h2 by ALPN (no parking: rustls
/// keeps its own buffers).
async fn serve_tls<H, F>(
    conn: Arc<Conn>,
    tls: TlsSource,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    handler: H,
    watcher: hyper_util::server::graceful::Watcher,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let name = conn.name;
    if let Some(stream) = crate::tls::server::handshake(&tls, stream, name, remote).await {
        // The DC a peer's client certificate names goes with each of its requests.
        let peer = crate::tls::server::peer_dc(&stream);
        let handler = move |mut req: Request<Incoming>, remote| {
            if let Some(dc) = &peer {
                req.extensions_mut().insert(dc.clone());
            }
            handler(req, remote)
        };
        let served = conn
            .auto
            .serve_connection(TokioIo::new(stream), plain_service(handler, remote));
        if let Err(e) = watcher.watch(served.into_owned()).await {
            tracing::debug!(listener = name, %remote, error = %e, "connection ended with an error");
        }
    }
}

/// The service hyper runs for a TLS or h2c connection: the handler, boxed (hyper keeps room
/// for one request future per connection for the connection's whole life, idle or not, and
/// the proxy's is several KiB).
fn plain_service<H, F>(
    handler: H,
    remote: SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    hyper::service::service_fn(move |req| {
        let fut = Box::pin(handler(req, remote));
        async move { Ok::<_, Infallible>(fut.await) }
    })
}

/// Serves `listener` with `handler` until `shutdown`, then drains for at most `grace`.
pub async fn serve<H, F>(listener: TcpListener, handler: H, opts: ServeOptions, shutdown: Shutdown)
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + Unpin + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let mut auto = auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.request_head_timeout)
        .max_buf_size(opts.limits.max_header_bytes.max(8192))
        .max_headers(opts.limits.max_headers)
        .keep_alive(true);
    auto.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(opts.limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(opts.limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(opts.request_head_timeout)
        // An exact head limit: `max_buf_size` alone trips only if the buffer fills before the
        // head is complete, which depends on how the bytes arrived.
        .max_header_size(opts.limits.max_header_bytes)
        .max_buf_size(opts.limits.max_header_bytes.max(8192))
        .max_headers(opts.limits.max_headers)
        .keep_alive(true);
    let conn = Arc::new(Conn {
        name: opts.name,
        auto,
        http1,
        park_after: opts.park_after,
        idle_timeout: opts.request_head_timeout,
    });
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(opts.limits.max_connections));
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(listener = opts.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(listener = opts.name, %remote, limit = opts.limits.max_connections, "connection limit reached; closing new connection");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let open = crate::metrics::OpenConnection::new(opts.name);
        let (conn, handler, watcher) = (conn.clone(), handler.clone(), graceful.watcher());
        let (tls, shutdown) = (opts.tls.clone(), shutdown.clone());
        let fut = async move {
            let _open = open;
            match tls {
                None => h1::serve(conn, stream, remote, handler, shutdown, watcher).await,
                // Boxed: a TLS connection's state (handshake, hyper's auto connection) would
                // otherwise size every connection's task, plain ones included.
                Some(tls) => Box::pin(serve_tls(conn, tls, stream, remote, handler, watcher)).await,
            }
            drop(permit);
        };
        tokio::spawn(fut);
    }
    drop(listener);
    // Every connection task holds a permit until it ends: all of them back means all done
    // (TLS and h2c connections are also drained through `graceful`).
    let all = u32::try_from(opts.limits.max_connections).unwrap_or(u32::MAX);
    let drained = async {
        graceful.shutdown().await;
        let _ = permits.acquire_many(all).await;
    };
    if tokio::time::timeout(opts.grace, drained).await.is_err() {
        tracing::warn!(listener = opts.name, grace = ?opts.grace, "in-flight requests did not finish within the grace period");
    }
}
