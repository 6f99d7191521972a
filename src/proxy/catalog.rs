//! Global (catalog) writes: at the catalog's home DC, applied by a local Coopr server and, once
//! it answered 2xx, handed to replication to deliver to every other DC (on disk before the
//! client hears back); elsewhere, forwarded to the home DC's router, whose answer is the
//! client's, or refused with 503 naming the home DC when its router cannot be reached.

use super::ctx::Ctx;
use super::local::to_local;
use super::peer::send_peer;
use super::replicas::CatalogWrite;
use super::respond::replayable;
use crate::body::ProxyBody;
use crate::classify::Api;
use crate::error::ProxyError;
use crate::routing::{Route, RoutingTable};
use bytes::Bytes;
use http::{Response, StatusCode};

/// Applies a global write at this DC (the home) and queues its delivery to the others, one
/// global write at a time (`Proxy::catalog_order`). The
/// body is buffered up to `limits.inspect_body_bytes` to record it; a larger one is applied
/// here and recorded as undeliverable (replication lists it).
pub(super) async fn to_local_catalog(
    cx: &Ctx<'_>,
    body: ProxyBody,
    route: Route,
    api: Api,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Some(repl) = cx.proxy.replication.clone() else {
        return to_local(cx, body, route, api).await;
    };
    let body = replayable(cx.rt, body).await?;
    // Applied and queued one at a time: the queue's order is the order Coopr applied them in,
    // so two writes of one entity end the same everywhere.
    let _order = cx.proxy.catalog_order.lock().await;
    let sent: Option<Bytes> = match &body {
        ProxyBody::Empty => Some(Bytes::new()),
        ProxyBody::Full(b) => Some(b.clone().unwrap_or_default()),
        _ => None,
    };
    let resp = to_local(cx, body, route, api).await?;
    if !resp.status().is_success() {
        return Ok(resp);
    }
    let parts = cx.parts;
    let target = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |pq| pq.as_str());
    repl.catalog_accepted(CatalogWrite {
        method: parts.method.as_str(),
        target,
        headers: &parts.headers,
        body: sent.as_deref(),
        status: resp.status().as_u16(),
    })
    .await;
    Ok(resp)
}

/// Forwards a global write to the catalog's home DC (`dc`). Nothing was sent when its router
/// cannot be reached: the client is told to retry, naming the home DC. A 421 (that router does
/// not take itself for the home: the routers' `catalog.home` disagree, as during a reload) is
/// not routed again by ownership, which knows nothing of the catalog: it is refused (503).
pub(super) async fn to_home(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    body: ProxyBody,
    route: Route,
    dc: usize,
) -> Result<Response<ProxyBody>, ProxyError> {
    match send_peer(cx, table, body, route, dc).await {
        Err(ProxyError::PeerUnreachable { dc, reason }) => {
            Err(ProxyError::CatalogHomeDown { home: dc, reason })
        }
        Ok(resp) if resp.status() == StatusCode::MISDIRECTED_REQUEST => {
            Err(ProxyError::OwnerMoved {
                dc: table.dc_name(dc).to_string(),
            })
        }
        other => other,
    }
}
