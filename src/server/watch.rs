//! Deadlines for connections hyper serves whole (TLS, h2c): a connection with no request in
//! flight for the idle timeout is shut down gracefully (HTTP/2: GOAWAY), a shutdown of the
//! listener does the same, and the requests of one connection hold at most
//! `limits.upstream_per_connection` permits at once (a permit is held from before the handler
//! runs until hyper drops the response body), so one HTTP/2 connection cannot hold more
//! upstream connections than that however many streams it opens. Also the prefixed IO an h2c
//! connection is served over once its preface was read.

use crate::body::{ClientBody, Guarded, ProxyBody};
use crate::shutdown::Shutdown;
use bytes::{Buf, Bytes};
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What the requests of one connection tell its watchdog, and the permits they share.
#[derive(Debug)]
pub struct Activity {
    /// Requests handed to the service whose response body hyper has not dropped yet.
    open: AtomicUsize,
    /// Bumped at every start and end of a request: the watchdog sees progress by it.
    ticks: AtomicU64,
    /// Permits for requests of this connection in flight at once.
    permits: Arc<Semaphore>,
}

impl Activity {
    pub fn new(per_connection: usize) -> Arc<Activity> {
        Arc::new(Activity {
            open: AtomicUsize::new(0),
            ticks: AtomicU64::new(0),
            permits: Arc::new(Semaphore::new(per_connection.max(1))),
        })
    }

    fn start(self: &Arc<Self>) -> Held {
        self.open.fetch_add(1, Relaxed);
        self.ticks.fetch_add(1, Relaxed);
        Held {
            activity: self.clone(),
            _permit: None,
        }
    }
}

/// One request in flight (and, once it has it, its permit); dropped with the response body.
#[derive(Debug)]
pub struct Held {
    activity: Arc<Activity>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.activity.open.fetch_sub(1, Relaxed);
        self.activity.ticks.fetch_add(1, Relaxed);
    }
}

/// A response body that holds its request's place (and permit) until hyper drops it.
pub type Watched = Guarded<Held>;

/// The service hyper runs for a TLS or h2c connection: waits for one of the connection's
/// permits, then the handler (boxed: hyper keeps room for one request future per connection
/// for the connection's whole life, and the proxy's is several KiB).
pub fn service<H, F>(
    handler: H,
    remote: SocketAddr,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Watched>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Watched>, Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static
where
    H: Fn(Request<ClientBody>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ProxyBody>> + Send + 'static,
{
    hyper::service::service_fn(move |req| {
        let mut held = activity.start();
        let permits = activity.permits.clone();
        let handler = handler.clone();
        Box::pin(async move {
            // Closed never: the semaphore lives as long as the connection.
            held._permit = permits.acquire_owned().await.ok();
            // Boxed on its own: this block stays small, so hyper's moves of it (into its box,
            // into the stream's task) copy a few hundred bytes, not the proxy's future.
            let resp = Box::pin(handler(req.map(ClientBody::Hyper), remote)).await;
            Ok::<_, Infallible>(resp.map(|inner| Watched::new(inner, held)))
        })
    })
}

/// A hyper connection that can be asked to finish gracefully.
pub trait Graceful: Future<Output = hyper::Result<()>> {
    fn graceful(self: Pin<&mut Self>);
}

impl<I, S, B> Graceful for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn graceful(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Drives `conn` to its end: gracefully shut down once no request was in flight for `idle`
/// (HTTP/2: GOAWAY), or when the listener shuts down; dropped (closed) if it still has not
/// ended `idle` after that.
pub async fn drive<C: Graceful>(
    conn: C,
    activity: &Activity,
    idle: Duration,
    shutdown: &Shutdown,
) -> hyper::Result<()> {
    let conn = std::pin::pin!(conn);
    let mut conn = conn;
    let stop = shutdown.clone().wait();
    tokio::pin!(stop);
    let mut seen = activity.ticks.load(Relaxed);
    let mut ending: Option<tokio::time::Instant> = None;
    loop {
        let wake = tokio::time::sleep(idle);
        tokio::select! {
            r = conn.as_mut() => return r,
            _ = &mut stop, if ending.is_none() => {
                conn.as_mut().graceful();
                ending = Some(tokio::time::Instant::now() + idle);
            }
            _ = wake => {
                let now = activity.ticks.load(Relaxed);
                if let Some(deadline) = ending {
                    if tokio::time::Instant::now() >= deadline && activity.open.load(Relaxed) == 0 {
                        return Ok(());
                    }
                } else if now == seen && activity.open.load(Relaxed) == 0 {
                    conn.as_mut().graceful();
                    ending = Some(tokio::time::Instant::now() + idle);
                }
                seen = now;
            }
        }
    }
}

/// An IO whose first reads return bytes already taken from it (an h2c connection's preface).
pub struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if me.prefix.has_remaining() {
            let n = me.prefix.len().min(buf.remaining());
            buf.put_slice(&me.prefix[..n]);
            me.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut me.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
