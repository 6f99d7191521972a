//! Replication of finished-operation state to the other DCs (docs/design.md, "Replication").
//!
//! Owner side: a write the local Coopr server accepted opens an operation ([`record::Intent`],
//! queued at once); the tracker follows it to its finish and queues the captured state; the
//! sender drains each peer's queue in order. Replica side: the batch endpoint applies records
//! into the replica store; reads and lists of clusters owned elsewhere are answered from it.
//!
//! Module map (one thing per file):
//! - `record`: the records, the action of a write, list summaries (pure).
//! - `secrets`: the allowlist of what is captured and the credential-name rule (pure).
//! - `store`: the redb file, its tables and error type.
//! - `outbox`: open operations and per-peer queues (owner side transactions).
//! - `replica`: the replica store and the pure apply step.
//! - `tracker`: following an open operation and capturing its finished state.
//! - `sender`: batches to a peer's `POST /replication/v1/batch`, retried until acknowledged.
//! - `client`: the small HTTP client for the local Coopr server, peers and the hook.
//! - `visibility`: Coopr's tenant/user rules (pure).
//! - `answer`: a replica read and the list merge (pure).
//! - `hook`: interrupted operations and their delivery to the restart hook.

mod answer;
mod client;
mod hook;
mod outbox;
mod port;
pub mod record;
mod replica;
mod secrets;
mod sender;
mod store;
mod tracker;
mod visibility;

pub use answer::{Answer, ReadTarget, merge_list, read_answer, read_target};
pub use replica::{Applied, ListItem, ReplicaEntry, step};
pub use store::{ReplError, Store};
pub use visibility::{Caller, Visibility, visibility};

use crate::config::{Config, ReplicationConfig};
use crate::ids::ClusterId;
use crate::proxy::AcceptedWrite;
use crate::routing::{Routes, RoutingTable};
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use arc_swap::ArcSwap;
use bytes::Bytes;
use client::Http;
use record::{Batch, Intent, action_of};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// The replication component. Cheap to clone.
#[derive(Clone)]
pub struct Replication {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Store,
    routes: Routes,
    cfg: ReplicationConfig,
    /// This DC's name.
    local: String,
    http: Http,
    shutdown: Shutdown,
    peer_wake: Mutex<HashMap<String, Arc<Notify>>>,
    cluster_wake: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Replication {
    /// Opens the store, resumes open operations and starts one sender per peer DC.
    pub fn start(
        config: &Config,
        routes: Routes,
        shutdown: Shutdown,
        tasks: &mut JoinSet<()>,
        runtime: Arc<ArcSwap<Runtime>>,
    ) -> Result<Replication, ReplError> {
        let cfg = config.raw.replication.clone();
        let path = cfg
            .path
            .clone()
            .unwrap_or_else(|| format!("{}.replication.redb", config.raw.dc));
        let store = Store::open(std::path::Path::new(&path))?;
        let inner = Arc::new(Inner {
            store,
            routes,
            local: config.dcs[config.local].name.clone(),
            http: Http::new(runtime),
            shutdown,
            peer_wake: Mutex::new(HashMap::new()),
            cluster_wake: Mutex::new(HashMap::new()),
            cfg,
        });
        for (i, dc) in config.dcs.iter().enumerate() {
            if i != config.local {
                tasks.spawn(sender::run(
                    inner.clone(),
                    dc.name.clone(),
                    dc.peer_url.to_string(),
                ));
            }
        }
        let open = inner.store.open_ops()?;
        tracing::info!(path = %path, open = open.len(), "replication store opened; resuming open operations");
        for intent in open {
            tokio::spawn(tracker::track(inner.clone(), intent));
        }
        tasks.spawn(hook::run(inner.clone()));
        Ok(Replication { inner })
    }

    /// After the router stopped serving: lets go of the store file (waiting at most 10 s for
    /// work in flight), so a router started again in this process can open it.
    pub async fn close(&self) {
        self.inner.store.close(Duration::from_secs(10)).await;
    }

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
                tokio::spawn(tracker::track(self.inner.clone(), intent));
            }
            Err(e) => {
                crate::metrics::replication_unrecorded();
                tracing::error!(cluster = %id, error = %e, "cannot record an accepted operation; it will not be replicated");
            }
        }
    }

    /// Applies a batch a peer sent. `Err(None)` is a malformed batch (400).
    pub async fn apply(&self, body: Bytes) -> Result<Applied, Option<ReplError>> {
        let batch: Batch = serde_json::from_slice(&body).map_err(|_| None)?;
        let from = batch.from.clone();
        let n = batch.records.len();
        let captured: Vec<u64> = batch
            .records
            .iter()
            .filter_map(|e| match &e.record {
                record::Record::Finished(f) => Some(f.captured_ms),
                record::Record::Intent(_) => None,
            })
            .collect();
        let applied = self
            .inner
            .store
            .run(move |s| s.apply(&batch.records))
            .await
            .map_err(Some)?;
        crate::metrics::replication_applied(applied.applied, applied.ignored);
        let now = store::now_ms();
        for c in captured {
            crate::metrics::replication_lag(now.saturating_sub(c) as f64 / 1000.0);
        }
        tracing::debug!(from = %from, records = n, applied = applied.applied, "replication batch applied");
        Ok(applied)
    }

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

    /// List items of replicated clusters in shards `table` says this DC's Coopr does not hold:
    /// shards owned elsewhere, and shards adopted from another home DC.
    pub async fn remote_summaries(&self, table: Arc<RoutingTable>) -> Vec<ListItem> {
        let keep = move |shard: u32| !local_coopr_holds(&table, shard);
        match self.inner.store.run(move |s| s.summaries(keep)).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "replica store scan failed; list not merged");
                Vec::new()
            }
        }
    }

    /// The largest local list body merged with replicas.
    pub fn list_body_bytes(&self) -> usize {
        self.inner.cfg.list_body_bytes
    }

    /// Operations in a given state for `GET /admin/operations` (`interrupted` or `open`).
    pub async fn operations(&self, state: &str) -> Result<serde_json::Value, String> {
        hook::operations(&self.inner, state).await
    }

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

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// Whether this DC's Coopr server holds the clusters of `shard`: it owns it and is its home.
pub fn local_coopr_holds(table: &RoutingTable, shard: u32) -> bool {
    table
        .shard(shard)
        .is_some_and(|s| s.owner == table.local && s.home.is_none_or(|h| h == table.local))
}

