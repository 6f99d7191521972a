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
//!
//! This file owns the `Replication` handle, its shared state (`Inner`) and `start`; the
//! handle's work is in `intake` (accepted writes and catalog writes), `apply` (batches from
//! peers), `reads` (replica lookups), `views` (what the admin port and status page read),
//! `wake` (wake-ups of senders and trackers) and `targets` (where a shard's replication goes).

mod answer;
mod apply;
mod catalog;
mod client;
mod drift;
mod hook;
mod intake;
mod list_index;
mod node_index;
mod outbox;
mod owners;
mod port;
mod reads;
pub mod record;
mod replica;
mod resend;
mod resync;
mod retention;
mod retiring;
mod secrets;
mod sender;
mod sent;
mod store;
pub mod sweep;
mod sweeper;
mod targets;
mod tracker;
mod views;
mod visibility;
mod wake;

pub use answer::{Answer, ReadTarget, merge_list, read_answer, read_target};
pub use apply::ApplyError;
pub use reads::local_coopr_holds;
pub use replica::{Applied, ListItem, Refusal, ReplicaEntry, Seen, admit, step};
pub use store::{ReplError, Store};
pub use views::PeerQueue;
pub use visibility::{Caller, Visibility, visibility};

use crate::config::{Config, OwnershipSource, ReplicationConfig};
use crate::routing::Routes;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use arc_swap::ArcSwap;
use client::Http;
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
    /// The runtime replication started on, where the trackers an accepted write starts run:
    /// not on the serving thread of the request that accepted it (`server::Workers`).
    background: tokio::runtime::Handle,
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
        let background = tokio::runtime::Handle::try_current()
            .map_err(|e| ReplError::Task(format!("replication starts on a tokio runtime: {e}")))?;
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
            background,
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

    /// The largest batch body the peer endpoint reads (`replication.batch_body_bytes`).
    pub fn batch_body_bytes(&self) -> usize {
        self.inner.cfg.batch_body_bytes
    }

    /// The largest local list body merged with replicas.
    pub fn list_body_bytes(&self) -> usize {
        self.inner.cfg.list_body_bytes
    }

    /// Operations in a given state for `GET /admin/operations` (`interrupted` or `open`).
    pub async fn operations(&self, state: &str) -> Result<serde_json::Value, String> {
        hook::operations(&self.inner, state).await
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// Keeps the ownership log (`OWNERS`: who owned which shard at which epoch) up to date with
/// every map this router publishes, so records from an older epoch's owner can be admitted.
async fn log_owners(inner: Arc<Inner>) {
    let mut changes = inner.routes.changes();
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    // The last map logged whole: a publish logs only the shards it moved.
    let mut logged: Option<Arc<crate::routing::RoutingTable>> = None;
    loop {
        changes.borrow_and_update();
        let table = inner.routes.load();
        let shards = owners::owners_to_note(logged.as_deref(), &table);
        let t = table.clone();
        match inner.store.run(move |s| s.note_owners(&t, &shards)).await {
            Ok(()) => logged = Some(table),
            Err(e) => {
                tracing::warn!(error = %e, "cannot log the shards' owners in the replication store")
            }
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            _ = &mut stop => return,
        }
    }
}

#[cfg(test)]
#[path = "fixtures_tests.rs"]
mod fixtures;
