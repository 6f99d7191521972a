//! Tests of the replica store (`replication/replica.rs`): applying batches keeps the list and
//! open views in step, and forged records never hide the owner's later ones.
//!
//! Test code only: `replication/replica.rs` includes this file under `#[cfg(test)]`, so its unwraps never
//! run on a request, etcd or replication path.

use super::*;
use crate::replication::fixtures::{finished, intent, table};
use serde_json::json;

#[test]
fn apply_keeps_the_list_and_open_views_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("r.redb")).unwrap();
    // Shard 1 of 3 shards is dc1's (its home).
    let table = table(3, &[0, 0, 0], &[0, 0, 0]);
    let s = Applier(s, table);
    let intent = Intent {
        op: 5,
        method: "POST".into(),
        path: "/v2/clusters".into(),
        action: "cluster_create".into(),
        ..intent(1)
    };
    let finished = Finished {
        op: 5,
        details: json!({"id": "00000001", "status": "active", "name": "n"}),
        ..finished(1, "active")
    };
    let batch = [Envelope {
        seq: 1,
        record: Record::Intent(intent.clone()),
    }];
    assert_eq!(s.apply(&batch).applied, 1);
    assert_eq!(s.open_intents(|_| true).unwrap(), [intent]);
    assert!(s.summaries(|_| true).unwrap().is_empty());
    // Sent again: ignored.
    assert_eq!(
        s.apply(&batch),
        Applied {
            applied: 0,
            ignored: 1,
            ..Applied::default()
        }
    );
    let done = [Envelope {
        seq: 2,
        record: Record::Finished(finished),
    }];
    assert_eq!(s.apply(&done).applied, 1);
    assert!(s.open_intents(|_| true).unwrap().is_empty());
    let items = s.summaries(|_| true).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].status.as_str(), items[0].summary["name"].as_str()),
        ("active", Some("n"))
    );
    assert!(s.summaries(|shard| shard != 1).unwrap().is_empty());
    let id = ClusterId::parse("1").unwrap();
    assert_eq!(s.replica(id).unwrap().unwrap().order, (0, 2));
}

/// A store and the map its batches from dc1 are judged by.
struct Applier(Store, RoutingTable);

impl std::ops::Deref for Applier {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.0
    }
}

impl Applier {
    fn apply(&self, records: &[Envelope]) -> Applied {
        self.0.apply("dc1", &self.1, records).unwrap()
    }
}

fn fin(cluster: &str, shard: u32, epoch: u64, origin: &str, status: &str) -> Record {
    Record::Finished(Finished {
        op: 1,
        origin: origin.into(),
        cluster: cluster.into(),
        shard,
        epoch,
        details: json!({"id": cluster, "status": status}),
        ..finished(1, status)
    })
}

#[test]
fn forged_records_are_refused_and_never_hide_the_owners_later_ones() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("r.redb")).unwrap();
    // 3 shards owned by dc1, dc2, dc3 at epochs 5, 5, 5; this router is dc3.
    let t = table(3, &[0, 1, 2], &[5, 5, 5]);
    let env = |seq, r| Envelope { seq, record: r };
    // dc2 claims cluster 4 (shard 1: dc2's) is fine; dc2 claiming cluster 3 (shard 0, dc1's)
    // with a huge sequence is not.
    let forged = [
        env(u64::MAX, fin("00000003", 0, 5, "dc2", "forged")),
        env(u64::MAX, fin("00000003", 1, 5, "dc2", "forged")),
        env(u64::MAX, fin("00000003", u32::MAX, 5, "dc2", "forged")),
    ];
    let a = s.apply("dc2", &t, &forged).unwrap();
    assert_eq!((a.applied, a.refused, a.ahead), (0, 3, None));
    let reasons: Vec<_> = a.refusals.iter().map(|r| r.0).collect();
    assert_eq!(
        reasons,
        [Refusal::NotOwner, Refusal::WrongShard, Refusal::WrongShard]
    );
    // A future epoch, even from the owner: nothing of the batch applies.
    let ahead = [
        env(1, fin("00000003", 0, 5, "dc1", "active")),
        env(2, fin("00000006", 0, u64::MAX, "dc1", "forged")),
    ];
    let a = s.apply("dc1", &t, &ahead).unwrap();
    assert_eq!(a.ahead, Some((0, u64::MAX, 5)));
    assert_eq!(a.applied, 0);
    assert!(s.replica(ClusterId::parse("3").unwrap()).unwrap().is_none());
    // The real owner's records apply.
    let real = [env(1, fin("00000003", 0, 5, "dc1", "active"))];
    assert_eq!(s.apply("dc1", &t, &real).unwrap().applied, 1);
    let e = s.replica(ClusterId::parse("3").unwrap()).unwrap().unwrap();
    assert_eq!(e.order, (5, 1));
    // The map moves shard 0 to dc2 at epoch 9: dc1's late epoch-5 records still apply
    // (logged as its owner at 5), dc3 never owned it, dc2 at 9 overrides everything older.
    let t2 = table(3, &[1, 1, 2], &[9, 5, 5]);
    s.note_owners(&t2, &owners_to_note(Some(&t), &t2)).unwrap();
    let late = [env(2, fin("00000003", 0, 5, "dc1", "late"))];
    assert_eq!(s.apply("dc1", &t2, &late).unwrap().applied, 1);
    let never = [env(3, fin("00000003", 0, 5, "dc3", "forged"))];
    let a = s.apply("dc3", &t2, &never).unwrap();
    assert_eq!(a.refusals[0].0, Refusal::NotOwner);
    let new_owner = [env(1, fin("00000003", 0, 9, "dc2", "moved"))];
    assert_eq!(s.apply("dc2", &t2, &new_owner).unwrap().applied, 1);
    let old_huge = [env(u64::MAX, fin("00000003", 0, 5, "dc1", "stale"))];
    assert_eq!(s.apply("dc1", &t2, &old_huge).unwrap().ignored, 1);
    let e = s.replica(ClusterId::parse("3").unwrap()).unwrap().unwrap();
    assert_eq!(e.state.unwrap().details["status"], "moved");
}

