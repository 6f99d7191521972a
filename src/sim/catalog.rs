//! Per-tenant catalog entities (`AdminHandler`): providers, hardware types, image types,
//! services, cluster templates and partial templates, and the `demo` catalog every tenant starts
//! with, so `{"name":"x","clusterTemplate":"demo","numMachines":1}` works out of the box.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::auth::{self, Caller};
use super::ctx::Ctx;
use super::reply::{self, Resp};

/// The catalog a new tenant gets.
pub(crate) fn demo_catalog() -> BTreeMap<String, BTreeMap<String, Value>> {
    let entries = [
        (
            "providers",
            json!({"name": "sim", "description": "simulated provider", "providertype": "sim",
                   "provisioner": {}}),
        ),
        (
            "hardwaretypes",
            json!({"name": "small", "description": "small", "providermap": {"sim": {"flavor": "small"}}}),
        ),
        (
            "imagetypes",
            json!({"name": "ubuntu", "description": "ubuntu", "providermap": {"sim": {"image": "ubuntu"}}}),
        ),
        (
            "services",
            json!({"name": "base", "description": "base", "dependencies": {}, "provisioner": {}}),
        ),
        (
            "clustertemplates",
            json!({
                "name": "demo",
                "description": "demo template (coopr-sim)",
                "defaults": {"services": ["base"], "provider": "sim", "hardwaretype": "small",
                             "imagetype": "ubuntu", "config": {}},
                "compatibility": {"services": ["base"], "hardwaretypes": ["small"], "imagetypes": ["ubuntu"]},
                "constraints": {},
                "administration": {"leaseduration": {"initial": 0, "max": 0, "step": 0}},
            }),
        ),
    ];
    let mut catalog: BTreeMap<String, BTreeMap<String, Value>> = super::routes::CATALOG_TYPES
        .iter()
        .map(|t| (t.to_string(), BTreeMap::new()))
        .collect();
    for (ty, v) in entries {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        catalog.entry(ty.to_string()).or_default().insert(name, v);
    }
    catalog
}

fn not_found(ty: &str, name: &str) -> Resp {
    reply::text(
        404,
        format!("{} {name} not found", ty.trim_end_matches('s')),
    )
}

/// `GET /v2/{type}`.
pub(crate) fn list(ctx: &Ctx, c: &Caller, ty: &str) -> Resp {
    let state = ctx.shared.read();
    let items: Vec<&Value> = state
        .catalog
        .get(&c.tenant_id)
        .and_then(|t| t.get(ty))
        .map(|m| m.values().collect())
        .unwrap_or_default();
    reply::ok(&items)
}

/// `GET /v2/{type}/{name}`.
pub(crate) fn get(ctx: &Ctx, c: &Caller, ty: &str, name: &str) -> Resp {
    let state = ctx.shared.read();
    match state
        .catalog
        .get(&c.tenant_id)
        .and_then(|t| t.get(ty))
        .and_then(|m| m.get(name))
    {
        Some(v) => reply::ok(v),
        None => not_found(ty, name),
    }
}

/// The entity in the body and its name.
fn entity(ctx: &Ctx) -> Result<(String, Value), Resp> {
    let v = ctx.json()?;
    match v.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => Ok((n.to_string(), v)),
        _ => Err(reply::text(
            400,
            "Invalid request body. Entity must have a name.",
        )),
    }
}

/// `POST /v2/{type}`: tenant admin; 409 if it exists.
pub(crate) fn create(ctx: &Ctx, c: &Caller, ty: &str) -> Resp {
    if let Err(r) = auth::require_admin(c) {
        return r;
    }
    let (name, v) = match entity(ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut state = ctx.shared.write();
    let map = state
        .catalog
        .entry(c.tenant_id.clone())
        .or_default()
        .entry(ty.to_string())
        .or_default();
    if map.contains_key(&name) {
        return reply::text(
            409,
            format!("{} {name} already exists", ty.trim_end_matches('s')),
        );
    }
    map.insert(name, v);
    reply::empty(200)
}

/// `PUT /v2/{type}/{name}`: tenant admin; 400 if the body's name differs.
pub(crate) fn put(ctx: &Ctx, c: &Caller, ty: &str, name: &str) -> Resp {
    if let Err(r) = auth::require_admin(c) {
        return r;
    }
    let (body_name, v) = match entity(ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if body_name != name {
        return reply::text(400, "Entity name does not match the name in the path.");
    }
    let mut state = ctx.shared.write();
    let tenant = state.catalog.entry(c.tenant_id.clone()).or_default();
    tenant
        .entry(ty.to_string())
        .or_default()
        .insert(body_name, v);
    reply::empty(200)
}

/// `DELETE /v2/{type}/{name}`: tenant admin; 200 even if missing.
pub(crate) fn delete(ctx: &Ctx, c: &Caller, ty: &str, name: &str) -> Resp {
    if let Err(r) = auth::require_admin(c) {
        return r;
    }
    let mut state = ctx.shared.write();
    if let Some(m) = state
        .catalog
        .get_mut(&c.tenant_id)
        .and_then(|t| t.get_mut(ty))
    {
        m.remove(name);
    }
    reply::empty(200)
}
