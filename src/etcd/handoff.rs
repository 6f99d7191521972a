//! Planned handoff, the etcd side: `coopr-router handoff` plans and requests it (a `handoff/{n}`
//! key per shard, created only if the shard is still at the epoch the plan read). Every router
//! of the owner DC drains its writes for the shard and acknowledges (`ack`:
//! `handoff_ack/{n}/{router}`); once every router listed under `members/{dc}/` has, any of them
//! commits it (`commit`: the shard moves, the handoff and its acknowledgements go, in one
//! transaction that also writes the history record). The CLI waits for the moves or withdraws
//! what did not happen. The owner's side (hold, drain, acknowledge, commit) is `handoff_driver`.

use super::{EtcdError, MAX_TXN_OPS, Settings, now_ms, ops};
use crate::ownership::keyspace::{self, HandoffValue, HistoryRecord, ShardValue};
use etcd_client::{Client, Compare, CompareOp, GetOptions, GetResponse, KeyValue, Txn, TxnOp};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// One shard to hand off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub shard: u32,
    pub from: String,
    pub to: String,
    pub epoch: i64,
}

/// How one requested handoff ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Moved; the shard's new epoch.
    Moved { epoch: i64 },
    /// Not moved within the wait; the request was withdrawn (the owner keeps the shard).
    TimedOut,
    /// The shard changed some other way meanwhile (a failover, an `ownership set`).
    Superseded { owner: String, epoch: i64 },
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The shards to move to `to`: shard `shard`, or every shard `from` owns. Refuses unknown DCs,
/// a no-op, and an owner that is not alive (it could not execute the handoff: that is what
/// `coopr-router failover` is for).
pub async fn plan(
    s: &Settings,
    shard: Option<u32>,
    from: Option<&str>,
    to: &str,
) -> Result<Vec<Plan>, EtcdError> {
    let rows = ops::show(s).await?;
    let mut client = s.connect().await?;
    let alive = super::liveness::alive_dcs(s, &mut client).await?;
    ops::require_known_dc(&rows, to)?;
    let picked: Vec<_> = rows
        .iter()
        .filter(|r| shard.is_none_or(|n| r.shard == n) && from.is_none_or(|f| r.owner == f))
        .collect();
    if picked.is_empty() {
        return Err(EtcdError::Refused(match (shard, from) {
            (Some(n), Some(f)) => format!("shard {n} is not owned by {f}"),
            (Some(n), None) => format!("shard {n} is not in the map"),
            (None, Some(f)) => format!("{f} owns no shard"),
            (None, None) => "name --shard or --from".into(),
        }));
    }
    let mut plans = Vec::new();
    for r in picked {
        if r.owner == to {
            return Err(EtcdError::Refused(format!(
                "shard {} is already owned by {to}",
                r.shard
            )));
        }
        if !alive.contains(&r.owner) {
            return Err(EtcdError::Refused(format!(
                "shard {}'s owner {} is not alive (no alive/{} key), so it cannot hand the shard off; use `coopr-router failover --from {} --to {to}`",
                r.shard, r.owner, r.owner, r.owner
            )));
        }
        plans.push(Plan {
            shard: r.shard,
            from: r.owner.clone(),
            to: to.to_string(),
            epoch: r.epoch,
        });
    }
    Ok(plans)
}

/// How many handoff requests [`request`] keeps in flight on its connection. etcd commits writes
/// that arrive together in one raft entry (one fsync), so a DC's worth of shards takes a few
/// dozen round trips, not one each (1,365 one after the other took 2.6 s here).
const REQUESTS_IN_FLIGHT: usize = 64;

