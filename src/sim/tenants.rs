//! Tenants (`SuperadminHandler`): superadmin only. A tenant has a generated UUID id (the
//! superadmin tenant's id is `superadmin`) and starts with the demo catalog. Its `workers` count
//! against an optional capacity (`Sim::set_tenant_worker_capacity`), as Coopr's provisioners'.

use serde_json::{Value, json};

use super::auth::{self, Caller, SUPERADMIN};
use super::ctx::Ctx;
use super::reply::{self, Resp};

/// The tenant JSON shown to callers: its specification plus its id.
fn show(id: &str, spec: &Value) -> Value {
    let mut v = spec.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("id".into(), json!(id));
    }
    v
}

/// `{tenant:{name,…}}` (or a bare specification) and its name.
fn spec(ctx: &Ctx) -> Result<(String, Value), Resp> {
    let body = ctx.json()?;
    let spec = body.get("tenant").cloned().unwrap_or(body);
    match spec.get("name").and_then(Value::as_str) {
        Some(name) if !name.is_empty() => Ok((name.to_string(), spec)),
        _ => Err(reply::text(
            400,
            "Invalid request body. Tenant must have a name.",
        )),
    }
}

/// A tenant specification's `workers` (0 when absent).
fn workers(spec: &Value) -> u64 {
    spec.get("workers").and_then(Value::as_u64).unwrap_or(0)
}

/// Whether `spec` fits the worker capacity with every tenant but `name` and the superadmin's
/// own (Coopr's
/// `TenantProvisionerService.checkCapacity`: the change in workers against the free capacity).
fn fits(ctx: &Ctx, state: &super::state::State, name: &str, spec: &Value) -> bool {
    let cap = ctx
        .shared
        .tenant_capacity
        .load(std::sync::atomic::Ordering::SeqCst);
    let others: u64 = state
        .tenants
        .iter()
        .filter(|(n, _)| n.as_str() != name && n.as_str() != SUPERADMIN)
        .map(|(_, t)| workers(&t.spec))
        .sum();
    others.saturating_add(workers(spec)) <= cap
}

fn not_found(name: &str) -> Resp {
    reply::text(404, format!("tenant {name} not found"))
}

/// `GET /v2/tenants`.
pub(crate) fn list(ctx: &Ctx, c: &Caller) -> Resp {
    if let Err(r) = auth::require_superadmin(c) {
        return r;
    }
    let state = ctx.shared.read();
    let out: Vec<Value> = state
        .tenants
        .values()
        .map(|t| show(&t.id, &t.spec))
        .collect();
    reply::ok(&out)
}

/// `GET /v2/tenants/{name}`.
pub(crate) fn get(ctx: &Ctx, c: &Caller, name: &str) -> Resp {
    if let Err(r) = auth::require_superadmin(c) {
        return r;
    }
    match ctx.shared.read().tenants.get(name) {
        Some(t) => reply::ok(&show(&t.id, &t.spec)),
        None => not_found(name),
    }
}

/// `POST /v2/tenants`: 409 if it exists; replies `{"id":…}`.
pub(crate) fn create(ctx: &Ctx, c: &Caller) -> Resp {
    if let Err(r) = auth::require_superadmin(c) {
        return r;
    }
    let (name, spec) = match spec(ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut state = ctx.shared.write();
    if state.tenants.contains_key(&name) {
        return reply::text(409, format!("tenant {name} already exists"));
    }
    if !fits(ctx, &state, &name, &spec) {
        return reply::text(409, "Not enough capacity to add tenant.");
    }
    let id = state.add_tenant(name, spec);
    reply::ok(&json!({ "id": id }))
}

/// `PUT /v2/tenants/{name}`: 400 on a name mismatch; writes the tenant, creating it when
/// unknown (`TenantProvisionerService.writeTenantSpecification` adds a tenant it does not have).
pub(crate) fn put(ctx: &Ctx, c: &Caller, name: &str) -> Resp {
    if let Err(r) = auth::require_superadmin(c) {
        return r;
    }
    let (body_name, spec) = match spec(ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if body_name != name {
        return reply::text(400, "Tenant name does not match the name in the path.");
    }
    let mut state = ctx.shared.write();
    if !fits(ctx, &state, name, &spec) {
        return reply::text(409, "Not enough capacity to update tenant.");
    }
    match state.tenants.get_mut(name) {
        Some(t) => t.spec = spec,
        None => {
            state.add_tenant(name.to_string(), spec);
        }
    }
    reply::empty(200)
}

/// `DELETE /v2/tenants/{name}`: 403 for `superadmin`, 404 if unknown.
pub(crate) fn delete(ctx: &Ctx, c: &Caller, name: &str) -> Resp {
    if let Err(r) = auth::require_superadmin(c) {
        return r;
    }
    if name == SUPERADMIN {
        return reply::text(403, "the superadmin tenant cannot be deleted.");
    }
    let mut state = ctx.shared.write();
    match state.tenants.remove(name) {
        Some(t) => {
            state.catalog.remove(&t.id);
            reply::empty(200)
        }
        None => not_found(name),
    }
}
