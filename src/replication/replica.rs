//! The replica side of the store: what this DC knows of clusters owned elsewhere. Applying a
//! batch is one transaction; each record is first checked against the ownership map by the
//! pure [`admit`] (its shard, its sender, its epoch), then goes through the pure [`step`], which
//! ignores anything not newer (by epoch, then sequence) than what the cluster's entry holds, so
//! a batch sent twice changes nothing and a stale owner can never roll a cluster back. The same
//! transaction keeps its views: each cluster's list item, its nodes, the intents still open, and
//! the terminated clusters by capture time (for retention).

use super::list_index;
use super::node_index::{self, nodes_of};
use super::owners::note;
use super::record::{Envelope, Finished, Intent, Record};
use super::retiring::{reindex, terminated_at};
use super::store::{LIST_INDEX, NODES, OPEN, OWNERS, REPLICA, RETIRING, ReplError, SUMMARY, Store};
use super::visibility::Caller;
use crate::ids::ClusterId;
use crate::routing::RoutingTable;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
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
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Applied {
    pub applied: usize,
    pub ignored: usize,
    /// Records refused by [`admit`] (not applied, counted and logged by reason).
    pub refused: usize,
    /// Each refused record: (reason, cluster, shard, epoch, seq), for the log and the metric.
    #[serde(skip)]
    pub refusals: Vec<(Refusal, String, u32, u64, u64)>,
    /// A record whose epoch is ahead of every map this router has seen for its shard:
    /// (shard, epoch, newest seen). Then nothing of the batch was applied, so the sender sends
    /// it again (once this router's map caught up) instead of losing it.
    #[serde(skip)]
    pub ahead: Option<(u32, u64, u64)>,
}

/// Why a replica refused a record (the `reason` of `coopr_router_replication_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The cluster id is not an id.
    BadCluster,
    /// The record's shard is not the shard of its cluster id (per this map's `shard_count`).
    WrongShard,
    /// The record's `origin` is not the DC that sent the batch.
    WrongOrigin,
    /// The sender did not own the shard at the record's epoch (as far as this router saw).
    NotOwner,
    /// The record's epoch is newer than any map this router has seen for the shard.
    EpochAhead,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BadCluster => "bad_cluster",
            Refusal::WrongShard => "wrong_shard",
            Refusal::WrongOrigin => "wrong_origin",
            Refusal::NotOwner => "not_owner",
            Refusal::EpochAhead => "epoch_ahead",
        }
    }
}

/// What this router has seen of one shard's ownership besides its current map: the newest
/// epoch in its ownership log (`OWNERS`), and who owned the shard at the record's epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub newest_logged: Option<u64>,
    pub owner_at_epoch: Option<String>,
}

