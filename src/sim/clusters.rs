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
pub(crate) fn read(ctx: &Ctx, c: &Caller, id_text: &str, kind: ReadKind) -> Resp {
    let id = match ClusterId::parse(id_text) {
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
        ReadKind::Plan(plan_id) => plan(ctx, &state, cl, id_text, &plan_id, now),
    }
}

/// `GET /v2/clusters/{id}/plans/{job}`. With `job_ids_as_written`, as
/// `coopr-server/.../http/handler/ClusterHandler.java` does it: `JobId.fromString` (one `-`,
/// numeric job part, else 400 with Java's message), the job looked up by number and the NUMERIC
/// cluster part (`SQLClusterStore.getClusterJob`; none: Coopr's NPE, a 500), then 400 unless the
/// job's cluster part equals the path's `{id}` as a STRING: a job made by `DELETE
/// /v2/clusters/42` (`42-007`) is found under `/v2/clusters/42` only, and `00000042-007` is not
/// found under `/v2/clusters/42`.
fn plan(ctx: &Ctx, state: &State, cl: &Cluster, id_text: &str, plan_id: &str, now: u64) -> Resp {
    let id = cl.id;
    if !ctx.shared.cfg.job_ids_as_written {
        let Ok(owner) = ClusterId::from_task_or_job(plan_id) else {
            return reply::text(400, format!("invalid job id {plan_id}"));
        };
        let num = plan_id
            .split('-')
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok());
        let (Some(num), true) = (num, owner.get() == id) else {
            return reply::text(
                400,
                format!("job {plan_id} does not belong to cluster {}", cid(id)),
            );
        };
        return match cl.jobs.iter().find(|j| j.num == num) {
            Some(job) => reply::ok(&views::plan(cl, job, now)),
            None => reply::text(500, format!("job {plan_id} not found")),
        };
    }
    let invalid = || reply::text(400, format!("invalid job id string {plan_id}"));
    let Some(dash) = plan_id.find('-').filter(|i| *i > 0) else {
        return invalid();
    };
    let (cluster_part, num_part) = (&plan_id[..dash], &plan_id[dash + 1..]);
    if num_part.contains('-') {
        return invalid();
    }
    let Some(num) = java_long(num_part) else {
        return reply::text(400, format!("For input string: \"{num_part}\""));
    };
    let Some(owner) = java_long(cluster_part) else {
        return reply::text(400, format!("For input string: \"{cluster_part}\""));
    };
    let job = state
        .clusters
        .get(&owner)
        .and_then(|c| c.jobs.iter().find(|j| j.num == num).map(|j| (c, j)));
    let Some((owner_cl, job)) = job else {
        return reply::text(500, "Exception getting plan.");
    };
    let job_cluster = job.cluster_ref.clone().unwrap_or_else(|| cid(owner_cl.id));
    if job_cluster != id_text {
        return reply::text(
            400,
            format!("Job {plan_id} does not belong to cluster {id_text}"),
        );
    }
    reply::ok(&views::plan(owner_cl, job, now))
}

/// `Long.valueOf`: an optional sign and decimal digits, within `i64`; negatives never match a
/// stored id, so they are `None` here too.
fn java_long(text: &str) -> Option<u64> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
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
    let Some(mut provider) = lookup("providers", &provider_name) else {
        return reply::text(404, format!("provider {provider_name} does not exist"));
    };
    // `ClusterService.prepareClusterForOperation`: overridable admin fields and user fields of
    // the request join `provider.provisioner`; sensitive ones go to the credential store.
    let mut sensitive = serde_json::Map::new();
    if let Some(fields) = req.get("providerFields") {
        let ty_name = provider
            .get("providertype")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(ty) =
            super::catalog::plugin_type(&state.catalog, &c.tenant_id, "providertypes", ty_name)
        {
            let (plain, secret) = super::catalog::group_fields(&ty, fields);
            if let Some(obj) = provider.as_object_mut() {
                let prov = obj.entry("provisioner").or_insert_with(|| json!({}));
                if let Some(prov) = prov.as_object_mut() {
                    prov.extend(plain);
                }
            }
            sensitive.extend(secret);
        }
    }
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
        sensitive,
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
    if cfg.solve_layout {
        lifecycle::solved(&mut state.counters, &mut cluster, now, None);
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
    lifecycle::start(op, &mut cluster, Action::ClusterCreate, &services);
    state.clusters.insert(id, cluster);
    reply::with_cluster(reply::ok(&json!({ "id": cid(id) })), cid(id))
}
