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
//! - `list_index`: the list items by (tenant, owner, id), so a list reads only what its caller
//!   may see.
//! - `node_index`: node id -> cluster id, so `/v2/nodes/{id}` of a replicated cluster is a lookup.
//! - `hook`: interrupted operations and their delivery to the restart hook.
//! - `catalog`: catalog writes the home DC applied, queued and delivered to every other DC.
//! - `drift`: each DC's catalog compared with the home DC's, and its repair by replayed writes.
//! - `sweep`: what the anti-entropy sweep replicates (pure); `sweeper`: the sweep task.
//! - `sent`: the last state queued per cluster, owed peers, the next sequence number;
//!   `resend`: states queued again (swept, or owed to a peer).
//! - `resync`: a new replica store asking the owners for their full state.

mod answer;
mod catalog;
mod client;
mod drift;
mod hook;
mod list_index;
mod node_index;
mod outbox;
mod port;
pub mod record;
mod replica;
mod resend;
mod resync;
mod retention;
mod secrets;
mod sender;
mod sent;
mod store;
pub mod sweep;
mod sweeper;
mod tracker;
mod visibility;

pub use answer::{Answer, ReadTarget, merge_list, read_answer, read_target};
pub use replica::{Applied, ListItem, Refusal, ReplicaEntry, Seen, admit, step};
pub use store::{ReplError, Store};
pub use visibility::{Caller, Visibility, visibility};

