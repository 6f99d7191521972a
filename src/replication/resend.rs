//! States queued again, outside an operation: what the anti-entropy sweep captured
//! (`sweeper.rs`), and the full state owed to a peer (the last state of every cluster of the
//! shards this DC owns for it, as its queue has room: in parts, from where the last stopped).
//! Each gets a new sequence number, so a replica applies it over anything older from this
//! store; a swept state is queued only if nothing newer was queued for its cluster since the
//! sweep compared it, so a sweep never sends a replica back.

use super::outbox::enqueue;
use super::record::{Envelope, Finished, Intent, Record};
use super::sent::{next_seq, note_last};
use super::store::{LAST, MARKS, META, OPS, ReplError, Store, counter};
use super::sweep::Mark;
use redb::ReadableTable;

impl Store {
    /// Queues a state the sweep captured for `peers` and records it as the last one, in one
    /// commit, unless the cluster moved on since the sweep compared it: its last queued state's
    /// mark is no longer `compared` (`None`: there was none), or an operation is open on it
    /// (its tracker will queue a newer state). Returns `None` when skipped, else the peers whose
    /// queue was full (they are owed the full state).
    pub fn queue_swept(
        &self,
        f: Finished,
        compared: Option<&Mark>,
        peers: &[String],
        cap: u64,
    ) -> Result<Option<Vec<String>>, ReplError> {
        let tx = self.db()?.begin_write()?;
        let dropped;
        {
            let id = f.cluster.parse::<u64>().unwrap_or(u64::MAX);
            let now: Option<Mark> = match tx.open_table(MARKS)?.get(id)? {
                Some(v) => Some(serde_json::from_slice(v.value())?),
                None => None,
            };
            let mut open = false;
            for row in tx.open_table(OPS)?.iter()? {
                let i: Intent = serde_json::from_slice(row?.1.value())?;
                open |= i.cluster == f.cluster;
            }
            if now.as_ref() != compared || open {
                drop(tx);
                return Ok(None);
            }
            let mut meta = tx.open_table(META)?;
            let seq = next_seq(&mut meta, f.shard)?;
            note_last(&tx, &f)?;
            let env = Envelope {
                seq,
                record: Record::Finished(f),
            };
            dropped = enqueue(&tx, &mut meta, peers, &env, cap)?;
        }
        tx.commit()?;
        Ok(Some(dropped))
    }

