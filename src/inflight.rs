//! Per-shard counts of the writes this router has in flight to a Coopr server, so a planned
//! handoff can wait until the old owner has finished every write it started before it moves the
//! shard (`etcd::handoff`).
//!
//! The ordering that makes this safe: a write *enters* (increments its shard's count) before it
//! loads the routing snapshot it will be decided by, and the handoff driver reads the count only
//! after the snapshot that holds the shard was published. Both sides use `SeqCst`, so either the
//! write sees the hold (and waits), or the driver sees the write (and waits for it).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The counters, one per shard.
pub struct InFlight {
    counts: Box<[AtomicUsize]>,
    left: Notify,
}

impl InFlight {
    pub fn new(shards: u32) -> Arc<InFlight> {
        Arc::new(InFlight {
            counts: (0..shards).map(|_| AtomicUsize::new(0)).collect(),
            left: Notify::new(),
        })
    }

    /// Counts a write to `shard` until the guard is dropped. Out-of-range shards are not counted.
    pub fn enter(self: &Arc<Self>, shard: u32) -> Guard {
        if let Some(c) = self.counts.get(shard as usize) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        Guard {
            inflight: Arc::clone(self),
            shard,
        }
    }

    /// The writes now in flight for `shard`.
    pub fn count(&self, shard: u32) -> usize {
        self.counts
            .get(shard as usize)
            .map_or(0, |c| c.load(Ordering::SeqCst))
    }

    /// Waits until `shard` has no write in flight, at most `timeout`. True if it drained.
    pub async fn drained(&self, shard: u32, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let left = self.left.notified();
                tokio::pin!(left);
                // Register before checking, so a guard dropped in between still wakes us.
                left.as_mut().enable();
                if self.count(shard) == 0 {
                    return;
                }
                left.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// One write in flight; dropping it ends the write.
pub struct Guard {
    inflight: Arc<InFlight>,
    shard: u32,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.inflight.counts.get(self.shard as usize)
            && c.fetch_sub(1, Ordering::SeqCst) == 1
        {
            self.inflight.left.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drained_waits_for_the_last_guard_of_its_shard_only() {
        let f = InFlight::new(4);
        let a = f.enter(1);
        let b = f.enter(1);
        let other = f.enter(2);
        assert_eq!(f.count(1), 2);
        assert!(!f.drained(1, Duration::from_millis(50)).await);
        drop(a);
        let f2 = Arc::clone(&f);
        let waiter = tokio::spawn(async move { f2.drained(1, Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        drop(b);
        assert!(waiter.await.unwrap());
        assert_eq!(f.count(1), 0);
        assert_eq!(f.count(2), 1);
        drop(other);
        // Out of range: never counted, always drained.
        let _g = f.enter(99);
        assert!(f.drained(99, Duration::ZERO).await);
    }
}