/// A publish logs the shards whose owner or epoch it moved; the first map, or one with another
/// shard count, is logged whole.
#[test]
fn owners_to_note_by_table() {
    let t = table(3, &[0, 1, 2], &[5, 5, 5]);
    type Row<'a> = (Option<RoutingTable>, RoutingTable, &'a [u32]);
    let rows: [Row<'_>; 6] = [
        (None, t.clone(), &[0, 1, 2]),
        (Some(t.clone()), t.clone(), &[]),
        // Shard 1 handed to dc1 at epoch 9.
        (Some(t.clone()), table(3, &[0, 0, 2], &[5, 9, 5]), &[1]),
        // A new epoch for the same owner (a failback to it) is a new entry in the log.
        (Some(t.clone()), table(3, &[0, 1, 2], &[5, 5, 7]), &[2]),
        // The owner alone moved (a map that did not bump the epoch): logged too.
        (Some(t.clone()), table(3, &[2, 1, 2], &[5, 5, 5]), &[0]),
        (
            Some(t.clone()),
            table(6, &[0, 1, 2, 0, 1, 2], &[5; 6]),
            &[0, 1, 2, 3, 4, 5],
        ),
    ];
    for (old, new, want) in rows {
        assert_eq!(
            owners_to_note(old.as_ref(), &new),
            want,
            "{old:?} -> {new:?}"
        );
    }
}

/// Logging only what moved loses nothing: the log after a sequence of maps, each logged with
/// `owners_to_note` against the previous, is the log of every map logged whole.
#[test]
fn logging_what_moved_logs_what_logging_everything_did() {
    use redb::{ReadableDatabase, ReadableTable};
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        Store::open(&dir.path().join("a.redb")).unwrap(),
        Store::open(&dir.path().join("b.redb")).unwrap(),
    );
    let maps = [
        table(3, &[0, 1, 2], &[5, 5, 5]),
        table(3, &[0, 0, 2], &[5, 9, 5]),
        table(3, &[0, 0, 2], &[5, 9, 5]),
        table(3, &[1, 0, 2], &[11, 9, 5]),
        table(3, &[1, 0, 0], &[11, 9, 12]),
    ];
    let mut last: Option<&RoutingTable> = None;
    for m in &maps {
        a.note_owners(m, &owners_to_note(last, m)).unwrap();
        b.note_owners(m, &(0..m.shard_count()).collect::<Vec<_>>())
            .unwrap();
        last = Some(m);
    }
    let log = |s: &Store| -> Vec<((u32, u64), String)> {
        let tx = s.db().unwrap().begin_read().unwrap();
        let t = tx.open_table(OWNERS).unwrap();
        t.iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value(), v.value().to_string())
            })
            .collect()
    };
    assert_eq!(log(&a), log(&b));
    assert_eq!(log(&a).len(), 3 + 1 + 1 + 1);
}

/// After a rebuild that shares untouched chunks (what the watcher publishes), the shards to log
/// are the moved ones, found among the chunks replaced; a table built whole from the same
/// entries (no chunk shared) gives the same list by comparing every shard.
#[test]
fn owners_to_note_reads_only_the_chunks_replaced() {
    let n = 200;
    let old = table(n, &vec![0; n as usize], &vec![5; n as usize]);
    let entry = |owner, epoch| crate::routing::ShardEntry {
        owner,
        replicas: vec![],
        epoch,
        home: None,
        handoff: None,
    };
    // Shard 70 handed to dc2 at 9; shard 71 rewritten as it was (same owner and epoch).
    let new = old.with_shards_replaced(2, [(70, entry(1, 9)), (71, entry(0, 5))]);
    assert_eq!(owners_to_note(Some(&old), &new), [70]);
    let mut owners = vec![0; n as usize];
    let mut epochs = vec![5; n as usize];
    (owners[70], epochs[70]) = (1, 9);
    let whole = table(n, &owners, &epochs);
    assert_eq!(owners_to_note(Some(&old), &whole), [70]);
}
