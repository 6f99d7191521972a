//! Liveness: the routers of a DC elect one of them to keep `alive/{dc}` on a lease. The election
//! is the etcd recipe of a compare-and-create: the key is written only if absent (its
//! `create_revision` is 0), bound to this router's lease. Whoever created it keeps the lease
//! alive every TTL/5; when that router dies its lease expires and another router of the DC takes
//! the key. A DC is alive while the key exists.
//!
//! Every router (elected or not) also keeps `members/{dc}/{router}` on its lease, so a planned
//! handoff can wait for every running router of the owner DC to drain its writes.

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
    let mut lease: Option<i64> = None;
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            result = session(&settings, &dc, &member, ttl, &mut lease, fence.as_deref(), &mut backoff) => {
                if let Err(e) = result {
                    tracing::warn!(%dc, error = %e, lease = ?lease, "liveness session lost; keeping the lease alive from a new connection");
                }
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// How often the lease is kept alive: a fifth of its TTL, so a keepalive or two may fail (an
/// etcd election) before the fence's proof runs out.
pub fn keepalive_every(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_millis(100))
}

/// One connection: grant a lease unless `lease` still names a live one, hold the member key and
/// try for the DC's key, keep the lease alive. Returns on any failure, leaving `lease` set
/// unless etcd said it expired.
async fn session(
    settings: &Settings,
    dc: &str,
    member: &str,
    ttl: Duration,
    lease: &mut Option<i64>,
    fence: Option<&Freshness>,
    backoff: &mut Backoff,
) -> Result<(), EtcdError> {
    let mut client = settings.connect().await?;
    let secs = ttl.as_secs().max(1) as i64;
    let me = keyspace::member_key(&settings.prefix, dc, member);
    // The lease of a previous session, if etcd still has it (the key on it too).
    if let Some(id) = *lease {
        let left = settings.within(client.lease_time_to_live(id, None)).await?;
        if left.ttl() <= 0 {
            if let Some(f) = fence {
                f.lease_lost();
            }
            tracing::warn!(%dc, lease = id, "the liveness lease expired at etcd; granting a new one");
            *lease = None;
        }
    }
    // A new lease must have its member key before its first keepalive counts for the fence.
    let mut first = match *lease {
        Some(_) => false,
        None => {
            let id = settings.within(client.lease_grant(secs, None)).await?.id();
            settings
                .within(client.put(me.clone(), dc, Some(PutOptions::new().with_lease(id))))
                .await?;
            *lease = Some(id);
            true
        }
    };
    let Some(id) = *lease else {
        return Err(EtcdError::Refused("no lease".into()));
    };
    let (mut keeper, mut acks) = settings.within(client.lease_keep_alive(id)).await?;
    let key = format!("{}alive/{dc}", settings.prefix);
    let every = keepalive_every(ttl);
    let mut holding = false;
    loop {
        let sent = tokio::time::Instant::now();
        settings.within(keeper.keep_alive()).await?;
        match settings.within(acks.message()).await? {
            Some(ack) if ack.ttl() > 0 => {
                if let Some(f) = fence {
                    f.lease_acked(sent, Duration::from_secs(ack.ttl() as u64), first);
                }
                first = false;
                backoff.reset();
            }
            _ => {
                // Gone at etcd: whatever this router held on it is gone too.
                if let Some(f) = fence {
                    f.lease_lost();
                }
                *lease = None;
                return Err(EtcdError::Refused("the lease expired".into()));
            }
        }
        if !holding {
            holding = try_hold(settings, &mut client, &key, id).await?;
            if holding {
                tracing::info!(%dc, lease = id, "this router keeps the DC's liveness key");
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Creates the key bound to `lease` if nobody holds it; true if this lease holds it now.
async fn try_hold(
    settings: &Settings,
    client: &mut Client,
    key: &str,
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
    let prefix = format!("{}alive/", settings.prefix);
    let resp = settings
        .within(
            client.get(
                prefix.as_bytes(),
                Some(
                    etcd_client::GetOptions::new()
                        .with_prefix()
                        .with_keys_only(),
                ),
            ),
        )
        .await?;
    Ok(resp
        .kvs()
        .iter()
        .filter_map(|kv| match keyspace::parse_key(&settings.prefix, kv.key()) {
            keyspace::Key::Alive(dc) => Some(dc.to_string()),
            _ => None,
        })
        .collect())
}
