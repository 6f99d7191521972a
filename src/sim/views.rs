//! The JSON shapes Coopr returns for clusters (docs/coopr-api.md §3): details, summaries, the
//! `ClusterStatusResponse` (lowercase `clusterid`) and job plans (UPPERCASE names).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::lifecycle::{Effective, effective};
use super::state::{Action, Cluster, ClusterStatus, Job, JobStatus, Node};
use crate::ids::{self, ClusterId};

/// The 8-digit form of a stored cluster id.
pub(crate) fn cid(id: u64) -> String {
    format!("{id:08}")
}

/// A job's id: `<cluster as the request wrote it>-<job>` when it was started that way
/// (`coopr-server/.../scheduler/task/JobId.java`: `%s-%03d`), else `<8-digit cluster>-<job>`.
pub(crate) fn job_ref(cluster: u64, job: &Job) -> String {
    match &job.cluster_ref {
        Some(written) => format!("{written}-{:03}", job.num),
        None => job_id(cluster, job.num),
    }
}

/// A task's id under its job (`TaskId.java`: `%s-%03d`).
pub(crate) fn task_ref(cluster: u64, job: &Job, task: u64) -> String {
    match &job.cluster_ref {
        Some(_) => format!("{}-{task:03}", job_ref(cluster, job)),
        None => task_id(cluster, job.num, task),
    }
}

/// The job id `<cluster>-<job>`.
pub(crate) fn job_id(cluster: u64, job: u64) -> String {
    ClusterId::new(cluster)
        .map_or_else(|| format!("{cluster:08}-{job:03}"), |c| ids::job_id(c, job))
}

fn task_id(cluster: u64, job: u64, task: u64) -> String {
    ClusterId::new(cluster).map_or_else(
        || format!("{cluster:08}-{job:03}-{task:03}"),
        |c| ids::task_id(c, job, task),
    )
}

/// `GET /v2/clusters/{id}/status`, serialised straight from borrowed data.
#[derive(Serialize)]
pub(crate) struct StatusResponse {
    clusterid: String,
    status: ClusterStatus,
    action: Option<Action>,
    actionstatus: Option<JobStatus>,
    stepstotal: u64,
    stepscompleted: u64,
}

pub(crate) fn status(c: &Cluster, now: u64) -> StatusResponse {
    let e = effective(c, now);
    StatusResponse {
        clusterid: cid(c.id),
        status: e.status,
        action: e.action,
        actionstatus: e.job,
        stepstotal: e.steps_total,
        stepscompleted: e.steps_done,
    }
}

fn progress(e: &Effective) -> Value {
    json!({
        "action": e.action,
        "actionstatus": e.job,
        "stepstotal": e.steps_total,
        "stepscompleted": e.steps_done,
    })
}

fn message(e: &Effective) -> &'static str {
    match e.job {
        Some(JobStatus::Failed) => "Job failed.",
        Some(JobStatus::Paused) => "Job paused.",
        _ => "",
    }
}

fn named(v: &Value) -> Value {
    json!({ "name": v.get("name").cloned().unwrap_or(Value::Null) })
}

/// A list item (`ClusterSummary`).
pub(crate) fn summary(c: &Cluster, now: u64) -> Value {
    let e = effective(c, now);
    json!({
        "id": cid(c.id),
        "name": c.name,
        "description": c.description,
        "ownerId": c.owner,
        "createTime": c.create_time,
        "expireTime": c.expire_time,
        "numNodes": c.nodes.len(),
        "status": e.status,
        "provider": named(&c.provider),
        "clusterTemplate": named(&c.template),
        "services": c.services,
        "progress": progress(&e),
    })
}

