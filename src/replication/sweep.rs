//! Pure: what the anti-entropy sweep replicates. The owner lists its Coopr's clusters (Coopr's
//! `GET /v2/clusters`, a `ClusterSummary` per cluster) and compares each with the [`Mark`] of
//! the state it last queued for that cluster (`sent.rs`); every settled cluster whose mark
//! differs, or that it never queued, is captured and replicated again. A cluster still
//! `pending`, or with an operation this router follows, is left to that operation's tracker (or
//! to a later sweep, once it settled). Applying the differences makes the comparison empty
//! (property-tested): a sweep never chases its own tail.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What a list item shows of a cluster that a change to it moves: its status, lease, size,
/// services and latest job's progress (`ClusterSummary` in
/// `coopr-server/.../cluster/ClusterSummary.java`; `ClusterJobProgress` is the latest job's
/// action, status and steps, so a new job shows even when it ends in the same status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub status: String,
    pub expire_time: u64,
    pub num_nodes: u64,
    /// Sorted.
    pub services: Vec<String>,
    pub progress: Value,
}

impl Mark {
    /// The mark of a list item (a `ClusterSummary`).
    pub fn of_summary(v: &Value) -> Mark {
        let mut services: Vec<String> = v
            .get("services")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        services.sort();
        services.dedup();
        Mark {
            status: v
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            expire_time: v.get("expireTime").and_then(Value::as_u64).unwrap_or(0),
            num_nodes: v.get("numNodes").and_then(Value::as_u64).unwrap_or(0),
            services,
            progress: v.get("progress").cloned().unwrap_or(Value::Null),
        }
    }

    /// The mark of captured details (`GET /v2/clusters/{id}`), through the list item a replica
    /// builds from them.
    pub fn of_details(details: &Value) -> Mark {
        Mark::of_summary(&super::record::summary(details))
    }
}

/// One cluster as the owner's Coopr lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub id: u64,
    pub shard: u32,
    /// The tenant (name) whose list showed it: the capture reads as that tenant's admin.
    pub tenant: String,
    pub mark: Mark,
}

/// Why a cluster is replicated again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Why {
    /// This store never queued a state of it: made or changed without the router before this
    /// store knew it, or the store is new (wiped).
    Unknown,
    /// Its mark moved since the last state queued: changed without the router (Coopr's lease
    /// janitor, a standby server, a write straight to Coopr).
    Changed,
}

impl Why {
    /// The `kind` label of `coopr_router_replication_sweep_differences_total`.
    pub fn label(self) -> &'static str {
        match self {
            Why::Unknown => "unknown",
            Why::Changed => "changed",
        }
    }
}

/// A cluster the sweep replicates.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub id: u64,
    pub shard: u32,
    pub tenant: String,
    pub why: Why,
}

