//! The owner side of the store: open operations and the durable outbox. Opening an intent and
//! queueing it for every replica DC is one transaction, as is finishing an operation and queueing
//! its state: a record is on disk before anything sends it, and an operation is either open or
//! finished-and-queued, never lost between the two. Each peer's queue is ordered by one key
//! that only grows, so records reach a peer in the order they were made (per shard too).
//! A peer's queue is capped: at the cap a new record for it is dropped, logged and counted, and
//! the peer is owed the full state in the same commit (`sent.rs`).

use super::record::{Envelope, Finished, Intent, Record};
use super::sent::{next_seq, note_last, owe};
use super::store::{META, OPS, OUTBOX, ReplError, Store, bump, counter};
use redb::{ReadableDatabase, ReadableTable};

/// Records queued for one peer, with their outbox keys, oldest first.
pub struct Pending {
    pub keys: Vec<u64>,
    /// Each record's JSON (an `Envelope`), ready to be put in a batch as is.
    pub records: Vec<Vec<u8>>,
}

impl Store {
    /// Opens an operation: numbers it, records it as open, and queues it for `peers`. Returns
    /// the numbered intent and the peers whose queue was full (the record was dropped for them).
    pub fn open_intent(
        &self,
        mut intent: Intent,
        peers: &[String],
        cap: u64,
    ) -> Result<(Intent, Vec<String>), ReplError> {
        let tx = self.db()?.begin_write()?;
        let dropped;
        {
            let mut meta = tx.open_table(META)?;
            intent.op = bump(&mut meta, "op", 1)? + 1;
            let seq = next_seq(&mut meta, intent.shard)?;
            let mut ops = tx.open_table(OPS)?;
            ops.insert(intent.op, serde_json::to_vec(&intent)?.as_slice())?;
            let env = Envelope {
                seq,
                record: Record::Intent(intent.clone()),
            };
            dropped = enqueue(&tx, &mut meta, peers, &env, cap)?;
        }
        tx.commit()?;
        Ok((intent, dropped))
    }

    /// Finishes operation `f.op`: no longer open, its state queued for `peers` and recorded as
    /// the cluster's last state (`sent.rs`), in one commit. Returns the peers whose queue was full.
    pub fn finish(
        &self,
        f: Finished,
        peers: &[String],
        cap: u64,
    ) -> Result<Vec<String>, ReplError> {
        let tx = self.db()?.begin_write()?;
        let dropped;
        {
            let mut meta = tx.open_table(META)?;
            let seq = next_seq(&mut meta, f.shard)?;
            tx.open_table(OPS)?.remove(f.op)?;
            note_last(&tx, &f)?;
            let env = Envelope {
                seq,
                record: Record::Finished(f),
            };
            dropped = enqueue(&tx, &mut meta, peers, &env, cap)?;
        }
        tx.commit()?;
        Ok(dropped)
    }

