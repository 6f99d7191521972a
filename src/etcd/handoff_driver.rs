//! Planned handoff, the owner's side. When the published map shows a `handoff/{n}` request for a
//! shard this DC owns, the proxy starts holding that shard's new writes (`proxy::hold`), and this
//! driver waits for the writes already in flight to the Coopr server to finish, acknowledges
//! (`handoff::ack`), and once every router of the DC has acknowledged, commits the move
//! (`handoff::commit`; whichever router of the DC gets there first). The watch delivers the move, the proxy releases the held writes, and
//! they go to the new owner at the new epoch. Nothing is lost (held writes were never sent) and
//! nothing is applied twice (a write is sent once, to one owner).
//!
//! With replication on, it also waits for the new owner to acknowledge every record that was
//! queued for it when the writes drained, so the new owner has the shard's finished state.
//!
//! If the in-flight writes do not finish (or the queue is not acknowledged) within the response
//! timeout plus 1 s, the driver withdraws the request instead of committing: moving then could
//! let a late write land at the old owner after the move.
//!
//! The driver's handoffs share one etcd client (one connection), so a DC handing off many
//! shards at once does not open a connection per shard.

use super::{Settings, handoff};
use crate::backoff::Backoff;
use crate::config::Config;
use crate::inflight::InFlight;
use crate::replication::Replication;
use crate::routing::{Routes, RoutingTable};
use crate::shutdown::Shutdown;
use etcd_client::Client;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Runs until shutdown.
pub async fn run(
    cfg: Arc<Config>,
    member: String,
    routes: Routes,
    inflight: Arc<InFlight>,
    replication: Option<Replication>,
    shutdown: Shutdown,
) {
    let settings = Settings::from_config(&cfg.raw.ownership);
    let me = cfg.dcs[cfg.local].name.clone();
    let drain = cfg.raw.timeouts.response() + Duration::from_secs(1);
    // (shard, epoch) handoffs started; kept until the map stops holding them, so a later
    // snapshot at the same epoch does not start the same one again.
    let mut started: HashSet<(u32, u64)> = HashSet::new();
    let mut tasks = JoinSet::new();
    // One connection to etcd for every handoff this router carries out, not one each: a DC
    // handing off all its shards at once would otherwise open a connection per shard.
    let etcd: Shared = Arc::default();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut seen = 0;
    loop {
        let table = routes.load();
        seen = seen.max(table.revision);
        for (shard, epoch, to) in to_start(&table, &mut started) {
            let job = Job {
                s: settings.clone(),
                etcd: etcd.clone(),
                me: me.clone(),
                member: member.clone(),
                to,
                shard,
                epoch,
            };
            tasks.spawn(execute(job, inflight.clone(), replication.clone(), drain));
        }
        while tasks.try_join_next().is_some() {}
        tokio::select! {
            _ = &mut stop => return,
            _ = routes.wait_for_revision(seen + 1, Duration::from_secs(1)) => {}
        }
    }
}

/// Pure: the handoffs `table` asks of this router that it has not started, as (shard, epoch,
/// new owner), oldest shard first; `started` forgets those the table no longer holds and
/// remembers the new ones. Linear in the shards and the handoffs: a DC handing off all its
/// shards at once runs this on every map change of the drain.
fn to_start(table: &RoutingTable, started: &mut HashSet<(u32, u64)>) -> Vec<(u32, u64, String)> {
    let holding: HashSet<(u32, u64)> = (0..table.shard_count())
        .filter(|&n| table.holding(n))
        .filter_map(|n| table.shard(n).map(|e| (n, e.epoch)))
        .collect();
    started.retain(|k| holding.contains(k));
    let mut new: Vec<(u32, u64, String)> = holding
        .into_iter()
        .filter(|&k| started.insert(k))
        .map(|(shard, epoch)| {
            let to = table
                .shard(shard)
                .and_then(|e| e.handoff)
                .map(|dc| table.dc_name(dc).to_string())
                .unwrap_or_default();
            (shard, epoch, to)
        })
        .collect();
    new.sort_unstable_by_key(|&(shard, ..)| shard);
    new
}

/// The driver's etcd client, shared by its handoffs (a clone of an `etcd_client::Client` shares
/// its connection); emptied by a handoff whose request failed, so the next one connects anew.
type Shared = Arc<tokio::sync::Mutex<Option<Client>>>;

/// One handoff to carry out.
struct Job {
    s: Settings,
    etcd: Shared,
    /// This DC's name and this router's name among its routers.
    me: String,
    member: String,
    to: String,
    shard: u32,
    epoch: u64,
}

