//! The internal API (`TaskHandler`, `ProvisionerHandler`): no header auth, identity comes from
//! body fields. Minimal: the simulator finishes operations by itself, so no task is ever queued
//! (`take` → 204) and no worker holds one (`finish` → 417). Provisioners register, heartbeat
//! and leave; the superadmin can list them.

use serde_json::Value;

use super::auth::{self, Caller};
use super::ctx::Ctx;
use super::reply::{self, Resp};
use crate::ids::ClusterId;

/// The body as an object with every listed field present, else 400.
fn require(ctx: &Ctx, fields: &[&str]) -> Result<Value, Resp> {
    let body = ctx.json()?;
    if !body.is_object() {
        return Err(reply::text(400, "Invalid request body."));
    }
    if let Some(f) = fields
        .iter()
        .find(|f| body.get(**f).is_none_or(Value::is_null))
    {
        return Err(reply::text(400, format!("{f} must be specified.")));
    }
    Ok(body)
}

/// `POST /v2/tasks/take`: 204, nothing queued.
pub(crate) fn take(ctx: &Ctx) -> Resp {
    match require(ctx, &["workerId", "provisionerId", "tenantId"]) {
        Ok(_) => reply::empty(204),
        Err(r) => r,
    }
}

/// `POST /v2/tasks/finish`: 417, this worker holds no task.
pub(crate) fn finish(ctx: &Ctx) -> Resp {
    match require(ctx, &["workerId", "provisionerId", "tenantId", "status"]) {
        Ok(body) => {
            let task = body.get("taskId").and_then(Value::as_str).unwrap_or("");
            let resp = reply::text(417, format!("worker does not own task {task}"));
            match ClusterId::from_task_or_job(task) {
                Ok(id) => reply::with_cluster(resp, id.to_string()),
                Err(_) => resp,
            }
        }
        Err(r) => r,
    }
}

/// `PUT /v2/provisioners/{pid}`: registers or updates.
pub(crate) fn provisioner_put(ctx: &Ctx, pid: &str) -> Resp {
    match require(ctx, &[]) {
        Ok(body) => {
            ctx.shared
                .write()
                .provisioners
                .insert(pid.to_string(), body);
            reply::empty(200)
        }
        Err(r) => r,
    }
}

/// `POST /v2/provisioners/{pid}/heartbeat`: 404 if not registered.
pub(crate) fn heartbeat(ctx: &Ctx, pid: &str) -> Resp {
    let body = match require(ctx, &[]) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut state = ctx.shared.write();
    match state.provisioners.get_mut(pid) {
        Some(p) => {
            if let (Some(obj), Some(usage)) = (p.as_object_mut(), body.get("usage")) {
                obj.insert("usage".into(), usage.clone());
            }
            reply::empty(200)
        }
        None => reply::text(404, format!("provisioner {pid} not found")),
    }
}

/// `DELETE /v2/provisioners/{pid}`: 200.
pub(crate) fn provisioner_delete(ctx: &Ctx, pid: &str) -> Resp {
    ctx.shared.write().provisioners.remove(pid);
    reply::empty(200)
}

/// `GET /v2/provisioners` (superadmin).
pub(crate) fn provisioner_list(ctx: &Ctx, c: &Caller) -> Resp {
    if let Err(r) = auth::require_superadmin(c) {
        return r;
    }
    let state = ctx.shared.read();
    let out: Vec<&Value> = state.provisioners.values().collect();
    reply::ok(&out)
}

/// `GET /v2/provisioners/{pid}` (superadmin).
pub(crate) fn provisioner_get(ctx: &Ctx, c: &Caller, pid: &str) -> Resp {
    if let Err(r) = auth::require_superadmin(c) {
        return r;
    }
    match ctx.shared.read().provisioners.get(pid) {
        Some(p) => reply::ok(p),
        None => reply::text(404, format!("provisioner {pid} not found")),
    }
}
