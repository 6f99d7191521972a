//! Operator commands against etcd: `ownership init`, `show` and `set`. Every ownership change
//! is one transaction that compares the shard's `mod_revision` and writes a history record;
//! every move of a shard away from a DC (but the DC's own handoff commit) also compares that no
//! router of that DC holds a live lease, so no move can split the brain.

use super::{EtcdError, Settings, now_ms};
use crate::ownership::keyspace::{
    self, DcValue, HandoffValue, HistoryRecord, Key, Meta, ShardValue,
};
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use std::time::Duration;

/// One row of `ownership show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRow {
    pub shard: u32,
    pub owner: String,
    pub replicas: Vec<String>,
    pub epoch: i64,
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Plain structs of strings and numbers always serialise.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Writes a fresh map: `shards` shards owned by their home DCs (`dcs` in id order). Refuses to
/// overwrite an existing map unless `force`. Returns the revision of the write.
pub async fn init(
    s: &Settings,
    dcs: &[String],
    shards: u32,
    force: bool,
) -> Result<i64, EtcdError> {
    if dcs.is_empty() || shards == 0 {
        return Err(EtcdError::Refused(
            "need at least one DC and one shard".into(),
        ));
    }
    if !(shards as usize).is_multiple_of(dcs.len()) {
        return Err(EtcdError::Refused(format!(
            "--shards ({shards}) must be a multiple of the number of DCs ({})",
            dcs.len()
        )));
    }
    let p = &s.prefix;
    let mut client = s.connect().await?;
    let meta = keyspace::meta_key(p);
    let existing = s.within(client.get(meta.as_bytes(), None)).await?;
    if !existing.kvs().is_empty() && !force {
        return Err(EtcdError::Refused(format!(
            "a map already exists under {p}; use --force to overwrite it"
        )));
    }
    // etcd caps a transaction at 128 operations (`MAX_TXN_OPS`): shards go in batches, meta
    // and history last.
    if force {
        s.within(client.delete(
            keyspace::shards_prefix(p),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        ))
        .await?;
    }
    let all: Vec<u32> = (0..shards).collect();
    for chunk in all.chunks(100) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|&n| {
                TxnOp::put(
                    keyspace::shard_key(p, n),
                    json(&keyspace::home_assignment(dcs, n)),
                    None,
                )
            })
            .collect();
        s.within(client.txn(Txn::new().and_then(ops))).await?;
    }
    let at_ms = now_ms();
    let record = HistoryRecord {
        shard: None,
        from: None,
        to: None,
        prev_epoch: 0,
        by: "cli".into(),
        reason: format!("init {shards} shards over {}", dcs.join(",")),
        at_ms,
    };
    let mut ops = vec![
        TxnOp::put(
            meta,
            json(&Meta {
                shard_count: shards,
            }),
            None,
        ),
        TxnOp::put(
            keyspace::history_key(p, None, 0, at_ms),
            json(&record),
            None,
        ),
    ];
    for dc in dcs {
        ops.push(TxnOp::put(
            keyspace::dc_key(p, dc),
            json(&DcValue::default()),
            None,
        ));
    }
    let resp = s.within(client.txn(Txn::new().and_then(ops))).await?;
    Ok(resp.header().map_or(0, |h| h.revision()))
}

/// Refuses a DC that owns or replicates no shard of `rows` (a typo, or a DC not in the map).
pub fn require_known_dc(rows: &[ShardRow], dc: &str) -> Result<(), EtcdError> {
    match rows
        .iter()
        .any(|r| r.owner == dc || r.replicas.iter().any(|d| d == dc))
    {
        true => Ok(()),
        false => Err(EtcdError::Refused(format!(
            "DC {dc:?} appears nowhere in the map"
        ))),
    }
}

/// The current map, by shard.
pub async fn show(s: &Settings) -> Result<Vec<ShardRow>, EtcdError> {
    let mut client = s.connect().await?;
    let resp = s
        .within(client.get(
            keyspace::shards_prefix(&s.prefix),
            Some(GetOptions::new().with_prefix()),
        ))
        .await?;
    let mut rows = Vec::new();
    for kv in resp.kvs() {
        if let Key::Shard(n) = keyspace::parse_key(&s.prefix, kv.key()) {
            let v: ShardValue = serde_json::from_slice(kv.value())
                .map_err(|e| EtcdError::Refused(format!("shard {n} has a bad value: {e}")))?;
            rows.push(ShardRow {
                shard: n,
                owner: v.owner,
                replicas: v.replicas,
                epoch: kv.mod_revision(),
            });
        }
    }
    rows.sort_by_key(|r| r.shard);
    Ok(rows)
}

/// How long `ownership set` waits for a live owner's consent (or for its leases to expire).
pub const SET_WAIT: Duration = Duration::from_secs(60);

