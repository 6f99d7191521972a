//! Liveness: the routers of a DC elect one of them to keep `alive/{dc}` on a lease. The election
//! is the etcd recipe of a compare-and-create: the key is written only if absent (its
//! `create_revision` is 0), bound to this router's lease. Whoever created it keeps the lease
//! alive every TTL/3; when that router dies its lease expires and another router of the DC takes
//! the key. A DC is alive while the key exists.
//!
//! Every router (elected or not) also keeps `members/{dc}/{router}` on its lease, so a planned
//! handoff can wait for every running router of the owner DC to drain its writes.

use super::{EtcdError, Settings};
use crate::backoff::Backoff;
use crate::ownership::keyspace;
use crate::shutdown::Shutdown;
use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use std::time::Duration;

/// Keeps `alive/{dc}` while this router holds it, until shutdown. The lease is not revoked on
/// shutdown: a stopped router and a crashed one look the same to the others.
pub async fn run(
    settings: Settings,
    dc: String,
    member: String,
    ttl: Duration,
    shutdown: Shutdown,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            result = session(&settings, &dc, &member, ttl) => {
                if let Err(e) = result {
                    tracing::warn!(%dc, error = %e, "liveness lease lost; retrying");
                }
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

/// One lease: grant it, try to hold the key, keep the lease alive. Returns on any failure.
async fn session(
    settings: &Settings,
    dc: &str,
    member: &str,
    ttl: Duration,
) -> Result<(), EtcdError> {
    let mut client = settings.connect().await?;
    let secs = ttl.as_secs().max(1) as i64;
    let lease = settings.within(client.lease_grant(secs, None)).await?.id();
    let me = keyspace::member_key(&settings.prefix, dc, member);
    settings
        .within(client.put(me, dc, Some(PutOptions::new().with_lease(lease))))
        .await?;
    let (mut keeper, mut acks) = settings.within(client.lease_keep_alive(lease)).await?;
    let key = format!("{}alive/{dc}", settings.prefix);
    let every = (ttl / 3).max(Duration::from_millis(100));
    let mut holding = false;
    loop {
        if !holding {
            holding = try_hold(settings, &mut client, &key, lease).await?;
            if holding {
                tracing::info!(%dc, lease, "this router keeps the DC's liveness key");
            }
        }
        settings.within(keeper.keep_alive()).await?;
        match settings.within(acks.message()).await? {
            Some(ack) if ack.ttl() > 0 => {}
            _ => return Err(EtcdError::Refused("the lease expired".into())),
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
