//! The failover driver: the thin shell around the pure [`Controller`]. Every 100 ms it feeds the
//! controller the published map, which DCs have an `alive/` key, the newest heartbeat revision
//! among each DC's `members/` keys, and this DC's health checks of the other DCs' routers (which
//! answer `/status` through their own Coopr server); the moves it proposes run as etcd
//! transactions that compare the shard's epoch and the proof the move rests on
//! ([`ops::Guard`]), so when several DCs' controllers propose the same move exactly one wins.

use super::{Settings, liveness, ops};
use crate::config::{Config, FailoverMode};
use crate::etcd::ops::Guard;
use crate::failover::{Action, Controller, Event, Params, ShardView};
use crate::routing::{Routes, RoutingTable};
use crate::shutdown::Shutdown;
use etcd_client::Client;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn views(t: &RoutingTable) -> Vec<ShardView> {
    t.shards
        .iter()
        .map(|s| ShardView {
            owner: s.owner,
            replicas: s.replicas.clone(),
            epoch: s.epoch,
        })
        .collect()
}

/// Runs until shutdown. `peer_up(dc)` is this DC's current health verdict on another DC.
pub async fn run(
    cfg: Arc<Config>,
    routes: Routes,
    peer_up: Arc<dyn Fn(usize) -> bool + Send + Sync>,
    shutdown: Shutdown,
) {
    let f = &cfg.raw.failover;
    let params = Params {
        automatic: f.mode == FailoverMode::Automatic,
        grace_ms: f.grace_ms,
        min_interval_ms: f.min_interval_ms,
        stale_after_ms: f.beat_window().as_millis() as u64,
    };
    if !params.automatic {
        return;
    }
    let settings = Settings::from_config(&cfg.raw.ownership);
    let names: Vec<String> = cfg.dcs.iter().map(|d| d.name.clone()).collect();
    let mut table = routes.load();
    let mut ctl = Controller::new(params, names.len(), views(&table));
    let origin = Instant::now();
    let mut client: Option<Client> = None;
    let mut member_no = 0usize;
    let mut seen = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let now = origin.elapsed().as_millis() as u64;
        let mut actions = Vec::new();
        let current = routes.load();
        if current.revision != table.revision {
            table = current;
            actions.extend(ctl.step(Event::Map(views(&table)), now));
        }
        if client.is_none() {
            // One member at a time, the next one after a failure: a connection balanced over
            // every member keeps waiting on the one that is cut off.
            client = settings.one(member_no).connect().await.ok();
            if client.is_none() {
                member_no = member_no.wrapping_add(1);
            }
        }
        let Some(c) = client.as_mut() else { continue };
        // No decision without a fresh view of the alive keys.
        let read = async {
            let alive = liveness::alive_dcs(&settings, c).await?;
            let members = liveness::member_revisions(&settings, c).await?;
            Ok::<_, super::EtcdError>((alive, members))
        };
        let (alive, members) = match read.await {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(error = %e, "failover: cannot read alive/ and members/ keys");
                client = None;
                member_no = member_no.wrapping_add(1);
                continue;
            }
        };
        // After the reads answered: a heartbeat they show was sent before this.
        let now = origin.elapsed().as_millis() as u64;
        for (dc, rev) in &members {
            if seen.insert(dc.clone(), *rev) != Some(*rev) {
                tracing::debug!(%dc, rev, at_ms = now, "a heartbeat (a DC's newest member key revision)");
            }
        }
        for (i, name) in names.iter().enumerate() {
            actions.extend(ctl.step(
                Event::Alive {
                    dc: i,
                    present: alive.contains(name),
                },
                now,
            ));
            actions.extend(ctl.step(
                Event::Members {
                    dc: i,
                    rev: members.get(name).map(|&r| r.max(0) as u64),
                },
                now,
            ));
            if i != cfg.local {
                actions.extend(ctl.step(
                    Event::Probe {
                        dc: i,
                        ok: peer_up(i),
                    },
                    now,
                ));
            }
        }
        actions.extend(ctl.step(Event::Tick, now));
        // The moves of one step run side by side: each is a read and a transaction, a round
        // trip or two to the etcd leader.
        let mut moves = tokio::task::JoinSet::new();
        let mut pending = Vec::new();
        for Action::Move {
            shard,
            from,
            to,
            epoch,
            members,
        } in actions
        {
            let (s, mut c) = (settings.clone(), c.clone());
            let (from_name, to_name) = (names[from].clone(), names[to].clone());
            let guard = match members {
                Some(rev) => Guard::Stale(rev as i64),
                None => Guard::Dead,
            };
            pending.push(shard);
            moves.spawn(async move {
                let r = ops::move_if_dead(
                    &s,
                    &mut c,
                    shard as u32,
                    (&from_name, &to_name),
                    epoch as i64,
                    guard,
                )
                .await;
                (shard, from_name, to_name, epoch, guard, r)
            });
        }
        let mut reconnect = false;
        while let Some(joined) = moves.join_next().await {
            let Ok((shard, from_name, to_name, epoch, guard, r)) = joined else {
                continue;
            };
            pending.retain(|&p| p != shard);
            let done = match r {
                Ok(Some(new_epoch)) => {
                    tracing::warn!(shard, from = %from_name, to = %to_name, epoch, new_epoch, ?guard, "failover: moved a dead DC's shard");
                    Event::MoveDone { shard, won: true }
                }
                Ok(None) => {
                    tracing::info!(shard, from = %from_name, "failover: another controller moved it first, or the DC came back");
                    Event::MoveDone { shard, won: false }
                }
                Err(e) => {
                    tracing::warn!(shard, error = %e, retry_ms = crate::failover::RETRY_MS, "failover: move failed; proposing it again");
                    reconnect = true;
                    Event::MoveFailed { shard }
                }
            };
            ctl.step(done, now);
        }
        // A move task that ended without an answer (it cannot panic, but nothing may stay in
        // flight forever) counts as unanswered.
        for shard in pending {
            ctl.step(Event::MoveFailed { shard }, now);
        }
        if reconnect {
            // A new connection to the next member: the last one may be the one cut off.
            client = None;
            member_no = member_no.wrapping_add(1);
        }
    }
}
