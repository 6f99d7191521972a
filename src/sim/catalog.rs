//! Per-tenant catalog entities (`AdminHandler`): providers, hardware types, image types,
//! services, cluster templates and partial templates, and the `demo` catalog every tenant starts
//! with, so `{"name":"x","clusterTemplate":"demo","numMachines":1}` works out of the box.
//!
//! Plugin types (`providertypes`, `automatortypes`) live in the superadmin tenant, as in Coopr:
//! provisioners `PUT` them on the tasks port (`coopr-server/.../http/handler/ProvisionerHandler.java`),
//! users read them on the external port (`.../AdminHandler.java`). The demo provider type `sim`
//! follows `coopr-server/templates/mock/plugins/providertypes/aws.json`: admin fields `api_user`
//! and `api_password` (not overridable) and overridable ones; the demo provider `sim` fills the
//! admin fields, so every cluster's `provider.provisioner` holds [`super::API_PASSWORD`].

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
                   "provisioner": {"api_user": "sim-api-user", "api_password": super::API_PASSWORD,
                                   "region": "sim-1"}}),
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
        .chain(&PLUGIN_TYPES)
        .map(|t| (t.to_string(), BTreeMap::new()))
        .collect();
    catalog
        .entry("providertypes".to_string())
        .or_default()
        .insert("sim".to_string(), sim_provider_type());
    for (ty, v) in entries {
        let name = v["name"].as_str().unwrap_or_default().to_string();
        catalog.entry(ty.to_string()).or_default().insert(name, v);
    }
    catalog
}

/// The plugin type kinds.
pub(crate) const PLUGIN_TYPES: [&str; 2] = ["providertypes", "automatortypes"];

/// The demo provider type, shaped like `coopr-server/templates/mock/plugins/providertypes/aws.json`.
fn sim_provider_type() -> Value {
    json!({
        "name": "sim",
        "description": "simulated provider type (coopr-sim)",
        "parameters": {
            "admin": {
                "fields": {
                    "api_user": {"label": "API user", "tip": "API user", "type": "text"},
                    "api_password": {"label": "API password", "tip": "API password", "type": "password"},
                    "region": {"label": "Region", "tip": "Region", "type": "text",
                               "default": "sim-1", "override": true},
                    "ssh_keypair": {"label": "Key pair", "tip": "Key pair name", "type": "text",
                                    "override": true},
                },
                "required": [["api_user", "api_password"]],
            },
            "user": {
                "fields": {
                    "user_token": {"label": "User token", "tip": "Per-cluster secret",
                                   "type": "password", "sensitive": true},
                },
                "required": [],
            },
        },
        "resourceTypes": {"ssh_keys": {"format": "file", "permissions": "0400"}},
    })
}

/// The plugin type `kind/name` as the tenant sees it: its own, else the superadmin's.
pub(crate) fn plugin_type(
    catalog: &BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>,
    tenant_id: &str,
    kind: &str,
    name: &str,
) -> Option<Value> {
    [tenant_id, auth::SUPERADMIN].iter().find_map(|t| {
        catalog
            .get(*t)
            .and_then(|c| c.get(kind))
            .and_then(|m| m.get(name))
            .cloned()
    })
}

/// Provider fields by name.
pub(crate) type Fields = Vec<(String, Value)>;

/// Splits `providerFields` of a request the way `ProviderType.groupFields` does
/// (`coopr-server/.../spec/plugin/ProviderType.java`): only overridable admin fields and user
/// fields count; a field whose schema says `sensitive` goes to the credential store (returned
/// second), the others into the provider (first). Other fields are ignored.
pub(crate) fn group_fields(provider_type: &Value, input: &Value) -> (Fields, Fields) {
    let (mut plain, mut sensitive) = (Vec::new(), Vec::new());
    let Some(input) = input.as_object() else {
        return (plain, sensitive);
    };
    let fields = |kind: &str| {
        provider_type
            .pointer(&format!("/parameters/{kind}/fields"))
            .cloned()
    };
    let (admin, user) = (fields("admin"), fields("user"));
    for (k, v) in input {
        let schema = admin
            .as_ref()
            .and_then(|a| a.get(k))
            .filter(|f| f.get("override").and_then(Value::as_bool) == Some(true))
            .or_else(|| user.as_ref().and_then(|u| u.get(k)));
        match schema {
            Some(f) if f.get("sensitive").and_then(Value::as_bool) == Some(true) => {
                sensitive.push((k.clone(), v.clone()))
            }
            Some(_) => plain.push((k.clone(), v.clone())),
            None => {}
        }
    }
    (plain, sensitive)
}

/// `GET /v2/plugins/{kind}`.
pub(crate) fn plugin_type_list(ctx: &Ctx, kind: &str) -> Resp {
    let state = ctx.shared.read();
    let items: Vec<&Value> = state
        .catalog
        .get(auth::SUPERADMIN)
        .and_then(|t| t.get(kind))
        .map(|m| m.values().collect())
        .unwrap_or_default();
    reply::ok(&items)
}

/// `GET /v2/plugins/{kind}/{name}`.
pub(crate) fn plugin_type_get(ctx: &Ctx, kind: &str, name: &str) -> Resp {
    match plugin_type(&ctx.shared.read().catalog, auth::SUPERADMIN, kind, name) {
        Some(v) => reply::ok(&v),
        None => not_found(kind, name),
    }
}

/// `PUT /v2/plugins/{kind}/{name}` on the tasks port (`ProvisionerHandler`): no `Coopr-*`
/// headers; the type goes to the superadmin tenant.
pub(crate) fn plugin_type_put(ctx: &Ctx, kind: &str, name: &str) -> Resp {
    let (body_name, v) = match entity(ctx) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if body_name != name {
        return reply::text(400, "Entity name does not match the name in the path.");
    }
    let mut state = ctx.shared.write();
    state
        .catalog
        .entry(auth::SUPERADMIN.to_string())
        .or_default()
        .entry(kind.to_string())
        .or_default()
        .insert(body_name, v);
    reply::empty(200)
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
