//! etcd history compaction. etcd keeps every revision of every key until it is compacted, and
//! each router writes one every TTL/5 (its heartbeat, `liveness.rs`), so an etcd run without
//! `--auto-compaction-retention` would grow until its space quota (2 GiB by default) refuses
//! every write, the routers' leases and heartbeats included. So every
//! `ownership.compact_every_ms` (hot; default 5 min; 0: off, for an etcd whose owner compacts
//! it) each router compacts etcd to the revision it read one interval earlier, as
//! kube-apiserver does: at least one interval of history stays for a watch to resume from (one
//! that fell further behind lists the map again, `watch.rs`). Several routers doing it is
//! harmless: a compaction to a revision already compacted is refused and ignored.
//!
//! The pure core is [`Compactor`]; [`run`] is its shell.

use super::{EtcdError, Settings};
use etcd_client::Client;
use std::sync::Arc;
use std::time::Duration;

/// What to compact to, from the revisions read one interval apart.
#[derive(Debug, Default)]
pub struct Compactor {
    /// The revision read at the previous tick.
    previous: Option<i64>,
    /// The highest revision compacted to (by this router).
    done: i64,
}

impl Compactor {
    /// A tick read the current revision `now`: returns the revision to compact to (the one read
    /// a tick earlier), if it is newer than the last compaction.
    pub fn tick(&mut self, now: i64) -> Option<i64> {
        let target = self.previous.replace(now)?;
        (target > self.done).then_some(target)
    }

    /// The compaction to `rev` committed, or etcd had already compacted at least that far.
    pub fn compacted(&mut self, rev: i64) {
        self.done = self.done.max(rev);
    }

    /// Forgets the previous reading (after a failed read: the next tick starts the interval
    /// again, so what is compacted is always at least one interval old).
    pub fn reset(&mut self) {
        self.previous = None;
    }
}

/// Compacts every `every()` ms until shutdown (0: off; read again at each tick).
pub async fn run(
    settings: Settings,
    every: Arc<dyn Fn() -> u64 + Send + Sync>,
    shutdown: crate::shutdown::Shutdown,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut state = Compactor::default();
    let mut client: Option<Client> = None;
    loop {
        let ms = every();
        let pause = if ms == 0 {
            // Off: look again later (the setting is hot).
            state.reset();
            Duration::from_secs(10)
        } else {
            Duration::from_millis(ms)
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = &mut stop => return,
        }
        if every() == 0 {
            continue;
        }
        let done = tokio::select! {
            d = step(&settings, &mut client, &mut state) => d,
            _ = &mut stop => return,
        };
        if let Err(e) = done {
            client = None;
            state.reset();
            tracing::warn!(error = %e, "cannot compact etcd's history; trying again at the next interval");
        }
    }
}

/// One tick: reads the current revision and compacts to the previous tick's.
async fn step(
    settings: &Settings,
    client: &mut Option<Client>,
    state: &mut Compactor,
) -> Result<(), EtcdError> {
    let c = match client {
        Some(c) => c,
        None => client.insert(settings.connect().await?),
    };
    let now = settings.revision(c).await?;
    let Some(target) = state.tick(now) else {
        return Ok(());
    };
    match settings.within(c.compact(target, None)).await {
        Ok(_) => {
            state.compacted(target);
            crate::metrics::etcd_compacted(target);
            tracing::info!(revision = target, "compacted etcd's history");
            Ok(())
        }
        Err(EtcdError::Client(e)) if e.to_string().contains("compacted") => {
            // Another router (or etcd's own auto-compaction) went at least this far.
            state.compacted(target);
            tracing::debug!(revision = target, "etcd's history was already compacted");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_compaction_is_the_revision_read_one_tick_earlier() {
        let mut c = Compactor::default();
        // (revision read, compaction proposed, whether it committed)
        let steps = [
            (10, None, false),    // the first reading only starts the interval
            (25, Some(10), true), // the previous reading
            (25, Some(25), true), // nothing new since: still the previous reading
            (25, None, false),    // already compacted there
            (40, None, false),    // the previous reading (25) was compacted already
            (41, Some(40), false),
            (50, Some(41), true), // a failed compaction is proposed again, further on
        ];
        for (i, (now, want, commit)) in steps.into_iter().enumerate() {
            let got = c.tick(now);
            assert_eq!(got, want, "step {i}: read {now}");
            if let (Some(r), true) = (got, commit) {
                c.compacted(r);
            }
        }
    }

    #[test]
    fn after_a_reset_the_interval_starts_again() {
        let mut c = Compactor::default();
        assert_eq!(c.tick(5), None);
        c.reset();
        assert_eq!(
            c.tick(9),
            None,
            "no compaction without a reading one tick old"
        );
        assert_eq!(c.tick(12), Some(9));
    }

    proptest::proptest! {
        /// Whatever the readings (non-decreasing, as etcd's revision is) and whichever
        /// compactions commit, a proposal is always a revision read at the previous tick, never
        /// the current one, and never at or below one already compacted.
        #[test]
        fn a_proposal_is_always_one_tick_old_and_new(
            steps in proptest::collection::vec((0i64..5, proptest::bool::ANY, proptest::bool::ANY), 1..60)
        ) {
            let mut c = Compactor::default();
            let mut rev = 1;
            let mut prev: Option<i64> = None;
            let mut done = 0;
            for (bump, commit, reset) in steps {
                rev += bump;
                if reset {
                    c.reset();
                    prev = None;
                }
                let got = c.tick(rev);
                if let Some(t) = got {
                    proptest::prop_assert_eq!(Some(t), prev);
                    proptest::prop_assert!(t > done);
                    if commit {
                        c.compacted(t);
                        done = t;
                    }
                }
                prev = Some(rev);
            }
        }
    }
}