/// Moves `shard` to `owner`; the old owner becomes the first replica. Returns (old epoch, new
/// epoch). Never splits the brain: see [`set_owner_within`] (with [`SET_WAIT`]).
pub async fn set_owner(
    s: &Settings,
    shard: u32,
    owner: &str,
    by: &str,
    reason: &str,
) -> Result<(i64, i64), EtcdError> {
    set_owner_within(s, shard, owner, (by, reason), SET_WAIT).await
}

/// Whether any router of `dc` still has its member key (its lease is alive at etcd).
pub async fn dc_has_members(
    s: &Settings,
    client: &mut etcd_client::Client,
    dc: &str,
) -> Result<bool, EtcdError> {
    let prefix = keyspace::members_prefix(&s.prefix, dc);
    let resp = s
        .within(client.get(
            prefix.as_bytes(),
            Some(GetOptions::new().with_prefix().with_count_only()),
        ))
        .await?;
    Ok(resp.count() > 0)
}

/// The comparison every move of a shard away from `dc` makes (except the owner's own handoff
/// commit): no router of `dc` has a live lease, so none of them can still prove it may write.
pub fn no_member_of(prefix: &str, dc: &str) -> Compare {
    Compare::version(keyspace::members_prefix(prefix, dc), CompareOp::Equal, 0).with_prefix()
}

/// Creates `handoff/{shard}` asking its owner to move it to `to`, only if the shard is still at
/// `epoch` and no handoff is pending for it. True if created.
pub(super) async fn put_handoff(
    s: &Settings,
    client: &mut etcd_client::Client,
    (shard, epoch): (u32, i64),
    to: &str,
    reason: &str,
) -> Result<bool, EtcdError> {
    put_handoff_by(s, client, (shard, epoch), to, ("cli", reason)).await
}

/// [`put_handoff`] with who asks (`cli`, or `failback`, which the commit's history record
/// keeps; a failback is also refused while any other handoff is pending).
pub(super) async fn put_handoff_by(
    s: &Settings,
    client: &mut etcd_client::Client,
    (shard, epoch): (u32, i64),
    to: &str,
    (by, reason): (&str, &str),
) -> Result<bool, EtcdError> {
    let key = keyspace::handoff_key(&s.prefix, shard);
    let value = HandoffValue {
        to: to.to_string(),
        epoch,
        by: by.into(),
        reason: reason.to_string(),
        at_ms: now_ms(),
    };
    let mut when = vec![
        Compare::mod_revision(
            keyspace::shard_key(&s.prefix, shard),
            CompareOp::Equal,
            epoch,
        ),
        Compare::version(key.as_bytes(), CompareOp::Equal, 0),
    ];
    if by == "failback" {
        // One failback at a time, across every router: none while any handoff is pending.
        let all = keyspace::handoffs_prefix(&s.prefix);
        when.push(Compare::version(all, CompareOp::Equal, 0).with_prefix());
    }
    let txn = Txn::new()
        .when(when)
        .and_then([TxnOp::put(key.as_bytes(), json(&value), None)]);
    Ok(s.within(client.txn(txn)).await?.succeeded())
}

