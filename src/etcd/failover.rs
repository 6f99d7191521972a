//! The failover driver: the thin shell around the pure [`Controller`]. Every 100 ms it feeds the
//! controller the published map, which DCs have an `alive/` key, the newest heartbeat revision
//! among each DC's `members/` keys, and this DC's health checks of the other DCs' routers (which
//! answer `/status` through their own Coopr server); the moves it proposes run as etcd
//! transactions that compare the shard's epoch and the proof the move rests on
//! ([`ops::Guard`]), so when several DCs' controllers propose the same move exactly one wins.

use super::{Settings, liveness, moves, ops};
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
        let (alive, members) = match liveness::alive_and_members(&settings, c).await {
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
        // The moves of one step run side by side, a transaction for up to
        // `moves::SHARDS_PER_TXN` shards of one DC to one DC (`batches`): a DC's whole share of
        // the map moves in a few round trips. A batch that cannot move whole (another
        // controller was first for some) moves shard by shard.
        let mut moves = tokio::task::JoinSet::new();
        let mut pending = std::collections::HashSet::new();
        for batch in batches(actions) {
            let (s, mut c) = (settings.clone(), c.clone());
            let (from_name, to_name) = (names[batch.from].clone(), names[batch.to].clone());
            pending.extend(batch.shards.iter().map(|&(shard, _)| shard));
            moves.spawn(async move {
                let results = move_batch(&s, &mut c, &batch, (&from_name, &to_name)).await;
                (batch, from_name, to_name, results)
            });
        }
        let mut reconnect = false;
        while let Some(joined) = moves.join_next().await {
            let Ok((batch, from_name, to_name, results)) = joined else {
                continue;
            };
            for (&(shard, epoch), r) in batch.shards.iter().zip(results) {
                pending.remove(&shard);
                let guard = batch.guard;
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

/// Moves of one step that go in one transaction: shards (with the epoch the step saw) of one
/// DC to one DC, under one guard.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Batch {
    from: usize,
    to: usize,
    guard: Guard,
    shards: Vec<(usize, u64)>,
}

/// Pure: a step's moves as batches of at most [`moves::SHARDS_PER_TXN`] shards with the same
/// old owner, new owner and guard, in the order the step proposed them.
fn batches(actions: Vec<Action>) -> Vec<Batch> {
    let mut out: Vec<Batch> = Vec::new();
    for Action::Move {
        shard,
        from,
        to,
        epoch,
        members,
    } in actions
    {
        let guard = match members {
            Some(rev) => Guard::Stale(rev as i64),
            None => Guard::Dead,
        };
        let open = out.iter_mut().rev().find(|b| {
            (b.from, b.to, b.guard) == (from, to, guard) && b.shards.len() < moves::SHARDS_PER_TXN
        });
        match open {
            Some(b) => b.shards.push((shard, epoch)),
            None => out.push(Batch {
                from,
                to,
                guard,
                shards: vec![(shard, epoch)],
            }),
        }
    }
    out
}

/// One result per shard of `batch`, in its order: the batch in one transaction, or, when it
/// cannot move whole, each shard on its own (`ops::move_if_dead`).
async fn move_batch(
    s: &Settings,
    c: &mut Client,
    batch: &Batch,
    names: (&str, &str),
) -> Vec<Result<Option<i64>, super::EtcdError>> {
    let shards: Vec<(u32, i64)> = batch
        .shards
        .iter()
        .map(|&(shard, epoch)| (shard as u32, epoch as i64))
        .collect();
    if shards.len() > 1 {
        match moves::move_all_if_dead(s, c, &shards, names, batch.guard).await {
            Ok(Some(rev)) => return shards.iter().map(|_| Ok(Some(rev))).collect(),
            Ok(None) => {}
            Err(e) => {
                let e = e.to_string();
                return shards
                    .iter()
                    .map(|_| Err(super::EtcdError::Refused(e.clone())))
                    .collect();
            }
        }
    }
    let mut out = Vec::with_capacity(shards.len());
    for &(shard, epoch) in &shards {
        out.push(ops::move_if_dead(s, c, shard, names, epoch, batch.guard).await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(shard: usize, from: usize, to: usize, members: Option<u64>) -> Action {
        Action::Move {
            shard,
            from,
            to,
            epoch: shard as u64 + 100,
            members,
        }
    }

    #[test]
    fn moves_batch_by_old_owner_new_owner_and_guard_in_order_and_within_a_transaction() {
        let per = moves::SHARDS_PER_TXN;
        // dc0's shards to dc1 and dc2 alternately, then one under a stale-heartbeat guard.
        let mut actions: Vec<Action> = (0..2 * per + 3)
            .map(|n| mv(n, 0, 1 + n % 2, None))
            .collect();
        actions.push(mv(999, 0, 1, Some(7)));
        let got = batches(actions);
        let shape: Vec<(usize, usize, Guard, usize)> = got
            .iter()
            .map(|b| (b.from, b.to, b.guard, b.shards.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                (0, 1, Guard::Dead, per),
                (0, 2, Guard::Dead, per),
                (0, 1, Guard::Dead, 2),
                (0, 2, Guard::Dead, 1),
                (0, 1, Guard::Stale(7), 1),
            ]
        );
        // Every move once, each with its own epoch, in the order proposed within a batch.
        let mut all: Vec<(usize, u64)> = got.iter().flat_map(|b| b.shards.clone()).collect();
        assert!(got[0].shards.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(all.iter().all(|&(n, e)| e == n as u64 + 100));
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 2 * per + 4);
        assert!(batches(Vec::new()).is_empty());
    }
}
