//! Test fixtures shared by replication's unit tests: a routing table over dc1..dc3 (this router
//! dc3), and a finished record and an intent that each test adjusts with struct update syntax.
//!
//! Test code only: `replication/mod.rs` includes this file under `#[cfg(test)]`.

use crate::replication::record::{Finished, Intent, Outcome};
use crate::routing::{DcEntry, RoutingTable, ShardEntry};
use serde_json::json;

/// A map of `n` shards over dc1..dc3 (ids 1, 2, 3 mod 3), shard `s` owned by DC index
/// `owners[s]` at `epochs[s]`, no replicas; this router is dc3.
pub fn table(n: u32, owners: &[usize], epochs: &[u64]) -> RoutingTable {
    let dcs = (1..=3)
        .map(|i| DcEntry {
            name: format!("dc{i}"),
            peer_url: format!("http://127.0.0.1:{i}").parse().unwrap(),
            id_start: i,
            id_increment: 3,
        })
        .collect();
    let shards = (0..n as usize)
        .map(|s| ShardEntry {
            owner: owners[s],
            replicas: vec![],
            epoch: epochs[s],
            home: None,
            handoff: None,
        })
        .collect();
    RoutingTable::new(1, 2, dcs, shards)
}

/// Three shards at epoch 0, all dc1's; this router is dc3.
pub fn dc1_owns_all() -> RoutingTable {
    table(3, &[0, 0, 0], &[0, 0, 0])
}

/// Cluster `id`'s finished create at dc1 (op `id`, shard `id mod 3`, epoch 0, tenant `t`, user
/// `u`, captured at 1 ms), its details and status saying `status`.
pub fn finished(id: u64, status: &str) -> Finished {
    Finished {
        op: id,
        origin: "dc1".into(),
        cluster: format!("{id:08}"),
        shard: (id % 3) as u32,
        epoch: 0,
        tenant: "t".into(),
        owner: "u".into(),
        action: "cluster_create".into(),
        outcome: Outcome::Success,
        captured_ms: 1,
        details: json!({"id": format!("{id:08}"), "status": status}),
        status: json!({"status": status}),
        config: json!({}),
        services: json!([]),
        plan: None,
    }
}

/// An intent to delete cluster `id` from dc1 (op 0, shard `id mod 3`, epoch 0, tenant `t`, user
/// `u`, at 0 ms, no body).
pub fn intent(id: u64) -> Intent {
    Intent {
        op: 0,
        origin: "dc1".into(),
        cluster: format!("{id:08}"),
        shard: (id % 3) as u32,
        epoch: 0,
        tenant: "t".into(),
        user: "u".into(),
        method: "DELETE".into(),
        path: format!("/v2/clusters/{id}"),
        action: "cluster_delete".into(),
        time_ms: 0,
        body: None,
        body_note: None,
    }
}
