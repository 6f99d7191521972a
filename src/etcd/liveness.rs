//! Liveness: the routers of a DC elect one of them to keep `alive/{dc}` on a lease. The election
//! is the etcd recipe of a compare-and-create: the key is written only if absent (its
//! `create_revision` is 0), bound to this router's lease. Whoever created it keeps the lease
//! alive every TTL/10; when that router dies its lease expires and another router of the DC takes
//! the key. A DC is alive while the key exists.
//!
//! Every router (elected or not) also keeps `members/{dc}/{router}` on its lease, so a planned
//! handoff can wait for every running router of the owner DC to drain its writes, and rewrites
//! it every [`beat_every`] (a heartbeat: a compare-and-put on the key's own revision, committed
//! through raft): each acknowledged heartbeat goes to the fence, and the failover controllers
//! watch the keys' revisions. A heartbeat whose compare fails means a controller took the DC's
//! shards after seeing the key unchanged for the heartbeat window: the lease is given up.

use super::outstanding::Outstanding;
use super::{EtcdError, Settings};
use crate::backoff::Backoff;
use crate::ownership::{Freshness, keyspace};
use crate::shutdown::Shutdown;
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use std::sync::Arc;
use std::time::Duration;

/// Keeps `alive/{dc}` while this router holds it, until shutdown. The lease is not revoked on
/// shutdown: a stopped router and a crashed one look the same to the others.
///
/// Every acknowledged keepalive goes to `fence` (the send time, taken before it was sent, and
/// the TTL etcd acknowledged): the fence rests on it. A broken connection (an etcd leader
/// change, a lost member) does not give the lease up: the next session keeps the same lease
/// alive if etcd still has it, so the proof continues; only a lease etcd says is gone starts a
/// new one.
pub async fn run(
    settings: Settings,
    dc: String,
    member: String,
    ttl: Duration,
    fence: Option<Arc<Freshness>>,
    shutdown: Shutdown,
) {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(500));
    let mut lease: Option<Lease> = None;
    let stop = shutdown.wait();
    tokio::pin!(stop);
    // Each session talks to one member, the first endpoint first (the DC's own member, by
    // convention), then the next one after each failure.
    let mut member_no = 0usize;
    loop {
        let one = settings.one(member_no);
        tokio::select! {
            _ = &mut stop => return,
            result = session(&one, &dc, &member, ttl, &mut lease, fence.as_deref(), &mut backoff) => {
                if let Err(e) = result {
                    member_no = member_no.wrapping_add(1);
                    tracing::warn!(%dc, error = %e, lease = ?lease.map(|l| l.id), endpoint = ?one.endpoints.first(), "liveness session lost; keeping the lease alive through the next etcd member");
                }
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// The lease this router keeps alive, whether etcd ever acknowledged a keepalive of it, and the
/// revision of its member key's last write (the next heartbeat's compare).
#[derive(Debug, Clone, Copy)]
struct Lease {
    id: i64,
    acked: bool,
    beat_rev: i64,
}

/// How often the member key is rewritten: a fifth of the TTL (1 s with the defaults). Each is
/// one raft entry; the heartbeat window (TTL + grace) rides through elections of up to
/// window - margin - this (5 s with the defaults).
pub fn beat_every(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_millis(200))
}

/// How often the lease is kept alive: a tenth of its TTL. The fence's proof runs from the last
/// answered keepalive's send, so the shorter the interval, the more of the proof is left when
/// an election begins (TTL - margin - this: 3.5 s with the defaults).
pub fn keepalive_every(ttl: Duration) -> Duration {
    (ttl / 10).max(Duration::from_millis(100))
}

/// How long a keepalive may go unanswered before the session tries the next member: two fifths
/// of the TTL (2 s with the defaults), leaving a second or more of the proof for the next one.
pub fn stall_after(ttl: Duration) -> Duration {
    (ttl * 2 / 5).max(Duration::from_millis(200))
}

/// One connection: grant a lease unless `lease` still names one, hold the member key and try
/// for the DC's key, keep the lease alive. Returns on any failure, leaving `lease` set unless
/// etcd said it expired.
///
/// An existing lease is not checked first (that read needs a leader, and an election is when
/// this runs): the first keepalive answers TTL 0 if etcd dropped it. Keepalives go out every
/// [`keepalive_every`] whether or not the last was answered ([`Outstanding`] matches each
/// answer to the oldest send), so a keepalive that waits on a follower for the next leader
/// still proves the lease when its answer comes. A keepalive unanswered for [`stall_after`]
/// (a member cut off, a connection that died silently) makes the session try the next member
/// while the proof still has a second or more to run: any member forwards keepalives to the
/// leader, so moving on costs nothing when the wait was only an election.
async fn session(
    settings: &Settings,
    dc: &str,
    member: &str,
    ttl: Duration,
    lease: &mut Option<Lease>,
    fence: Option<&Freshness>,
    backoff: &mut Backoff,
) -> Result<(), EtcdError> {
    let mut client = settings.connect().await?;
    let secs = ttl.as_secs().max(1) as i64;
    let me = keyspace::member_key(&settings.prefix, dc, member);
    // A new lease must have its member key before its first keepalive counts for the fence.
    if lease.is_none() {
        let id = settings.within(client.lease_grant(secs, None)).await?.id();
        let sent = tokio::time::Instant::now();
        let put = settings
            .within(client.put(me.clone(), dc, Some(PutOptions::new().with_lease(id))))
            .await?;
        let beat_rev = put.header().map_or(0, |h| h.revision());
        // Written on a new lease: the first heartbeat.
        if let Some(f) = fence {
            f.beat_acked(sent);
        }
        *lease = Some(Lease {
            id,
            acked: false,
            beat_rev,
        });
    }
    let Some(Lease {
        id,
        acked,
        mut beat_rev,
    }) = *lease
    else {
        return Err(EtcdError::Refused("no lease".into()));
    };
    let every = keepalive_every(ttl);
    let stall = stall_after(ttl);
    // Opening the stream sends a first keepalive and waits for its answer: during an election
    // that answer comes only once a new leader is known. It counts like any other answer and
    // gets as long as any other keepalive.
    let opened = tokio::time::Instant::now();
    let (mut keeper, mut acks) = match tokio::time::timeout(stall, client.lease_keep_alive(id))
        .await
    {
        Err(_) => return Err(EtcdError::Timeout(stall)),
        Ok(Err(etcd_client::Error::LeaseKeepAliveError(m))) if m.contains("not found") => {
            if let Some(f) = fence {
                f.lease_lost();
            }
            tracing::warn!(%dc, lease = id, "the liveness lease expired at etcd; granting a new one");
            *lease = None;
            return Err(EtcdError::Refused("the lease expired".into()));
        }
        Ok(r) => r?,
    };
    // The client does not show the first answer's TTL; etcd grants at least what was asked.
    // A lease's first answer starts its proof (the map must be proven current after it), also
    // when it comes in a later session than the grant.
    if let Some(f) = fence {
        f.lease_acked(opened, Duration::from_secs(secs as u64), !acked);
    }
    *lease = Some(Lease {
        id,
        acked: true,
        beat_rev,
    });
    backoff.reset();
    let key = format!("{}alive/{dc}", settings.prefix);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beat_tick = tokio::time::interval(beat_every(ttl));
    beat_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut beat: Option<(tokio::time::Instant, Beat)> = None;
    let mut out = Outstanding::new();
    let mut holding = false;
    let mut hold: Option<Hold> = Some(Box::pin(try_hold(
        settings.clone(),
        client.clone(),
        key.clone(),
        id,
    )));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = tokio::time::Instant::now();
                if out.stalled(now, stall) {
                    return Err(EtcdError::Refused(format!(
                        "{} keepalives unanswered, the oldest for over {stall:?}", out.len()
                    )));
                }
                if out.may_send() {
                    settings.within(keeper.keep_alive()).await?;
                    out.sent(now);
                }
            }
            msg = acks.message() => match msg? {
                None => return Err(EtcdError::Refused("the keepalive stream ended".into())),
                Some(ack) if ack.ttl() > 0 => {
                    let Some(sent) = out.acked() else { continue };
                    if let Some(f) = fence {
                        f.lease_acked(sent, Duration::from_secs(ack.ttl() as u64), false);
                    }
                    if !holding && hold.is_none() {
                        hold = Some(Box::pin(try_hold(settings.clone(), client.clone(), key.clone(), id)));
                    }
                }
                Some(_) => {
                    // Gone at etcd: whatever this router held on it is gone too.
                    if let Some(f) = fence {
                        f.lease_lost();
                    }
                    tracing::warn!(%dc, lease = id, "the liveness lease expired at etcd; granting a new one");
                    *lease = None;
                    return Err(EtcdError::Refused("the lease expired".into()));
                }
            },
            _ = beat_tick.tick(), if beat.is_none() => {
                let txn = heartbeat(&me, dc, id, beat_rev);
                let (s, mut c) = (settings.clone(), client.clone());
                beat = Some((
                    tokio::time::Instant::now(),
                    Box::pin(async move { s.within(c.txn(txn)).await }),
                ));
            }
            done = beat_or(&mut beat) => {
                let Some((sent, _)) = beat.take() else { continue };
                match done {
                    Ok(r) if r.succeeded() => {
                        beat_rev = r.header().map_or(beat_rev, |h| h.revision());
                        *lease = Some(Lease { id, acked: true, beat_rev });
                        if let Some(f) = fence {
                            f.beat_acked(sent);
                        }
                    }
                    Ok(r) if still_mine(&r, id).is_some() => {
                        // A heartbeat whose answer was lost (a broken connection, a timeout)
                        // was committed after all: the key is still on this lease. Its send
                        // time is unknown, so it proves nothing; the next one will.
                        beat_rev = still_mine(&r, id).unwrap_or(beat_rev);
                        *lease = Some(Lease { id, acked: true, beat_rev });
                    }
                    Ok(_) => {
                        // A failover took this DC's shards after seeing the key unchanged for
                        // the heartbeat window (this router's proof had run out), deleting the
                        // key: start over on a new lease, whose fence waits for the map to show
                        // the move.
                        if let Some(f) = fence {
                            f.lease_lost();
                        }
                        tracing::warn!(%dc, lease = id, "this router's member key was taken over by a failover; giving the lease up");
                        let _ = settings.within(client.lease_revoke(id)).await;
                        *lease = None;
                        return Err(EtcdError::Refused("the member key was taken over".into()));
                    }
                    Err(e) => tracing::debug!(%dc, error = %e, "heartbeat not acknowledged; trying again"),
                }
            }
            held = pending_or(&mut hold) => {
                hold = None;
                holding = held?;
                if holding {
                    tracing::info!(%dc, lease = id, "this router keeps the DC's liveness key");
                }
            }
        }
    }
}

