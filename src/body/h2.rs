//! A body on its way from an HTTP/2 connection to the proxy: a request's from the router's own
//! HTTP/2 server (`server/h2`), or an answer's from its HTTP/2 link to a peer router
//! (`upstream/h2`). The connection puts the DATA it reads into the stream's [`Inbox`], the
//! proxy takes it out as a body ([`RecvBody`]), and what the proxy took is what the connection
//! gives back to the sender as window (WINDOW_UPDATE), so a sender can never have more of a
//! body in the router than its stream's window.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Why a request body broke off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    #[error("the HTTP/2 stream was reset")]
    Reset,
    #[error("the HTTP/2 connection closed before the body ended")]
    Closed,
}

#[derive(Debug, Default)]
struct State {
    chunks: VecDeque<Bytes>,
    ended: bool,
    failed: Option<RecvError>,
    /// Bytes the proxy took and the connection has not given back as window yet.
    taken: u32,
    /// The body's reader, waiting for data.
    reader: Option<Waker>,
    /// The connection's task, waiting for `taken` to pass the threshold.
    conn: Option<Waker>,
}

/// The connection's side.
#[derive(Debug, Clone)]
pub struct Inbox(Arc<Mutex<State>>);

/// The proxy's side: the request's body.
#[derive(Debug)]
pub struct RecvBody {
    state: Arc<Mutex<State>>,
    /// `taken` past which the connection is woken to send a WINDOW_UPDATE (half the window).
    threshold: u32,
    /// The bytes still to come, when the sender said how many (`content-length`).
    remaining: Option<u64>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inbox {
    /// A new body and its inbox; `window` is the stream's receive window.
    pub fn new(window: u32) -> (Inbox, RecvBody) {
        let state = Arc::new(Mutex::new(State::default()));
        let body = RecvBody {
            state: state.clone(),
            threshold: (window / 2).max(1),
            remaining: None,
        };
        (Inbox(state), body)
    }

    /// [`Inbox::new`] for a body whose sender said it is `length` bytes long.
    pub fn with_length(window: u32, length: Option<u64>) -> (Inbox, RecvBody) {
        let (inbox, mut body) = Inbox::new(window);
        body.remaining = length;
        (inbox, body)
    }

    pub fn push(&self, data: Bytes, end: bool) {
        let mut s = lock(&self.0);
        if !data.is_empty() {
            s.chunks.push_back(data);
        }
        s.ended |= end;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    pub fn fail(&self, e: RecvError) {
        let mut s = lock(&self.0);
        if !s.ended {
            s.failed = Some(e);
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
    }

    /// The bytes the proxy took since the last call (to give back as window), and the
    /// connection's waker kept for when it takes more.
    pub fn take_released(&self, cx: &mut Context<'_>) -> u32 {
        let mut s = lock(&self.0);
        let n = std::mem::take(&mut s.taken);
        match &s.conn {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.conn = Some(cx.waker().clone()),
        }
        n
    }

    /// The stream is gone or nobody reads it: what is left unread is dropped, and that and
    /// what the proxy took since the last [`Inbox::take_released`] are given back as window.
    pub fn drain(&self) -> u32 {
        let mut s = lock(&self.0);
        let unread: usize = s.chunks.drain(..).map(|c| c.len()).sum();
        std::mem::take(&mut s.taken).saturating_add(u32::try_from(unread).unwrap_or(u32::MAX))
    }

    /// Whether the proxy dropped its side (nobody will read the rest).
    pub fn abandoned(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = RecvError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RecvError>>> {
        let me = self.get_mut();
        let mut s = lock(&me.state);
        if let Some(b) = s.chunks.pop_front() {
            if let Some(left) = &mut me.remaining {
                *left = left.saturating_sub(b.len() as u64);
            }
            let n = u32::try_from(b.len()).unwrap_or(u32::MAX);
            s.taken = s.taken.saturating_add(n);
            if s.taken >= me.threshold
                && let Some(w) = s.conn.take()
            {
                w.wake();
            }
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        if s.ended {
            return Poll::Ready(None);
        }
        if let Some(e) = s.failed {
            return Poll::Ready(Some(Err(e)));
        }
        match &s.reader {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.reader = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let s = lock(&self.state);
        s.ended && s.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        if let Some(n) = self.remaining {
            return SizeHint::with_exact(n);
        }
        let s = lock(&self.state);
        if s.ended {
            SizeHint::with_exact(s.chunks.iter().map(|c| c.len() as u64).sum())
        } else {
            SizeHint::default()
        }
    }
}

impl Drop for RecvBody {
    fn drop(&mut self) {
        // The connection gives back what is left unread: the stream is reset or the rest is
        // dropped as it comes.
        if let Some(w) = lock(&self.state).conn.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn what_the_proxy_takes_is_given_back_and_the_end_is_seen() {
        let (inbox, mut body) = Inbox::new(10);
        inbox.push(Bytes::from_static(b"abc"), false);
        inbox.push(Bytes::from_static(b"defgh"), true);
        assert_eq!(body.size_hint().exact(), Some(8));
        let waker = futures_task_noop();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(inbox.take_released(&mut cx), 0);
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "abc");
        assert_eq!(inbox.take_released(&mut cx), 3);
        let f = body.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "defgh");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
        assert_eq!(inbox.take_released(&mut cx), 5);
        assert!(!inbox.abandoned());
        drop(body);
        assert!(inbox.abandoned());
    }

    #[tokio::test]
    async fn a_reset_breaks_the_body_but_not_one_already_ended() {
        let (inbox, mut body) = Inbox::new(10);
        inbox.push(Bytes::from_static(b"a"), false);
        inbox.fail(RecvError::Reset);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "a"
        );
        assert_eq!(body.frame().await.unwrap().unwrap_err(), RecvError::Reset);
        let (inbox, mut body) = Inbox::new(10);
        inbox.push(Bytes::new(), true);
        inbox.fail(RecvError::Closed);
        assert!(body.frame().await.is_none());
    }

    fn futures_task_noop() -> Waker {
        Waker::noop().clone()
    }
}
