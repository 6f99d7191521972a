//! A timer for deadlines that come one after another on the same connection (an upstream
//! connection's response timeout, a client connection's request-head timeout), armed lazily:
//! it stays armed at an earlier deadline until it fires, and is moved only then or when a
//! deadline comes sooner than it. With waits of seconds and exchanges of milliseconds, a busy
//! connection touches tokio's timer wheel about once per wait instead of once or twice per
//! request (a new `Sleep` registered and removed each time: ~1k instructions per request).

use std::pin::Pin;
use std::task::Context;
use tokio::time::{Instant, Sleep};

/// The timer; made at the first wait.
#[derive(Debug, Default)]
pub struct LazyDeadline {
    timer: Option<Pin<Box<Sleep>>>,
}

impl LazyDeadline {
    /// Whether `due` has passed. If not, the task of `cx` is woken at `due` at the latest
    /// (perhaps before, when the timer was still armed for an earlier deadline: asked again
    /// then, it is moved to `due`).
    pub fn expired(&mut self, due: Instant, cx: &mut Context<'_>) -> bool {
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        if timer.deadline() > due {
            timer.as_mut().reset(due);
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if timer.deadline() >= due {
                return true;
            }
            // It fired for an earlier deadline: wait on for this one.
            timer.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;
    use std::time::Duration;

    /// Polls until `due` has passed and says when that was seen.
    async fn wait(d: &mut LazyDeadline, due: Instant) -> Instant {
        poll_fn(|cx| {
            if d.expired(due, cx) {
                Poll::Ready(Instant::now())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Asks once, without waiting.
    async fn ask(d: &mut LazyDeadline, due: Instant) -> bool {
        poll_fn(|cx| Poll::Ready(d.expired(due, cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn each_deadline_is_kept_whatever_the_timer_was_armed_for() {
        let s = Duration::from_secs;
        let mut d = LazyDeadline::default();
        let t0 = Instant::now();
        assert!(!ask(&mut d, t0 + s(10)).await, "not yet");
        // A later deadline while the timer is armed for t0 + 10 s: it fires there, and the
        // wait goes on to the later one.
        tokio::time::advance(s(6)).await;
        assert_eq!(wait(&mut d, t0 + s(16)).await, t0 + s(16));
        // A sooner deadline than the armed one.
        assert!(!ask(&mut d, t0 + s(3600)).await);
        assert_eq!(wait(&mut d, t0 + s(20)).await, t0 + s(20));
        // A deadline already past.
        assert!(ask(&mut d, t0 + s(19)).await);
        // The same deadline asked again and again.
        let due = Instant::now() + s(5);
        for _ in 0..3 {
            assert!(!ask(&mut d, due).await);
        }
        assert_eq!(wait(&mut d, due).await, due);
    }
}
