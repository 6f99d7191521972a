//! Plugin resources (`PluginHandler`), for streaming tests: an upload is consumed as a stream
//! (only its length and FNV-1a 64 checksum are kept, never the bytes), and a download streams
//! back `size` bytes of the deterministic pattern of [`super::body::blob_byte`]. Also
//! `GET /v2/sim/blob?size=N` (no auth), which streams N pattern bytes.

use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use super::Shared;
use super::auth::{self, Caller};
use super::body::{FNV_OFFSET, fnv1a64};
use super::ctx::Ctx;
use super::reply::{self, Resp};
use super::routes::ResKey;
use super::state::ResVersion;

fn store_key(tenant_id: &str, k: &ResKey) -> String {
    format!(
        "{tenant_id}/{}/{}/{}/{}",
        k.kind, k.name, k.res_type, k.res_name
    )
}

/// `POST /v2/plugins/{kind}/{name}/{resType}/{resName}`: tenant admin; replies
/// `{"name","version","status":"inactive","size","fnv1a64":"<16 hex digits>"}`.
pub(crate) async fn upload(
    shared: &Shared,
    caller: Option<&Caller>,
    key: ResKey,
    mut body: Incoming,
) -> Resp {
    let Some(c) = caller else {
        return reply::text(500, "internal routing error");
    };
    if let Err(r) = auth::require_admin(c) {
        return r;
    }
    let (mut size, mut hash) = (0u64, FNV_OFFSET);
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    size += data.len() as u64;
                    hash = fnv1a64(hash, data);
                }
            }
            Err(e) => return reply::text(400, format!("cannot read upload: {e}")),
        }
    }
    let mut state = shared.write();
    let versions = state
        .plugins
        .entry(store_key(&c.tenant_id, &key))
        .or_default();
    let version = versions.last().map_or(1, |v| v.version + 1);
    versions.push(ResVersion {
        version,
        size,
        fnv1a64: hash,
        status: "inactive".into(),
    });
    reply::ok(&json!({
        "name": key.res_name,
        "version": version,
        "status": "inactive",
        "size": size,
        "fnv1a64": format!("{hash:016x}"),
    }))
}

/// `GET /v2/tenants/{tenantId}/{kind}/{name}/{resType}/{resName}/versions/{v}`.
pub(crate) fn download(ctx: &Ctx, tenant_id: &str, key: &ResKey, v: &str) -> Resp {
    let version = match v.parse::<u64>() {
        Ok(n) if n > 0 => n,
        _ => return reply::text(400, "version must be a positive integer."),
    };
    let state = ctx.shared.read();
    let found = state
        .plugins
        .get(&store_key(tenant_id, key))
        .and_then(|vs| vs.iter().find(|r| r.version == version));
    match found {
        Some(r) => reply::stream(r.size),
        None => reply::text(
            404,
            format!("resource {} version {version} not found", key.res_name),
        ),
    }
}

/// `GET /v2/sim/blob?size=N`.
pub(crate) fn blob(ctx: &Ctx) -> Resp {
    match ctx.query_values("size").first().map(|s| s.parse::<u64>()) {
        Some(Ok(n)) => reply::stream(n),
        _ => reply::text(400, "size must be a non-negative integer."),
    }
}
