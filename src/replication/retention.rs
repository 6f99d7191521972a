//! The replica store's retention: a replicated cluster terminated longer ago than
//! `replication.retain_terminated_ms` (by its capture time at the owner) leaves the store, its
//! list item and any open intent with it, but for a tombstone (its order, no state) so an older
//! record arriving later cannot bring it back (the pure [`step`](super::replica::step) ignores
//! it). The pure [`retired`] decides; a task sweeps once a minute and publishes the store's size.
//! A sweep reads only the clusters that can be due: the terminated ones captured before its cut,
//! from `retiring.rs`'s index, so its cost follows what it retires, not how many clusters the
//! store holds.

use super::Inner;
use super::list_index;
use super::node_index::{self, nodes_of};
use super::replica::ReplicaEntry;
use super::retiring::{reindex, terminated_at};
use super::store::{LIST_INDEX, NODES, OPEN, REPLICA, RETIRING, ReplError, SUMMARY, Store, now_ms};
use redb::{ReadableTable, ReadableTableMetadata};
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

/// Pure: the index keys a sweep at `now_ms` must read: capture times `c` with
/// `now_ms - c > retain_ms` (none when `retain_ms` is 0).
fn due(now_ms: u64, retain_ms: u64) -> Option<std::ops::Range<(u64, u64)>> {
    let cut = now_ms.checked_sub(retain_ms)?;
    (retain_ms > 0 && cut > 0).then_some((0, 0)..(cut, 0))
}

/// What a sweep did and found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Swept {
    pub retired: u64,
    /// Entries left with a state (tombstones not counted).
    pub clusters: u64,
}

impl Store {
    /// Replaces every [`retired`] entry by its tombstone and drops its list item, nodes and
    /// open intent, in one transaction. Reads only the index's due range and those entries.
    pub fn retire_terminated(&self, now_ms: u64, retain_ms: u64) -> Result<Swept, ReplError> {
        let tx = self.db()?.begin_write()?;
        let mut out = Swept::default();
        {
            let mut index = tx.open_table(RETIRING)?;
            let keys = match due(now_ms, retain_ms) {
                Some(range) => index
                    .range(range)?
                    .map(|row| row.map(|(k, _)| k.value()))
                    .collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            };
            let mut t = tx.open_table(REPLICA)?;
            let mut summaries = tx.open_table(SUMMARY)?;
            let mut list = tx.open_table(LIST_INDEX)?;
            let mut nodes = tx.open_table(NODES)?;
            let mut open = tx.open_table(OPEN)?;
            for (at, id) in keys {
                let entry: Option<ReplicaEntry> = match t.get(id)? {
                    Some(v) => Some(serde_json::from_slice(v.value())?),
                    None => None,
                };
                let Some(e) = entry.filter(|e| terminated_at(e.state.as_ref()) == Some(at)) else {
                    // A key its entry no longer has (never written so; dropped if found).
                    index.remove((at, id))?;
                    continue;
                };
                if !retired(&e, now_ms, retain_ms) {
                    // An operation is open on it: it stays, and is read again next time.
                    continue;
                }
                retire(
                    &mut t,
                    &mut summaries,
                    &mut list,
                    &mut nodes,
                    &mut open,
                    id,
                    e,
                )?;
                index.remove((at, id))?;
                out.retired += 1;
            }
            // One list item per entry with a state: the count without reading them.
            out.clusters = summaries.len()?;
        }
        if out.retired == 0 {
            // Nothing changed but stale keys, which the next due sweep drops again: no commit
            // (no fsync) for a sweep with nothing due, the usual minute.
            tx.abort()?;
        } else {
            tx.commit()?;
        }
        Ok(out)
    }

    /// What [`Store::retire_terminated`] did before the index: read and parse every replicated
    /// cluster. The same effect (property-tested); kept as its test oracle and load/scale's peer.
    pub fn retire_terminated_scan(&self, now_ms: u64, retain_ms: u64) -> Result<Swept, ReplError> {
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
            let mut list = tx.open_table(LIST_INDEX)?;
            let mut nodes = tx.open_table(NODES)?;
            let mut open = tx.open_table(OPEN)?;
            let mut index = tx.open_table(RETIRING)?;
            for (id, e) in gone {
                reindex(&mut index, id, terminated_at(e.state.as_ref()), None)?;
                retire(
                    &mut t,
                    &mut summaries,
                    &mut list,
                    &mut nodes,
                    &mut open,
                    id,
                    e,
                )?;
                out.retired += 1;
            }
        }
        tx.commit()?;
        Ok(out)
    }
}