/// Whether a replica may apply `env`, sent by DC `from`, under the map `table` (pure).
///
/// The acceptance rule, in order:
/// 1. the cluster id parses, and the record's `shard` is the shard of that id under this map's
///    `shard_count` (so `shard` is in range);
/// 2. the record's `origin` is `from` (an owner only sends the operations it opened);
/// 3. its epoch is not ahead of the newest epoch this router has seen for the shard (the
///    current map's, or a logged one): a newer epoch is one this router cannot check yet;
/// 4. `from` owned the shard at the record's epoch: at the current map's epoch, `from` is the
///    current owner; at an older epoch, `from` is the current owner or is logged as the owner at
///    exactly that epoch (an epoch names one ownership change, so that is who wrote at it).
///    Anything else is refused. In the static map every epoch is 0, so `from` must be the
///    shard's configured owner.
///
/// Why this cannot hide later real records: [`step`] orders by (epoch, sequence), and an
/// accepted record's epoch is one at which its sender really owned the shard (or the sender
/// owns it now). A record at an older epoch sorts below every record of the later epochs, so
/// only the owner of an epoch can order records within it. The sequence number is trusted only
/// from that owner: an absurd sequence from the real owner is still the owner's own record.
pub fn admit(
    env: &Envelope,
    from: &str,
    table: &RoutingTable,
    seen: &Seen,
) -> Result<ClusterId, Refusal> {
    let id = ClusterId::parse(env.record.cluster()).map_err(|_| Refusal::BadCluster)?;
    let shard = env.record.shard();
    if shard >= table.shard_count() || table.shard_of(id) != shard {
        return Err(Refusal::WrongShard);
    }
    let Some(entry) = table.shard(shard) else {
        return Err(Refusal::WrongShard);
    };
    if env.record.origin() != from {
        return Err(Refusal::WrongOrigin);
    }
    let epoch = env.record.epoch();
    let newest = seen.newest_logged.unwrap_or(0).max(entry.epoch);
    if epoch > newest {
        return Err(Refusal::EpochAhead);
    }
    let owner_now = table.dc_name(entry.owner) == from;
    let owner_then = seen.owner_at_epoch.as_deref() == Some(from);
    let owned = if epoch == entry.epoch {
        owner_now
    } else if epoch < entry.epoch {
        owner_now || owner_then
    } else {
        // Older than a logged epoch but newer than this map (the map went back): only who
        // was seen owning it then.
        owner_then
    };
    if owned {
        Ok(id)
    } else {
        Err(Refusal::NotOwner)
    }
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
    /// Applies a batch from DC `from` in one transaction: each record is admitted against
    /// `table` and the ownership log ([`admit`]), then applied if newer ([`step`]). A record
    /// whose epoch is ahead of this router's maps aborts the whole batch (`Applied::ahead`).
    pub fn apply(
        &self,
        from: &str,
        table: &RoutingTable,
        records: &[Envelope],
    ) -> Result<Applied, ReplError> {
        let tx = self.db()?.begin_write()?;
        let mut out = Applied::default();
        {
            let mut owners = tx.open_table(OWNERS)?;
            // The map this batch is judged by is one this router has seen: log it.
            let mut shards: Vec<u32> = records
                .iter()
                .map(|e| e.record.shard())
                .filter(|&s| s < table.shard_count())
                .collect();
            shards.sort_unstable();
            shards.dedup();
            note(&mut owners, table, shards)?;
            let mut t = tx.open_table(REPLICA)?;
            let mut summaries = tx.open_table(SUMMARY)?;
            let mut index = tx.open_table(LIST_INDEX)?;
            let mut nodes = tx.open_table(NODES)?;
            let mut open = tx.open_table(OPEN)?;
            let mut retiring = tx.open_table(RETIRING)?;
            for env in records {
                let shard = env.record.shard();
                let epoch = env.record.epoch();
                let seen = Seen {
                    newest_logged: owners
                        .range((shard, 0)..=(shard, u64::MAX))?
                        .next_back()
                        .transpose()?
                        .map(|(k, _)| k.value().1),
                    owner_at_epoch: owners.get((shard, epoch))?.map(|v| v.value().to_string()),
                };
                let id = match admit(env, from, table, &seen) {
                    Ok(id) => id,
                    Err(Refusal::EpochAhead) => {
                        let newest = seen
                            .newest_logged
                            .unwrap_or(0)
                            .max(table.shard(shard).map_or(0, |e| e.epoch));
                        out.ahead = Some((shard, epoch, newest));
                        out.refusals.push((
                            Refusal::EpochAhead,
                            env.record.cluster().to_string(),
                            shard,
                            epoch,
                            env.seq,
                        ));
                        out.refused += 1;
                        continue;
                    }
                    Err(r) => {
                        out.refusals.push((
                            r,
                            env.record.cluster().to_string(),
                            shard,
                            epoch,
                            env.seq,
                        ));
                        out.refused += 1;
                        continue;
                    }
                };
                let current: Option<ReplicaEntry> = match t.get(id.get())? {
                    Some(v) => Some(serde_json::from_slice(v.value())?),
                    None => None,
                };
                match step(current.as_ref(), env) {
                    Some(next) => {
                        t.insert(id.get(), serde_json::to_vec(&next)?.as_slice())?;
                        let old = nodes_of(current.as_ref().and_then(|c| c.state.as_ref()));
                        let new = nodes_of(next.state.as_ref());
                        node_index::update(&mut nodes, id.get(), &old, &new)?;
                        reindex(
                            &mut retiring,
                            id.get(),
                            terminated_at(current.as_ref().and_then(|c| c.state.as_ref())),
                            terminated_at(next.state.as_ref()),
                        )?;
                        if let Some(f) = &next.state {
                            let item = serde_json::to_vec(&ListItem::of(f))?;
                            list_index::put(&mut summaries, &mut index, id.get(), &item)?;
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
        if out.ahead.is_some() {
            // Nothing of this batch is applied: the sender sends it again.
            tx.abort()?;
            out.applied = 0;
            out.ignored = 0;
            return Ok(out);
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

    /// The cluster whose captured details list node `node`, by a scan of every replicated
    /// cluster: what `/v2/nodes/{id}` did before the node index (`Store::cluster_of_node`);
    /// kept as the index's test oracle and load/scale's peer.
    pub fn cluster_of_node_scan(&self, node: &str) -> Result<Option<ClusterId>, ReplError> {
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

    /// Every list item whose shard passes `keep` (a scan: the list merge reads
    /// `visible_summaries`, the index).
    pub fn summaries(&self, keep: impl Fn(u32) -> bool) -> Result<Vec<ListItem>, ReplError> {
        self.scan(SUMMARY, |e: &ListItem| e.shard, keep)
    }

    /// The list items `caller` may see whose shard passes `keep`: one range of the index, then
    /// each item by id (`O(k log n)` for `k` visible clusters of `n` replicated).
    pub fn visible_summaries(
        &self,
        caller: Caller<'_>,
        keep: impl Fn(u32) -> bool,
    ) -> Result<Vec<ListItem>, ReplError> {
        let Some(prefix) = list_index::range_of(caller) else {
            return Ok(Vec::new());
        };
        let tx = self.db()?.begin_read()?;
        let index = tx.open_table(LIST_INDEX)?;
        let summaries = tx.open_table(SUMMARY)?;
        let mut out = Vec::new();
        for row in index.range::<&[u8]>(prefix.as_slice()..)? {
            let (k, _) = row?;
            let k = k.value();
            if !k.starts_with(&prefix) {
                break;
            }
            let Some(id) = list_index::id_of(k) else {
                continue;
            };
            let Some(v) = summaries.get(id)? else {
                continue;
            };
            let item: ListItem = serde_json::from_slice(v.value())?;
            if keep(item.shard) {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// Intents with no finish yet whose shard passes `keep` (interrupted operations).
    pub fn open_intents(&self, keep: impl Fn(u32) -> bool) -> Result<Vec<Intent>, ReplError> {
        self.scan(OPEN, |i: &Intent| i.shard, keep)
    }

    /// Every value of `table` (JSON, by cluster id) whose shard passes `keep`.
    fn scan<T: serde::de::DeserializeOwned>(
        &self,
        table: TableDefinition<u64, &[u8]>,
        shard: impl Fn(&T) -> u32,
        keep: impl Fn(u32) -> bool,
    ) -> Result<Vec<T>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(table)?;
        let mut out = Vec::new();
        for row in t.iter()? {
            let (_, v) = row?;
            let value: T = serde_json::from_slice(v.value())?;
            if keep(shard(&value)) {
                out.push(value);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::fixtures::{self, table};
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
            shard: 4,
            epoch,
            action: "cluster_delete".into(),
            captured_ms: 2,
            details: json!({"status": status}),
            ..fixtures::finished(4, status)
        })
    }

    fn env(seq: u64, record: Record) -> Envelope {
        Envelope { seq, record }
    }

    fn rec(cluster: &str, shard: u32, epoch: u64, origin: &str) -> Envelope {
        let Record::Finished(mut f) = finished(1, epoch, "active") else {
            unreachable!()
        };
        f.cluster = cluster.into();
        f.shard = shard;
        f.origin = origin.into();
        env(1, Record::Finished(f))
    }

    #[test]
    fn admission_follows_the_ownership_map() {
        use Refusal::*;
        // Shard 1 (cluster 4, 7, ...) is dc2's at epoch 7; dc1 owned it at epoch 3.
        let t = table(3, &[0, 1, 2], &[7, 7, 7]);
        let logged = |e: u64, dc: &str| Seen {
            newest_logged: Some(7),
            owner_at_epoch: (e == 3).then(|| dc.to_string()),
        };
        type Case<'a> = (&'a str, u32, u64, &'a str, &'a str, Result<(), Refusal>);
        let cases: &[Case] = &[
            // (cluster, shard, epoch, origin, from, verdict)
            ("00000004", 1, 7, "dc2", "dc2", Ok(())),
            ("4", 1, 7, "dc2", "dc2", Ok(())),
            ("00000004", 1, 7, "dc1", "dc1", Err(NotOwner)),
            ("00000004", 1, 7, "dc3", "dc3", Err(NotOwner)),
            ("00000004", 1, 7, "dc9", "dc9", Err(NotOwner)),
            ("00000004", 0, 7, "dc2", "dc2", Err(WrongShard)),
            ("00000004", 2, 7, "dc2", "dc2", Err(WrongShard)),
            ("00000004", 4, 7, "dc2", "dc2", Err(WrongShard)),
            ("00000004", u32::MAX, 7, "dc2", "dc2", Err(WrongShard)),
            ("x", 1, 7, "dc2", "dc2", Err(BadCluster)),
            ("00000004", 1, 7, "dc1", "dc2", Err(WrongOrigin)),
            ("00000004", 1, 8, "dc2", "dc2", Err(EpochAhead)),
            ("00000004", 1, u64::MAX, "dc2", "dc2", Err(EpochAhead)),
            // Older epochs: the current owner, or the owner logged at exactly that epoch.
            ("00000004", 1, 3, "dc1", "dc1", Ok(())),
            ("00000004", 1, 2, "dc1", "dc1", Err(NotOwner)),
            ("00000004", 1, 3, "dc3", "dc3", Err(NotOwner)),
            ("00000004", 1, 0, "dc2", "dc2", Ok(())),
        ];
        for &(cluster, shard, epoch, origin, from, want) in cases {
            let seen = logged(epoch, "dc1");
            let got = admit(&rec(cluster, shard, epoch, origin), from, &t, &seen).map(|_| ());
            assert_eq!(
                got, want,
                "{cluster} shard {shard} epoch {epoch} {origin} from {from}"
            );
        }
        // The static map: every epoch 0, the configured owner only.
        let st = table(3, &[0, 1, 2], &[0, 0, 0]);
        let none = Seen::default();
        assert!(admit(&rec("4", 1, 0, "dc2"), "dc2", &st, &none).is_ok());
        assert_eq!(
            admit(&rec("4", 1, 0, "dc1"), "dc1", &st, &none),
            Err(NotOwner)
        );
        assert_eq!(
            admit(&rec("4", 1, 1, "dc2"), "dc2", &st, &none),
            Err(EpochAhead)
        );
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
#[path = "replica_store_tests.rs"]
mod store_tests;
