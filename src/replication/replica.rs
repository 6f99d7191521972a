//! The replica side of the store: what this DC knows of clusters owned elsewhere. Applying a
//! batch is one transaction; each record goes through the pure [`step`], which ignores anything
//! not newer (by epoch, then sequence) than what the cluster's entry holds, so a batch sent
//! twice changes nothing and a stale owner can never roll a cluster back. The same transaction
//! keeps two small views: each cluster's list item, and the intents still open.

use super::record::{Envelope, Finished, Intent, Record};
use super::store::{OPEN, REPLICA, ReplError, SUMMARY, Store};
use crate::ids::ClusterId;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

/// One cluster in the replica store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaEntry {
    /// The newest record applied: (epoch, sequence).
    pub order: (u64, u64),
    pub shard: u32,
    /// The last finished state (what reads are answered from).
    pub state: Option<Finished>,
    /// An operation whose intent arrived and whose finish has not (yet).
    pub open: Option<Intent>,
}

/// A replicated cluster as a list sees it: its summary and what visibility needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListItem {
    pub shard: u32,
    pub cluster: String,
    pub tenant: String,
    pub owner: String,
    pub status: String,
    /// A `ClusterSummary`, built from the captured details.
    pub summary: serde_json::Value,
}

impl ListItem {
    pub fn of(f: &Finished) -> ListItem {
        ListItem {
            shard: f.shard,
            cluster: f.cluster.clone(),
            tenant: f.tenant.clone(),
            owner: f.owner.clone(),
            status: f
                .details
                .get("status")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_string(),
            summary: super::record::summary(&f.details),
        }
    }
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Applied {
    pub applied: usize,
    pub ignored: usize,
}

/// The entry after `env`, or `None` when the record is not newer than the entry (ignored).
pub fn step(entry: Option<&ReplicaEntry>, env: &Envelope) -> Option<ReplicaEntry> {
    if entry.is_some_and(|e| env.order() <= e.order) {
        return None;
    }
    let mut next = entry.cloned().unwrap_or(ReplicaEntry {
        order: (0, 0),
        shard: env.record.shard(),
        state: None,
        open: None,
    });
    next.order = env.order();
    next.shard = env.record.shard();
    match &env.record {
        Record::Intent(i) => next.open = Some(i.clone()),
        Record::Finished(f) => {
            // The finish of the open operation (or of a later one) closes it.
            if next
                .open
                .as_ref()
                .is_some_and(|o| o.origin != f.origin || o.op <= f.op)
            {
                next.open = None;
            }
            next.state = Some(f.clone());
        }
    }
    Some(next)
}

impl Store {
    /// Applies a batch in one transaction. A record naming an invalid cluster id is ignored.
    pub fn apply(&self, records: &[Envelope]) -> Result<Applied, ReplError> {
        let tx = self.db()?.begin_write()?;
        let mut out = Applied::default();
        {
            let mut t = tx.open_table(REPLICA)?;
            let mut summaries = tx.open_table(SUMMARY)?;
            let mut open = tx.open_table(OPEN)?;
            for env in records {
                let Ok(id) = ClusterId::parse(env.record.cluster()) else {
                    out.ignored += 1;
                    continue;
                };
                let current: Option<ReplicaEntry> = match t.get(id.get())? {
                    Some(v) => Some(serde_json::from_slice(v.value())?),
                    None => None,
                };
                match step(current.as_ref(), env) {
                    Some(next) => {
                        t.insert(id.get(), serde_json::to_vec(&next)?.as_slice())?;
                        if let Some(f) = &next.state {
                            let item = serde_json::to_vec(&ListItem::of(f))?;
                            summaries.insert(id.get(), item.as_slice())?;
                        }
                        match &next.open {
                            Some(i) => {
                                open.insert(id.get(), serde_json::to_vec(i)?.as_slice())?;
                            }
                            None => {
                                open.remove(id.get())?;
                            }
                        }
                        out.applied += 1;
                    }
                    None => out.ignored += 1,
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// The replica entry of one cluster.
    pub fn replica(&self, id: ClusterId) -> Result<Option<ReplicaEntry>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(REPLICA)?;
        Ok(match t.get(id.get())? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    /// The cluster whose captured details list node `node` (a scan of the replica table:
    /// node requests are rare next to cluster requests).
    pub fn cluster_of_node(&self, node: &str) -> Result<Option<ClusterId>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(REPLICA)?;
        for row in t.iter()? {
            let (k, v) = row?;
            let Ok(e) = serde_json::from_slice::<ReplicaEntry>(v.value()) else {
                continue;
            };
            let listed = e
                .state
                .as_ref()
                .and_then(|f| f.details.get("nodes"))
                .and_then(serde_json::Value::as_array)
                .is_some_and(|nodes| {
                    nodes
                        .iter()
                        .any(|n| n.get("id").and_then(|i| i.as_str()) == Some(node))
                });
            if listed {
                return Ok(ClusterId::new(k.value()));
            }
        }
        Ok(None)
    }

    /// The list items of replicated clusters whose shard passes `keep` (the list merge).
    pub fn summaries(&self, keep: impl Fn(u32) -> bool) -> Result<Vec<ListItem>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(SUMMARY)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            let e: ListItem = serde_json::from_slice(v.value())?;
            if keep(e.shard) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Intents with no finish yet whose shard passes `keep` (interrupted operations).
    pub fn open_intents(&self, keep: impl Fn(u32) -> bool) -> Result<Vec<Intent>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(OPEN)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            let i: Intent = serde_json::from_slice(v.value())?;
            if keep(i.shard) {
                out.push(i);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::record::Outcome;
    use serde_json::json;

    fn intent(op: u64, epoch: u64) -> Record {
        Record::Intent(Intent {
            op,
            origin: "dc1".into(),
            cluster: "00000004".into(),
            shard: 4,
            epoch,
            tenant: "t".into(),
            user: "u".into(),
            method: "DELETE".into(),
            path: "/v2/clusters/4".into(),
            action: "cluster_delete".into(),
            time_ms: 1,
            body: None,
            body_note: None,
        })
    }

    fn finished(op: u64, epoch: u64, status: &str) -> Record {
        Record::Finished(Finished {
            op,
            origin: "dc1".into(),
            cluster: "00000004".into(),
            shard: 4,
            epoch,
            tenant: "t".into(),
            owner: "u".into(),
            action: "cluster_delete".into(),
            outcome: Outcome::Success,
            captured_ms: 2,
            details: json!({"status": status}),
            status: json!({"status": status}),
            config: json!({}),
            services: json!([]),
            plan: None,
        })
    }

    fn env(seq: u64, record: Record) -> Envelope {
        Envelope { seq, record }
    }

    #[test]
    fn newer_records_apply_and_older_or_equal_ones_are_ignored() {
        let a = step(None, &env(1, finished(1, 0, "active"))).unwrap();
        assert_eq!(a.order, (0, 1));
        // The same record again: ignored (idempotent).
        assert!(step(Some(&a), &env(1, finished(1, 0, "active"))).is_none());
        // An intent opens; the previous finished state stays readable.
        let b = step(Some(&a), &env(2, intent(2, 0))).unwrap();
        assert_eq!(b.open.as_ref().map(|i| i.op), Some(2));
        assert_eq!(b.state, a.state);
        // Its finish closes it.
        let c = step(Some(&b), &env(3, finished(2, 0, "terminated"))).unwrap();
        assert!(c.open.is_none());
        assert_eq!(c.state.as_ref().unwrap().details["status"], "terminated");
        // A stale owner (older epoch, any sequence) cannot roll it back.
        let d = step(Some(&c), &env(99, finished(3, 0, "active")));
        assert!(d.is_some(), "same epoch, higher seq applies");
        let newer_epoch = step(Some(&c), &env(1, finished(1, 5, "active"))).unwrap();
        assert_eq!(newer_epoch.order, (5, 1));
        assert!(step(Some(&newer_epoch), &env(1000, finished(9, 4, "terminated"))).is_none());
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::replication::record::Outcome;
    use serde_json::json;

    #[test]
    fn apply_keeps_the_list_and_open_views_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("r.redb")).unwrap();
        let intent = Intent {
            op: 5,
            origin: "dc1".into(),
            cluster: "00000001".into(),
            shard: 1,
            epoch: 0,
            tenant: "t".into(),
            user: "u".into(),
            method: "POST".into(),
            path: "/v2/clusters".into(),
            action: "cluster_create".into(),
            time_ms: 0,
            body: None,
            body_note: None,
        };
        let finished = Finished {
            op: 5,
            origin: "dc1".into(),
            cluster: "00000001".into(),
            shard: 1,
            epoch: 0,
            tenant: "t".into(),
            owner: "u".into(),
            action: "cluster_create".into(),
            outcome: Outcome::Success,
            captured_ms: 1,
            details: json!({"id": "00000001", "status": "active", "name": "n"}),
            status: json!({"status": "active"}),
            config: json!({}),
            services: json!([]),
            plan: None,
        };
        let batch = [Envelope {
            seq: 1,
            record: Record::Intent(intent.clone()),
        }];
        assert_eq!(s.apply(&batch).unwrap().applied, 1);
        assert_eq!(s.open_intents(|_| true).unwrap(), [intent]);
        assert!(s.summaries(|_| true).unwrap().is_empty());
        // Sent again: ignored.
        assert_eq!(
            s.apply(&batch).unwrap(),
            Applied {
                applied: 0,
                ignored: 1
            }
        );
        let done = [Envelope {
            seq: 2,
            record: Record::Finished(finished),
        }];
        assert_eq!(s.apply(&done).unwrap().applied, 1);
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
}
