//! Whether this router may accept writes for the shards it owns (the fence), and how current its
//! map is. Written by the ownership watcher (map progress) and the liveness task (lease
//! acknowledgements), read (atomically, never waiting) by the request path. The decision itself
//! is the pure [`fenced`].
//!
//! The fence rests on the router's own etcd lease, the one that keeps its `members/{dc}/{router}`
//! key: while that key exists no failover can take this DC's shards (the move's transaction
//! compares that the DC has no member left), and a handoff needs this router's own
//! acknowledgement. So the router may write while it can prove the lease alive, with a margin,
//! on its own monotonic clock: the send time of the last acknowledged keepalive + the TTL etcd
//! acknowledged - margin is still ahead. An etcd leader change or a slow watch does not touch
//! that proof (etcd extends every lease on a leader change). After a new lease (the old one
//! expired, so the shards may have moved meanwhile) the map must also have been proven current
//! since that lease's first acknowledgement.
//!
//! A lease alone is not enough for the others to know when this router stopped: etcd keeps
//! lease renewals in the leader's memory, and a new leader extends every lease by its election
//! timeout, so a DC cut off together with the etcd leader keeps its lease seconds longer than its
//! proof. So the router also rewrites its member key (a heartbeat, committed through raft and
//! seen by every controller), and may write only while the last acknowledged heartbeat's send +
//! the heartbeat window (lease TTL + failover grace) - margin is ahead too. A controller that has
//! seen the DC's member keys unchanged for that window knows every router of the DC has fenced.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const NEVER: u64 = u64::MAX;

/// The router's lease as the fence sees it, in ms on its monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseProof {
    /// Send time of the first acknowledged keepalive of this lease (its member key existed).
    pub since_ms: u64,
    /// Send time of the last acknowledged keepalive.
    pub acked_sent_ms: u64,
    /// The TTL etcd acknowledged with it.
    pub ttl_ms: u64,
}

/// The router's last acknowledged heartbeat (its member key rewritten through raft), in ms on
/// its monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeatProof {
    /// Send time of the last acknowledged heartbeat.
    pub sent_ms: u64,
    /// How long a heartbeat proves: lease TTL + failover grace.
    pub window_ms: u64,
}

/// What the pure fence decision looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FenceInput {
    /// The map in etcd could not be used (the router keeps an older one).
    pub unusable: bool,
    /// The current lease, if one was ever acknowledged.
    pub lease: Option<LeaseProof>,
    /// The last heartbeat of that lease's member key, if one was acknowledged.
    pub beat: Option<BeatProof>,
    /// When the map was last proven current (watch progress and a linearizable read).
    pub map_proven_ms: Option<u64>,
    pub margin_ms: u64,
    pub now_ms: u64,
}

/// Pure fence decision: fenced unless the lease is proven alive with `margin_ms` to spare at
/// `now_ms`, so is the last heartbeat within its window, the map has been proven current since
/// that lease began, and the map is usable.
pub fn fenced(i: &FenceInput) -> bool {
    let Some(l) = i.lease else { return true };
    let Some(b) = i.beat else { return true };
    let deadline = i.now_ms.saturating_add(i.margin_ms);
    let lease_ok = l.acked_sent_ms.saturating_add(l.ttl_ms) > deadline;
    let beat_ok = b.sent_ms.saturating_add(b.window_ms) > deadline;
    let map_ok = i.map_proven_ms.is_some_and(|p| p >= l.since_ms);
    i.unusable || !lease_ok || !beat_ok || !map_ok
}

/// How long the lease proof has left at `now_ms` (0 when fenced by it).
pub fn lease_left_ms(l: &LeaseProof, margin_ms: u64, now_ms: u64) -> u64 {
    l.acked_sent_ms
        .saturating_add(l.ttl_ms)
        .saturating_sub(now_ms.saturating_add(margin_ms))
}

/// How long the heartbeat proof has left at `now_ms` (0 when fenced by it).
pub fn beat_left_ms(b: &BeatProof, margin_ms: u64, now_ms: u64) -> u64 {
    b.sent_ms
        .saturating_add(b.window_ms)
        .saturating_sub(now_ms.saturating_add(margin_ms))
}

