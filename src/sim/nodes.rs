//! Nodes (`NodeHandler`) and `POST /v2/getNodeProperties` (`RPCHandler`). Nodes are visible to the
//! same callers as their cluster; a node whose cluster is unknown is visible in its tenant.

use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::ctx::Ctx;
use super::reply::{self, Resp};
use super::state::{Node, State};
use crate::ids::ClusterId;

/// Adds services to a node's JSON (both `services` and `properties.services`).
pub(crate) fn add_services(body: &mut Value, services: &[String]) {
    if let Some(list) = body.get_mut("services").and_then(Value::as_array_mut) {
        list.extend(services.iter().map(|s| json!({"name": s})));
    }
    if let Some(list) = body
        .pointer_mut("/properties/services")
        .and_then(Value::as_array_mut)
    {
        list.extend(services.iter().map(|s| json!(s)));
    }
}

/// The node's cluster id as stored in its JSON.
fn node_cluster(body: &Value) -> Option<ClusterId> {
    match body.get("clusterId")? {
        Value::String(s) => ClusterId::parse(s).ok(),
        Value::Number(n) => n.as_u64().and_then(ClusterId::new),
        _ => None,
    }
}

fn visible(state: &State, c: &Caller, node: &Node) -> bool {
    if node.tenant_id != c.tenant_id {
        return false;
    }
    match node_cluster(&node.body).and_then(|id| state.clusters.get(&id.get())) {
        Some(cl) => c.sees(&cl.tenant_id, &cl.owner),
        None => true,
    }
}

/// `GET /v2/nodes`.
pub(crate) fn list(ctx: &Ctx, c: &Caller) -> Resp {
    let state = ctx.shared.read();
    let out: Vec<&Value> = state
        .nodes
        .values()
        .filter(|n| visible(&state, c, n))
        .map(|n| &n.body)
        .collect();
    reply::ok(&out)
}

/// `GET /v2/nodes/{id}`: `null` if unknown.
pub(crate) fn get(ctx: &Ctx, c: &Caller, id: &str) -> Resp {
    let state = ctx.shared.read();
    match state.nodes.get(id).filter(|n| visible(&state, c, n)) {
        Some(n) => reply::ok(&n.body),
        None => reply::ok(&Value::Null),
    }
}

/// Parses and checks a Node body: it needs an `id` and a numeric `clusterId`.
fn node_body(ctx: &Ctx, c: &Caller) -> Result<(String, ClusterId, Value), Resp> {
    let body = ctx.json()?;
    let Some(id) = body.get("id").and_then(Value::as_str).map(str::to_string) else {
        return Err(reply::text(400, "Node must have an id."));
    };
    let Some(cluster) = node_cluster(&body) else {
        return Err(reply::text(400, "Node must have a numeric clusterId."));
    };
    let state = ctx.shared.read();
    if let Some(cl) = state.clusters.get(&cluster.get())
        && !c.sees(&cl.tenant_id, &cl.owner)
    {
        return Err(reply::text(403, "user unauthorized to write node."));
    }
    Ok((id, cluster, body))
}

fn store(ctx: &Ctx, c: &Caller, id: String, body: Value) {
    let node = Node {
        tenant_id: c.tenant_id.clone(),
        body,
    };
    ctx.shared.write().nodes.insert(id, node);
}

/// `POST /v2/nodes`: 201.
pub(crate) fn create(ctx: &Ctx, c: &Caller) -> Resp {
    match node_body(ctx, c) {
        Ok((id, cluster, body)) => {
            store(ctx, c, id, body);
            reply::with_cluster(reply::empty(201), cluster.to_string())
        }
        Err(r) => r,
    }
}

/// `PUT /v2/nodes/{id}`: 204; 400 if the body's id differs.
pub(crate) fn put(ctx: &Ctx, c: &Caller, path_id: &str) -> Resp {
    match node_body(ctx, c) {
        Ok((id, _, _)) if id != path_id => reply::text(400, "Node id does not match the path."),
        Ok((id, cluster, body)) => {
            store(ctx, c, id, body);
            reply::with_cluster(reply::empty(204), cluster.to_string())
        }
        Err(r) => r,
    }
}

/// `DELETE /v2/nodes/{id}`: 204.
pub(crate) fn delete(ctx: &Ctx, c: &Caller, id: &str) -> Resp {
    let mut state = ctx.shared.write();
    let cluster = state.nodes.get(id).and_then(|n| node_cluster(&n.body));
    if state.nodes.get(id).is_some_and(|n| visible(&state, c, n)) {
        state.nodes.remove(id);
    }
    let resp = reply::empty(204);
    match cluster {
        Some(cl) => reply::with_cluster(resp, cl.to_string()),
        None => resp,
    }
}

fn names(body: &Value, field: &str) -> Vec<String> {
    body.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /v2/getNodeProperties`: `{nodeId:{prop:val}}` for the cluster's nodes that carry all
/// the listed services, with only the listed properties.
pub(crate) fn properties(ctx: &Ctx, c: &Caller) -> Resp {
    let body = match ctx.json() {
        Ok(v) if v.is_object() => v,
        Ok(_) => return reply::text(400, "Invalid request body."),
        Err(r) => return r,
    };
    let id = match body.get("clusterId") {
        Some(Value::String(s)) => ClusterId::parse(s),
        Some(Value::Number(n)) => ClusterId::parse(&n.to_string()),
        _ => return reply::text(400, "clusterId must be specified."),
    };
    let id = match id {
        Ok(id) => id,
        Err(e) => return reply::text(500, e.to_string()),
    };
    let (props, services) = (names(&body, "properties"), names(&body, "services"));
    let state = ctx.shared.read();
    let mut out = Map::new();
    if let Ok(cl) = super::clusters::find(&state, c, id) {
        for node in cl.nodes.iter().filter_map(|n| state.nodes.get(n)) {
            let Some(all) = node.body.get("properties").and_then(Value::as_object) else {
                continue;
            };
            let has = names(&node.body["properties"], "services");
            if !services.iter().all(|s| has.contains(s)) {
                continue;
            }
            let picked: Map<String, Value> = all
                .iter()
                .filter(|(k, _)| props.is_empty() || props.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let node_id = node
                .body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.insert(node_id.to_string(), Value::Object(picked));
        }
    }
    reply::ok(&out)
}
