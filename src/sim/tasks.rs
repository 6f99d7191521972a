//! The internal API (`coopr-server/.../http/handler/TaskHandler.java`, `ProvisionerHandler.java`):
//! no header auth, identity comes from body fields. Provisioners register, heartbeat and leave;
//! the superadmin can list them.
//!
//! Under [`TaskMode::Timer`] the simulator finishes operations by itself, so no task is ever
//! queued (`take` → 204) and no worker holds one (`finish` → 417). Under [`TaskMode::External`]
//! it follows `coopr-server/.../scheduler/task/TaskQueueService.java`: an unregistered
//! provisioner gets 403 `Provisioner <id> is not registered.`; `take` hands out the next queued
//! task of the current stage of a running job in the request's tenant (a `SchedulableTask`:
//! `taskId`, `jobId`, `clusterId`, `taskName`, `nodeId`, `config`, the provider in `config`
//! carrying the cluster's sensitive fields); `finish` by anyone but the taker is 417 `Worker is
//! not the owner of the task`; status 0 completes the task (its `result` joins the node's
//! `provisionerResults`, `CONFIRM`'s `ipaddresses`/`hostname` its properties), anything else
//! fails the job. The job completes when its last task does.

use serde_json::{Value, json};

use super::TaskMode;
use super::state::{Action, JobStatus, State, TaskState};
use super::views;

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

fn str_field<'a>(body: &'a Value, name: &str) -> &'a str {
    body.get(name).and_then(Value::as_str).unwrap_or("")
}

/// 403 unless the provisioner is registered (`TaskQueueService`).
fn registered(state: &State, body: &Value) -> Result<(), Resp> {
    let pid = str_field(body, "provisionerId");
    if state.provisioners.contains_key(pid) {
        Ok(())
    } else {
        Err(reply::text(
            403,
            format!("Provisioner {pid} is not registered."),
        ))
    }
}

/// `POST /v2/tasks/take`.
pub(crate) fn take(ctx: &Ctx) -> Resp {
    let body = match require(ctx, &["workerId", "provisionerId", "tenantId"]) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if ctx.shared.cfg.tasks == TaskMode::Timer {
        return reply::empty(204);
    }
    let consumer = format!(
        "{}.{}",
        str_field(&body, "provisionerId"),
        str_field(&body, "workerId")
    );
    let tenant = str_field(&body, "tenantId");
    let mut guard = ctx.shared.write();
    let state = &mut *guard;
    if let Err(r) = registered(state, &body) {
        return r;
    }
    for cl in state.clusters.values_mut() {
        if cl.tenant_id != tenant {
            continue;
        }
        let Some(job) = cl.jobs.last_mut() else {
            continue;
        };
        if !job.external || job.status != JobStatus::Running {
            continue;
        }
        let Some(stage) = job
            .tasks
            .iter()
            .filter(|t| t.state != TaskState::Done)
            .map(|t| t.stage)
            .min()
        else {
            continue;
        };
        let Some(task) = job
            .tasks
            .iter_mut()
            .find(|t| t.stage == stage && t.state == TaskState::Queued)
        else {
            continue;
        };
        task.state = TaskState::Taken(consumer);
        let (task, job) = (task.clone(), job.clone());
        let cl = &*cl;
        let node = state
            .nodes
            .get(&task.node)
            .map(|n| n.body.clone())
            .unwrap_or(Value::Null);
        let mut provider = cl.provider.clone();
        if let Some(p) = provider
            .get_mut("provisioner")
            .and_then(Value::as_object_mut)
        {
            p.extend(cl.sensitive.clone());
        }
        let props = node.get("properties").cloned().unwrap_or(json!({}));
        let mut config = json!({
            "cluster": cl.config,
            "service": if task.service.is_empty() { Value::Null } else {
                json!({"name": task.service, "action": {"type": "shell", "fields": {}}})
            },
            "hostname": props.get("hostname"),
            "ipaddresses": props.get("ipaddresses"),
            "nodenum": props.get("nodenum"),
            "sshuser": props.get("sshuser"),
            "hardwaretype": props.get("hardwaretype"),
            "imagetype": props.get("imagetype"),
            "flavor": props.get("flavor"),
            "image": props.get("image"),
            "automators": props.get("automators"),
            "services": props.get("services"),
            "provider": provider,
            "nodes": {},
        });
        // `TaskConfigCodec`: the node's provisioner results sit at the top level of `config`.
        if let (Some(cfg), Some(results)) = (
            config.as_object_mut(),
            node.get("provisionerResults").and_then(Value::as_object),
        ) {
            cfg.extend(results.clone());
        }
        let out = json!({
            "taskId": views::task_ref(cl.id, &job, task.num),
            "jobId": views::job_ref(cl.id, &job),
            "clusterId": job.cluster_ref.clone().unwrap_or_else(|| views::cid(cl.id)),
            "taskName": task.name,
            "nodeId": task.node,
            "config": config,
        });
        return reply::with_cluster(reply::ok(&out), views::cid(cl.id));
    }
    reply::empty(204)
}