/// `GET /v2/clusters/{id}`.
pub(crate) fn details(c: &Cluster, now: u64, nodes: &BTreeMap<String, Node>) -> Value {
    let e = effective(c, now);
    let planted = timer_create_done(c, &e);
    let node_list: Vec<Value> = c
        .nodes
        .iter()
        .filter_map(|n| nodes.get(n).map(|n| n.body.clone()))
        .map(|mut n| {
            if planted {
                plant_ssh_auth(&mut n);
            }
            n
        })
        .collect();
    json!({
        "id": cid(c.id),
        "name": c.name,
        "description": c.description,
        "account": { "userId": c.owner, "tenantId": c.tenant_id },
        "createTime": c.create_time,
        "expireTime": c.expire_time,
        "provider": c.provider,
        "clusterTemplate": c.template,
        "nodes": node_list,
        "services": c.services,
        "latestJobId": c.latest().map(|j| job_ref(c.id, j)),
        "status": e.status,
        "config": c.config,
        "links": [],
        "progress": progress(&e),
        "message": message(&e),
    })
}

/// Whether a clock-driven create of this cluster has finished. Under the task protocol the
/// provisioner's `CONFIRM` result carries `ssh-auth` instead (`super::tasks::finish`).
fn timer_create_done(c: &Cluster, e: &Effective) -> bool {
    let Some(pos) = c
        .jobs
        .iter()
        .rposition(|j| j.action == Action::ClusterCreate)
    else {
        return false;
    };
    let job = &c.jobs[pos];
    let status = if pos + 1 == c.jobs.len() {
        e.job
    } else {
        Some(job.status)
    };
    !job.external && status == Some(JobStatus::Complete)
}

/// `provisionerResults.ssh-auth` as a provisioner's `CONFIRM` reports it
/// (`coopr-server/.../provisioner/mock/MockWorker.java`), with the planted password.
pub(crate) fn plant_ssh_auth(node: &mut Value) {
    if let Some(results) = node
        .get_mut("provisionerResults")
        .and_then(Value::as_object_mut)
    {
        results
            .entry("ssh-auth")
            .or_insert_with(|| json!({"user": "root", "password": super::SSH_PASSWORD}));
    }
}

/// A job plan (`formatJobPlan`): UPPERCASE action and task names.
pub(crate) fn plan(c: &Cluster, job: &Job, now: u64) -> Value {
    let e = effective(c, now);
    let total = job.tasks.len() as u64;
    let is_latest = c.latest().is_some_and(|l| l.num == job.num);
    let done = if is_latest { e.steps_done } else { total };
    let mut stages: Vec<Vec<Value>> = Vec::new();
    let mut current = 0u32;
    for (i, t) in job.tasks.iter().enumerate() {
        let stage = t.stage as usize;
        while stages.len() <= stage {
            stages.push(Vec::new());
        }
        if (i as u64) < done.max(1) {
            current = t.stage;
        }
        stages[stage].push(json!({
            "id": task_ref(c.id, job, t.num),
            "taskName": t.name,
            "nodeId": t.node,
            "service": t.service,
        }));
    }
    json!({
        "id": job_ref(c.id, job),
        "clusterId": job.cluster_ref.clone().unwrap_or_else(|| cid(c.id)),
        "action": job.action.lower().to_ascii_uppercase(),
        "currentStage": current,
        "stages": stages,
    })
}

/// The Node JSON for node `nodenum` of a new cluster.
pub(crate) fn new_node(id: &str, c: &Cluster, nodenum: u64) -> Value {
    let host = format!("sim-{:08}-{nodenum}.local", c.id);
    let octets = [10, (c.id >> 8) as u8, c.id as u8, (nodenum % 250) as u8];
    json!({
        "id": id,
        "clusterId": cid(c.id),
        "services": c.services.iter().map(|s| json!({"name": s})).collect::<Vec<_>>(),
        "properties": {
            "hostname": host,
            "ipaddresses": {"access_v4": format!("{}.{}.{}.{}", octets[0], octets[1], octets[2], octets[3])},
            "nodenum": nodenum,
            "hardwaretype": c.hardwaretype,
            "imagetype": c.imagetype,
            "flavor": c.hardwaretype,
            "image": c.imagetype,
            "sshuser": "root",
            "services": c.services,
            "automators": [],
        },
        "actions": [],
        "provisionerResults": {},
        "links": [],
    })
}
