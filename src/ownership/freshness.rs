//! Whether this router can prove its map is fresh, and so whether it may accept writes for the
//! shards it owns (the fence). Written by the ownership watcher, read (atomically, never
//! waiting) by the request path. The decision itself is the pure [`fenced`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NEVER: u64 = u64::MAX;

/// Pure fence decision: fenced when the map is stale (loaded from disk, or etcd lost) or when
/// no progress arrived for longer than `fence_after_ms`.
pub fn fenced(
    stale: bool,
    now_ms: u64,
    last_progress_ms: Option<u64>,
    fence_after_ms: u64,
) -> bool {
    match last_progress_ms {
        _ if stale => true,
        None => true,
        Some(last) => now_ms.saturating_sub(last) > fence_after_ms,
    }
}

/// Shared freshness state. A static map is always fresh.
#[derive(Debug)]
pub struct Freshness {
    origin: Instant,
    dynamic: bool,
    fence_after_ms: u64,
    stale: AtomicBool,
    last_progress_ms: AtomicU64,
    /// When the last linearizable read that succeeded was sent.
    last_read_ms: AtomicU64,
    relists: AtomicU64,
    watch_restarts: AtomicU64,
    was_fenced: AtomicBool,
}

impl Freshness {
    /// For the static map: never stale, never fenced.
    pub fn always_fresh() -> Self {
        Self::new(false, Duration::ZERO)
    }

    /// For a live source: stale until the first load.
    pub fn live(fence_after: Duration) -> Self {
        crate::metrics::fenced(true);
        Self::new(true, fence_after)
    }

    fn new(dynamic: bool, fence_after: Duration) -> Self {
        Freshness {
            origin: Instant::now(),
            dynamic,
            fence_after_ms: fence_after.as_millis() as u64,
            stale: AtomicBool::new(dynamic),
            last_progress_ms: AtomicU64::new(NEVER),
            last_read_ms: AtomicU64::new(NEVER),
            relists: AtomicU64::new(0),
            watch_restarts: AtomicU64::new(0),
            was_fenced: AtomicBool::new(dynamic),
        }
    }

    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    /// Whether writes to owned shards must be refused now.
    pub fn is_fenced(&self) -> bool {
        if !self.dynamic {
            return false;
        }
        let last = self.proven_at();
        let now = fenced(
            self.stale.load(Ordering::Acquire),
            self.now_ms(),
            (last != NEVER).then_some(last),
            self.fence_after_ms,
        );
        // Log each transition once.
        if self.was_fenced.swap(now, Ordering::Relaxed) != now {
            crate::metrics::fenced(now);
            if now {
                tracing::warn!(
                    fence_after_ms = self.fence_after_ms,
                    "fence engaged: cannot prove the map is fresh; refusing writes to owned shards"
                );
            } else {
                tracing::info!("fence released: the map is fresh again");
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

    /// Milliseconds since the last progress, if any arrived.
    pub fn progress_age_ms(&self) -> Option<u64> {
        let last = self.proven_at();
        (last != NEVER).then(|| self.now_ms().saturating_sub(last))
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
        let ms = sent.saturating_duration_since(self.origin).as_millis() as u64;
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
        crate::metrics::fenced(false);
    }

    /// The source was lost (or the map came from disk).
    pub fn set_stale(&self) {
        self.stale.store(true, Ordering::Release);
        crate::metrics::fenced(true);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fence_table() {
        // (stale, now, last, after) -> fenced
        let rows = [
            (false, 1000, Some(900), 3000, false),
            (false, 5000, Some(2000), 3000, false),
            (false, 5001, Some(2000), 3000, true),
            (true, 1000, Some(1000), 3000, true),
            (false, 1000, None, 3000, true),
            (false, 0, Some(10), 3000, false),
        ];
        for (stale, now, last, after, want) in rows {
            assert_eq!(
                fenced(stale, now, last, after),
                want,
                "{stale} {now} {last:?} {after}"
            );
        }
    }

    #[test]
    fn static_maps_are_never_fenced_and_live_ones_start_fenced() {
        assert!(!Freshness::always_fresh().is_fenced());
        let f = Freshness::live(Duration::from_secs(3));
        assert!(f.is_fenced() && f.is_stale());
        f.progress();
        assert!(
            f.is_fenced(),
            "a watch alone does not prove etcd has a leader"
        );
        f.read_ok(Instant::now());
        assert!(!f.is_fenced() && !f.is_stale());
        f.set_stale();
        assert!(f.is_fenced());
    }
}