/// Shared freshness state. A static map is always fresh.
#[derive(Debug)]
pub struct Freshness {
    origin: Instant,
    dynamic: bool,
    fence_after_ms: u64,
    margin_ms: u64,
    /// The watch is not connected, or the map came from disk (shown, not fenced on by itself).
    stale: AtomicBool,
    /// The map in etcd does not build: an older one is kept, and the router fences.
    unusable: AtomicBool,
    last_progress_ms: AtomicU64,
    /// When the last linearizable read that succeeded was sent.
    last_read_ms: AtomicU64,
    lease_since_ms: AtomicU64,
    lease_ttl_ms: AtomicU64,
    /// Stored last (Release) and read first (Acquire): whoever sees it sees its `since` and TTL.
    lease_acked_ms: AtomicU64,
    beat_window_ms: u64,
    /// Send time of the last acknowledged heartbeat (NEVER: none for this lease).
    beat_sent_ms: AtomicU64,
    relists: AtomicU64,
    watch_restarts: AtomicU64,
    was_fenced: AtomicBool,
}

impl Freshness {
    /// For the static map: never stale, never fenced.
    pub fn always_fresh() -> Self {
        Self::new(false, Duration::ZERO, Duration::ZERO, Duration::ZERO)
    }

    /// For a live source: stale and fenced until the first load and the first lease.
    /// `fence_after` paces the watch's progress requests; `margin` is the fence's margin on
    /// the lease; `beat_window` how long an acknowledged heartbeat proves (lease TTL + grace).
    pub fn live(fence_after: Duration, margin: Duration, beat_window: Duration) -> Self {
        crate::metrics::fenced(true);
        Self::new(true, fence_after, margin, beat_window)
    }

    fn new(dynamic: bool, fence_after: Duration, margin: Duration, beat_window: Duration) -> Self {
        Freshness {
            origin: Instant::now(),
            dynamic,
            fence_after_ms: fence_after.as_millis() as u64,
            margin_ms: margin.as_millis() as u64,
            stale: AtomicBool::new(dynamic),
            unusable: AtomicBool::new(false),
            last_progress_ms: AtomicU64::new(NEVER),
            last_read_ms: AtomicU64::new(NEVER),
            lease_since_ms: AtomicU64::new(NEVER),
            lease_ttl_ms: AtomicU64::new(0),
            lease_acked_ms: AtomicU64::new(NEVER),
            beat_window_ms: beat_window.as_millis() as u64,
            beat_sent_ms: AtomicU64::new(NEVER),
            relists: AtomicU64::new(0),
            watch_restarts: AtomicU64::new(0),
            was_fenced: AtomicBool::new(dynamic),
        }
    }

    fn now_ms(&self) -> u64 {
        self.ms(Instant::now())
    }

