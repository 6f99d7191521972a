//! The anti-entropy sweep, the thin async shell around the pure [`differences`]: every
//! `replication.sweep_ms` (hot; 0: off) the owner lists the clusters of the shards it owns on the
//! Coopr server that holds them (its own, or the standby server of an adopted shard's home DC;
//! `GET /v2/tenants` as the superadmin, then `GET /v2/clusters` as each tenant's `admin`, as
//! `drift.rs` reads catalogs, with `coopr.token_file`'s token), compares them with what it last
//! queued, captures each difference as the tracker does (secrets removed) and queues it for the
//! shard's other DCs. Then each peer owed the full state (a record for it was dropped, or it
//! asked: `resync.rs`) gets the last state of every cluster of the shards this DC owns for it,
//! as its queue has room. A replica's request has that paid at once (no comparison then), and so
//! has a debt found in the store at start.

use super::Inner;
use super::record::{Finished, outcome_of};
use super::store::now_ms;
use super::sweep::{Listed, Mark, differences};
use super::tracker::{Who, capture, seal};
use crate::routing::RoutingTable;
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The tenant whose `admin` lists tenants (Coopr's superadmin tenant; every DC has it).
const SUPERADMIN: &str = "superadmin";
/// Who reads a tenant's clusters: the tenant's admin sees all of them (Coopr's visibility).
const ADMIN: &str = "admin";
/// How often to look for owed peers (a record dropped, a queue with room again).
const IDLE: Duration = Duration::from_secs(1);

/// Sweeps until the router stops. What is owed is paid first (a debt recorded before this
/// process started: a peer asked just before a restart, or a record for it was dropped), then
/// at a replica's request and every `IDLE` (a record dropped meanwhile, a queue that had no
/// room), so a debt never waits for the next sweep.
pub(super) async fn run(inner: Arc<Inner>) {
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    let mut last_sweep = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = pay(&inner) => {}
            _ = &mut stop => return,
        }
        let every = inner.http.sweep_ms();
        let mut wake_at = tokio::time::Instant::now() + IDLE;
        if every > 0 {
            wake_at = wake_at.min(last_sweep + Duration::from_millis(every));
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at) => {}
            _ = inner.sweep_wake.notified() => {}
            _ = &mut stop => return,
        }
        let every = inner.http.sweep_ms();
        if every == 0 || tokio::time::Instant::now() < last_sweep + Duration::from_millis(every) {
            continue;
        }
        last_sweep = tokio::time::Instant::now();
        let swept = tokio::select! {
            s = sweep(&inner) => s,
            _ = &mut stop => return,
        };
        match swept {
            Ok(n) => {
                crate::metrics::replication_sweep("ok");
                if n > 0 {
                    tracing::info!(
                        replicated = n,
                        "sweep: clusters changed without the router replicated"
                    );
                }
            }
            Err(e) => {
                crate::metrics::replication_sweep("failed");
                tracing::warn!(error = %e, "sweep failed; next one in replication.sweep_ms");
            }
        }
    }
}

/// A Coopr server and the shards whose clusters it holds for this DC.
struct Source {
    base: String,
    shards: BTreeSet<u32>,
}

/// The Coopr servers holding the clusters of the shards this DC owns.
fn sources(inner: &Inner, table: &RoutingTable) -> Vec<Source> {
    let mut out: Vec<Source> = Vec::new();
    for shard in 0..table.shard_count() {
        let Some(s) = table.shard(shard) else {
            continue;
        };
        if s.owner != table.local {
            continue;
        }
        let base = match s.home.filter(|&h| h != table.local) {
            None => inner.http.local_base(),
            Some(home) => inner.http.standby_base(home),
        };
        let Some(base) = base else {
            continue;
        };
        match out.iter_mut().find(|x| x.base == base) {
            Some(x) => {
                x.shards.insert(shard);
            }
            None => out.push(Source {
                base,
                shards: [shard].into(),
            }),
        }
    }
    out
}

