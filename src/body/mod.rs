//! The one body type that flows through the proxy, both ways, without boxing: nothing, a
//! buffered chunk, a client's streamed body (hyper's server), an upstream's streamed answer
//! (`wire::Wire`), or a buffered prefix followed by the rest of a stream (what is left after
//! the router looked at the start of a body). Also the bounded read used to
//! inspect a body for a cluster id, and `Guarded`, a response body that holds what a
//! connection counts per request until hyper drops it.

pub mod h2;

use crate::wire::{Wire, WireError};
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::pin::Pin;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A request or response body as the proxy passes it on.
#[derive(Debug)]
pub enum ProxyBody {
    Empty,
    Full(Option<Bytes>),
    Stream(ClientBody),
    /// An upstream's answer, read from its connection as it is taken.
    Upstream(Wire),
    /// A peer router's answer over the HTTP/2 link (`upstream/h2`), as it comes.
    Peer(h2::RecvBody),
    Prefixed {
        prefix: Option<Bytes>,
        rest: Box<ProxyBody>,
    },
    /// A streamed body that reports how it is coming along (sent whole or failed, waiting for
    /// its client), so the response timeout can start once it was sent and a stall be cut.
    Tracked {
        inner: Box<ProxyBody>,
        progress: Reporter,
    },
}

/// A client's request body as the server hands it over: hyper's stream (TLS HTTP/2, and the
/// HTTP/1.1 requests the router's own server leaves to hyper), the router's own HTTP/2
/// server's stream (`server/h2`), or a body one of the router's servers read whole with its
/// head (`None`: no body).
#[derive(Debug)]
pub enum ClientBody {
    Hyper(Incoming),
    H2(h2::RecvBody),
    Whole(Option<Bytes>),
}

/// Why a client's body broke off.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    #[error(transparent)]
    H2(#[from] h2::RecvError),
}

impl ClientBody {
    /// The body as the proxy passes it on: one read whole is a buffered body (sent again on a
    /// retry, no streaming watchdog), an empty one `Empty`.
    pub fn into_proxy(self) -> ProxyBody {
        match self {
            ClientBody::Whole(Some(b)) if !b.is_empty() => ProxyBody::Full(Some(b)),
            ClientBody::Whole(_) => ProxyBody::Empty,
            body @ (ClientBody::Hyper(_) | ClientBody::H2(_)) if body.is_end_stream() => {
                ProxyBody::Empty
            }
            body => ProxyBody::Stream(body),
        }
    }
}

impl From<Incoming> for ClientBody {
    fn from(body: Incoming) -> Self {
        ClientBody::Hyper(body)
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        match self.get_mut() {
            ClientBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(ClientError::from),
            ClientBody::H2(b) => Pin::new(b).poll_frame(cx).map_err(ClientError::from),
            ClientBody::Whole(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Hyper(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
            ClientBody::Whole(b) => b.as_ref().is_none_or(Bytes::is_empty),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Hyper(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
            ClientBody::Whole(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

/// Why a body broke: the client's (hyper's server) or the upstream's (`wire`).
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Upstream(#[from] WireError),
    #[error("the peer's answer: {0}")]
    Peer(h2::RecvError),
}

/// The body's side of a [`Progress`]; dropped (hyper let go of the body, sent or not), it
/// counts as done, so the sender never waits for a body nobody will send.
#[derive(Debug)]
pub struct Reporter(pub std::sync::Arc<Progress>);

impl Drop for Reporter {
    fn drop(&mut self) {
        if !self.0.done.swap(true, Release) {
            self.0.notify();
        }
    }
}

/// How a streamed body is coming along, for its sender: the response timeout starts once it
/// was sent whole, and the stall watchdog arms once it waits for its client (a body that is
/// already here, as most are, never arms a timer).
#[derive(Debug, Default)]
pub struct Progress {
    /// Frames handed on so far.
    frames: AtomicU64,
    /// The last poll found no frame ready: the body is waiting for its client.
    waiting: AtomicBool,
    /// The body ended (sent whole) or failed.
    done: AtomicBool,
    /// The sender's task, woken when the body ends or starts waiting.
    waker: Mutex<Option<Waker>>,
}

impl Progress {
    pub fn frames(&self) -> u64 {
        self.frames.load(Relaxed)
    }
    pub fn waiting(&self) -> bool {
        self.waiting.load(Relaxed)
    }

    /// Ready once the body was sent whole or failed.
    pub fn poll_done(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_until(cx, || self.done.load(Acquire))
    }

    /// Ready once the body waits for its client (or is done).
    pub fn poll_waiting(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_until(cx, || self.waiting.load(Acquire) || self.done.load(Acquire))
    }

    fn poll_until(&self, cx: &mut Context<'_>, ready: impl Fn() -> bool) -> Poll<()> {
        if ready() {
            return Poll::Ready(());
        }
        {
            let mut waker = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
            match waker.as_mut() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        // Asked again once registered: a change in between woke nobody.
        if ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn notify(&self) {
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl ProxyBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Some(bytes.into()))
    }

    /// A copy that can be sent again (for a retry), when the body is fully buffered.
    pub fn try_clone(&self) -> Option<ProxyBody> {
        match self {
            ProxyBody::Empty => Some(ProxyBody::Empty),
            ProxyBody::Full(b) => Some(ProxyBody::Full(b.clone())),
            ProxyBody::Stream(_)
            | ProxyBody::Upstream(_)
            | ProxyBody::Peer(_)
            | ProxyBody::Prefixed { .. }
            | ProxyBody::Tracked { .. } => None,
        }
    }

    /// Whether the body is still to be streamed (not known in full).
    pub fn is_streamed(&self) -> bool {
        matches!(
            self,
            ProxyBody::Stream(_)
                | ProxyBody::Upstream(_)
                | ProxyBody::Peer(_)
                | ProxyBody::Prefixed { .. }
                | ProxyBody::Tracked { .. }
        )
    }
}

/// A response body that keeps `guard` until hyper drops it (sent whole, or the connection
/// failed), its frames those of `inner`: what a connection counts per request (an exchange; a
/// request in flight and its permit) ends with the body.
#[derive(Debug)]
pub struct Guarded<G> {
    inner: ProxyBody,
    _guard: G,
}

impl<G> Guarded<G> {
    pub fn new(inner: ProxyBody, guard: G) -> Self {
        Guarded {
            inner,
            _guard: guard,
        }
    }
}

impl<G: Unpin> Body for Guarded<G> {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Empty => Poll::Ready(None),
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Stream(s) => Pin::new(s).poll_frame(cx).map_err(BodyError::from),
            ProxyBody::Upstream(w) => Pin::new(w).poll_frame(cx).map_err(BodyError::from),
            ProxyBody::Peer(b) => Pin::new(b).poll_frame(cx).map_err(BodyError::Peer),
            ProxyBody::Prefixed { prefix, rest } => match prefix.take() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(p)))),
                None => Pin::new(rest.as_mut()).poll_frame(cx),
            },
            ProxyBody::Tracked {
                inner,
                progress: Reporter(progress),
            } => {
                let polled = Pin::new(inner.as_mut()).poll_frame(cx);
                let was_waiting = progress.waiting.swap(polled.is_pending(), Release);
                if polled.is_ready() {
                    progress.frames.fetch_add(1, Relaxed);
                }
                let ended = matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_))));
                // The sender hears of the end, and of the body starting to wait for its client.
                let newly_done = ended && !progress.done.swap(true, Release);
                if newly_done || (polled.is_pending() && !was_waiting) {
                    progress.notify();
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Empty => true,
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Stream(s) => s.is_end_stream(),
            ProxyBody::Upstream(w) => w.is_end_stream(),
            ProxyBody::Peer(b) => b.is_end_stream(),
            ProxyBody::Prefixed { prefix, rest } => prefix.is_none() && rest.is_end_stream(),
            ProxyBody::Tracked { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Empty => SizeHint::with_exact(0),
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Stream(s) => s.size_hint(),
            ProxyBody::Upstream(w) => w.size_hint(),
            ProxyBody::Peer(b) => b.size_hint(),
            ProxyBody::Prefixed { prefix, rest } => {
                let extra = prefix.as_ref().map_or(0, |p| p.len() as u64);
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower() + extra);
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper + extra);
                }
                hint
            }
            ProxyBody::Tracked { inner, .. } => inner.size_hint(),
        }
    }
}

