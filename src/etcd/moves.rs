//! The automatic failover's moves of many shards at once: several shards of one dead DC to one
//! DC in one transaction, with the same comparisons as one move each (`ops::move_shard`): every
//! shard still at the epoch the step saw and owned by the dead DC, and the DC's guard. All move
//! or none; when none do (another controller moved some first, or the DC came back), the caller
//! moves them one by one to learn which still can. A DC's 1,365 shards (of 4,095) are then ~33
//! transactions instead of 1,365, each committed by etcd as one.

use super::ops::{Guard, failover_reason, guarded, json, still_at};
use super::{EtcdError, Settings, now_ms};
use crate::ownership::keyspace::{self, HistoryRecord};
use etcd_client::{Client, Compare, CompareOp, TxnOp};

/// The most shards one transaction moves: two operations each (the shard, its history record)
/// and the guard's two deletions stay within etcd's 128 (`MAX_TXN_OPS`), and so do the
/// comparisons (one each, and the guard's two).
pub const SHARDS_PER_TXN: usize = 60;

/// Moves every shard of `moves` (shard, the epoch the step saw) from `from` to `to` if each is
/// still at that epoch and owned by `from` and `guard` holds, with a history record each, in
/// one transaction. Returns the new epoch (all moved) or `None` (none moved). At most
/// [`SHARDS_PER_TXN`] shards; more are refused.
pub async fn move_all_if_dead(
    s: &Settings,
    client: &mut Client,
    moves: &[(u32, i64)],
    (from, to): (&str, &str),
    guard: Guard,
) -> Result<Option<i64>, EtcdError> {
    if moves.len() > SHARDS_PER_TXN {
        return Err(EtcdError::Refused(format!(
            "{} shards in one move; at most {SHARDS_PER_TXN}",
            moves.len()
        )));
    }
    let p = &s.prefix;
    let keys: Vec<String> = moves
        .iter()
        .map(|&(n, _)| keyspace::shard_key(p, n))
        .collect();
    let read = s
        .read_all(
            client,
            keys.iter()
                .map(|k| (k.clone().into_bytes(), None))
                .collect(),
        )
        .await?;
    let why = failover_reason(from, guard);
    let at_ms = now_ms();
    let (mut when, mut then) = guarded(p, from, guard);
    for ((&(shard, epoch), key), got) in moves.iter().zip(&keys).zip(&read) {
        let Some(old) = still_at(got.kvs().first(), shard, epoch, from)? else {
            return Ok(None);
        };
        let record = HistoryRecord {
            shard: Some(shard),
            from: Some(from.to_string()),
            to: Some(to.to_string()),
            prev_epoch: epoch,
            by: "failover".into(),
            reason: why.clone(),
            at_ms,
        };
        when.push(Compare::mod_revision(
            key.as_bytes(),
            CompareOp::Equal,
            epoch,
        ));
        then.push(TxnOp::put(key.as_bytes(), json(&old.moved_to(to)), None));
        then.push(TxnOp::put(
            keyspace::history_key(p, Some(shard), epoch, at_ms),
            json(&record),
            None,
        ));
    }
    let txn = etcd_client::Txn::new().when(when).and_then(then);
    let resp = s.within(client.txn(txn)).await?;
    Ok(resp
        .succeeded()
        .then(|| resp.header().map_or(0, |h| h.revision())))
}