use crate::config::{Config, OwnershipSource, ReplicationConfig};
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
    /// With etcd: how long a batch whose epoch is newer than our map waits for our watch
    /// (`ownership.epoch_wait_ms`). The static map never gets a newer epoch: `None`.
    epoch_wait: Option<Duration>,
    http: Http,
    shutdown: Shutdown,
    peer_wake: Mutex<HashMap<String, Arc<Notify>>>,
    cluster_wake: Mutex<HashMap<String, Arc<Notify>>>,
    /// Each DC's catalog deliveries, for `/admin/catalog`.
    catalog: catalog::States,
    /// Per DC, its differences from the home DC's catalog at the last comparison (`None`: it
    /// could not be read).
    drift: Mutex<std::collections::BTreeMap<String, Option<usize>>>,
    /// Wakes the sweep (a replica asked for the full state).
    sweep_wake: Notify,
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
            epoch_wait: (config.raw.ownership.source == OwnershipSource::Etcd)
                .then(|| Duration::from_millis(config.raw.ownership.epoch_wait_ms)),
            http: Http::new(runtime),
            shutdown,
            peer_wake: Mutex::new(HashMap::new()),
            cluster_wake: Mutex::new(HashMap::new()),
            catalog: catalog::States::default(),
            drift: Mutex::new(std::collections::BTreeMap::new()),
            sweep_wake: Notify::new(),
            cfg,
        });
        for (i, dc) in config.dcs.iter().enumerate() {
            if i != config.local {
                tasks.spawn(sender::run(
                    inner.clone(),
                    dc.name.clone(),
                    dc.peer_url.to_string(),
                ));
                tasks.spawn(catalog::run(
                    inner.clone(),
                    dc.name.clone(),
                    dc.peer_url.to_string(),
                ));
            }
        }
        if inner.store.fresh() {
            // A new (or wiped) store: ask every other DC for the full state of its shards.
            let others: Vec<String> = config
                .dcs
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != config.local)
                .map(|(_, d)| d.name.clone())
                .collect();
            inner.store.ask_all(&others)?;
        }
        tasks.spawn(resync::ask(inner.clone()));
        tasks.spawn(sweeper::run(inner.clone()));
        let open = inner.store.open_ops()?;
        tracing::info!(path = %path, open = open.len(), "replication store opened; resuming open operations");
        for intent in open {
            tokio::spawn(tracker::track(inner.clone(), intent));
        }
        tasks.spawn(hook::run(inner.clone()));
        tasks.spawn(drift::run(inner.clone()));
        tasks.spawn(log_owners(inner.clone()));
        tasks.spawn(retention::run(inner.clone(), path));
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

    /// `GET /admin/catalog`: per DC, the catalog writes queued for it (oldest first, at most
    /// `limit`), and its last answer.
    pub async fn catalog_view(&self, limit: usize) -> Result<serde_json::Value, String> {
        let table = self.inner.routes.load();
        let states = self.inner.catalog.snapshot();
        let mut dcs = serde_json::Map::new();
        for dc in (0..table.dcs.len()).filter(|&dc| dc != table.local) {
            let name = table.dc_name(dc).to_string();
            let q = catalog::queue(&name);
            let (pending, queued) = self
                .inner
                .store
                .run(move |s| Ok((s.peek(&q, limit)?, s.queued(&q)?)))
                .await
                .map_err(|e| e.to_string())?;
            let pending: Vec<serde_json::Value> = pending
                .records
                .iter()
                .filter_map(|r| serde_json::from_slice::<catalog::CatalogRecord>(r).ok())
                .map(|r| {
                    serde_json::json!({
                        "write": format!("{} {}", r.method, r.target),
                        "time_ms": r.time_ms,
                        "home_status": r.home_status,
                    })
                })
                .collect();
            let st = states.get(&name).cloned().unwrap_or_default();
            dcs.insert(
                name,
                serde_json::json!({
                    "queued": queued,
                    "pending": pending,
                    "delivered": st.delivered,
                    "refused": st.refused,
                    "attempts": st.attempts,
                    "last": {
                        "write": st.last_write,
                        "status": st.last_status,
                        "answer": st.last_answer,
                        "at_ms": st.last_at_ms,
                    },
                }),
            );
        }
        Ok(serde_json::json!({ "dc": self.inner.local, "dcs": dcs }))
    }

    /// `GET /admin/catalog/diff`: at the catalog's home DC, every other DC's catalog compared
    /// with this DC's, now.
    pub async fn catalog_diff(&self) -> Result<serde_json::Value, String> {
        drift::compare(&self.inner).await
    }

    /// `POST /admin/catalog/sync?to=dcN`: at the catalog's home DC, queues the writes that make
    /// DC `to`'s catalog equal to this DC's.
    pub async fn catalog_sync(&self, to: &str) -> Result<serde_json::Value, String> {
        drift::sync(&self.inner, to).await
    }

    /// The DCs whose catalog differed from the home DC's at the last comparison, with the
    /// number of differences (`/ready` warns, it does not fail).
    pub fn catalog_drift(&self) -> Vec<(String, usize)> {
        let m = self.inner.drift.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter_map(|(dc, n)| n.filter(|&n| n > 0).map(|n| (dc.clone(), n)))
            .collect()
    }

    /// Applies a batch a peer sent. `certified` is the DC the peer's client certificate names
    /// (mutual TLS), `None` without a certificate: then the batch's `from` is trusted, which
    /// validation allows only on a loopback peer port or with the `insecure_plaintext_peer`
    /// opt-out. Each record is then admitted against the ownership map ([`admit`]).
    pub async fn apply(&self, body: Bytes, certified: Option<&str>) -> Result<Applied, ApplyError> {
        let batch: Batch = serde_json::from_slice(&body).map_err(|_| ApplyError::Malformed)?;
        let from = batch.from.clone();
        let refuse_sender = |certified: &str| {
            crate::metrics::replication_refused("sender", 1);
            tracing::warn!(claimed = %from, certified_dc = %certified, records = batch.records.len(), "replication batch refused: its `from` is not the DC of the sender's certificate");
            ApplyError::Sender {
                claimed: from.clone(),
                certified: certified.to_string(),
            }
        };
        match certified {
            Some(dc) if dc != from => return Err(refuse_sender(dc)),
            Some(_) => {}
            // A mutual-TLS peer port whose certificate names no single DC speaks for none.
            None if self.inner.http.peer_tls() => return Err(refuse_sender("")),
            None => {}
        }
        let n = batch.records.len();
        let mut table = self.inner.routes.load();
        // A record from an epoch our map has not reached: let our watch catch up (briefly).
        if let Some(wait) = self.inner.epoch_wait
            && let Some(ahead) = batch
                .records
                .iter()
                .filter(|e| {
                    table
                        .shard(e.record.shard())
                        .is_some_and(|s| e.record.epoch() > s.epoch)
                })
                .map(|e| e.record.epoch())
                .max()
        {
            table = self.inner.routes.wait_for_revision(ahead, wait).await;
        }
        let captured: Vec<u64> = batch
            .records
            .iter()
            .filter_map(|e| match &e.record {
                record::Record::Finished(f) => Some(f.captured_ms),
                record::Record::Intent(_) => None,
            })
            .collect();
        let who = from.clone();
        let applied = self
            .inner
            .store
            .run(move |s| s.apply(&who, &table, &batch.records))
            .await
            .map_err(ApplyError::Store)?;
        for (reason, cluster, shard, epoch, seq) in &applied.refusals {
            crate::metrics::replication_refused(reason.reason(), 1);
            tracing::warn!(from = %from, cluster = %cluster, shard, epoch, seq, reason = reason.reason(), "replication record refused");
        }
        if let Some((shard, epoch, newest)) = applied.ahead {
            return Err(ApplyError::Ahead {
                shard,
                epoch,
                newest,
            });
        }
        crate::metrics::replication_applied(applied.applied, applied.ignored);
        let now = store::now_ms();
        for c in captured {
            crate::metrics::replication_lag(now.saturating_sub(c) as f64 / 1000.0);
        }
        tracing::debug!(from = %from, records = n, applied = applied.applied, refused = applied.refused, "replication batch applied");
        Ok(applied)
    }

    /// A peer asked for the full state of this DC's shards (`POST /replication/v1/resync`):
    /// recorded, then paid by the sweep. `certified` as for [`Replication::apply`].
    pub async fn resync_requested(
        &self,
        body: &[u8],
        certified: Option<&str>,
    ) -> Result<String, ApplyError> {
        resync::requested(&self.inner, body, certified).await
    }

    /// The largest batch body the peer endpoint reads (`replication.batch_body_bytes`).
    pub fn batch_body_bytes(&self) -> usize {
        self.inner.cfg.batch_body_bytes
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

    /// Each peer's outbox queue (the status page): records not yet acknowledged and the age of
    /// the oldest of them, which is how far that peer is behind this DC.
    pub async fn peer_queues(&self) -> Vec<PeerQueue> {
        let table = self.inner.routes.load();
        let mut out = Vec::new();
        let (asking, owed) = self
            .inner
            .store
            .run(|s| Ok((s.to_ask()?, s.owed()?)))
            .await
            .unwrap_or_default();
        for (i, dc) in table.dcs.iter().enumerate() {
            if i == table.local {
                continue;
            }
            let p = dc.name.clone();
            let got = self
                .inner
                .store
                .run(move |s| Ok((s.queued(&p)?, s.peek(&p, 1)?)))
                .await;
            let (queued, oldest) = match got {
                Ok((n, pending)) => (Some(n), pending.records.first().cloned()),
                Err(e) => {
                    tracing::warn!(peer = %dc.name, error = %e, "cannot read the outbox queue");
                    (None, None)
                }
            };
            let oldest_age_ms = oldest.and_then(|r| {
                let env: record::Envelope = serde_json::from_slice(&r).ok()?;
                let at = match env.record {
                    record::Record::Intent(i) => i.time_ms,
                    record::Record::Finished(f) => f.captured_ms,
                };
                Some(store::now_ms().saturating_sub(at))
            });
            out.push(PeerQueue {
                peer: dc.name.clone(),
                queued,
                oldest_age_ms,
                asking: asking.contains(&dc.name),
                owed: owed.contains(&dc.name),
            });
        }
        out
    }
}