/// A try for the DC's key, run beside the keepalives so that a slow etcd does not hold them up.
type Hold = std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, EtcdError>> + Send>>;

/// A heartbeat's transaction under way.
type Beat = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<etcd_client::TxnResponse, EtcdError>> + Send>,
>;

/// The heartbeat's answer, or never when none is under way.
async fn beat_or(
    beat: &mut Option<(tokio::time::Instant, Beat)>,
) -> Result<etcd_client::TxnResponse, EtcdError> {
    match beat {
        Some((_, b)) => b.await,
        None => std::future::pending().await,
    }
}

/// Rewrites the member key on `lease` if its last write is still `rev` (nobody took it over);
/// otherwise reads it.
fn heartbeat(key: &str, dc: &str, lease: i64, rev: i64) -> Txn {
    Txn::new()
        .when([Compare::mod_revision(key.as_bytes(), CompareOp::Equal, rev)])
        .and_then([TxnOp::put(
            key.as_bytes(),
            dc,
            Some(PutOptions::new().with_lease(lease)),
        )])
        .or_else([TxnOp::get(key.as_bytes(), None)])
}

/// After a heartbeat's compare failed: the key's revision if it still exists on `lease`. Only
/// this router writes its key on its lease, and only a heartbeat whose compare passed rewrites
/// it; a failover's move deletes it. So a key still on the lease was rewritten by one of this
/// router's own heartbeats whose answer never came.
fn still_mine(r: &etcd_client::TxnResponse, lease: i64) -> Option<i64> {
    r.op_responses().into_iter().find_map(|op| match op {
        etcd_client::TxnOpResponse::Get(g) => g
            .kvs()
            .first()
            .filter(|kv| kv.lease() == lease)
            .map(|kv| kv.mod_revision()),
        _ => None,
    })
}

