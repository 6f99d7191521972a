//! The replica store's node index: node id -> cluster id for every node a replicated cluster's
//! captured details list, kept in the same transaction as the entry, so `/v2/nodes/{id}` of a
//! replicated cluster is one lookup instead of a scan of every replicated cluster (load/SCALE.md).
//! Which nodes an entry lists is pure ([`nodes_of`]); [`update`] moves an entry's keys.

use super::record::Finished;
use super::store::{NODES, REPLICA, ReplError, Store};
use crate::ids::ClusterId;
use redb::{ReadableDatabase, ReadableTable};
use serde::Deserialize;

/// The `META` key set once the index holds every node (stores from before it are indexed when
/// opened).
const BUILT: &str = "node_index/built";

/// What the index needs of a stored `ReplicaEntry`.
#[derive(Deserialize)]
struct Entry {
    state: Option<Finished>,
}

/// The node ids a captured state lists (`details.nodes[].id`).
pub fn nodes_of(state: Option<&Finished>) -> Vec<String> {
    state
        .and_then(|f| f.details.get("nodes"))
        .and_then(serde_json::Value::as_array)
        .map(|nodes| {
            nodes
                .iter()
                .filter_map(|n| n.get("id")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Cluster `id` listed `old` and now lists `new`: drops the keys it no longer lists (when they
/// still name it) and adds the new ones.
pub(super) fn update(
    index: &mut redb::Table<&str, u64>,
    id: u64,
    old: &[String],
    new: &[String],
) -> Result<(), ReplError> {
    for n in old.iter().filter(|n| !new.contains(n)) {
        let mine = index.get(n.as_str())?.is_some_and(|v| v.value() == id);
        if mine {
            index.remove(n.as_str())?;
        }
    }
    for n in new {
        index.insert(n.as_str(), id)?;
    }
    Ok(())
}

impl Store {
    /// Indexes every replicated cluster's nodes, once per store file.
    pub(super) fn build_node_index(&self) -> Result<(), ReplError> {
        self.once(BUILT, |tx| {
            let entries = tx.open_table(REPLICA)?;
            let mut index = tx.open_table(NODES)?;
            for row in entries.iter()? {
                let (k, v) = row?;
                let Ok(e) = serde_json::from_slice::<Entry>(v.value()) else {
                    continue;
                };
                update(&mut index, k.value(), &[], &nodes_of(e.state.as_ref()))?;
            }
            Ok(())
        })
    }

    /// The replicated cluster whose captured details list node `node`: one lookup.
    pub fn cluster_of_node(&self, node: &str) -> Result<Option<ClusterId>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(NODES)?;
        Ok(t.get(node)?.and_then(|v| ClusterId::new(v.value())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::fixtures::{dc1_owns_all, finished};
    use crate::replication::record::{Envelope, Record};
    use serde_json::json;

    fn fin(id: u64, nodes: &[&str], status: &str) -> Envelope {
        let nodes: Vec<_> = nodes.iter().map(|n| json!({"id": n})).collect();
        Envelope {
            seq: id * 10 + nodes.len() as u64,
            record: Record::Finished(Finished {
                details: json!({"id": format!("{id:08}"), "status": status, "nodes": nodes}),
                ..finished(id, status)
            }),
        }
    }

    /// Every node (and one nobody lists): the lookup agrees with the scan it replaced.
    fn agrees(s: &Store, nodes: &[&str]) {
        for n in nodes.iter().chain(&["nobody"]) {
            assert_eq!(
                s.cluster_of_node(n).unwrap(),
                s.cluster_of_node_scan(n).unwrap(),
                "{n}"
            );
        }
    }

    #[test]
    fn the_index_follows_applies_retirement_and_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let s = Store::open(&path).unwrap();
        let t = dc1_owns_all();
        let all = ["a", "b", "c", "d", "e"];
        let batch = [fin(1, &["a", "b"], "active"), fin(2, &["c"], "terminated")];
        assert_eq!(s.apply("dc1", &t, &batch).unwrap().applied, 2);
        assert_eq!(s.cluster_of_node("b").unwrap(), ClusterId::new(1));
        agrees(&s, &all);
        // Cluster 1 drops node a and gains d: a is no longer found, d is.
        let grown = [fin(1, &["b", "d", "e"], "active")];
        assert_eq!(s.apply("dc1", &t, &grown).unwrap().applied, 1);
        assert_eq!(s.cluster_of_node("a").unwrap(), None);
        assert_eq!(s.cluster_of_node("d").unwrap(), ClusterId::new(1));
        agrees(&s, &all);
        // Retired (terminated long ago): its nodes leave the index.
        assert_eq!(s.retire_terminated(u64::MAX, 1).unwrap().retired, 1);
        assert_eq!(s.cluster_of_node("c").unwrap(), None);
        agrees(&s, &all);
        // A file from before the index is indexed when opened.
        {
            let tx = s.db().unwrap().begin_write().unwrap();
            tx.delete_table(NODES).unwrap();
            tx.open_table(crate::replication::store::META)
                .unwrap()
                .remove(BUILT)
                .unwrap();
            tx.commit().unwrap();
        }
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.cluster_of_node("e").unwrap(), ClusterId::new(1));
        agrees(&s, &all);
    }
}