/// Withdraws a pending handoff of `shard` (whatever it says) and its acknowledgements.
/// Idempotent.
pub(super) async fn delete_handoff(
    s: &Settings,
    client: &mut etcd_client::Client,
    shard: u32,
) -> Result<(), EtcdError> {
    let key = keyspace::handoff_key(&s.prefix, shard);
    let acks = keyspace::handoff_acks_prefix(&s.prefix, shard);
    let txn = Txn::new().and_then([
        TxnOp::delete(key.as_bytes(), None),
        TxnOp::delete(
            acks.as_bytes(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        ),
    ]);
    s.within(client.txn(txn)).await?;
    Ok(())
}

/// Moves `shard` to `owner` without ever splitting the brain. While a router of the current
/// owner's DC holds its lease (its `members/` key exists) it may be writing, so the move goes
/// through its consent: a handoff is requested, and the owner commits it once its writes have
/// drained. Once the owner's routers are gone (their leases expired at etcd; each one's fence
/// closed before its lease could expire), the shard moves directly, by a transaction comparing
/// its epoch and that the old owner still has no member. Waits at most `wait` for either, then
/// withdraws the request and refuses: the owner keeps the shard.
pub async fn set_owner_within(
    s: &Settings,
    shard: u32,
    owner: &str,
    (by, reason): (&str, &str),
    wait: Duration,
) -> Result<(i64, i64), EtcdError> {
    let p = &s.prefix;
    let mut client = s.connect().await?;
    let key = keyspace::shard_key(p, shard);
    // The shard, the DCs and every DC's routers, in one round trip.
    let keys = || Some(GetOptions::new().with_prefix().with_keys_only());
    let [resp, dcs, members] = s
        .read_together(
            &mut client,
            [
                (key.clone().into_bytes(), None),
                (keyspace::dc_key(p, "").into_bytes(), keys()),
                (keyspace::members_root(p).into_bytes(), keys()),
            ],
        )
        .await?;
    let Some(kv) = resp.kvs().first() else {
        return Err(EtcdError::Refused(format!(
            "shard {shard} is not in the map"
        )));
    };
    let old: ShardValue = serde_json::from_slice(kv.value())
        .map_err(|e| EtcdError::Refused(format!("shard {shard}: {e}")))?;
    let known: Vec<String> = dcs
        .kvs()
        .iter()
        .filter_map(|kv| match keyspace::parse_key(p, kv.key()) {
            Key::Dc(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    if !known.is_empty() && !known.iter().any(|d| d == owner) {
        return Err(EtcdError::Refused(format!(
            "unknown DC {owner:?}; the map knows {}",
            known.join(", ")
        )));
    }
    let prev = kv.mod_revision();
    if old.owner == owner {
        return Ok((prev, prev));
    }
    let from = old.owner.clone();
    let deadline = tokio::time::Instant::now() + wait;
    let mut requested = false;
    // Whether the owner is live, as read with the shard; then read again at each look.
    let theirs = keyspace::members_prefix(p, &from);
    let mut live_when_read = Some(
        members
            .kvs()
            .iter()
            .any(|kv| kv.key().starts_with(theirs.as_bytes())),
    );
    loop {
        let live = match live_when_read.take() {
            Some(live) => live,
            None => dc_has_members(s, &mut client, &from).await?,
        };
        if live && !requested {
            if !put_handoff(s, &mut client, (shard, prev), owner, reason).await? {
                return Err(EtcdError::Refused(format!(
                    "shard {shard} changed concurrently, or a handoff is already pending for it (epoch was {prev}); look again and retry"
                )));
            }
            requested = true;
            tracing::info!(shard, %from, to = owner, "the owner is live: asked it to hand the shard off");
        }
        if !live {
            if requested {
                delete_handoff(s, &mut client, shard).await?;
                requested = false;
            }
            let why = format!("{reason} ({from} had no live router)");
            if let Some(new) = move_shard(
                s,
                &mut client,
                shard,
                (&from, owner),
                prev,
                (by, &why),
                Guard::NoMember,
            )
            .await?
            {
                return Ok((prev, new));
            }
        }
        // Moved by the owner's handoff commit, or by someone else.
        let now = s.within(client.get(key.as_bytes(), None)).await?;
        match now.kvs().first() {
            Some(kv) if kv.mod_revision() != prev => {
                let v: ShardValue = serde_json::from_slice(kv.value())
                    .map_err(|e| EtcdError::Refused(format!("shard {shard}: {e}")))?;
                return match v.owner == owner {
                    true => Ok((prev, kv.mod_revision())),
                    false => Err(EtcdError::Refused(format!(
                        "shard {shard} changed concurrently (now owned by {}); look again and retry",
                        v.owner
                    ))),
                };
            }
            Some(_) => {}
            None => return Err(EtcdError::Refused(format!("shard {shard} is gone"))),
        }
        if tokio::time::Instant::now() >= deadline {
            if requested {
                delete_handoff(s, &mut client, shard).await?;
            }
            return Err(EtcdError::Refused(format!(
                "{from} is live and did not hand shard {shard} off within {wait:?}; it keeps it"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Compacts etcd's history up to its current revision (tests and operators).
pub async fn compact(s: &Settings) -> Result<i64, EtcdError> {
    let mut client = s.connect().await?;
    let rev = s.revision(&mut client).await?;
    s.within(client.compact(rev, None)).await?;
    Ok(rev)
}

/// What must hold of the old owner's DC for a move to commit (besides the shard's epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// No router of the DC has a live lease (no `members/{dc}/` key).
    NoMember,
    /// That, and `alive/{dc}` is absent too (the automatic failover on expired leases).
    Dead,
    /// No `members/{dc}/` key was written after this revision: every router of the DC has gone
    /// a heartbeat window without a heartbeat, so each has fenced, whatever etcd still says of
    /// its lease. The DC's member keys and `alive/` key are deleted with the move, so none of its
    /// routers can prove itself again on the old lease.
    Stale(i64),
}

/// The automatic failover's move: `shard` goes from `from` to `to` only if its epoch is still
/// `epoch` and `guard` holds, with a history record, in one transaction. Many controllers may
/// try; exactly one wins. Returns the new epoch if this call won.
pub async fn move_if_dead(
    s: &Settings,
    client: &mut etcd_client::Client,
    shard: u32,
    (from, to): (&str, &str),
    epoch: i64,
    guard: Guard,
) -> Result<Option<i64>, EtcdError> {
    let why = failover_reason(from, guard);
    move_shard(
        s,
        client,
        shard,
        (from, to),
        epoch,
        ("failover", &why),
        guard,
    )
    .await
}

/// Why the automatic failover moved a shard away from `from`, for its history record.
pub(super) fn failover_reason(from: &str, guard: Guard) -> String {
    match guard {
        Guard::Stale(rev) => format!(
            "no heartbeat of {from} after revision {rev} for the heartbeat window, and {from} unreachable"
        ),
        _ => format!("alive/{from} absent and {from} unreachable"),
    }
}

/// A shard's value as read, if it is still at `epoch` and owned by `from` (what a move of it
/// needs); `None` if it is gone or changed since.
pub(super) fn still_at(
    kv: Option<&etcd_client::KeyValue>,
    shard: u32,
    epoch: i64,
    from: &str,
) -> Result<Option<ShardValue>, EtcdError> {
    let Some(kv) = kv else {
        return Ok(None);
    };
    let old: ShardValue = serde_json::from_slice(kv.value())
        .map_err(|e| EtcdError::Refused(format!("shard {shard}: {e}")))?;
    Ok((kv.mod_revision() == epoch && old.owner == from).then_some(old))
}

/// Moves `shard` from `from` to `to` if its epoch is still `epoch` and `guard` holds, with a
/// history record (`by`, `reason`), in one transaction. Returns the new epoch if this call made
/// the move.
pub async fn move_shard(
    s: &Settings,
    client: &mut etcd_client::Client,
    shard: u32,
    (from, to): (&str, &str),
    epoch: i64,
    (by, reason): (&str, &str),
    guard: Guard,
) -> Result<Option<i64>, EtcdError> {
    let p = &s.prefix;
    let key = keyspace::shard_key(p, shard);
    let resp = s.within(client.get(key.as_bytes(), None)).await?;
    let Some(old) = still_at(resp.kvs().first(), shard, epoch, from)? else {
        return Ok(None);
    };
    let new = old.moved_to(to);
    let at_ms = now_ms();
    let record = HistoryRecord {
        shard: Some(shard),
        from: Some(from.to_string()),
        to: Some(to.to_string()),
        prev_epoch: epoch,
        by: by.into(),
        reason: reason.into(),
        at_ms,
    };
    let (mut when, mut then) = guarded(p, from, guard);
    when.push(Compare::mod_revision(
        key.as_bytes(),
        CompareOp::Equal,
        epoch,
    ));
    then.push(TxnOp::put(key.as_bytes(), json(&new), None));
    then.push(TxnOp::put(
        keyspace::history_key(p, Some(shard), epoch, at_ms),
        json(&record),
        None,
    ));
    let txn = Txn::new().when(when).and_then(then);
    let resp = s.within(client.txn(txn)).await?;
    Ok(resp
        .succeeded()
        .then(|| resp.header().map_or(0, |h| h.revision())))
}

/// What `guard` adds to a move's transaction: its comparisons on the old owner's DC and, for
/// [`Guard::Stale`], the deletion of that DC's member keys and `alive/` key.
pub(super) fn guarded(p: &str, from: &str, guard: Guard) -> (Vec<Compare>, Vec<TxnOp>) {
    let alive = format!("{p}alive/{from}");
    match guard {
        Guard::NoMember => (vec![no_member_of(p, from)], Vec::new()),
        Guard::Dead => (
            vec![
                no_member_of(p, from),
                Compare::version(alive.as_bytes(), CompareOp::Equal, 0),
            ],
            Vec::new(),
        ),
        Guard::Stale(rev) => {
            // Every key under the prefix (none, if all are gone) last written at or before rev.
            let members = keyspace::members_prefix(p, from);
            (
                vec![
                    Compare::mod_revision(
                        members.as_bytes(),
                        CompareOp::Less,
                        rev.saturating_add(1),
                    )
                    .with_prefix(),
                ],
                vec![
                    TxnOp::delete(
                        members.as_bytes(),
                        Some(etcd_client::DeleteOptions::new().with_prefix()),
                    ),
                    TxnOp::delete(alive.as_bytes(), None),
                ],
            )
        }
    }
}

/// How many history records a shard has (tests and operators).
pub async fn history_count(s: &Settings, shard: u32) -> Result<usize, EtcdError> {
    let mut client = s.connect().await?;
    let prefix = format!("{}history/{shard:05}/", s.prefix);
    let resp = s
        .within(client.get(
            prefix.as_bytes(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ))
        .await?;
    Ok(resp.kvs().len())
}