/// The id in a create's response `{"id": "00000042"}`.
fn created_id(body: Option<&[u8]>) -> Option<ClusterId> {
    let v: serde_json::Value = serde_json::from_slice(body?).ok()?;
    ClusterId::parse(v.get("id")?.as_str()?).ok()
}

impl Inner {
    fn wake_peer(&self, peer: &str) -> Arc<Notify> {
        let mut m = self.peer_wake.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(peer.to_string()).or_default().clone()
    }

    fn wake_cluster(&self, cluster: &str) -> Arc<Notify> {
        let mut m = self.cluster_wake.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(cluster.to_string()).or_default().clone()
    }

    /// A tracker is done with a cluster's wake-up: forget it unless another tracker holds it.
    fn release_cluster(&self, cluster: &str, wake: Arc<Notify>) {
        drop(wake);
        let mut m = self.cluster_wake.lock().unwrap_or_else(|e| e.into_inner());
        if m.get(cluster).is_some_and(|n| Arc::strong_count(n) == 1) {
            m.remove(cluster);
        }
    }

    /// The DCs a shard's records go to: its owner and replicas, this DC excepted.
    fn peers_of(&self, shard: u32) -> Vec<String> {
        let table = self.routes.load();
        let Some(s) = table.shard(shard) else {
            return Vec::new();
        };
        let mut out: Vec<String> = std::iter::once(s.owner)
            .chain(s.replicas.iter().copied())
            .filter(|&dc| dc != table.local)
            .map(|dc| table.dc_name(dc).to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// After records were queued: wake the senders, and say so loudly for peers whose queue
    /// was full.
    fn queued(&self, peers: &[String], dropped: &[String]) {
        for p in dropped {
            crate::metrics::replication_dropped(p);
            tracing::warn!(peer = %p, cap = self.cfg.outbox_max_records, "replication outbox for this peer is full; a record was dropped (raise replication.outbox_max_records or bring the peer back)");
        }
        for p in peers.iter().filter(|p| !dropped.contains(p)) {
            self.wake_peer(p).notify_one();
        }
    }

    /// `GET {backend}/v2/clusters/{id}{suffix}` as the intent's user; the JSON body of a 2xx.
    async fn local_get(&self, intent: &Intent, suffix: &str) -> Result<serde_json::Value, String> {
        let Some(base) = self.http.local_base() else {
            return Err("no Coopr server is configured".into());
        };
        let url = format!("{base}/v2/clusters/{}{suffix}", intent.cluster);
        let headers = [
            ("Coopr-UserID", intent.user.as_str()),
            ("Coopr-TenantID", intent.tenant.as_str()),
        ];
        let r = self.http.get_local(&url, &headers).await?;
        if !r.ok() {
            return Err(format!("{url}: status {}", r.status));
        }
        r.json().ok_or_else(|| format!("{url}: not JSON"))
    }
}