/// The outcome of reading the start of a body.
pub enum Inspected<B = ClientBody> {
    /// The whole body, no longer than the limit.
    Whole(Bytes),
    /// More than the limit: what was read, and the unread rest.
    TooLarge { prefix: Bytes, rest: B },
}

/// At most this much of a refused body (413) is read and thrown away after the answer.
pub const DRAIN_MAX_BYTES: usize = 1024 * 1024;
/// For at most this long.
pub const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and throws away (in the background, bounded by [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX`])
/// the rest of a body the router refused. A client that is still sending when the answer
/// (413) comes would otherwise see its connection reset (the kernel resets a socket closed
/// with unread data) instead of reading the answer: the lingering close nginx and HAProxy do.
pub fn drain_in_background(mut rest: ClientBody) {
    tokio::spawn(async move {
        let mut read = 0usize;
        let drain = async {
            while let Some(Ok(frame)) = rest.frame().await {
                if let Some(data) = frame.data_ref() {
                    read += data.len();
                    if read > DRAIN_MAX_BYTES {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_MAX, drain).await;
    });
}

/// Reads a body until its end or until more than `limit` bytes have arrived.
/// Trailers of a whole body are dropped (Coopr sends none and reads none).
pub async fn read_up_to<B>(mut body: B, limit: usize) -> Result<Inspected<B>, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > limit {
                return Ok(Inspected::TooLarge {
                    prefix: buf.freeze(),
                    rest: body,
                });
            }
        }
    }
    Ok(Inspected::Whole(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_tracked_body_reports_its_end_and_its_drop() {
        let mut cx = Context::from_waker(Waker::noop());
        // Sent whole: done once the last frame was taken, never waiting.
        let progress = Arc::new(Progress::default());
        let mut body = ProxyBody::Tracked {
            inner: Box::new(ProxyBody::full("{}")),
            progress: Reporter(progress.clone()),
        };
        assert!(progress.poll_done(&mut cx).is_pending());
        assert!(progress.poll_waiting(&mut cx).is_pending());
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(
            progress.poll_done(&mut cx).is_pending(),
            "one frame is not the end"
        );
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(None)
        ));
        assert!(progress.poll_done(&mut cx).is_ready());
        assert!(!progress.waiting());
        assert_eq!(progress.frames(), 2);
        // Dropped unsent (hyper let go of it): done all the same.
        let progress = Arc::new(Progress::default());
        let body = ProxyBody::Tracked {
            inner: Box::new(ProxyBody::full("{}")),
            progress: Reporter(progress.clone()),
        };
        assert!(progress.poll_done(&mut cx).is_pending());
        drop(body);
        assert!(progress.poll_done(&mut cx).is_ready());
    }
}
