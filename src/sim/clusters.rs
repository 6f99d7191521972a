//! Cluster creation, the cluster list and every read under `/v2/clusters/{id}`. Non-admin users
//! see only their own clusters; a cluster the caller cannot see is 404. A non-numeric id in a
//! read path is 500, as in Coopr (the handler does not catch the parse error).

use serde_json::{Value, json};

use super::auth::Caller;
use super::ctx::Ctx;
use super::lifecycle::{self, OpStart, effective};
use super::reply::{self, Resp};
use super::routes::ReadKind;
use super::state::{Action, Cluster, ClusterStatus, Node, State};
use super::views::{self, cid};
use crate::ids::ClusterId;

/// Coopr's `server.max.cluster.size` default.
const MAX_CLUSTER_SIZE: u64 = 10_000;

/// The visible cluster `id` or 404.
pub(crate) fn find<'s>(state: &'s State, c: &Caller, id: ClusterId) -> Result<&'s Cluster, Resp> {
    state
        .clusters
        .get(&id.get())
        .filter(|cl| c.sees(&cl.tenant_id, &cl.owner))
        .ok_or_else(|| reply::text(404, format!("cluster {id} not found")))
}

/// `GET /v2/clusters/{id}[/…]`.
pub(crate) fn read(ctx: &Ctx, c: &Caller, id: &str, kind: ReadKind) -> Resp {
    let id = match ClusterId::parse(id) {
        Ok(id) => id,
        Err(e) => return reply::text(500, e.to_string()),
    };
    let now = ctx.shared.clock.now_ms();
    let state = ctx.shared.read();
    let cl = match find(&state, c, id) {
        Ok(cl) => cl,
        Err(r) => return r,
    };
    match kind {
        ReadKind::Status => match cl.latest() {
            Some(_) => reply::ok(&views::status(cl, now)),
            None => reply::text(404, format!("cluster {id} has no jobs")),
        },
        ReadKind::Details => reply::ok(&views::details(cl, now, &state.nodes)),
        ReadKind::Config => reply::ok(&cl.config),
        ReadKind::Services => reply::ok(&cl.services),
        ReadKind::Plans => {
            if cl.jobs.is_empty() {
                return reply::text(404, format!("cluster {id} has no jobs"));
            }
            let plans: Vec<Value> = cl.jobs.iter().map(|j| views::plan(cl, j, now)).collect();
            reply::ok(&plans)
        }
        ReadKind::Plan(plan_id) => {
            let Ok(owner) = ClusterId::from_task_or_job(&plan_id) else {
                return reply::text(400, format!("invalid job id {plan_id}"));
            };
            let num = plan_id
                .split('-')
                .nth(1)
                .and_then(|n| n.parse::<u64>().ok());
            let (Some(num), true) = (num, owner == id) else {
                return reply::text(
                    400,
                    format!("job {plan_id} does not belong to cluster {id}"),
                );
            };
            match cl.jobs.iter().find(|j| j.num == num) {
                Some(job) => reply::ok(&views::plan(cl, job, now)),
                None => reply::text(500, format!("job {plan_id} not found")),
            }
        }
    }
}

/// `GET /v2/clusters[?status=a,b]`: unknown status values are dropped; none left = all.
pub(crate) fn list(ctx: &Ctx, c: &Caller) -> Resp {
    let wanted: Vec<ClusterStatus> = ctx
        .query_values("status")
        .iter()
        .flat_map(|v| {
            v.split(',')
                .filter_map(ClusterStatus::parse)
                .collect::<Vec<_>>()
        })
        .collect();
    let now = ctx.shared.clock.now_ms();
    let state = ctx.shared.read();
    let mut items: Vec<&Cluster> = state
        .clusters
        .values()
        .filter(|cl| c.sees(&cl.tenant_id, &cl.owner))
        .filter(|cl| wanted.is_empty() || wanted.contains(&effective(cl, now).status))
        .collect();
    items.sort_by(|a, b| b.create_time.cmp(&a.create_time).then(b.id.cmp(&a.id)));
    let out: Vec<Value> = items.iter().map(|cl| views::summary(cl, now)).collect();
    reply::ok(&out)
}