/// Replaces cluster `id`'s entry `e` by its tombstone and drops its list item, nodes and open
/// intent (not its retirement key: the caller's).
fn retire(
    t: &mut redb::Table<u64, &[u8]>,
    summaries: &mut redb::Table<u64, &[u8]>,
    list: &mut redb::Table<&[u8], ()>,
    nodes: &mut redb::Table<&str, u64>,
    open: &mut redb::Table<u64, &[u8]>,
    id: u64,
    e: ReplicaEntry,
) -> Result<(), ReplError> {
    let tomb = ReplicaEntry {
        order: e.order,
        shard: e.shard,
        state: None,
        open: None,
    };
    t.insert(id, serde_json::to_vec(&tomb)?.as_slice())?;
    list_index::remove(summaries, list, id)?;
    node_index::update(nodes, id, &nodes_of(e.state.as_ref()), &[])?;
    open.remove(id)?;
    Ok(())
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

    /// One step of the property test below.
    #[derive(Debug, Clone)]
    enum Step {
        /// A finished state of cluster `id` (terminated or active), captured at `at`.
        Finish(u64, bool, u64),
        /// An operation opened on cluster `id`.
        Open(u64),
        /// A sweep at `now` keeping terminated clusters `retain` ms.
        Sweep(u64, u64),
        /// The file reopened as one written before the index (it is rebuilt).
        Reopen,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (1..6u64, any::<bool>(), 0..60u64).prop_map(|(id, t, at)| Step::Finish(id, t, at)),
            1 => (1..6u64).prop_map(Step::Open),
            3 => (0..100u64, 0..40u64).prop_map(|(now, retain)| Step::Sweep(now, retain)),
            1 => Just(Step::Reopen),
        ]
    }

    type Keys = Vec<(u64, u64)>;

    /// The index's keys, and the keys the entries say it should hold.
    fn index_and_entries(s: &Store) -> (Keys, Keys) {
        use redb::ReadableDatabase;
        let tx = s.db().unwrap().begin_read().unwrap();
        let index = tx.open_table(RETIRING).unwrap();
        let keys = index
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect();
        let entries = tx.open_table(REPLICA).unwrap();
        let want = entries
            .iter()
            .unwrap()
            .filter_map(|r| {
                let (k, v) = r.unwrap();
                let e: ReplicaEntry = serde_json::from_slice(v.value()).unwrap();
                terminated_at(e.state.as_ref()).map(|at| (at, k.value()))
            })
            .collect();
        (keys, want)
    }

    /// Forgets the index as a file written before it would (no table, no `BUILT` key).
    fn as_before_the_index(s: &Store) {
        let tx = s.db().unwrap().begin_write().unwrap();
        tx.delete_table(RETIRING).unwrap();
        tx.open_table(crate::replication::store::META)
            .unwrap()
            .remove(crate::replication::retiring::BUILT)
            .unwrap();
        tx.commit().unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// A sweep through the index retires exactly what the scan of every entry retired, and
        /// counts the same clusters; the index always holds exactly the terminated entries,
        /// through applies, sweeps and a reopen of a file from before it.
        #[test]
        fn the_index_sweeps_what_the_scan_swept(steps in proptest::collection::vec(step(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let (pa, pb) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
            let (mut a, b) = (Store::open(&pa).unwrap(), Store::open(&pb).unwrap());
            let table = dc1_owns_all();
            for (n, st) in steps.into_iter().enumerate() {
                let seq = n as u64 + 1;
                let env = match st {
                    Step::Finish(id, terminated, at) => Some(Envelope {
                        seq,
                        record: Record::Finished(Finished {
                            op: seq,
                            captured_ms: at,
                            ..finished(id, if terminated { "terminated" } else { "active" })
                        }),
                    }),
                    Step::Open(id) => Some(Envelope {
                        seq,
                        record: Record::Intent(crate::replication::record::Intent {
                            op: seq,
                            ..intent(id)
                        }),
                    }),
                    Step::Sweep(now, retain) => {
                        let by_index = a.retire_terminated(now, retain).unwrap();
                        let by_scan = b.retire_terminated_scan(now, retain).unwrap();
                        proptest::prop_assert_eq!(by_index, by_scan, "sweep at {} keeping {}", now, retain);
                        None
                    }
                    Step::Reopen => {
                        as_before_the_index(&a);
                        drop(a);
                        a = Store::open(&pa).unwrap();
                        None
                    }
                };
                if let Some(env) = env {
                    let (x, y) = (a.apply("dc1", &table, std::slice::from_ref(&env)).unwrap(), b.apply("dc1", &table, &[env]).unwrap());
                    proptest::prop_assert_eq!((x.applied, x.ignored), (y.applied, y.ignored));
                }
                for id in 1..6 {
                    let id = crate::ids::ClusterId::new(id).unwrap();
                    proptest::prop_assert_eq!(a.replica(id).unwrap(), b.replica(id).unwrap());
                }
                let (keys, mut want) = index_and_entries(&a);
                want.sort_unstable();
                proptest::prop_assert_eq!(keys, want);
            }
        }
    }
}
