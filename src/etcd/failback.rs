//! The failback driver: the thin shell around the pure `failover::failback::decide`. It runs in
//! every router. Every 200 ms it reads which DCs have an `alive/` key, combines that with this
//! router's health checks of the other DCs (a DC is up while both hold, without a break), reads
//! the last history record of every shard that is away from its home DC (those it does not know
//! at their epoch yet, up to 128 in one request: `last_moves`), and asks the decision
//! which one shard to hand back. It then requests the existing planned handoff for it
//! (`handoff/{n}` with `by = "failback"`), created only if the shard is still at the epoch read
//! and no handoff is pending, so routers racing for it produce one request; the owner holds,
//! drains (in-flight writes, and the replication queue towards the home DC) and commits, and the
//! commit's history record says `failback`. What waits, and why, is published for
//! `/admin/routes` and the `coopr_router_failback_waiting` metric.

use super::{Settings, liveness, now_ms, ops};
use crate::config::{Config, FailbackMode};
use crate::failover::failback::{self, Candidate, FailbackParams, LastMove, Wait};
use crate::ownership::keyspace::HistoryRecord;
use crate::routing::Routes;
use crate::shutdown::Shutdown;
use etcd_client::{Client, GetOptions, SortOrder, SortTarget};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the driver last decided: shards waiting to go home, and why (for `/admin/routes`).
#[derive(Debug, Default)]
pub struct Status {
    waiting: Mutex<Vec<(u32, Wait)>>,
}

impl Status {
    pub fn new() -> Arc<Status> {
        Arc::new(Status::default())
    }

    /// The shards away from home and why each is not handed back now.
    pub fn waiting(&self) -> Vec<(u32, Wait)> {
        self.waiting.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn set(&self, w: Vec<(u32, Wait)>) {
        if let Ok(mut g) = self.waiting.lock() {
            *g = w;
        }
    }
}

/// The last history record of `shard` (the greatest key under `history/{shard:05}/`).
pub async fn last_move(
    s: &Settings,
    client: &mut Client,
    shard: u32,
) -> Result<Option<LastMove>, super::EtcdError> {
    let prefix = format!("{}history/{shard:05}/", s.prefix);
    let resp = s
        .within(client.get(prefix.as_bytes(), Some(newest_first())))
        .await?;
    Ok(newest(&resp))
}

/// [`last_move`] of each of `shards`, in order, read together: up to `MAX_TXN_OPS` shards per
/// request, where one each took a round trip per shard (a DC's 1,365 shards of 4,095 on the
/// first look after a failover).
pub async fn last_moves(
    s: &Settings,
    client: &mut Client,
    shards: &[u32],
) -> Result<Vec<Option<LastMove>>, super::EtcdError> {
    let mut out = Vec::with_capacity(shards.len());
    for chunk in shards.chunks(super::MAX_TXN_OPS) {
        let reads = chunk
            .iter()
            .map(|n| {
                let prefix = format!("{}history/{n:05}/", s.prefix);
                (prefix.into_bytes(), Some(newest_first()))
            })
            .collect();
        for resp in s.read_all(client, reads).await? {
            out.push(newest(&resp));
        }
    }
    Ok(out)
}

/// A read of a history prefix that answers its newest record only.
fn newest_first() -> GetOptions {
    GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Key, SortOrder::Descend)
        .with_limit(1)
}

/// Pure: the record a [`newest_first`] read found, if any.
fn newest(resp: &etcd_client::GetResponse) -> Option<LastMove> {
    resp.kvs().first().and_then(|kv| {
        serde_json::from_slice::<HistoryRecord>(kv.value())
            .ok()
            .map(|r| LastMove {
                by: r.by,
                at_ms: r.at_ms,
            })
    })
}

/// Requests the failback of `shard` (at `epoch`) to `home`: creates `handoff/{shard}` with
/// `by = "failback"`, only if the shard is still at `epoch` and no handoff at all is pending.
/// True if created.
pub async fn request(
    s: &Settings,
    client: &mut Client,
    (shard, epoch): (u32, i64),
    home: &str,
    reason: &str,
) -> Result<bool, super::EtcdError> {
    ops::put_handoff_by(s, client, (shard, epoch), home, ("failback", reason)).await
}

