//! The keepalives sent on one lease stream and not yet acknowledged, in order (pure).
//!
//! etcd answers a stream's keepalives one at a time, in the order they were sent (its server
//! loop renews, answers, then reads the next). So each acknowledgement belongs to the oldest
//! keepalive still outstanding, and that keepalive's send time is when the renewal was known
//! to start at the earliest: the proof the fence rests on (`send time + TTL`). Matching an
//! acknowledgement to an older send than its own can only shorten the proof, never lengthen
//! it. Keeping several keepalives outstanding lets a slow answer (a follower forwarding to a
//! leader that is being re-elected) still count when it arrives, instead of tearing the stream
//! down and starting over while the proof runs out.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

/// At most this many keepalives wait for an answer; further ticks send nothing until one is
/// answered (etcd would only queue them).
pub const MAX_OUTSTANDING: usize = 8;

#[derive(Debug, Default)]
pub struct Outstanding {
    sent: VecDeque<Instant>,
}

impl Outstanding {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether another keepalive may be sent now.
    pub fn may_send(&self) -> bool {
        self.sent.len() < MAX_OUTSTANDING
    }

    /// A keepalive was sent at `at`.
    pub fn sent(&mut self, at: Instant) {
        self.sent.push_back(at);
    }

    /// An acknowledgement arrived: the send time it proves (the oldest outstanding), or None
    /// when nothing was outstanding (an answer the stream did not owe: ignored).
    pub fn acked(&mut self) -> Option<Instant> {
        self.sent.pop_front()
    }

    /// Whether the oldest outstanding keepalive has waited longer than `limit` at `now`: the
    /// stream is wedged and a new connection should be tried.
    pub fn stalled(&self, now: Instant, limit: Duration) -> bool {
        self.sent
            .front()
            .is_some_and(|first| now.saturating_duration_since(*first) > limit)
    }

    pub fn len(&self) -> usize {
        self.sent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn acknowledgements_match_sends_in_order() {
        let t0 = Instant::now();
        let mut o = Outstanding::new();
        assert_eq!(o.acked(), None, "an unowed answer proves nothing");
        o.sent(t0);
        o.sent(t0 + Duration::from_secs(1));
        assert_eq!(o.acked(), Some(t0));
        assert_eq!(o.acked(), Some(t0 + Duration::from_secs(1)));
        assert!(o.is_empty());
    }

    #[test]
    fn stalled_only_after_the_limit_and_only_with_something_outstanding() {
        let t0 = Instant::now();
        let mut o = Outstanding::new();
        let limit = Duration::from_secs(5);
        assert!(!o.stalled(t0 + Duration::from_secs(60), limit));
        o.sent(t0);
        assert!(!o.stalled(t0 + limit, limit));
        assert!(o.stalled(t0 + limit + Duration::from_millis(1), limit));
        o.acked();
        assert!(!o.stalled(t0 + Duration::from_secs(60), limit));
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut o = Outstanding::new();
        for i in 0..MAX_OUTSTANDING {
            assert!(o.may_send(), "{i}");
            o.sent(t0);
        }
        assert!(!o.may_send());
        o.acked();
        assert!(o.may_send());
    }

    proptest! {
        /// Whatever the interleaving of sends and answers, the send time an answer proves is
        /// never later than the send of the keepalive it actually answers (the stream answers
        /// in order), so the proof is never longer than the truth.
        #[test]
        fn never_proves_more_than_the_truth(ops in proptest::collection::vec(any::<bool>(), 1..200)) {
            let t0 = Instant::now();
            let mut o = Outstanding::new();
            let mut truth: VecDeque<Instant> = VecDeque::new();
            for (i, send) in ops.into_iter().enumerate() {
                let at = t0 + Duration::from_millis(i as u64);
                if send && o.may_send() {
                    o.sent(at);
                    truth.push_back(at);
                } else if let Some(real) = truth.pop_front() {
                    let proved = o.acked();
                    prop_assert!(proved.is_some_and(|p| p <= real));
                } else {
                    prop_assert_eq!(o.acked(), None);
                }
                prop_assert!(o.len() <= MAX_OUTSTANDING);
            }
        }
    }
}
