//! The check after every create this DC's Coopr answered: the new cluster's id must fall in
//! this DC's home shards (or be pinned here). A misplaced id goes to `ownership::Misplaced`
//! (logged, counted, pinned here, reported by `/ready`); the client's answer is unchanged.

use super::ctx::Ctx;
use super::respond::buffer;
use crate::body::ProxyBody;
use crate::classify::Kind;
use crate::error::ProxyError;
use crate::ids::ClusterId;
use crate::routing::RoutingTable;
use http::Response;

/// Checks the id of a cluster created by a local Coopr server. The answer (`{"id": "..."}`,
/// small) is buffered up to `limits.inspect_body_bytes`; a larger one passes unchecked.
pub(super) async fn check_create(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    resp: Response<ProxyBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Some(misplaced) = &cx.proxy.misplaced else {
        return Ok(resp);
    };
    if cx.class.kind != Kind::Create || !resp.status().is_success() {
        return Ok(resp);
    }
    let (head, body) = resp.into_parts();
    let (bytes, body) = buffer(body, cx.rt.config.raw.limits.inspect_body_bytes)
        .await
        .map_err(|e| ProxyError::Backend(e.to_string()))?;
    if let Some(id) = created_id(&bytes) {
        misplaced.check(table, id);
    }
    Ok(Response::from_parts(head, body))
}

/// The `id` member of Coopr's create answer.
fn created_id(body: &[u8]) -> Option<ClusterId> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ClusterId::parse(v.get("id")?.as_str()?).ok()
}