/// Runs until shutdown. `peer_up(dc)` is this DC's current health verdict on another DC.
pub async fn run(
    cfg: Arc<Config>,
    routes: Routes,
    peer_up: Arc<dyn Fn(usize) -> bool + Send + Sync>,
    status: Arc<Status>,
    shutdown: Shutdown,
) {
    let f = &cfg.raw.failover;
    let params = FailbackParams {
        automatic: f.failback == FailbackMode::Automatic,
        after_ms: f.failback_after_ms,
        min_interval_ms: f.min_interval_ms,
    };
    let settings = Settings::from_config(&cfg.raw.ownership);
    let names: Vec<String> = cfg.dcs.iter().map(|d| d.name.clone()).collect();
    let origin = Instant::now();
    let mut up_since: Vec<Option<u64>> = vec![None; names.len()];
    // Last history record per (shard, epoch): a record never changes while the epoch does not.
    let mut history: HashMap<(u32, u64), LastMove> = HashMap::new();
    // Requests made, so a withdrawn failback is not asked again before `after_ms`.
    let mut requested: HashMap<(u32, u64), u64> = HashMap::new();
    let mut client: Option<Client> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let now = origin.elapsed().as_millis() as u64;
        if client.is_none() {
            client = settings.connect().await.ok();
        }
        let Some(c) = client.as_mut() else { continue };
        let alive = match liveness::alive_dcs(&settings, c).await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "failback: cannot read alive/ keys");
                client = None;
                continue;
            }
        };
        for (i, name) in names.iter().enumerate() {
            let up = alive.contains(name) && (i == cfg.local || peer_up(i));
            up_since[i] = failback::up_since(up_since[i], up, now);
        }
        let table = routes.load();
        // The last move of every shard away from home that is not known yet at its epoch, read
        // together.
        let unknown: Vec<u32> = table
            .shards
            .iter()
            .enumerate()
            .filter(|(n, e)| {
                e.home.is_some_and(|h| h != e.owner) && !history.contains_key(&(*n as u32, e.epoch))
            })
            .map(|(n, _)| n as u32)
            .collect();
        match last_moves(&settings, c, &unknown).await {
            Ok(found) => {
                for (n, l) in unknown.iter().zip(found) {
                    if let (Some(l), Some(e)) = (l, table.shard(*n)) {
                        history.insert((*n, e.epoch), l);
                    }
                }
            }
            Err(e) => {
                tracing::debug!(shards = unknown.len(), error = %e, "failback: cannot read history");
                client = None;
                continue;
            }
        }
        let shards: Vec<Candidate> = table
            .shards
            .iter()
            .enumerate()
            .map(|(n, e)| {
                let n = n as u32;
                let away = e.home.is_some_and(|h| h != e.owner);
                Candidate {
                    shard: n,
                    owner: e.owner,
                    home: e.home,
                    epoch: e.epoch,
                    handoff_pending: e.handoff.is_some(),
                    last: away.then(|| history.get(&(n, e.epoch)).cloned()).flatten(),
                }
            })
            .collect();
        history.retain(|(n, epoch), _| table.shard(*n).is_some_and(|e| e.epoch == *epoch));
        requested.retain(|(n, epoch), _| table.shard(*n).is_some_and(|e| e.epoch == *epoch));
        let mut d = failback::decide(params, &shards, &up_since, now, now_ms());
        if let Some((n, _, _, epoch)) = d.hand_back
            && requested
                .get(&(n, epoch))
                .is_some_and(|&t| now.saturating_sub(t) < params.after_ms)
        {
            // Asked already (by this router): the handoff is under way or was withdrawn.
            d.waiting.push((n, Wait::InProgress));
            d.waiting.sort_by_key(|w| w.0);
            d.hand_back = None;
        }
        crate::metrics::failback_waiting(d.waiting.len() as u64);
        status.set(d.waiting.clone());
        let Some((n, from, to, epoch)) = d.hand_back else {
            continue;
        };
        requested.insert((n, epoch), now);
        let (from_name, to_name) = (&names[from], &names[to]);
        let reason = format!(
            "failback: {to_name} up for {} ms after a failover",
            up_since[to].map_or(0, |t| now.saturating_sub(t))
        );
        match request(&settings, c, (n, epoch as i64), to_name, &reason).await {
            Ok(true) => {
                tracing::warn!(shard = n, from = %from_name, to = %to_name, epoch, "failback: requested the handoff home");
                crate::metrics::failback_requested();
            }
            Ok(false) => {
                tracing::info!(
                    shard = n,
                    "failback: another router asked first, or the shard changed"
                )
            }
            Err(e) => {
                tracing::warn!(shard = n, error = %e, "failback: request failed");
                client = None;
            }
        }
    }
}
