//! Holding a shard's writes while this DC hands the shard off (`coopr-router handoff`): a write
//! for a shard this DC owns but is handing off waits, up to `failover.max_hold_ms`, for the move
//! to be committed, and is then routed by the new map (to the new owner). If the move does not
//! come in time it gets 503 + `Retry-After` (`handoff_held`); it was never sent anywhere, so a
//! retry cannot apply it twice.

use super::ctx::Ctx;
use crate::error::ProxyError;
use crate::inflight::Guard;
use crate::routing::RoutingTable;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Counts a write to `shard` as in flight and returns with `table` set to the snapshot to
/// decide it by: one that does not hold the shard. Entering before loading the snapshot is
/// what lets the handoff driver trust the count (see `inflight`).
pub(super) async fn hold(
    cx: &Ctx<'_>,
    shard: u32,
    table: &mut Arc<RoutingTable>,
) -> Result<Guard, ProxyError> {
    let max = Duration::from_millis(cx.rt.config.raw.failover.max_hold_ms);
    let start = Instant::now();
    let mut waited = false;
    loop {
        let guard = cx.proxy.inflight.enter(shard);
        *table = cx.proxy.routes.load();
        if !table.holding(shard) {
            if waited {
                tracing::debug!(
                    shard,
                    held_ms = start.elapsed().as_millis() as u64,
                    "handoff: held write released"
                );
            }
            return Ok(guard);
        }
        waited = true;
        drop(guard);
        let left = max.saturating_sub(start.elapsed());
        if left.is_zero() {
            let to = table
                .shard(shard)
                .and_then(|e| e.handoff)
                .map_or("?", |dc| table.dc_name(dc));
            tracing::warn!(
                shard,
                to,
                held_ms = max.as_millis() as u64,
                "handoff: held write released with 503, the move did not come in time"
            );
            return Err(ProxyError::HandoffHeld {
                dc: table.local_name().to_string(),
                shard,
                to: to.to_string(),
                held_ms: max.as_millis() as u64,
            });
        }
        cx.proxy
            .routes
            .wait_until(|t| !t.holding(shard), left)
            .await;
    }
}