/// One comparison: lists, compares, captures and queues. Returns how many were queued.
async fn sweep(inner: &Inner) -> Result<usize, String> {
    let table = inner.routes.load();
    let mut queued = 0;
    for src in sources(inner, &table) {
        let listed = list(inner, &table, &src).await?;
        let (marks, open) = inner
            .store
            .run(|s| Ok((s.marks()?, s.open_clusters()?)))
            .await
            .map_err(|e| e.to_string())?;
        for d in differences(&listed, &marks, &open) {
            crate::metrics::replication_sweep_difference(d.why.label());
            let cluster = format!("{:08}", d.id);
            let who = Who {
                base: &src.base,
                cluster: &cluster,
                user: ADMIN,
                tenant: &d.tenant,
            };
            let c = match capture(inner, &who, None).await {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    tracing::debug!(cluster = %cluster, error = %e, "sweep: capture failed; next sweep");
                    continue;
                }
            };
            let action = c
                .details
                .pointer("/progress/action")
                .and_then(Value::as_str)
                .map_or_else(|| "sweep".to_string(), str::to_ascii_lowercase);
            let owner = c
                .details
                .pointer("/account/userId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let f = seal(Finished {
                op: 0,
                origin: inner.local.clone(),
                cluster: cluster.clone(),
                shard: d.shard,
                epoch: table.shard(d.shard).map_or(0, |s| s.epoch),
                tenant: d.tenant.clone(),
                owner,
                outcome: outcome_of(&action, &c.final_status),
                action,
                captured_ms: now_ms(),
                details: c.details,
                status: c.status,
                config: c.config,
                services: c.services,
                plan: c.plan,
            });
            let peers = inner.peers_of(d.shard);
            let cap = inner.cfg.outbox_max_records;
            let compared = marks.get(&d.id).cloned();
            let sent = inner
                .store
                .run(move |s| {
                    s.queue_swept(f, compared.as_ref(), &peers, cap)
                        .map(|dr| (dr, peers))
                })
                .await;
            match sent {
                Ok((None, _)) => {
                    tracing::debug!(cluster = %cluster, "sweep: the cluster moved on since the comparison; next sweep");
                }
                Ok((Some(dropped), peers)) => {
                    inner.queued(&peers, &dropped);
                    tracing::info!(cluster = %cluster, why = d.why.label(), "sweep: replicated a cluster changed without the router");
                    queued += 1;
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(queued)
}

/// Every cluster `src` lists in the shards it holds for this DC, by tenant.
async fn list(inner: &Inner, table: &RoutingTable, src: &Source) -> Result<Vec<Listed>, String> {
    let tenants = get_array(inner, &format!("{}/v2/tenants", src.base), SUPERADMIN).await?;
    let mut out = Vec::new();
    for t in &tenants {
        let Some(tenant) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        let items = get_array(inner, &format!("{}/v2/clusters", src.base), tenant).await?;
        for item in &items {
            let Some(id) = item
                .get("id")
                .and_then(Value::as_str)
                .and_then(|i| crate::ids::ClusterId::parse(i).ok())
            else {
                continue;
            };
            let shard = table.shard_of(id);
            if src.shards.contains(&shard) {
                out.push(Listed {
                    id: id.get(),
                    shard,
                    tenant: tenant.to_string(),
                    mark: Mark::of_summary(item),
                });
            }
        }
    }
    Ok(out)
}

/// `GET url` as `admin` of `tenant`, with the service credential: a JSON array.
async fn get_array(inner: &Inner, url: &str, tenant: &str) -> Result<Vec<Value>, String> {
    let h = [("Coopr-UserID", ADMIN), ("Coopr-TenantID", tenant)];
    let r = inner.http.get_local(url, &h).await?;
    if !r.ok() {
        return Err(format!("{url}: status {}", r.status));
    }
    match r.json() {
        Some(Value::Array(a)) => Ok(a),
        _ => Err(format!("{url}: not a JSON array")),
    }
}

/// Each peer owed the full state gets as much of it as its queue has room for.
async fn pay(inner: &Arc<Inner>) {
    let owed = match inner.store.run(|s| s.owed()).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read which peers are owed the full state");
            return;
        }
    };
    for peer in owed {
        let table = inner.routes.load();
        let mine: BTreeSet<u32> = (0..table.shard_count())
            .filter(|&s| {
                table.shard(s).is_some_and(|e| e.owner == table.local)
                    && inner.peers_of(s).contains(&peer)
            })
            .collect();
        let cap = inner.cfg.outbox_max_records;
        let p = peer.clone();
        match inner
            .store
            .run(move |s| s.resync(&p, &|shard| mine.contains(&shard), cap))
            .await
        {
            Ok(Some((n, paid))) => {
                if paid {
                    crate::metrics::replication_resync(&peer);
                }
                tracing::info!(peer = %peer, records = n, paid, "full state queued for a peer that missed records");
                inner.wake_peer(&peer).notify_one();
            }
            Ok(None) => {
                tracing::debug!(peer = %peer, "peer owed the full state has no room in its queue yet")
            }
            Err(e) => tracing::warn!(peer = %peer, error = %e, "cannot queue the full state"),
        }
    }
}
