//! Serving a listener: accept, cap concurrent connections, speak HTTP/1.1 or h2c (prior
//! knowledge) per connection, over TLS when the listener has a [`TlsSource`] (ALPN `h2` or
//! `http/1.1`), and shut down gracefully (stop accepting, let in-flight requests
//! finish up to a grace period).

use crate::config::Limits;
use crate::proxy::body::ProxyBody;
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
use tokio::sync::{Semaphore, watch};

/// A shutdown signal that many tasks can wait on.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Triggers a [`Shutdown`]. Clones trigger the same shutdown.
#[derive(Clone)]
pub struct ShutdownTrigger(Arc<watch::Sender<bool>>);

impl ShutdownTrigger {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(Arc::new(tx)), Shutdown(rx))
    }
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Resolves once shutdown was triggered (or its trigger dropped).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|&v| v).await;
    }
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }
}

/// How a listener serves its connections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub name: &'static str,
    pub limits: Limits,
    pub request_head_timeout: Duration,
    pub grace: Duration,
    /// TLS on this listener (None: plain HTTP/1.1 and h2c).
    pub tls: Option<TlsSource>,
}

/// Serves `listener` with `handler` until `shutdown`, then drains for at most `grace`.
pub async fn serve<H, F>(listener: TcpListener, handler: H, opts: ServeOptions, shutdown: Shutdown)
where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.request_head_timeout)
        .max_buf_size(opts.limits.max_header_bytes.max(8192))
        .max_headers(opts.limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(opts.limits.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(opts.limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256));
    let builder = Arc::new(builder);
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
        let handler = handler.clone();
        let svc = hyper::service::service_fn(move |req| {
            // On the heap: hyper keeps room for one request future per connection for the
            // connection's whole life, idle or not, and the proxy's is several KiB.
            let fut = Box::pin(handler(req, remote));
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let name = opts.name;
        let open = crate::metrics::OpenConnection::new(name);
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), opts.tls.clone());
        tokio::spawn(async move {
            let _open = open;
            let result = match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), svc);
                    watcher.watch(conn.into_owned()).await
                }
                Some(tls) => {
                    match crate::tls::server::handshake(&tls, stream, name, remote).await {
                        Some(stream) => {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            watcher.watch(conn.into_owned()).await
                        }
                        None => Ok(()),
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(listener = name, %remote, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(opts.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(listener = opts.name, grace = ?opts.grace, "in-flight requests did not finish within the grace period");
    }
}
