//! `POST /sim/expire/{id}` (simulator only, no `Coopr-*` headers, never behind the security
//! token): what Coopr's lease janitor does to a cluster whose lease ran out, now, without going
//! through the API. `coopr-server/src/main/java/co/cask/coopr/scheduler/ClusterCleanup.java`
//! (`expireClusters`) picks the clusters `SQLClusterStore.getExpiringClusters` returns (status
//! `active` or `incomplete`, `expire_time` before now) and calls
//! `ClusterService.requestClusterDelete` for each: a `CLUSTER_DELETE` job, the cluster `pending`
//! until the delete ends (`terminated`). Here the cluster's lease is set to end now (unless it
//! already ended) and that delete starts; a cluster in another status is 409, as the janitor
//! would not pick it. The router sees none of it: only its anti-entropy sweep can.

use super::ctx::Ctx;
use super::lifecycle::{self, OpStart};
use super::reply::{self, Resp};
use super::state::{Action, ClusterStatus};
use crate::ids::ClusterId;

/// Expires cluster `id_text` as the janitor does.
pub(crate) fn expire(ctx: &Ctx, id_text: &str) -> Resp {
    let id = match ClusterId::parse(id_text) {
        Ok(id) => id,
        Err(e) => return reply::text(400, e.to_string()),
    };
    let now = ctx.shared.clock.now_ms();
    let cfg = &ctx.shared.cfg;
    let mut guard = ctx.shared.write();
    let state = &mut *guard;
    let Some(cl) = state.clusters.get_mut(&id.get()) else {
        return reply::text(404, format!("cluster {id} not found"));
    };
    lifecycle::settle(cl, now);
    if !matches!(cl.status, ClusterStatus::Active | ClusterStatus::Incomplete) {
        return reply::text(
            409,
            format!("cluster {id} is not active or incomplete: the janitor does not expire it"),
        );
    }
    if cl.expire_time == 0 || cl.expire_time >= now {
        cl.expire_time = now.saturating_sub(1);
    }
    let op = OpStart {
        counters: &mut state.counters,
        rng: &mut state.rng,
        now,
        delay_ms: cfg.op_delay.as_millis() as u64,
        failure_rate: cfg.failure_rate,
        external: cfg.tasks == super::TaskMode::External,
        cluster_ref: None,
    };
    lifecycle::start(op, cl, Action::ClusterDelete, &[]);
    reply::ok(&serde_json::json!({ "id": id.to_string(), "expired": true }))
}
