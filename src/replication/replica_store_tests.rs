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
    s.note_owners(
        &t2,
        &crate::replication::owners::owners_to_note(Some(&t), &t2),
    )
    .unwrap();
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