    /// Pays part of what `peer` is owed: queues for it alone, each with a new sequence number
    /// and as many as its queue has room for, the last state of the clusters whose shard `mine`
    /// accepts, in cluster order from where the last payment stopped; in one commit with the
    /// place it stopped (`resync/{peer}` = 1 + the next cluster id), or the debt cleared once
    /// the last cluster is queued. `None` when the queue had no room (nothing queued), else
    /// how many were queued and whether the debt is paid.
    pub fn resync(
        &self,
        peer: &str,
        mine: &dyn Fn(u32) -> bool,
        cap: u64,
    ) -> Result<Option<(u64, bool)>, ReplError> {
        let tx = self.db()?.begin_write()?;
        let key = format!("resync/{peer}");
        let mut n = 0;
        let paid;
        {
            let mut meta = tx.open_table(META)?;
            let from = counter(&meta, &key)?.saturating_sub(1);
            let room = cap.saturating_sub(counter(&meta, &format!("count/{peer}"))?);
            if room == 0 {
                drop(meta);
                tx.abort()?;
                return Ok(None);
            }
            let mut next = None;
            let mut states = Vec::new();
            {
                let last = tx.open_table(LAST)?;
                for row in last.range(from..)? {
                    let (k, v) = row?;
                    let f: Finished = serde_json::from_slice(v.value())?;
                    if !mine(f.shard) {
                        continue;
                    }
                    if states.len() as u64 == room {
                        next = Some(k.value());
                        break;
                    }
                    states.push(f);
                }
            }
            let to = [peer.to_string()];
            for f in states {
                let env = Envelope {
                    seq: next_seq(&mut meta, f.shard)?,
                    record: Record::Finished(f),
                };
                enqueue(&tx, &mut meta, &to, &env, cap)?;
                n += 1;
            }
            match next {
                Some(id) => {
                    meta.insert(key.as_str(), id.saturating_add(1))?;
                }
                None => {
                    meta.remove(key.as_str())?;
                }
            }
            paid = next.is_none();
        }
        tx.commit()?;
        Ok(Some((n, paid)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::fixtures::{finished, intent};

    fn fin(cluster: u64, status: &str) -> Finished {
        Finished {
            op: 0,
            shard: (cluster % 12) as u32,
            action: "sweep".into(),
            ..finished(cluster, status)
        }
    }

    fn seqs(s: &Store, peer: &str) -> Vec<(String, u64)> {
        s.peek(peer, 100)
            .unwrap()
            .records
            .iter()
            .map(|r| serde_json::from_slice::<Envelope>(r).unwrap())
            .map(|e| (e.record.cluster().to_string(), e.seq))
            .collect()
    }

    #[test]
    fn a_dropped_record_makes_the_peer_owed_and_the_debt_is_paid_when_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("o.redb")).unwrap();
        assert!(s.fresh());
        let peers = ["dc2".to_string(), "dc3".to_string()];
        assert!(
            s.queue_swept(fin(1, "active"), None, &peers, 2)
                .unwrap()
                .unwrap()
                .is_empty()
        );
        assert!(
            s.queue_swept(fin(2, "active"), None, &peers, 2)
                .unwrap()
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.owed().unwrap(), Vec::<String>::new());
        // dc2 and dc3 are full: the third is dropped, and both are owed the full state.
        assert_eq!(
            s.queue_swept(fin(3, "terminated"), None, &peers, 2)
                .unwrap()
                .unwrap(),
            peers
        );
        assert_eq!(s.owed().unwrap(), peers);
        assert_eq!(
            s.marks().unwrap().len(),
            3,
            "the last state is kept even when dropped"
        );
        // No room yet: nothing queued, still owed.
        assert_eq!(s.resync("dc2", &|_| true, 2).unwrap(), None);
        assert_eq!(s.owed().unwrap(), peers);
        // dc2 acknowledged its queue: shards 1 and 3 (not 2) go to dc2 alone, one at a time
        // with room for one, from where the last part stopped.
        let ack = |s: &Store| {
            let keys = s.peek("dc2", 10).unwrap().keys;
            s.ack("dc2", &keys).unwrap();
        };
        let original = seqs(&s, "dc2");
        ack(&s);
        let mine = |shard: u32| shard != 2;
        assert_eq!(s.resync("dc2", &mine, 1).unwrap(), Some((1, false)));
        assert_eq!(s.owed().unwrap(), peers, "still owed the rest");
        assert_eq!(s.resync("dc2", &mine, 1).unwrap(), None, "no room");
        let first = seqs(&s, "dc2");
        ack(&s);
        assert_eq!(s.resync("dc2", &mine, 1).unwrap(), Some((1, true)));
        assert_eq!(s.owed().unwrap(), ["dc3"]);
        let second = seqs(&s, "dc2");
        let clusters: Vec<&str> = first
            .iter()
            .chain(&second)
            .map(|(c, _)| c.as_str())
            .collect();
        assert_eq!(clusters, ["00000001", "00000003"]);
        assert_eq!(original[0].0, "00000001");
        assert!(first[0].1 > original[0].1, "a new sequence number");
        // Owed again (another drop): from the start.
        assert_eq!(
            s.queue_swept(fin(4, "active"), None, &peers, 0)
                .unwrap()
                .unwrap(),
            peers
        );
        ack(&s);
        assert_eq!(s.resync("dc2", &mine, 10).unwrap(), Some((3, true)));
        assert_eq!(s.queued("dc3").unwrap(), 2, "dc3's queue untouched");
    }

    #[test]
    fn a_swept_state_is_skipped_when_the_cluster_moved_on_since_the_comparison() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("o.redb")).unwrap();
        let peers = ["dc2".to_string()];
        let compared = s.marks().unwrap().get(&1).cloned();
        assert_eq!(compared, None);
        // The tracker queued a newer state after the sweep compared (none then): skipped.
        s.queue_swept(fin(1, "active"), None, &peers, 100)
            .unwrap()
            .unwrap();
        assert_eq!(
            s.queue_swept(fin(1, "terminated"), None, &peers, 100)
                .unwrap(),
            None
        );
        // Compared against the state now last: queued.
        let now = s.marks().unwrap().get(&1).cloned();
        assert!(
            s.queue_swept(fin(1, "terminated"), now.as_ref(), &peers, 100)
                .unwrap()
                .is_some()
        );
        // An operation opened on it since: its tracker queues the newer state; skipped.
        let now = s.marks().unwrap().get(&1).cloned();
        let intent = intent(1);
        s.open_intent(intent, &peers, 100).unwrap();
        assert_eq!(
            s.queue_swept(fin(1, "active"), now.as_ref(), &peers, 100)
                .unwrap(),
            None
        );
        assert_eq!(
            s.queued("dc2").unwrap(),
            3,
            "two swept states and the intent"
        );
    }

    #[test]
    fn a_new_store_numbers_above_the_store_it_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.redb");
        let intent = intent(1);
        let peers = ["dc2".to_string()];
        let old_max = {
            let s = Store::open(&path).unwrap();
            for _ in 0..50 {
                s.open_intent(intent.clone(), &peers, 1000).unwrap();
            }
            seqs(&s, "dc2").iter().map(|x| x.1).max().unwrap()
        };
        // Reopened: not new, numbers go on.
        {
            let s = Store::open(&path).unwrap();
            assert!(!s.fresh());
            // Cluster 13: shard 1 too, with no operation open on it.
            s.queue_swept(fin(13, "active"), None, &peers, 1000)
                .unwrap()
                .unwrap();
            assert_eq!(seqs(&s, "dc2").last().unwrap().1, old_max + 1);
        }
        // The new store is made in a later millisecond than the old one.
        let t = crate::replication::store::now_ms();
        while crate::replication::store::now_ms() <= t {
            std::thread::yield_now();
        }
        std::fs::remove_file(&path).unwrap();
        let s = Store::open(&path).unwrap();
        assert!(s.fresh());
        s.queue_swept(fin(1, "active"), None, &peers, 1000)
            .unwrap()
            .unwrap();
        assert!(
            seqs(&s, "dc2")[0].1 > old_max + 1,
            "a wiped store numbers above the old one"
        );
    }
}
