//! Manual failover (`coopr-router failover --from dc1 --to dc2 [--dry-run]`): every shard `from`
//! owns moves to `to`, each by the same transaction as the automatic failover (the shard's epoch
//! unchanged, `alive/{from}` absent and no router of `from` holding a live lease), recorded in
//! history as `manual-failover`. With `--force` the `alive/` comparison is dropped, for a DC that
//! is known dead but still holds its key: the command waits until the DC's routers' leases have
//! expired (each router's fence closed before that), so even a forced move cannot split the
//! brain; a DC whose routers keep their leases is not dead, and is refused.

use super::handoff::Plan;
use super::{EtcdError, Settings, liveness, ops};

/// The shards that would move, and whether `from` and `to` are alive now.
pub struct FailoverPlan {
    pub moves: Vec<Plan>,
    pub from_alive: bool,
    pub to_alive: bool,
}

/// Reads the map and the alive keys: what `failover --from --to` would do.
pub async fn plan(s: &Settings, from: &str, to: &str) -> Result<FailoverPlan, EtcdError> {
    if from == to {
        return Err(EtcdError::Refused(
            "--from and --to name the same DC".into(),
        ));
    }
    let rows = ops::show(s).await?;
    ops::require_known_dc(&rows, to)?;
    let mut client = s.connect().await?;
    let alive = liveness::alive_dcs(s, &mut client).await?;
    let moves = rows
        .iter()
        .filter(|r| r.owner == from)
        .map(|r| Plan {
            shard: r.shard,
            from: from.to_string(),
            to: to.to_string(),
            epoch: r.epoch,
        })
        .collect();
    Ok(FailoverPlan {
        moves,
        from_alive: alive.iter().any(|d| d == from),
        to_alive: alive.iter().any(|d| d == to),
    })
}

/// Executes a plan. Refuses while `from` is alive or `to` is not, unless `force`. Returns, per
/// shard, the new epoch or why it did not move.
pub async fn execute(
    s: &Settings,
    p: &FailoverPlan,
    force: bool,
) -> Result<Vec<Result<i64, String>>, EtcdError> {
    let Some(first) = p.moves.first() else {
        return Ok(Vec::new());
    };
    if !force && p.from_alive {
        return Err(EtcdError::Refused(format!(
            "{} is alive (its alive/ key exists): hand its shards off with `coopr-router handoff --from {} --to {}`, or add --force if you know it is dead",
            first.from, first.from, first.to
        )));
    }
    if !force && !p.to_alive {
        return Err(EtcdError::Refused(format!(
            "{} is not alive (no alive/ key): its router could not serve the shards; add --force to move them anyway",
            first.to
        )));
    }
    let mut client = s.connect().await?;
    if force {
        // A DC declared dead may still hold its leases: its routers may still prove they may
        // write until those expire, so wait them out (at most a TTL, if it really is dead).
        let deadline = tokio::time::Instant::now() + ops::SET_WAIT;
        while ops::dc_has_members(s, &mut client, &first.from).await? {
            if tokio::time::Instant::now() >= deadline {
                return Err(EtcdError::Refused(format!(
                    "routers of {} still hold their etcd leases after {:?}: it is not dead; hand its shards off with `coopr-router handoff --from {} --to {}`",
                    first.from,
                    ops::SET_WAIT,
                    first.from,
                    first.to
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let why = match force {
        true => format!("forced by an operator ({} declared dead)", first.from),
        false => format!("alive/{} absent", first.from),
    };
    let guard = match force {
        true => ops::Guard::NoMember,
        false => ops::Guard::Dead,
    };
    // The moves go out MOVES_IN_FLIGHT at a time on the one connection: each is a read and a
    // transaction, and etcd commits the transactions that arrive together as one.
    let mut out: Vec<Result<i64, String>> = vec![Err("not attempted".into()); p.moves.len()];
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = p.moves.iter().enumerate();
    loop {
        while tasks.len() < MOVES_IN_FLIGHT {
            let Some((i, m)) = next.next() else { break };
            let (s, mut c, m, why) = (s.clone(), client.clone(), m.clone(), why.clone());
            tasks.spawn(async move {
                let moved = ops::move_shard(
                    &s,
                    &mut c,
                    m.shard,
                    (&m.from, &m.to),
                    m.epoch,
                    ("manual-failover", &why),
                    guard,
                )
                .await;
                (i, moved)
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        let Ok((i, moved)) = done else { continue };
        if let Some(slot) = out.get_mut(i) {
            *slot = match moved {
                Ok(Some(epoch)) => Ok(epoch),
                Ok(None) => Err("changed meanwhile (moved by someone else, or the DC came back: a router of it holds a live lease)".into()),
                Err(e) => Err(e.to_string()),
            };
        }
    }
    Ok(out)
}

/// How many shard moves [`execute`] keeps in flight (as `handoff::request` does).
const MOVES_IN_FLIGHT: usize = 64;
