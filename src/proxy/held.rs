//! Writes held across an unplanned failover: a write forwarded to an owner DC that could not be
//! reached at all (the connection was refused or never established, or its TLS handshake
//! failed: nothing was sent) waits, its small body buffered, until the map names a new owner or
//! `failover.buffer_max_ms` passes, then goes to the new owner. A request that may have reached
//! the old owner is never sent again. The pure [`may_hold`] decides; [`Held`] counts what is
//! held now (bounded by `failover.buffer_max_requests` and `buffer_max_bytes`), for the
//! metrics and `/admin/routes`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a send to the owner DC failed, as far as holding is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection: nothing of the request left this router.
    NeverSent,
    /// Anything else (a timeout, a broken exchange): the owner may have applied it.
    MaybeSent,
}

/// What the pure decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldInput {
    pub write: bool,
    pub failure: Failure,
    /// The buffered body's length; None when the body streams on (too large to buffer).
    pub body_len: Option<u64>,
    pub held_requests: u64,
    pub held_bytes: u64,
    pub max_requests: u64,
    pub max_bytes: u64,
    pub max_ms: u64,
}

/// The verdict: hold, or fail as before and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Hold,
    /// Holding is off (`buffer_max_ms = 0`), or the request is not a write.
    NotHeld,
    /// It may have reached the owner: never replayed.
    MaybeSent,
    /// Its body was not buffered, so it cannot be sent again.
    Streamed,
    /// The bound on held requests or bytes is reached.
    Full,
}

/// Pure: whether a failed forward is held for the next owner.
pub fn may_hold(i: &HoldInput) -> Verdict {
    if !i.write || i.max_ms == 0 {
        return Verdict::NotHeld;
    }
    if i.failure == Failure::MaybeSent {
        return Verdict::MaybeSent;
    }
    let Some(len) = i.body_len else {
        return Verdict::Streamed;
    };
    if i.held_requests >= i.max_requests || i.held_bytes.saturating_add(len) > i.max_bytes {
        return Verdict::Full;
    }
    Verdict::Hold
}

/// What is held now, and what became of what was.
#[derive(Debug, Default)]
pub struct Held {
    requests: AtomicU64,
    bytes: AtomicU64,
    released: AtomicU64,
    returned: AtomicU64,
    expired: AtomicU64,
    full: AtomicU64,
}

/// One held request; counted until dropped.
pub struct Slot<'a> {
    held: &'a Held,
    bytes: u64,
}

impl Held {
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Acquire)
    }
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// Counts a request held (after [`may_hold`] said so).
    pub fn enter(&self, bytes: u64) -> Slot<'_> {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.publish();
        Slot { held: self, bytes }
    }

    /// A request was not held because the bound was reached.
    pub fn refused_full(&self) {
        self.full.fetch_add(1, Ordering::Relaxed);
        crate::metrics::held_write("full");
    }

    fn publish(&self) {
        crate::metrics::holding(self.requests(), self.bytes());
    }

    /// For `/admin/routes`.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests(), "bytes": self.bytes(),
            "released": self.released.load(Ordering::Relaxed),
            "returned": self.returned.load(Ordering::Relaxed),
            "expired": self.expired.load(Ordering::Relaxed),
            "refused_full": self.full.load(Ordering::Relaxed),
        })
    }
}

impl Slot<'_> {
    /// The map named a new owner: the request goes on to it.
    pub fn released(self) {
        self.held.released.fetch_add(1, Ordering::Relaxed);
        crate::metrics::held_write("released");
    }
    /// The owner DC answers health checks again before any new owner was named: the request
    /// is tried there once more (nothing of it had been sent).
    pub fn returned(self) {
        self.held.returned.fetch_add(1, Ordering::Relaxed);
        crate::metrics::held_write("returned");
    }
    /// No new owner within `buffer_max_ms`: the request fails as it would have.
    pub fn expired(self) {
        self.held.expired.fetch_add(1, Ordering::Relaxed);
        crate::metrics::held_write("expired");
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.held.requests.fetch_sub(1, Ordering::AcqRel);
        self.held.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        self.held.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(write: bool, failure: Failure, body: Option<u64>, held: (u64, u64)) -> HoldInput {
        HoldInput {
            write,
            failure,
            body_len: body,
            held_requests: held.0,
            held_bytes: held.1,
            max_requests: 10,
            max_bytes: 1000,
            max_ms: 10_000,
        }
    }

    #[test]
    fn hold_table() {
        use Failure::*;
        let rows = [
            (input(true, NeverSent, Some(100), (0, 0)), Verdict::Hold),
            (input(true, NeverSent, Some(0), (9, 1000)), Verdict::Hold),
            (input(false, NeverSent, Some(100), (0, 0)), Verdict::NotHeld),
            (
                input(true, MaybeSent, Some(100), (0, 0)),
                Verdict::MaybeSent,
            ),
            (input(true, NeverSent, None, (0, 0)), Verdict::Streamed),
            (input(true, NeverSent, Some(1), (10, 0)), Verdict::Full),
            (input(true, NeverSent, Some(101), (1, 900)), Verdict::Full),
            (input(true, NeverSent, Some(100), (1, 900)), Verdict::Hold),
            (
                HoldInput {
                    max_ms: 0,
                    ..input(true, NeverSent, Some(1), (0, 0))
                },
                Verdict::NotHeld,
            ),
        ];
        for (i, want) in rows {
            assert_eq!(may_hold(&i), want, "{i:?}");
        }
    }

    #[test]
    fn a_request_that_may_have_been_sent_is_never_held() {
        for body in [None, Some(0), Some(10)] {
            for held in [(0, 0), (5, 5)] {
                let i = input(true, Failure::MaybeSent, body, held);
                assert_ne!(may_hold(&i), Verdict::Hold);
            }
        }
    }

    #[test]
    fn slots_count_while_held() {
        let h = Held::default();
        let a = h.enter(10);
        let b = h.enter(5);
        assert_eq!((h.requests(), h.bytes()), (2, 15));
        a.released();
        assert_eq!((h.requests(), h.bytes()), (1, 5));
        b.expired();
        assert_eq!((h.requests(), h.bytes()), (0, 0));
        assert_eq!(h.summary()["released"], 1);
        assert_eq!(h.summary()["expired"], 1);
    }
}
