//! The replica store's retention: a replicated cluster terminated longer ago than
//! `replication.retain_terminated_ms` (by its capture time at the owner) leaves the store, its
//! list item and any open intent with it, but for a tombstone (its order, no state) so an older
//! record arriving later cannot bring it back (the pure [`step`](super::replica::step) ignores
//! it). The pure [`retired`] decides; a task sweeps once a minute and publishes the store's size.

use super::Inner;
use super::list_index;
use super::node_index::{self, nodes_of};
use super::replica::ReplicaEntry;
use super::store::{LIST_INDEX, NODES, OPEN, REPLICA, ReplError, SUMMARY, Store, now_ms};
use redb::ReadableTable;
use std::sync::Arc;
use std::time::Duration;

/// How often the store is swept.
const EVERY: Duration = Duration::from_secs(60);

/// Pure: whether `entry` leaves the store at `now_ms` (0 `retain_ms`: never). Only a cluster
/// whose last state is `terminated`, with no operation open on it, captured over `retain_ms`
/// ago.
pub fn retired(entry: &ReplicaEntry, now_ms: u64, retain_ms: u64) -> bool {
    let Some(f) = &entry.state else {
        return false;
    };
    retain_ms > 0
        && entry.open.is_none()
        && f.details.get("status").and_then(serde_json::Value::as_str) == Some("terminated")
        && now_ms.saturating_sub(f.captured_ms) > retain_ms
}

/// What a sweep did and found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    pub retired: u64,
    /// Entries left with a state (tombstones not counted).
    pub clusters: u64,
}

impl Store {
    /// Replaces every [`retired`] entry by its tombstone and drops its list item and open
    /// intent, in one transaction.
    pub fn retire_terminated(&self, now_ms: u64, retain_ms: u64) -> Result<Swept, ReplError> {
        let tx = self.db()?.begin_write()?;
        let mut out = Swept::default();
        {
            let mut t = tx.open_table(REPLICA)?;
            let mut gone = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let e: ReplicaEntry = serde_json::from_slice(v.value())?;
                if retired(&e, now_ms, retain_ms) {
                    gone.push((k.value(), e));
                } else if e.state.is_some() {
                    out.clusters += 1;
                }
            }
            let mut summaries = tx.open_table(SUMMARY)?;
            let mut index = tx.open_table(LIST_INDEX)?;
            let mut nodes = tx.open_table(NODES)?;
            let mut open = tx.open_table(OPEN)?;
            for (id, e) in gone {
                let tomb = ReplicaEntry {
                    order: e.order,
                    shard: e.shard,
                    state: None,
                    open: None,
                };
                t.insert(id, serde_json::to_vec(&tomb)?.as_slice())?;
                list_index::remove(&mut summaries, &mut index, id)?;
                node_index::update(&mut nodes, id, &nodes_of(e.state.as_ref()), &[])?;
                open.remove(id)?;
                out.retired += 1;
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Sweeps every minute until shutdown; publishes the store file's size and the clusters it holds.
pub(super) async fn run(inner: Arc<Inner>, path: String) {
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        let retain = inner.cfg.retain_terminated_ms;
        let now = now_ms();
        match inner
            .store
            .run(move |s| s.retire_terminated(now, retain))
            .await
        {
            Ok(swept) => {
                if swept.retired > 0 {
                    tracing::info!(
                        retired = swept.retired,
                        "replica store: terminated clusters past retain_terminated_ms removed"
                    );
                }
                let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                crate::metrics::replica_store(bytes, swept.clusters, swept.retired);
            }
            Err(e) => tracing::warn!(error = %e, "replica store sweep failed"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::fixtures::{dc1_owns_all, finished, intent};
    use crate::replication::record::{Envelope, Finished, Record};

    fn fin(op: u64, status: &str, captured_ms: u64) -> Finished {
        Finished {
            op,
            action: "cluster_delete".into(),
            captured_ms,
            ..finished(1, status)
        }
    }

    fn entry(status: Option<&str>, captured: u64, open: bool) -> ReplicaEntry {
        ReplicaEntry {
            order: (0, 1),
            shard: 1,
            state: status.map(|s| fin(1, s, captured)),
            open: open.then(|| crate::replication::record::Intent {
                op: 2,
                method: "POST".into(),
                path: "/v2/clusters/00000001/clusteractions".into(),
                action: "x".into(),
                ..intent(1)
            }),
        }
    }

    #[test]
    fn retired_table() {
        // (status, captured, open, now, retain) -> retired
        let rows = [
            (Some("terminated"), 1000, false, 2001, 1000, true),
            (Some("terminated"), 1000, false, 2000, 1000, false),
            (Some("terminated"), 1000, false, 9999, 0, false),
            (Some("terminated"), 1000, true, 9999, 1000, false),
            (Some("active"), 1000, false, 9999, 1000, false),
            (None, 0, false, 9999, 1000, false),
            // A capture time ahead of this clock (skew) is not old.
            (Some("terminated"), 5000, false, 1000, 1000, false),
        ];
        for (status, captured, open, now, retain, want) in rows {
            assert_eq!(
                retired(&entry(status, captured, open), now, retain),
                want,
                "{status:?} {captured} {open} {now} {retain}"
            );
        }
    }

    #[test]
    fn a_retired_cluster_leaves_a_tombstone_that_older_records_cannot_pass() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("r.redb")).unwrap();
        // This router is dc3; every shard is dc1's.
        let table = dc1_owns_all();
        let env = |seq, f: Finished| Envelope {
            seq,
            record: Record::Finished(f),
        };
        s.apply("dc1", &table, &[env(1, fin(1, "active", 10))])
            .unwrap();
        s.apply("dc1", &table, &[env(2, fin(2, "terminated", 20))])
            .unwrap();
        assert_eq!(
            s.retire_terminated(1_000, 1_000).unwrap(),
            Swept {
                retired: 0,
                clusters: 1
            }
        );
        assert_eq!(
            s.retire_terminated(1_021, 1_000).unwrap(),
            Swept {
                retired: 1,
                clusters: 0
            }
        );
        assert!(s.summaries(|_| true).unwrap().is_empty());
        let id = crate::ids::ClusterId::new(1).unwrap();
        let tomb = s.replica(id).unwrap().unwrap();
        assert_eq!((tomb.order, tomb.state.is_none()), ((0, 2), true));
        // The older record, sent again: ignored, the cluster stays gone.
        let again = s
            .apply("dc1", &table, &[env(1, fin(1, "active", 10))])
            .unwrap();
        assert_eq!(again.applied, 0);
        assert!(s.summaries(|_| true).unwrap().is_empty());
    }
}