/// The try's answer, or never when none is under way.
async fn pending_or(hold: &mut Option<Hold>) -> Result<bool, EtcdError> {
    match hold {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// Creates the key bound to `lease` if nobody holds it; true if this lease holds it now.
async fn try_hold(
    settings: Settings,
    mut client: Client,
    key: String,
    lease: i64,
) -> Result<bool, EtcdError> {
    let txn = Txn::new()
        .when([Compare::create_revision(
            key.as_bytes(),
            CompareOp::Equal,
            0,
        )])
        .and_then([TxnOp::put(
            key.as_bytes(),
            lease.to_string(),
            Some(PutOptions::new().with_lease(lease)),
        )]);
    Ok(settings.within(client.txn(txn)).await?.succeeded())
}

/// The DCs whose `alive/` key exists now.
pub async fn alive_dcs(settings: &Settings, client: &mut Client) -> Result<Vec<String>, EtcdError> {
    let resp = settings
        .within(client.get(alive_prefix(settings), Some(keys_only())))
        .await?;
    Ok(alive_in(settings, &resp))
}

/// The DCs whose `alive/` key exists, and the newest `members/{dc}/` key revision of each DC
/// that has one (each router's heartbeat), in one request at one revision: the failover
/// driver reads both every 100 ms. A linearizable read: whatever it shows was committed before
/// it answered.
pub async fn alive_and_members(
    settings: &Settings,
    client: &mut Client,
) -> Result<(Vec<String>, std::collections::HashMap<String, i64>), EtcdError> {
    let [alive, members] = settings
        .read_together(
            client,
            [
                (alive_prefix(settings).into_bytes(), Some(keys_only())),
                (members_prefix(settings).into_bytes(), Some(keys_only())),
            ],
        )
        .await?;
    Ok((alive_in(settings, &alive), members_in(settings, &members)))
}

fn alive_prefix(settings: &Settings) -> String {
    format!("{}alive/", settings.prefix)
}

fn members_prefix(settings: &Settings) -> String {
    format!("{}members/", settings.prefix)
}

fn keys_only() -> etcd_client::GetOptions {
    etcd_client::GetOptions::new()
        .with_prefix()
        .with_keys_only()
}

/// Pure: the DCs with an `alive/` key in a read of that prefix.
fn alive_in(settings: &Settings, resp: &etcd_client::GetResponse) -> Vec<String> {
    resp.kvs()
        .iter()
        .filter_map(|kv| match keyspace::parse_key(&settings.prefix, kv.key()) {
            keyspace::Key::Alive(dc) => Some(dc.to_string()),
            _ => None,
        })
        .collect()
}

/// Pure: the newest member key revision of each DC in a read of the `members/` prefix.
fn members_in(
    settings: &Settings,
    resp: &etcd_client::GetResponse,
) -> std::collections::HashMap<String, i64> {
    let prefix = members_prefix(settings);
    let mut revs = std::collections::HashMap::new();
    for kv in resp.kvs() {
        let Some(dc) = std::str::from_utf8(kv.key())
            .ok()
            .and_then(|k| k.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split_once('/'))
            .map(|(dc, _)| dc)
        else {
            continue;
        };
        let rev = revs.entry(dc.to_string()).or_insert(0i64);
        *rev = (*rev).max(kv.mod_revision());
    }
    revs
}