/// The clusters of `listed` to capture and replicate: settled (not `pending`), not followed by
/// an open operation (`open`), and whose mark is not the one last queued (`sent`). Each id once
/// (the first listing wins), in id order.
pub fn differences(
    listed: &[Listed],
    sent: &BTreeMap<u64, Mark>,
    open: &BTreeSet<u64>,
) -> Vec<Difference> {
    let mut seen = BTreeSet::new();
    let mut out: Vec<Difference> = listed
        .iter()
        .filter(|l| seen.insert(l.id))
        .filter(|l| l.mark.status != "pending" && !l.mark.status.is_empty())
        .filter(|l| !open.contains(&l.id))
        .filter_map(|l| {
            let why = match sent.get(&l.id) {
                None => Why::Unknown,
                Some(m) if *m != l.mark => Why::Changed,
                Some(_) => return None,
            };
            Some(Difference {
                id: l.id,
                shard: l.shard,
                tenant: l.tenant.clone(),
                why,
            })
        })
        .collect();
    out.sort_by_key(|d| d.id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn mark(status: &str, expire: u64) -> Mark {
        Mark {
            status: status.into(),
            expire_time: expire,
            num_nodes: 2,
            services: vec!["base".into()],
            progress: json!({"action": "CLUSTER_CREATE", "actionstatus": "COMPLETE"}),
        }
    }

    fn listed(id: u64, m: Mark) -> Listed {
        Listed {
            id,
            shard: (id % 12) as u32,
            tenant: "t".into(),
            mark: m,
        }
    }

    #[test]
    fn differences_table() {
        let active = mark("active", 100);
        let sent: BTreeMap<u64, Mark> = [
            (1, active.clone()),
            (2, active.clone()),
            (3, active.clone()),
            (5, active.clone()),
        ]
        .into();
        let open: BTreeSet<u64> = [5, 6].into();
        // (listed mark, want)
        let rows: Vec<(u64, Mark, Option<Why>)> = vec![
            // unchanged
            (1, active.clone(), None),
            // expired by Coopr's janitor: terminated now
            (2, mark("terminated", 100), Some(Why::Changed)),
            // lease extended straight on Coopr
            (3, mark("active", 200), Some(Why::Changed)),
            // never queued (wiped store, or made before this store knew it)
            (4, active.clone(), Some(Why::Unknown)),
            // an operation this router follows: its tracker replicates it
            (5, mark("terminated", 100), None),
            (6, active.clone(), None),
            // settling: a later sweep
            (7, mark("pending", 100), None),
            (8, mark("", 100), None),
        ];
        let l: Vec<Listed> = rows
            .iter()
            .map(|(id, m, _)| listed(*id, m.clone()))
            .collect();
        let got: BTreeMap<u64, Why> = differences(&l, &sent, &open)
            .into_iter()
            .map(|d| (d.id, d.why))
            .collect();
        let want: BTreeMap<u64, Why> = rows
            .iter()
            .filter_map(|(id, _, w)| w.map(|w| (*id, w)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_list_item_and_the_details_it_summarises_have_one_mark() {
        let details = json!({
            "id": "00000042", "name": "c", "status": "active", "expireTime": 7,
            "account": {"userId": "u", "tenantId": "t1"},
            "nodes": [{"id": "n1"}, {"id": "n2"}],
            "services": ["zookeeper", "base"],
            "progress": {"action": "CLUSTER_CREATE", "actionstatus": "COMPLETE", "stepstotal": 4, "stepscompleted": 4},
            "provider": {"name": "p", "provisioner": {"api_password": "x"}},
        });
        let item = json!({
            "id": "00000042", "name": "c", "ownerId": "u", "status": "active", "expireTime": 7,
            "numNodes": 2, "services": ["base", "zookeeper"],
            "progress": {"action": "CLUSTER_CREATE", "actionstatus": "COMPLETE", "stepstotal": 4, "stepscompleted": 4},
            "provider": {"name": "p"},
        });
        assert_eq!(Mark::of_details(&details), Mark::of_summary(&item));
        let mut later = item.clone();
        later["progress"]["action"] = json!("CLUSTER_DELETE");
        assert_ne!(Mark::of_details(&details), Mark::of_summary(&later));
    }

    fn any_mark() -> impl Strategy<Value = Mark> {
        (
            prop_oneof![
                Just("active"),
                Just("terminated"),
                Just("pending"),
                Just("incomplete")
            ],
            0u64..3,
        )
            .prop_map(|(s, e)| mark(s, e))
    }

    proptest! {
        /// Only listed, settled, unfollowed clusters come back, exactly those whose mark moved;
        /// once their marks are recorded as sent, nothing is left to do.
        #[test]
        fn differences_are_exactly_the_moved_marks_and_converge(
            listed_marks in proptest::collection::btree_map(0u64..40, any_mark(), 0..30),
            sent_marks in proptest::collection::btree_map(0u64..40, any_mark(), 0..30),
            open in proptest::collection::btree_set(0u64..40, 0..8),
        ) {
            let l: Vec<Listed> = listed_marks.iter().map(|(id, m)| listed(*id, m.clone())).collect();
            let d = differences(&l, &sent_marks, &open);
            for (id, m) in &listed_marks {
                let want = m.status != "pending"
                    && !open.contains(id)
                    && sent_marks.get(id) != Some(m);
                prop_assert_eq!(d.iter().any(|x| x.id == *id), want, "cluster {}", id);
            }
            prop_assert!(d.iter().all(|x| listed_marks.contains_key(&x.id)));
            let mut after = sent_marks.clone();
            for x in &d {
                after.insert(x.id, listed_marks[&x.id].clone());
            }
            prop_assert!(differences(&l, &after, &open).is_empty());
        }
    }
}
