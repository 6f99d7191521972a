//! Replica reads through the handle: a cluster's replica entry, the cluster of a node, the list
//! items a caller may see in shards this DC's Coopr does not hold.

use super::{Caller, ListItem, ReplicaEntry, Replication, Store};
use crate::ids::ClusterId;
use crate::routing::RoutingTable;
use std::sync::Arc;

impl Replication {
    /// The replica entry of a cluster, if the store holds one (a store error reads as absent).
    pub async fn replica(&self, id: ClusterId) -> Option<ReplicaEntry> {
        match self.inner.store.run(move |s| s.replica(id)).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(cluster = %id, error = %e, "replica store read failed; reading through");
                None
            }
        }
    }

    /// The cluster a node belongs to, if a replicated cluster lists it.
    pub async fn cluster_of_node(&self, node: String) -> Option<ClusterId> {
        match self
            .inner
            .store
            .run(move |s| s.cluster_of_node(&node))
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "replica store scan for a node failed");
                None
            }
        }
    }

    /// List items of replicated clusters `caller` (user, tenant) may see in shards `table` says
    /// this DC's Coopr does not hold: shards owned elsewhere, and shards adopted from another
    /// home DC. Reads the list index: only the caller's clusters, never every replicated one.
    pub async fn remote_summaries(
        &self,
        table: Arc<RoutingTable>,
        user: Option<String>,
        tenant: Option<String>,
    ) -> Vec<ListItem> {
        let keep = move |shard: u32| !local_coopr_holds(&table, shard);
        let list = move |s: &Store| {
            let caller = Caller {
                user: user.as_deref(),
                tenant: tenant.as_deref(),
            };
            s.visible_summaries(caller, keep)
        };
        match self.inner.store.run(list).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "replica store scan failed; list not merged");
                Vec::new()
            }
        }
    }
}

/// Whether this DC's Coopr server holds the clusters of `shard`: it owns it and is its home.
pub fn local_coopr_holds(table: &RoutingTable, shard: u32) -> bool {
    table
        .shard(shard)
        .is_some_and(|s| s.owner == table.local && s.home.is_none_or(|h| h == table.local))
}
