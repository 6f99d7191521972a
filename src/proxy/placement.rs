//! The check after every create this DC's Coopr answered: the new cluster's id must fall in
//! this DC's home shards (or be pinned here). A misplaced id goes to `ownership::Misplaced`
//! (logged, counted, pinned here, reported by `/ready`); the client's answer is unchanged.

use super::ctx::Ctx;
use super::respond::buffer;
use crate::body::ProxyBody;
use crate::classify::Kind;
use crate::error::ProxyError;
use crate::ids::ClusterId;
use crate::routing::{Pin, Pins, RoutingTable};
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

/// The same check on a create answer replication already buffered (`answer`). Returns, for a
/// misplaced id that can be pinned here, the snapshot with that pin (the pinner is writing it),
/// so replication records the new cluster by the shard it will be routed by.
pub(super) fn note_created(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    answer: Option<&[u8]>,
) -> Option<RoutingTable> {
    let misplaced = cx.proxy.misplaced.as_ref()?;
    let id = created_id(answer?)?;
    if !misplaced.check(table, id) || table.pin_of(id).is_some() {
        return None;
    }
    let mut pins: Vec<Pin> = table.pins.iter().copied().collect();
    pins.push(Pin {
        lo: id.get(),
        hi: id.get(),
        dc: table.local,
        epoch: table.revision,
    });
    Some(table.clone().with_pins(Pins::new(pins)))
}

/// The `id` member of Coopr's create answer.
fn created_id(body: &[u8]) -> Option<ClusterId> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    ClusterId::parse(v.get("id")?.as_str()?).ok()
}