    /// The operations still open (survive a restart: the tracker resumes them).
    pub fn open_ops(&self) -> Result<Vec<Intent>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let ops = tx.open_table(OPS)?;
        let mut out = Vec::new();
        for row in ops.iter()? {
            let (_, v) = row?;
            out.push(serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// Up to `max` records queued for `peer`, oldest first.
    pub fn peek(&self, peer: &str, max: usize) -> Result<Pending, ReplError> {
        let tx = self.db()?.begin_read()?;
        let outbox = tx.open_table(OUTBOX)?;
        let mut p = Pending {
            keys: Vec::new(),
            records: Vec::new(),
        };
        for row in outbox.range((peer, 0u64)..=(peer, u64::MAX))?.take(max) {
            let (k, v) = row?;
            p.keys.push(k.value().1);
            p.records.push(v.value().to_vec());
        }
        Ok(p)
    }

    /// Removes records a peer acknowledged.
    pub fn ack(&self, peer: &str, keys: &[u64]) -> Result<(), ReplError> {
        let tx = self.db()?.begin_write()?;
        {
            let mut outbox = tx.open_table(OUTBOX)?;
            let mut removed = 0i64;
            for &k in keys {
                if outbox.remove((peer, k))?.is_some() {
                    removed += 1;
                }
            }
            let mut meta = tx.open_table(META)?;
            bump(&mut meta, &format!("count/{peer}"), -removed)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The newest and the oldest key queued for `peer` (a planned handoff waits until the
    /// oldest is past what was the newest when it started: everything queued then was acked).
    pub fn queue_ends(&self, peer: &str) -> Result<Option<(u64, u64)>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let outbox = tx.open_table(OUTBOX)?;
        let mut range = outbox.range((peer, 0u64)..=(peer, u64::MAX))?;
        let oldest = match range.next() {
            Some(row) => row?.0.value().1,
            None => return Ok(None),
        };
        let newest = match range.next_back() {
            Some(row) => row?.0.value().1,
            None => oldest,
        };
        Ok(Some((oldest, newest)))
    }

    /// How many records are queued for `peer`.
    pub fn queued(&self, peer: &str) -> Result<u64, ReplError> {
        let tx = self.db()?.begin_read()?;
        counter(&tx.open_table(META)?, &format!("count/{peer}"))
    }
}

/// Queues one envelope for every peer whose queue has room; returns the peers it was dropped for,
/// which are then owed the full state (`sent.rs`: the next sweep sends it once they have room).
pub(super) fn enqueue(
    tx: &redb::WriteTransaction,
    meta: &mut redb::Table<&str, u64>,
    peers: &[String],
    env: &Envelope,
    cap: u64,
) -> Result<Vec<String>, ReplError> {
    let bytes = serde_json::to_vec(env)?;
    let dropped = enqueue_bytes(tx, meta, peers, &bytes, cap)?;
    owe(meta, &dropped)?;
    Ok(dropped)
}

/// Queues one record's bytes in each of `queues` that has room, under the one growing outbox
/// key; returns the queues it was dropped for. Replication queues are named by peer DC, catalog
/// deliveries by `catalog/{dc}` (`catalog.rs`).
pub(super) fn enqueue_bytes(
    tx: &redb::WriteTransaction,
    meta: &mut redb::Table<&str, u64>,
    peers: &[String],
    bytes: &[u8],
    cap: u64,
) -> Result<Vec<String>, ReplError> {
    let mut outbox = tx.open_table(OUTBOX)?;
    let mut dropped = Vec::new();
    for peer in peers {
        let count_key = format!("count/{peer}");
        if counter(meta, &count_key)? >= cap {
            dropped.push(peer.clone());
            continue;
        }
        let key = bump(meta, "outbox", 1)? + 1;
        outbox.insert((peer.as_str(), key), bytes)?;
        bump(meta, &count_key, 1)?;
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(cluster: u64, shard: u32) -> Intent {
        Intent {
            op: 0,
            origin: "dc1".into(),
            cluster: format!("{cluster:08}"),
            shard,
            epoch: 0,
            tenant: "t".into(),
            user: "u".into(),
            method: "DELETE".into(),
            path: format!("/v2/clusters/{cluster}"),
            action: "cluster_delete".into(),
            time_ms: 0,
            body: None,
            body_note: None,
        }
    }

    #[test]
    fn queues_keep_order_survive_reopen_and_drop_at_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let peers = vec!["dc2".to_string(), "dc3".to_string()];
        {
            let s = Store::open(&path).unwrap();
            for c in [1, 13, 4] {
                let (i, dropped) = s
                    .open_intent(intent(c, (c % 12) as u32), &peers, 4)
                    .unwrap();
                assert!(dropped.is_empty());
                assert!(i.op > 0);
            }
            assert_eq!(s.queued("dc2").unwrap(), 3);
            assert_eq!(s.open_ops().unwrap().len(), 3);
        }
        // Reopened (as after a restart): everything is still there, in order.
        let s = Store::open(&path).unwrap();
        let p = s.peek("dc2", 10).unwrap();
        let recs: Vec<Envelope> = p
            .records
            .iter()
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect();
        // A new store numbers from its base (`sent::seq_base`), per shard.
        let base = recs[0].seq - 1;
        assert!(base > 0, "a new store's numbers start above 0");
        let seen: Vec<(String, u64)> = recs
            .iter()
            .map(|e| (e.record.cluster().to_string(), e.seq - base))
            .collect();
        assert_eq!(
            seen,
            [
                ("00000001".to_string(), 1),
                ("00000013".to_string(), 2),
                ("00000004".to_string(), 1)
            ],
            "queue order; sequence per shard"
        );
        s.ack("dc2", &p.keys[..2]).unwrap();
        assert_eq!(s.queued("dc2").unwrap(), 1);
        assert_eq!(s.peek("dc2", 10).unwrap().keys, &p.keys[2..]);
        assert_eq!(
            s.queued("dc3").unwrap(),
            3,
            "one peer's ack leaves the other's queue"
        );
        // dc3 has 3 of 4: the next record fits, the one after is dropped for dc3 only.
        assert!(s.open_intent(intent(7, 7), &peers, 4).unwrap().1.is_empty());
        let (_, dropped) = s.open_intent(intent(10, 10), &peers, 4).unwrap();
        assert_eq!(dropped, ["dc3"]);
        assert_eq!((s.queued("dc2").unwrap(), s.queued("dc3").unwrap()), (3, 4));
    }

    #[test]
    fn queue_ends_track_what_a_peer_has_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let peers = ["dc2".to_string()];
        assert_eq!(store.queue_ends("dc2").unwrap(), None);
        for c in [1, 2, 3] {
            store.open_intent(intent(c, c as u32), &peers, 100).unwrap();
        }
        let (oldest, newest) = store.queue_ends("dc2").unwrap().unwrap();
        assert!(oldest < newest);
        assert_eq!(
            store.queue_ends("dc3").unwrap(),
            None,
            "another peer's queue"
        );
        // Acknowledge the oldest: the oldest end moves, the newest stays.
        store.ack("dc2", &[oldest]).unwrap();
        let (o2, n2) = store.queue_ends("dc2").unwrap().unwrap();
        assert!(o2 > oldest && n2 == newest);
        let rest = store.peek("dc2", 10).unwrap().keys;
        store.ack("dc2", &rest).unwrap();
        assert_eq!(store.queue_ends("dc2").unwrap(), None);
    }
}
