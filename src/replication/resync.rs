//! Replica catch-up: a replica whose store is new (first start, or wiped) asks every other DC's
//! router for the full state of the shards it owns (`POST /replication/v1/resync` on the peer
//! port, `{"from": "dc2"}`, authenticated like a batch). The debt is durable on both sides: the
//! replica records whom it must ask (`ask/{dc}`) in the commit after it found its store new and
//! asks until each answers 200; the owner records the request (`resync/{peer}`) before it
//! answers, and its sweep (`sweeper.rs`) pays it. A replica that missed records because its
//! owner's queue for it was full needs no request: the owner recorded that debt in the commit
//! that dropped the record.

use super::{ApplyError, Inner};
use crate::backoff::Backoff;
use crate::proxy::RESYNC_PATH;
use bytes::Bytes;
use http::Method;
use std::sync::Arc;
use std::time::Duration;

/// The body of a request for the full state.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub from: String,
}

/// Asks each DC this replica still owes a request to, until each acknowledged it.
pub(super) async fn ask(inner: Arc<Inner>) {
    let mut backoff = Backoff::new(
        Duration::from_millis(inner.cfg.retry_min_ms),
        Duration::from_millis(inner.cfg.retry_max_ms),
    );
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        let pending = match inner.store.run(|s| s.to_ask()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read whom to ask for the full state");
                Vec::new()
            }
        };
        if pending.is_empty() {
            return;
        }
        let table = inner.routes.load();
        for dc in pending {
            let Some(i) = table.dc_index(&dc) else {
                // No longer a DC of the map: nothing to ask it.
                let d = dc.clone();
                let _ = inner.store.run(move |s| s.asked(&d)).await;
                continue;
            };
            let url = format!(
                "{}{RESYNC_PATH}",
                table.dcs[i].peer_url.to_string().trim_end_matches('/')
            );
            let body = serde_json::to_vec(&Request {
                from: inner.local.clone(),
            })
            .map(Bytes::from)
            .unwrap_or_default();
            let sent = tokio::select! {
                s = inner.http.send(Method::POST, &url, &[], body) => s,
                _ = &mut stop => return,
            };
            match sent {
                Ok(r) if r.status == 200 => {
                    let d = dc.clone();
                    match inner.store.run(move |s| s.asked(&d)).await {
                        Ok(()) => {
                            tracing::info!(dc = %dc, "asked for the full state of its shards (this replica store is new)")
                        }
                        Err(e) => {
                            tracing::warn!(dc = %dc, error = %e, "cannot record a request for the full state")
                        }
                    }
                }
                Ok(r) => {
                    tracing::info!(dc = %dc, status = r.status, "request for the full state refused; retrying")
                }
                Err(e) => {
                    tracing::debug!(dc = %dc, error = %e, "cannot ask for the full state yet; retrying")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = &mut stop => return,
        }
    }
}

/// At the owner: a peer asked for the full state. `certified` is as for a batch (the DC the
/// peer's certificate names). Recorded before the answer; the sweep is woken to pay it.
pub(super) async fn requested(
    inner: &Inner,
    body: &[u8],
    certified: Option<&str>,
) -> Result<String, ApplyError> {
    let req: Request = serde_json::from_slice(body).map_err(|_| ApplyError::Malformed)?;
    match certified {
        Some(dc) if dc != req.from => {
            crate::metrics::replication_refused("sender", 1);
            return Err(ApplyError::Sender {
                claimed: req.from,
                certified: dc.to_string(),
            });
        }
        None if inner.http.peer_tls() => {
            crate::metrics::replication_refused("sender", 1);
            return Err(ApplyError::Sender {
                claimed: req.from,
                certified: String::new(),
            });
        }
        _ => {}
    }
    let table = inner.routes.load();
    if table.dc_index(&req.from).is_none() || req.from == inner.local {
        return Err(ApplyError::Malformed);
    }
    let from = req.from.clone();
    inner
        .store
        .run(move |s| s.want_resync(&from))
        .await
        .map_err(ApplyError::Store)?;
    tracing::info!(peer = %req.from, "a replica asked for the full state of this DC's shards");
    inner.sweep_wake.notify_one();
    Ok(serde_json::json!({ "owed": req.from }).to_string())
}
