//! The HTTP server: accepts connections on one listener and serves HTTP/1.1 (keep-alive) and
//! h2c (prior knowledge) with hyper-util's auto builder; on shutdown stops accepting, lets
//! in-flight requests finish and closes idle connections.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::{Port, Shared, dispatch};

/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn serve(
    shared: Arc<Shared>,
    port: Port,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Coopr (Jetty) limits a head's bytes, not its fields: a router in front adds a few
    // (request id, X-Forwarded-For, Forwarded, its epoch) to a client's full allowance.
    builder.http1().max_headers(1000);
    let graceful = GracefulShutdown::new();
    let name = shared.cfg.name.clone();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(sim = %name, %addr, ?port, "coopr-sim listening");
    }
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(e) => {
                        // Usually EMFILE or a reset before accept: back off briefly.
                        tracing::warn!(sim = %name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let service = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(dispatch::handle(shared, port, req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(sim = %name, "shutdown: gave up waiting for in-flight requests");
    }
    tracing::info!(sim = %name, "coopr-sim listener stopped");
    Ok(())
}
