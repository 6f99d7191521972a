//! Wake-ups: each peer's sender and each followed cluster's trackers wait on a `Notify`; what
//! queues a record or hears Coopr's callback wakes them.

use super::{Inner, Replication};
use crate::ids::ClusterId;
use std::sync::Arc;
use tokio::sync::Notify;

impl Inner {
    pub(super) fn wake_peer(&self, peer: &str) -> Arc<Notify> {
        let mut m = self.peer_wake.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(peer.to_string()).or_default().clone()
    }

    pub(super) fn wake_cluster(&self, cluster: &str) -> Arc<Notify> {
        let mut m = self.cluster_wake.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(cluster.to_string()).or_default().clone()
    }

    /// A tracker is done with a cluster's wake-up: forget it unless another tracker holds it.
    pub(super) fn release_cluster(&self, cluster: &str, wake: Arc<Notify>) {
        drop(wake);
        let mut m = self.cluster_wake.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(cluster).is_some_and(|n| Arc::strong_count(n) == 1) {
            m.remove(cluster);
        }
    }

    /// After records were queued: wake the senders, and say so loudly for peers whose queue
    /// was full.
    pub(super) fn queued(&self, peers: &[String], dropped: &[String]) {
        for p in dropped {
            crate::metrics::replication_dropped(p);
            tracing::warn!(peer = %p, cap = self.cfg.outbox_max_records, "replication outbox for this peer is full; a record was dropped (raise replication.outbox_max_records or bring the peer back)");
        }
        for p in peers.iter().filter(|p| !dropped.contains(p)) {
            self.wake_peer(p).notify_one();
        }
    }
}

impl Replication {
    /// A Coopr HTTP callback (`{"cluster": {"id": ...}, "job": ...}`): wakes that cluster's
    /// tracker. Returns the cluster id it woke, if the body named one.
    pub fn callback(&self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let id = v
            .pointer("/cluster/id")
            .and_then(serde_json::Value::as_str)?;
        let id = ClusterId::parse(id).ok()?.to_string();
        let m = self
            .inner
            .cluster_wake
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // Only a cluster with a tracker has anything to wake (and no entry is made for others).
        if let Some(n) = m.get(&id) {
            n.notify_waiters();
        }
        Some(id)
    }
}