/// A string field of the request, or the template default.
fn field_or(req: &Value, name: &str, defaults: &Value) -> Option<String> {
    req.get(name)
        .and_then(Value::as_str)
        .or_else(|| defaults.get(name).and_then(Value::as_str))
        .map(str::to_string)
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// `POST /v2/clusters`: returns `{"id":"00000042"}`.
pub(crate) fn create(ctx: &Ctx, c: &Caller) -> Resp {
    let req = match ctx.json() {
        Ok(v) if v.is_object() => v,
        Ok(_) => return reply::text(400, "Invalid request body."),
        Err(r) => return r,
    };
    let missing: Vec<&str> = ["name", "clusterTemplate", "numMachines"]
        .into_iter()
        .filter(|f| req.get(*f).is_none_or(Value::is_null))
        .collect();
    if !missing.is_empty() {
        return reply::missing_fields(&missing);
    }
    let (Some(name), Some(template_name)) = (req["name"].as_str(), req["clusterTemplate"].as_str())
    else {
        return reply::text(400, "name and clusterTemplate must be strings.");
    };
    if name.trim().is_empty() {
        return reply::text(400, "Cluster name must not be empty.");
    }
    let num = match req["numMachines"].as_u64() {
        Some(n) if n > 0 && n <= MAX_CLUSTER_SIZE => n,
        Some(n) if n > MAX_CLUSTER_SIZE => {
            return reply::text(
                400,
                format!("numMachines above the limit of {MAX_CLUSTER_SIZE}"),
            );
        }
        _ => return reply::text(400, "numMachines must be greater than 0."),
    };
    let now = ctx.shared.clock.now_ms();
    let cfg = &ctx.shared.cfg;
    let mut guard = ctx.shared.write();
    let state = &mut *guard;
    let catalog = state.catalog.get(&c.tenant_id);
    let lookup = |ty: &str, n: &str| {
        catalog
            .and_then(|t| t.get(ty))
            .and_then(|m| m.get(n))
            .cloned()
    };
    let Some(template) = lookup("clustertemplates", template_name) else {
        return reply::text(
            404,
            format!("cluster template {template_name} does not exist"),
        );
    };
    let defaults = template.get("defaults").cloned().unwrap_or(Value::Null);
    let provider_name = field_or(&req, "provider", &defaults).unwrap_or_default();
    let Some(provider) = lookup("providers", &provider_name) else {
        return reply::text(404, format!("provider {provider_name} does not exist"));
    };
    let hardwaretype = field_or(&req, "hardwaretype", &defaults).unwrap_or_default();
    let imagetype = field_or(&req, "imagetype", &defaults).unwrap_or_default();
    let services = match req
        .get("services")
        .filter(|v| !v.is_null())
        .or(defaults.get("services"))
    {
        None => Vec::new(),
        Some(v) => match strings(Some(v)) {
            Some(s) => s,
            None => return reply::text(400, "services must be an array of names."),
        },
    };
    let lease = req
        .get("initialLeaseDuration")
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    let lease = if lease < 0 {
        template
            .pointer("/administration/leaseduration/initial")
            .and_then(Value::as_u64)
            .unwrap_or(0)
    } else {
        lease as u64
    };
    let id = state.counters.next_cluster();
    let mut cluster = Cluster {
        id,
        name: name.to_string(),
        description: req
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        owner: c.user.clone(),
        tenant_id: c.tenant_id.clone(),
        create_time: now,
        expire_time: if lease == 0 {
            0
        } else {
            now.saturating_add(lease)
        },
        template,
        provider,
        hardwaretype,
        imagetype,
        services: services.clone(),
        config: req
            .get("config")
            .or(defaults.get("config"))
            .cloned()
            .unwrap_or(json!({})),
        nodes: Vec::new(),
        jobs: Vec::new(),
        status: ClusterStatus::Pending,
    };
    for i in 0..num {
        let node_id = state.uuids.uuid();
        let body = views::new_node(&node_id, &cluster, 1000 + i);
        state.nodes.insert(
            node_id.clone(),
            Node {
                tenant_id: c.tenant_id.clone(),
                body,
            },
        );
        cluster.nodes.push(node_id);
    }
    let op = OpStart {
        counters: &mut state.counters,
        rng: &mut state.rng,
        now,
        delay_ms: cfg.op_delay.as_millis() as u64,
        failure_rate: cfg.failure_rate,
    };
    lifecycle::start(op, &mut cluster, Action::ClusterCreate, &services);
    state.clusters.insert(id, cluster);
    reply::with_cluster(reply::ok(&json!({ "id": cid(id) })), cid(id))
}
