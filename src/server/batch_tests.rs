//! Tests of `server/batch.rs`: a batch waits one turn and then writes; answers of streams ready
//! together leave an HTTP/2 connection in fewer writes than one each.
//!
//! Test code only: `server/batch.rs` includes this file under `#[cfg(test)]`, so its unwraps
//! never run on a request path.

use super::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::Wake;
use tokio::io::AsyncReadExt;

/// Counts the wake-ups it gets.
struct Wakes(AtomicUsize);
impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Relaxed);
    }
}

#[tokio::test]
async fn a_batch_waits_one_turn_then_writes_until_flushed() {
    let (near, mut far) = tokio::io::duplex(1024);
    let mut io = Batched::new(near);
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let waker = std::task::Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    fn write<T: AsyncWrite + Unpin>(
        io: &mut Batched<T>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(io).poll_write(cx, b)
    }
    // The first write of a batch: not yet, and the task is woken to come back.
    assert!(write(&mut io, &mut cx, b"ab").is_pending());
    assert_eq!(wakes.0.load(Relaxed), 1);
    // Back after its turn: the batch goes through, as do its later writes.
    assert!(matches!(write(&mut io, &mut cx, b"ab"), Poll::Ready(Ok(2))));
    assert!(matches!(write(&mut io, &mut cx, b"cd"), Poll::Ready(Ok(2))));
    assert_eq!(wakes.0.load(Relaxed), 1);
    assert!(Pin::new(&mut io).poll_flush(&mut cx).is_ready());
    // After the flush, a new batch waits its turn again.
    assert!(write(&mut io, &mut cx, b"ef").is_pending());
    assert_eq!(wakes.0.load(Relaxed), 2);
    assert!(matches!(write(&mut io, &mut cx, b"ef"), Poll::Ready(Ok(2))));
    drop(io);
    let mut got = Vec::new();
    far.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"abcdef");
}

/// An IO that counts the writes that reach it.
struct Counting<T> {
    inner: T,
    writes: Arc<AtomicUsize>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counting<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counting<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.inner).poll_write(cx, buf);
        if r.is_ready() {
            me.writes.fetch_add(1, Relaxed);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

const STREAMS: usize = 10;

/// Serves one h2 connection (hyper's server, answers at once) to a client that sends
/// `STREAMS` requests together; returns the writes the server made and checks every answer.
/// One tokio worker, as under load: a stream that answers wakes the connection's task into
/// the worker's LIFO slot. With `serving_thread`, a current-thread runtime instead, as a
/// serving thread (`workers.rs`) runs.
fn server_writes(batched: bool, serving_thread: bool) -> usize {
    let rt = if serving_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    rt.block_on(async move {
        tokio::spawn(async move {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let writes = Arc::new(AtomicUsize::new(0));
            let counted = Counting {
                inner: server,
                writes: writes.clone(),
            };
            let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| {
                let path = req.uri().path().to_string();
                async move {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                        path,
                    ))))
                }
            });
            let http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            let served = if batched {
                tokio::spawn(http2.serve_connection(TokioIo::new(Batched::new(counted)), svc))
            } else {
                tokio::spawn(http2.serve_connection(TokioIo::new(counted), svc))
            };
            let (sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(client))
                    .await
                    .unwrap();
            tokio::spawn(conn);
            // Settle the handshake first, so the count is of the answers' writes.
            let mut s = sender.clone();
            poll_fn(|cx| s.poll_ready(cx)).await.unwrap();
            let first = s
                .send_request(
                    http::Request::get("http://x/warm")
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
                .await
                .unwrap();
            first.into_body().collect().await.unwrap();
            let before = writes.load(Relaxed);
            let asks: Vec<_> = (0..STREAMS)
                .map(|i| {
                    let mut s = sender.clone();
                    tokio::spawn(async move {
                        let req = http::Request::get(format!("http://x/{i}"))
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        let resp = s.send_request(req).await.unwrap();
                        let body = resp.into_body().collect().await.unwrap().to_bytes();
                        assert_eq!(body, format!("/{i}").as_bytes());
                    })
                })
                .collect();
            for a in asks {
                a.await.unwrap();
            }
            let n = writes.load(Relaxed) - before;
            served.abort();
            n
        })
        .await
        .unwrap()
    })
}

#[test]
fn answers_ready_together_leave_in_fewer_writes() {
    let (plain, batched) = (server_writes(false, false), server_writes(true, false));
    assert!(
        batched < plain && batched <= STREAMS / 2,
        "writes for {STREAMS} answers: {batched} batched, {plain} one by one"
    );
}

/// The same on a serving thread's runtime (current-thread): the answers leave together. (There
/// they do without batches too: a current-thread runtime has no LIFO slot, so every stream
/// answers before the connection's task runs again; the batches matter on a multi-thread
/// runtime, the admin port's and a listener's without serving threads.)
#[test]
fn answers_leave_together_on_a_serving_thread() {
    let batched = server_writes(true, true);
    assert!(
        batched <= STREAMS / 2,
        "writes for {STREAMS} answers: {batched}"
    );
}