    fn ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.origin).as_millis() as u64
    }

    fn lease(&self) -> Option<LeaseProof> {
        let acked = self.lease_acked_ms.load(Ordering::Acquire);
        (acked != NEVER).then(|| LeaseProof {
            since_ms: self.lease_since_ms.load(Ordering::Acquire),
            acked_sent_ms: acked,
            ttl_ms: self.lease_ttl_ms.load(Ordering::Acquire),
        })
    }

    fn beat(&self) -> Option<BeatProof> {
        let sent = self.beat_sent_ms.load(Ordering::Acquire);
        (sent != NEVER).then_some(BeatProof {
            sent_ms: sent,
            window_ms: self.beat_window_ms,
        })
    }

    /// What the fence decides on, now.
    pub fn input(&self) -> FenceInput {
        let proven = self.proven_at();
        FenceInput {
            unusable: self.unusable.load(Ordering::Acquire),
            lease: self.lease(),
            beat: self.beat(),
            map_proven_ms: (proven != NEVER).then_some(proven),
            margin_ms: self.margin_ms,
            now_ms: self.now_ms(),
        }
    }

    /// Whether writes to owned shards must be refused now.
    pub fn is_fenced(&self) -> bool {
        if !self.dynamic {
            return false;
        }
        let now = fenced(&self.input());
        // Log each transition once.
        if self.was_fenced.swap(now, Ordering::Relaxed) != now {
            crate::metrics::fenced(now);
            if now {
                tracing::warn!(
                    margin_ms = self.margin_ms,
                    "fence engaged: cannot prove this router's lease alive and its heartbeat recent (or the map current since the lease began); refusing writes to owned shards"
                );
            } else {
                tracing::info!("fence released: the lease is proven alive and the map current");
            }
        }
        now
    }

    pub fn is_stale(&self) -> bool {
        self.dynamic && self.stale.load(Ordering::Acquire)
    }

    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// Milliseconds since the map was last proven current, if it ever was.
    pub fn progress_age_ms(&self) -> Option<u64> {
        let last = self.proven_at();
        (last != NEVER).then(|| self.now_ms().saturating_sub(last))
    }

    /// How long the proof has left, the lease's or the heartbeat's, whichever ends first (None:
    /// no lease or no heartbeat acknowledged).
    pub fn lease_left_ms(&self) -> Option<u64> {
        let (l, b) = (self.lease()?, self.beat()?);
        let now = self.now_ms();
        Some(lease_left_ms(&l, self.margin_ms, now).min(beat_left_ms(&b, self.margin_ms, now)))
    }

    /// Until when the map is proven current: the older of the last watch progress and the send
    /// time of the last successful linearizable read (both are needed: the watch shows we saw
    /// every change, the read that etcd still has a leader and answers us).
    fn proven_at(&self) -> u64 {
        let (p, r) = (
            self.last_progress_ms.load(Ordering::Acquire),
            self.last_read_ms.load(Ordering::Acquire),
        );
        if p == NEVER || r == NEVER {
            NEVER
        } else {
            p.min(r)
        }
    }

    /// A linearizable read sent at `sent` succeeded.
    pub fn read_ok(&self, sent: Instant) {
        let ms = self.ms(sent);
        // Newer wins; NEVER (u64::MAX) means no read yet.
        let _ = self
            .last_read_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur == NEVER || ms > cur).then_some(ms)
            });
    }

    /// The source proved the map current (a load, an event, a progress notification).
    pub fn progress(&self) {
        self.last_progress_ms
            .store(self.now_ms(), Ordering::Release);
        self.stale.store(false, Ordering::Release);
    }

    /// The watch was lost (or the map came from disk). Shown, but the fence rests on the lease:
    /// while it holds, nobody can move this DC's shards without its consent.
    pub fn set_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Whether the last map from etcd built (as [`Freshness::set_usable`] was last told).
    pub fn is_usable(&self) -> bool {
        !self.unusable.load(Ordering::Acquire)
    }

    /// Whether the map in etcd builds (an unusable one fences until a usable one arrives).
    pub fn set_usable(&self, usable: bool) {
        self.unusable.store(!usable, Ordering::Release);
    }

    /// A keepalive sent at `sent` was acknowledged with `ttl`; `first` when it is the first
    /// acknowledgement of a new lease (whose member key was written before it was sent).
    pub fn lease_acked(&self, sent: Instant, ttl: Duration, first: bool) {
        let ms = self.ms(sent);
        if first {
            self.lease_acked_ms.store(NEVER, Ordering::Release);
            self.lease_since_ms.store(ms, Ordering::Release);
        }
        self.lease_ttl_ms
            .store(ttl.as_millis() as u64, Ordering::Release);
        self.lease_acked_ms.store(ms, Ordering::Release);
    }

    /// A heartbeat (the member key written or rewritten) sent at `sent` was acknowledged.
    pub fn beat_acked(&self, sent: Instant) {
        let ms = self.ms(sent);
        let _ = self
            .beat_sent_ms
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                (cur == NEVER || ms > cur).then_some(ms)
            });
    }

    /// etcd says the lease expired, or the member key is no longer this router's: fenced at
    /// once, until a new lease and its member key are acknowledged.
    pub fn lease_lost(&self) {
        self.lease_acked_ms.store(NEVER, Ordering::Release);
        self.beat_sent_ms.store(NEVER, Ordering::Release);
    }

    pub fn count_relist(&self) {
        self.relists.fetch_add(1, Ordering::Relaxed);
    }
    pub fn count_watch_restart(&self) {
        self.watch_restarts.fetch_add(1, Ordering::Relaxed);
    }
    pub fn relists(&self) -> u64 {
        self.relists.load(Ordering::Relaxed)
    }
    pub fn watch_restarts(&self) -> u64 {
        self.watch_restarts.load(Ordering::Relaxed)
    }
    pub fn fence_after_ms(&self) -> u64 {
        self.fence_after_ms
    }
    pub fn margin_ms(&self) -> u64 {
        self.margin_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lease(since: u64, acked: u64, ttl: u64) -> Option<LeaseProof> {
        Some(LeaseProof {
            since_ms: since,
            acked_sent_ms: acked,
            ttl_ms: ttl,
        })
    }

    fn beat(sent: u64, window: u64) -> Option<BeatProof> {
        Some(BeatProof {
            sent_ms: sent,
            window_ms: window,
        })
    }

    #[test]
    fn fence_table() {
        // (unusable, lease, map proven, margin, now) -> fenced, with a recent heartbeat
        let rows = [
            // Proven with margin: writes go on, however old the watch's progress is.
            (false, lease(0, 1000, 5000), Some(0), 1000, 4999, false),
            (false, lease(0, 1000, 5000), Some(0), 1000, 5000, true),
            (false, lease(0, 1000, 5000), Some(0), 0, 5999, false),
            (false, lease(0, 1000, 5000), Some(0), 0, 6000, true),
            // No lease acknowledged yet.
            (false, None, Some(10), 1000, 20, true),
            // A new lease: the map must be proven current since it began.
            (false, lease(500, 600, 5000), Some(499), 1000, 700, true),
            (false, lease(500, 600, 5000), Some(500), 1000, 700, false),
            (false, lease(500, 600, 5000), None, 1000, 700, true),
            // An unusable map fences whatever the lease.
            (true, lease(0, 1000, 5000), Some(0), 1000, 1001, true),
            // A margin as large as the TTL never proves anything.
            (false, lease(0, 1000, 5000), Some(0), 5000, 1000, true),
        ];
        for (unusable, lease, proven, margin, now, want) in rows {
            let i = FenceInput {
                unusable,
                lease,
                beat: beat(now, 7_000),
                map_proven_ms: proven,
                margin_ms: margin,
                now_ms: now,
            };
            assert_eq!(fenced(&i), want, "{i:?}");
        }
    }

    #[test]
    fn the_heartbeat_fences_too() {
        // A lease kept alive (the leader extends it, or renews it from memory) but no heartbeat
        // committed for the window: fenced, as the controllers that saw the member key
        // unchanged will assume.
        // (beat, margin, now) -> fenced, with a fresh lease and map
        let rows = [
            (beat(1_000, 7_000), 1_000, 6_999, false),
            (beat(1_000, 7_000), 1_000, 7_000, true),
            (beat(1_000, 7_000), 0, 7_999, false),
            (beat(1_000, 7_000), 0, 8_000, true),
            (None, 0, 1_001, true),
        ];
        for (beat, margin, now, want) in rows {
            let i = FenceInput {
                unusable: false,
                lease: lease(0, now, 5_000),
                beat,
                map_proven_ms: Some(0),
                margin_ms: margin,
                now_ms: now,
            };
            assert_eq!(fenced(&i), want, "{i:?}");
        }
    }

    proptest! {
        /// Never writing past the proof: whenever the fence is open, the lease etcd holds cannot
        /// have expired yet (etcd counts the TTL from when it received the keepalive, which is
        /// after it was sent), with the margin to spare; and once the proof is older than
        /// TTL - margin it is always closed.
        #[test]
        fn open_only_within_the_proof(
            since in 0u64..10_000,
            after in 0u64..10_000,
            ttl in 1_000u64..60_000,
            margin in 0u64..5_000,
            now in 0u64..100_000,
            proven in proptest::option::of(0u64..30_000),
            unusable in any::<bool>(),
            beat_sent in proptest::option::of(0u64..100_000),
            window in 1_000u64..60_000,
        ) {
            let acked = since + after;
            let b = beat_sent.and_then(|s| beat(s, window));
            let i = FenceInput {
                unusable,
                lease: lease(since, acked, ttl),
                beat: b,
                map_proven_ms: proven,
                margin_ms: margin,
                now_ms: now,
            };
            let open = !fenced(&i);
            if open {
                prop_assert!(now + margin < acked + ttl);
                prop_assert!(proven.is_some_and(|p| p >= since));
                prop_assert!(!unusable);
                prop_assert!(lease_left_ms(&lease(since, acked, ttl).unwrap(), margin, now) > 0);
                // Nor can a controller that saw the heartbeat's key unchanged for the window
                // (from at least its send) have moved the shards yet.
                let s = beat_sent.unwrap_or(u64::MAX);
                prop_assert!(now + margin < s + window);
                prop_assert!(beat_left_ms(&beat(s, window).unwrap(), margin, now) > 0);
            }
            if now + margin >= acked + ttl || b.is_none_or(|b| now + margin >= b.sent_ms + b.window_ms) {
                prop_assert!(!open);
            }
            // Later is never more open: the proof only ages.
            let later = FenceInput { now_ms: now + 1, ..i };
            prop_assert!(open || fenced(&later));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn static_maps_are_never_fenced_and_live_ones_start_fenced() {
        assert!(!Freshness::always_fresh().is_fenced());
        let f = Freshness::live(
            Duration::from_secs(3),
            Duration::from_secs(1),
            Duration::from_secs(7),
        );
        assert!(f.is_fenced() && f.is_stale());
        f.progress();
        f.read_ok(Instant::now());
        assert!(f.is_fenced(), "no lease yet");
        tokio::time::advance(Duration::from_millis(5)).await;
        f.beat_acked(Instant::now());
        f.lease_acked(Instant::now(), Duration::from_secs(5), true);
        assert!(f.is_fenced(), "the map was proven before the lease began");
        f.read_ok(Instant::now());
        f.progress();
        assert!(!f.is_fenced() && !f.is_stale());
        f.set_stale();
        assert!(
            !f.is_fenced() && f.is_stale(),
            "a lost watch alone does not fence"
        );
        f.set_usable(false);
        assert!(f.is_fenced());
        f.set_usable(true);
        f.lease_lost();
        assert!(f.is_fenced());
        f.lease_acked(Instant::now(), Duration::from_secs(5), false);
        assert!(f.is_fenced(), "a lost lease also drops its heartbeat");
        f.beat_acked(Instant::now());
        assert!(!f.is_fenced());
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_follows_the_lease_on_the_clock() {
        let f = Freshness::live(
            Duration::from_secs(3),
            Duration::from_millis(1000),
            Duration::from_secs(7),
        );
        let sent = Instant::now();
        f.beat_acked(sent);
        f.lease_acked(sent, Duration::from_secs(5), true);
        f.read_ok(Instant::now());
        f.progress();
        assert!(!f.is_fenced());
        // No watch progress at all (etcd electing a leader): still open while the lease holds.
        tokio::time::advance(Duration::from_millis(3_990)).await;
        assert!(!f.is_fenced());
        assert_eq!(f.lease_left_ms(), Some(10));
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(f.is_fenced(), "TTL - margin after the keepalive was sent");
        // A late acknowledgement of the same lease reopens it: the lease never expired.
        f.lease_acked(Instant::now(), Duration::from_secs(5), false);
        assert!(!f.is_fenced());
        assert_eq!(
            f.lease_left_ms(),
            Some(2_000),
            "the heartbeat's window ends first now"
        );
        // Keepalives answered, no heartbeat committed: closed at window - margin after it.
        tokio::time::advance(Duration::from_millis(1_999)).await;
        f.lease_acked(Instant::now(), Duration::from_secs(5), false);
        assert!(!f.is_fenced());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            f.is_fenced(),
            "window - margin after the last heartbeat was sent"
        );
        f.beat_acked(Instant::now());
        assert!(!f.is_fenced());
        // A new lease: closed until the map is proven current again.
        tokio::time::advance(Duration::from_millis(1)).await;
        f.lease_acked(Instant::now(), Duration::from_secs(5), true);
        assert!(f.is_fenced());
        tokio::time::advance(Duration::from_millis(1)).await;
        f.read_ok(Instant::now());
        f.progress();
        assert!(!f.is_fenced());
    }
}