/// One peer's outbox queue, as [`Replication::peer_queues`] reads it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerQueue {
    pub peer: String,
    /// Records queued for the peer (`None`: the store could not say).
    pub queued: Option<u64>,
    /// Age of the oldest queued record (`None`: nothing queued).
    pub oldest_age_ms: Option<u64>,
    /// This replica's store is new and has not yet asked that DC for its full state.
    pub asking: bool,
    /// That peer is owed the full state of this DC's shards (a record for it was dropped, or it
    /// asked); the sweep queues it once the peer's queue has room.
    pub owed: bool,
}

/// Why a batch was not applied.
#[derive(Debug)]
pub enum ApplyError {
    /// Not a replication batch (400).
    Malformed,
    /// The store failed (503).
    Store(ReplError),
    /// `from` is not the DC of the sender's certificate (403).
    Sender { claimed: String, certified: String },
    /// A record's epoch is ahead of every map this router has seen for its shard; nothing was
    /// applied (503: the sender sends the batch again).
    Ahead { shard: u32, epoch: u64, newest: u64 },
}

/// Keeps the ownership log (`OWNERS`: who owned which shard at which epoch) up to date with
/// every map this router publishes, so records from an older epoch's owner can be admitted.
async fn log_owners(inner: Arc<Inner>) {
    let mut changes = inner.routes.changes();
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        changes.borrow_and_update();
        let table = inner.routes.load();
        if let Err(e) = inner.store.run(move |s| s.note_owners(&table)).await {
            tracing::warn!(error = %e, "cannot log the shards' owners in the replication store");
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = &mut stop => return,
        }
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

    /// The external API base URL of the Coopr server that holds `shard`'s clusters: the local
    /// one, or, for a shard this DC owns away from its home DC (adopted), this DC's standby
    /// server for that home (when one is configured).
    fn coopr_base(&self, shard: u32) -> Option<String> {
        let table = self.routes.load();
        if let Some(s) = table.shard(shard)
            && s.owner == table.local
            && let Some(home) = s.home.filter(|&h| h != table.local)
            && let Some(base) = self.http.standby_base(home)
        {
            return Some(base);
        }
        self.http.local_base()
    }
}
