//! Owner side intake: a write the local Coopr server accepted opens an operation (its intent
//! queued for the shard's other DCs, its tracker started); a catalog write the home DC applied is
//! queued for every other DC.

use super::record::{Intent, action_of};
use super::{Replication, catalog, secrets, store, tracker};
use crate::ids::ClusterId;
use crate::proxy::AcceptedWrite;
use crate::routing::RoutingTable;

impl Replication {
    /// Opens an operation for a write the local Coopr server accepted, queues its intent for
    /// the shard's other DCs and starts following it. Never fails the request: a store error
    /// is logged and counted.
    pub async fn on_write(&self, table: &RoutingTable, w: AcceptedWrite<'_>) {
        let Some(id) = w.cluster.or_else(|| created_id(w.response)) else {
            tracing::warn!(
                path = w.path,
                "accepted write names no cluster id; not replicated"
            );
            return;
        };
        let shard = table.shard_of(id);
        let epoch = table.shard(shard).map_or(0, |s| s.epoch);
        let header = |name: &str| {
            w.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (body, note) = match (w.body, w.body_note) {
            (_, Some(n)) => (None, Some(n.to_string())),
            (Some([]), None) => (None, None),
            (Some(b), None) => match serde_json::from_slice::<serde_json::Value>(b) {
                Ok(v) => (Some(secrets::part(v)), None),
                Err(_) => (None, Some("the body is not JSON".to_string())),
            },
            (None, None) => (None, None),
        };
        let intent = Intent {
            op: 0,
            origin: self.inner.local.clone(),
            cluster: id.to_string(),
            shard,
            epoch,
            tenant: header("coopr-tenantid"),
            user: header("coopr-userid"),
            method: w.method.to_string(),
            path: w.path.to_string(),
            action: action_of(w.method, w.path).to_string(),
            time_ms: store::now_ms(),
            body,
            body_note: note,
        };
        let peers = self.inner.peers_of(shard);
        let cap = self.inner.cfg.outbox_max_records;
        let opened = self
            .inner
            .store
            .run(move |s| s.open_intent(intent, &peers, cap).map(|r| (r, peers)))
            .await;
        match opened {
            Ok(((intent, dropped), peers)) => {
                self.inner.queued(&peers, &dropped);
                // A write to a cluster already followed: its trackers should look again now.
                if let Some(n) = self
                    .inner
                    .cluster_wake
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&intent.cluster)
                {
                    n.notify_waiters();
                }
                self.inner
                    .background
                    .spawn(tracker::track(self.inner.clone(), intent));
            }
            Err(e) => {
                crate::metrics::replication_unrecorded();
                tracing::error!(cluster = %id, error = %e, "cannot record an accepted operation; it will not be replicated");
            }
        }
    }

    /// After this DC, the catalog's home, applied a global write: queues it for every other DC
    /// (one commit, before the client hears back) and wakes their deliveries. Never fails the
    /// request: a store error is logged and counted.
    pub async fn on_catalog_write(&self, w: crate::proxy::CatalogWrite<'_>) {
        let table = self.inner.routes.load();
        let dcs: Vec<String> = (0..table.dcs.len())
            .filter(|&dc| dc != table.local)
            .map(|dc| table.dc_name(dc).to_string())
            .collect();
        let write = format!("{} {}", w.method, w.target);
        let Some(body) = w.body else {
            crate::metrics::catalog_delivery_unrecorded();
            tracing::error!(write = %write, "catalog write applied here but its body was larger than limits.inspect_body_bytes: it is not delivered to the other DCs");
            return;
        };
        let rec = catalog::record(
            &self.inner.local,
            w.method,
            w.target,
            w.headers,
            body,
            w.status,
        );
        let cap = self.inner.cfg.outbox_max_records;
        let to = dcs.clone();
        match self
            .inner
            .store
            .run(move |s| s.enqueue_catalog(&rec, &to, cap))
            .await
        {
            Ok(dropped) => {
                for d in &dropped {
                    crate::metrics::catalog_delivery(d, "dropped");
                    tracing::error!(dc = %d, write = %write, "catalog outbox for this DC is full; the write will not reach it");
                }
                for d in dcs.iter().filter(|d| !dropped.contains(d)) {
                    self.inner.wake_peer(&catalog::queue(d)).notify_one();
                }
            }
            Err(e) => {
                crate::metrics::catalog_delivery_unrecorded();
                tracing::error!(write = %write, error = %e, "cannot record a catalog write; it will not reach the other DCs");
            }
        }
    }
}

/// The id in a create's response `{"id": "00000042"}`.
fn created_id(body: Option<&[u8]>) -> Option<ClusterId> {
    let v: serde_json::Value = serde_json::from_slice(body?).ok()?;
    ClusterId::parse(v.get("id")?.as_str()?).ok()
}
