//! The simulator clock: milliseconds since the Unix epoch, taken from the wall clock once at
//! start and advanced with `tokio::time::Instant`. Operation deadlines, `createTime` and log
//! times all use it, so a test with paused tokio time sees operations finish when it advances
//! the clock, and a persisted deadline still means something after a restart.

use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Wall-clock base plus monotonic elapsed time.
pub(crate) struct Clock {
    base_ms: u64,
    base: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        let base_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            base_ms,
            base: Instant::now(),
        }
    }

    /// Now, in milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.base);
        self.base_ms + elapsed.as_millis() as u64
    }
}