/// Waits until `to` has acknowledged every record queued for it now, at most until `deadline`.
async fn replicated(r: &Replication, to: &str, deadline: Instant) -> bool {
    let Ok(Some((_, newest))) = r.store().queue_ends(to) else {
        return true;
    };
    while Instant::now() < deadline {
        match r.store().queue_ends(to) {
            Ok(Some((oldest, _))) if oldest <= newest => {}
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(peer = %to, error = %e, "handoff: cannot read the replication queue");
                return false;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Withdraws the handoff (a few tries); the owner keeps the shard and releases held writes.
async fn withdraw(s: &Settings, shard: u32) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
    for _ in 0..8 {
        let done = match s.connect().await {
            Ok(mut c) => handoff::cancel(s, &mut c, shard).await,
            Err(e) => Err(e),
        };
        match done {
            Ok(()) => return,
            Err(e) => tracing::warn!(shard, error = %e, "handoff: cannot withdraw yet; retrying"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
    tracing::error!(
        shard,
        "handoff: could not withdraw the request; held writes get 503 until etcd is back and it is withdrawn (`coopr-router handoff` withdraws on timeout)"
    );
}

/// Drains, acknowledges and (once every router of this DC has) commits one handoff.
async fn execute(job: Job, inflight: Arc<InFlight>, repl: Option<Replication>, drain: Duration) {
    let Job {
        s,
        etcd,
        me,
        member,
        to,
        shard,
        epoch,
    } = job;
    let t = Instant::now();
    tracing::info!(shard, epoch, to = %to, in_flight = inflight.count(shard), "handoff: holding new writes, waiting for in-flight ones");
    let mut drained = inflight.drained(shard, drain).await;
    if drained && let Some(r) = &repl {
        drained = replicated(r, &to, t + drain).await;
        tracing::info!(shard, to = %to, acked = drained, "handoff: replication queue to the new owner");
    }
    if !drained {
        tracing::warn!(shard, epoch, waited = ?drain, in_flight = inflight.count(shard), "handoff: in-flight writes did not finish, or the new owner did not acknowledge replication; withdrawing the request, the shard stays here");
        return withdraw(&s, shard).await;
    }
    // The other routers of this DC drain in parallel; give them as long as this one had.
    let deadline = Instant::now() + drain;
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
    let mut client = etcd.lock().await.clone();
    let (mut acked, mut failures) = (false, 0);
    let mut waiting_logged = false;
    while Instant::now() < deadline {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match s.connect().await {
                Ok(c) => {
                    *etcd.lock().await = Some(c.clone());
                    client.insert(c)
                }
                Err(e) => {
                    tracing::warn!(shard, error = %e, "handoff: cannot reach etcd; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            },
        };
        let step = match acked {
            false => handoff::ack(&s, c, shard, &member, epoch)
                .await
                .map(|()| None),
            true => handoff::commit(&s, c, shard, &me, epoch as i64)
                .await
                .map(Some),
        };
        match step {
            Ok(None) => acked = true,
            Ok(Some(handoff::Commit::Moved(new_epoch))) => {
                let took_ms = t.elapsed().as_millis() as u64;
                tracing::warn!(shard, epoch, new_epoch, took_ms, to = %to, "handoff: shard moved");
                return;
            }
            Ok(Some(handoff::Commit::Gone)) => {
                tracing::info!(
                    shard,
                    epoch,
                    "handoff: done by another router of this DC, withdrawn, or superseded"
                );
                return;
            }
            Ok(Some(handoff::Commit::Waiting(missing))) => {
                if !waiting_logged {
                    tracing::info!(
                        shard,
                        epoch,
                        ?missing,
                        "handoff: waiting for this DC's other routers to drain"
                    );
                    waiting_logged = true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(shard, epoch, failures, error = %e, "handoff: etcd failed; retrying");
                client = None;
                *etcd.lock().await = None;
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    tracing::warn!(
        shard,
        epoch,
        "handoff: not every router of this DC drained in time; withdrawing the request, the shard stays here"
    );
    withdraw(&s, shard).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::RawMap;

    /// 150 shards owned by dc1 (this router's DC in `config/static.toml`), with a handoff to
    /// `to` at epoch 10 for each shard in `handoffs`.
    fn table(handoffs: &[u32], to: &str) -> RoutingTable {
        let text = include_str!("../../config/static.toml")
            .replace("shard_count = 12", "shard_count = 150");
        let cfg = crate::config::parse(&text).unwrap();
        let mut m = RawMap::default();
        for n in 0..150u32 {
            let key = format!("/p/shards/{n}");
            m.put("/p/", key.as_bytes(), br#"{"owner":"dc1"}"#, 10)
                .unwrap();
        }
        for n in handoffs {
            let key = format!("/p/handoff/{n}");
            let v = format!(r#"{{"to":"{to}","epoch":10,"by":"cli","reason":"t","at_ms":1}}"#);
            m.put("/p/", key.as_bytes(), v.as_bytes(), 11).unwrap();
        }
        m.build(&cfg).unwrap()
    }

    #[test]
    fn each_handoff_starts_once_and_is_forgotten_when_the_map_drops_it() {
        let mut started = HashSet::new();
        let all: Vec<u32> = (0..150).rev().collect();
        let t = table(&all, "dc2");
        let first = to_start(&t, &mut started);
        assert_eq!(first.len(), 150);
        assert!(
            first.windows(2).all(|w| w[0].0 < w[1].0),
            "oldest shard first"
        );
        assert!(
            first
                .iter()
                .all(|(_, epoch, to)| *epoch == 10 && to == "dc2")
        );
        // The same map again (a later revision, another key changed): nothing new.
        assert!(to_start(&t, &mut started).is_empty());
        // Half of them committed or withdrawn: forgotten, the rest still running.
        let half: Vec<u32> = (0..75).collect();
        assert!(to_start(&table(&half, "dc2"), &mut started).is_empty());
        assert_eq!(started.len(), 75);
        // A new request for a forgotten shard starts again; an unknown DC is not a handoff.
        let again = to_start(&table(&[120, 3], "dc3"), &mut started);
        assert_eq!(again, vec![(120, 10, "dc3".to_string())]);
        assert!(to_start(&table(&[7], "dc9"), &mut started).is_empty());
        assert!(started.is_empty());
    }
}