/// Creates the `handoff/{n}` keys, each only if the shard is still at its planned epoch and no
/// handoff is pending for it. They go out [`REQUESTS_IN_FLIGHT`] at a time, in plan order; the
/// first refusal or error stops the sending. The requests already made then stand (their owners
/// carry them out), and the error says how many that is.
pub async fn request(s: &Settings, plans: &[Plan], reason: &str) -> Result<(), EtcdError> {
    let client = s.connect().await?;
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = plans.iter();
    let (mut requested, mut refused, mut failed) = (0usize, Vec::new(), None);
    loop {
        while refused.is_empty() && failed.is_none() && tasks.len() < REQUESTS_IN_FLIGHT {
            let Some(p) = next.next() else { break };
            let (s, mut c) = (s.clone(), client.clone());
            let (key, to, reason) = ((p.shard, p.epoch), p.to.clone(), reason.to_string());
            tasks.spawn(async move {
                let put = ops::put_handoff(&s, &mut c, key, &to, &reason).await;
                (key.0, put)
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        match done {
            Ok((_, Ok(true))) => requested += 1,
            Ok((shard, Ok(false))) => refused.push(shard),
            Ok((_, Err(e))) => failed = failed.or(Some(e)),
            Err(e) => {
                failed = failed.or(Some(EtcdError::Refused(format!("request task: {e}"))));
            }
        }
    }
    let made = match requested {
        0 => String::new(),
        n => format!(
            "; {n} of the {} handoff(s) were requested and go ahead",
            plans.len()
        ),
    };
    match failed {
        Some(e) if made.is_empty() => return Err(e),
        Some(e) => return Err(EtcdError::Refused(format!("{e}{made}"))),
        None => {}
    }
    if !refused.is_empty() {
        refused.sort_unstable();
        let shards: Vec<String> = refused.iter().map(u32::to_string).collect();
        return Err(EtcdError::Refused(format!(
            "shard(s) {} changed since they were read, or a handoff is already pending for them (see `ownership show`){made}",
            shards.join(", ")
        )));
    }
    Ok(())
}

/// Waits up to `timeout` for every planned shard to move, then withdraws the requests of those
/// that did not (the owner then releases its held writes and keeps the shard). Every 20 ms it
/// reads the shards still moving, and only those (see [`look`]), on one connection.
pub async fn wait(
    s: &Settings,
    plans: &[Plan],
    timeout: Duration,
) -> Result<Vec<Outcome>, EtcdError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out: Vec<Option<Outcome>> = vec![None; plans.len()];
    let mut client = s.connect().await?;
    loop {
        let open: Vec<u32> = plans
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_none())
            .map(|(p, _)| p.shard)
            .collect();
        let now = match look(s, &mut client, &open).await {
            Ok(now) => now,
            // Once more on a new connection (another member, if this one stopped answering).
            Err(_) => {
                client = s.connect().await?;
                look(s, &mut client, &open).await?
            }
        };
        for (p, o) in plans.iter().zip(out.iter_mut()) {
            if let (None, Some((owner, epoch))) = (&o, now.get(&p.shard))
                && *epoch != p.epoch
            {
                *o = Some(if *owner == p.to {
                    Outcome::Moved { epoch: *epoch }
                } else {
                    Outcome::Superseded {
                        owner: owner.clone(),
                        epoch: *epoch,
                    }
                });
            }
        }
        if out.iter().all(Option::is_some) || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut done = Vec::with_capacity(plans.len());
    for (p, o) in plans.iter().zip(out) {
        done.push(match o {
            Some(o) => o,
            None => {
                cancel(s, &mut client, p.shard).await?;
                Outcome::TimedOut
            }
        });
    }
    Ok(done)
}

/// The owner and epoch of each of `shards` that is in the map now. Up to [`MAX_TXN_OPS`] shards
/// are read by key, in one transaction: a handoff of one shard reads one key, not the whole map
/// (400 KB at 4,095 shards, every 20 ms, before). More are read with one read of the map.
async fn look(
    s: &Settings,
    client: &mut Client,
    shards: &[u32],
) -> Result<HashMap<u32, (String, i64)>, EtcdError> {
    let p = &s.prefix;
    let kvs: Vec<KeyValue> = if shards.len() <= MAX_TXN_OPS {
        let reads = shards
            .iter()
            .map(|&n| (keyspace::shard_key(p, n).into_bytes(), None))
            .collect();
        s.read_all(client, reads)
            .await?
            .into_iter()
            .flat_map(|mut r| r.take_kvs())
            .collect()
    } else {
        let all = keyspace::shards_prefix(p);
        let opts = GetOptions::new().with_prefix();
        s.within(client.get(all, Some(opts))).await?.take_kvs()
    };
    let wanted: HashSet<u32> = shards.iter().copied().collect();
    let mut now = HashMap::with_capacity(shards.len());
    for kv in kvs {
        let keyspace::Key::Shard(n) = keyspace::parse_key(p, kv.key()) else {
            continue;
        };
        if wanted.contains(&n) {
            let v: ShardValue = serde_json::from_slice(kv.value())
                .map_err(|e| EtcdError::Refused(format!("shard {n} has a bad value: {e}")))?;
            now.insert(n, (v.owner, kv.mod_revision()));
        }
    }
    Ok(now)
}

/// Withdraws a pending handoff of `shard` (whatever it says) and its acknowledgements.
/// Idempotent.
pub async fn cancel(s: &Settings, client: &mut Client, shard: u32) -> Result<(), EtcdError> {
    ops::delete_handoff(s, client, shard).await
}

/// Records that router `member` of the owner DC has no write in flight for `shard` at `epoch`
/// (and holds any new one).
pub async fn ack(
    s: &Settings,
    client: &mut Client,
    shard: u32,
    member: &str,
    epoch: u64,
) -> Result<(), EtcdError> {
    let key = keyspace::handoff_ack_key(&s.prefix, shard, member);
    s.within(client.put(key, epoch.to_string(), None)).await?;
    Ok(())
}

/// What a commit attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commit {
    /// Moved; the new epoch.
    Moved(i64),
    /// Not yet: these routers of the owner DC have not acknowledged.
    Waiting(Vec<String>),
    /// The handoff is gone: committed by another router of the DC, withdrawn, or superseded.
    Gone,
}

/// The routers of the owner DC (the keys under its `members/` prefix `mp`) that have not
/// acknowledged the shard at `epoch` (no key under its acknowledgements' prefix `ap` holding
/// that epoch).
fn unacknowledged(
    (mp, members): (&str, &GetResponse),
    (ap, acks): (&str, &GetResponse),
    epoch: i64,
) -> Vec<String> {
    let epoch = epoch.to_string();
    let acked: Vec<&[u8]> = acks
        .kvs()
        .iter()
        .filter(|kv| kv.value() == epoch.as_bytes())
        .filter_map(|kv| kv.key().strip_prefix(ap.as_bytes()))
        .collect();
    members
        .kvs()
        .iter()
        .filter_map(|kv| kv.key().strip_prefix(mp.as_bytes()))
        .filter(|m| !acked.contains(m))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

/// The owner's commit, once every router of `from` has acknowledged: moves `shard` from `from`
/// to the handoff's target and deletes the handoff key and its acknowledgements, in one
/// transaction that compares the shard's epoch and the handoff key's own revision (so a handoff
/// withdrawn or replaced meanwhile is not executed).
///
/// A router that joins the DC after the handoff was published holds the shard's writes from
/// its first request (it sees the handoff in its first map), so it has nothing in flight to wait
/// for; that is why the members read here need not be read again in the committing
/// transaction. They are read with the shard, the handoff and the acknowledgements, at one
/// revision, in one round trip.
pub async fn commit(
    s: &Settings,
    client: &mut Client,
    shard: u32,
    from: &str,
    epoch: i64,
) -> Result<Commit, EtcdError> {
    let p = &s.prefix;
    let (skey, hkey) = (
        keyspace::shard_key(p, shard),
        keyspace::handoff_key(p, shard),
    );
    // The shard, its handoff, the DC's routers and their acknowledgements: one read, one
    // revision (four requests one after another before: a round trip each).
    let (mp, ap) = (
        keyspace::members_prefix(p, from),
        keyspace::handoff_acks_prefix(p, shard),
    );
    let prefixed = || Some(GetOptions::new().with_prefix());
    let [sresp, hresp, members, acks] = s
        .read_together(
            client,
            [
                (skey.clone().into_bytes(), None),
                (hkey.clone().into_bytes(), None),
                (mp.clone().into_bytes(), prefixed()),
                (ap.clone().into_bytes(), prefixed()),
            ],
        )
        .await?;
    let (Some(skv), Some(hkv)) = (sresp.kvs().first(), hresp.kvs().first()) else {
        return Ok(Commit::Gone);
    };
    let bad = |e: serde_json::Error| EtcdError::Refused(format!("shard {shard}: {e}"));
    let old: ShardValue = serde_json::from_slice(skv.value()).map_err(bad)?;
    let h: HandoffValue = serde_json::from_slice(hkv.value()).map_err(bad)?;
    if skv.mod_revision() != epoch || h.epoch != epoch || old.owner != from || h.to == from {
        return Ok(Commit::Gone);
    }
    let missing = unacknowledged((&mp, &members), (&ap, &acks), epoch);
    if !missing.is_empty() {
        return Ok(Commit::Waiting(missing));
    }
    let at_ms = now_ms();
    let record = HistoryRecord {
        shard: Some(shard),
        from: Some(from.to_string()),
        to: Some(h.to.clone()),
        prev_epoch: epoch,
        // A failback keeps its name in the history, so it is told from an operator's handoff.
        by: match h.by.as_str() {
            "failback" => "failback".into(),
            _ => "handoff".into(),
        },
        reason: h.reason.clone(),
        at_ms,
    };
    let txn = Txn::new()
        .when([
            Compare::mod_revision(skey.as_bytes(), CompareOp::Equal, epoch),
            Compare::mod_revision(hkey.as_bytes(), CompareOp::Equal, hkv.mod_revision()),
        ])
        .and_then([
            TxnOp::put(skey.as_bytes(), json(&old.moved_to(&h.to)), None),
            TxnOp::delete(hkey.as_bytes(), None),
            TxnOp::delete(
                ap.as_bytes(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            ),
            TxnOp::put(
                keyspace::history_key(p, Some(shard), epoch, at_ms),
                json(&record),
                None,
            ),
        ]);
    let resp = s.within(client.txn(txn)).await?;
    Ok(match resp.succeeded() {
        true => Commit::Moved(resp.header().map_or(0, |h| h.revision())),
        false => Commit::Gone,
    })
}