/// `POST /v2/tasks/finish`.
pub(crate) fn finish(ctx: &Ctx) -> Resp {
    let body = match require(ctx, &["workerId", "provisionerId", "tenantId", "status"]) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let task_id = str_field(&body, "taskId").to_string();
    let not_owner = || {
        let resp = reply::text(417, "Worker is not the owner of the task");
        match ClusterId::from_task_or_job(&task_id) {
            Ok(id) => reply::with_cluster(resp, id.to_string()),
            Err(_) => resp,
        }
    };
    if ctx.shared.cfg.tasks == TaskMode::Timer {
        return not_owner();
    }
    let consumer = format!(
        "{}.{}",
        str_field(&body, "provisionerId"),
        str_field(&body, "workerId")
    );
    let status = match body.get("status") {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(1),
        Some(Value::String(s)) => s.trim().parse::<i64>().unwrap_or(1),
        _ => 1,
    };
    let mut guard = ctx.shared.write();
    let state = &mut *guard;
    if let Err(r) = registered(state, &body) {
        return r;
    }
    let Ok(cid) = ClusterId::from_task_or_job(&task_id) else {
        return not_owner();
    };
    let Some(cl) = state.clusters.get_mut(&cid.get()) else {
        return not_owner();
    };
    let Some(job) = cl.jobs.last_mut() else {
        return not_owner();
    };
    let cluster_num = cl.id;
    let job_view = job.clone();
    let Some(task) = job.tasks.iter_mut().find(|t| {
        t.state == TaskState::Taken(consumer.clone())
            && views::task_ref(cluster_num, &job_view, t.num) == task_id
    }) else {
        return not_owner();
    };
    let (node_id, name) = (task.node.clone(), task.name.clone());
    task.state = if status == 0 {
        TaskState::Done
    } else {
        TaskState::Failed
    };
    let action: Action = job.action;
    if status != 0 {
        job.status = JobStatus::Failed;
        cl.status = action.failure_status();
    } else if job.tasks.iter().all(|t| t.state == TaskState::Done) {
        job.status = JobStatus::Complete;
        cl.status = action.success_status();
    }
    if status == 0
        && let Some(node) = state.nodes.get_mut(&node_id)
    {
        if let (Some(results), Some(new)) = (
            node.body
                .get_mut("provisionerResults")
                .and_then(Value::as_object_mut),
            body.get("result").and_then(Value::as_object),
        ) {
            results.extend(new.clone());
        }
        if name == "CONFIRM"
            && let Some(props) = node
                .body
                .get_mut("properties")
                .and_then(Value::as_object_mut)
        {
            for key in ["ipaddresses", "hostname"] {
                if let Some(v) = body.get(key) {
                    props.insert(key.to_string(), v.clone());
                }
            }
        }
    }
    reply::with_cluster(reply::empty(200), cid.to_string())
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
