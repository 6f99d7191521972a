//! The proxy's side of replication, each one call through [`Replicas`] (`replicas.rs`): the
//! peer-port endpoint, reads of clusters held elsewhere answered from the replica store, the
//! operation opened after an accepted local write, and the list merge.

use super::ctx::{Ctx, Proxy};
use super::local::{to_local, to_standby};
use super::placement::note_created;
use super::replicas::{AcceptedWrite, ReplicaAnswer};
use super::respond::{buffer, inspect, json_response, replayable};
use crate::body::ClientBody;
use crate::body::{Inspected, ProxyBody};
use crate::classify::{Api, Kind};
use crate::error::ProxyError;
use crate::headers;
use crate::routing::{Route, RoutingTable};
use crate::runtime::Runtime;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use std::sync::Arc;

/// The peer port's replication routes: `POST /replication/v1/batch` applies a batch (200
/// `{applied, ignored}`); `POST /replication/v1/coopr-callback` takes a Coopr HTTP callback
/// (its `cluster.id`) and wakes that cluster's tracker (200 either way: Coopr does not retry).
pub(super) async fn replication_endpoint(
    proxy: &Proxy,
    rt: &Runtime,
    parts: &Parts,
    body: ClientBody,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Some(repl) = &proxy.replication else {
        return Err(ProxyError::ReplicationOff);
    };
    if parts.method != Method::POST {
        return Err(ProxyError::ReplicationBatch("use POST".into()));
    }
    // A batch is at most `replication.batch_body_bytes` (senders split to fit), and so is a
    // callback (it carries the cluster's nodes). A larger declared length is refused before a
    // byte of the body is read; a body that grows past it while read is refused too.
    let limit = repl.batch_body_bytes();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    let bytes = match inspect(rt, body, limit).await? {
        Inspected::Whole(b) => b,
        Inspected::TooLarge { .. } => return Err(ProxyError::BodyTooLarge { limit }),
    };
    repl.endpoint(parts.uri.path(), &parts.extensions, bytes)
        .await
        .map(json_response)
}

/// A read of a cluster whose shard this DC's Coopr does not hold, answered from the replica
/// store; `None` to read through (no copy, a read the store cannot answer, or
/// `Cache-Control: no-cache`).
pub(super) async fn replica_read(cx: &Ctx<'_>, route: Route) -> Option<Response<ProxyBody>> {
    let repl = cx.proxy.replication.as_ref()?;
    if cx.class.kind != Kind::ClusterRead || no_cache(&cx.parts.headers) {
        return None;
    }
    let answer = repl
        .read(cx.class.cluster?, cx.parts.uri.path(), &cx.parts.headers)
        .await?;
    Some(replica_response(
        answer,
        cx.rt.dc_header.clone(),
        route,
        cx.parts.method == Method::HEAD,
    ))
}

/// Whether a local request should go through [`to_local_replicated`].
pub(super) fn replicates(cx: &Ctx<'_>) -> bool {
    cx.proxy.replication.is_some() && matches!(cx.class.kind, Kind::ClusterWrite | Kind::Create)
}

/// Sends a write to a local Coopr server, or (`standby`: its home DC) to this DC's standby
/// server for an adopted shard; after a 2xx, opens an operation (on disk before the client
/// hears back). The body is buffered up to the inspection limit to record it.
pub(super) async fn to_local_replicated(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    body: ProxyBody,
    route: Route,
    api: Api,
    standby: Option<usize>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let send = |body| async move {
        match standby {
            Some(home) => to_standby(cx, body, route, home).await,
            None => to_local(cx, body, route, api).await,
        }
    };
    let Some(repl) = cx.proxy.replication.clone() else {
        return send(body).await;
    };
    let body = replayable(cx.rt, body).await?;
    let sent: Option<Bytes> = match &body {
        ProxyBody::Empty => Some(Bytes::new()),
        ProxyBody::Full(b) => Some(b.clone().unwrap_or_default()),
        _ => None,
    };
    let resp = send(body).await?;
    if !resp.status().is_success() {
        return Ok(resp);
    }
    let (resp, response) = if cx.class.kind == Kind::Create {
        let (head, body) = resp.into_parts();
        match buffer(body, cx.rt.config.raw.limits.inspect_body_bytes).await {
            Ok((bytes, body)) => (Response::from_parts(head, body), Some(bytes)),
            Err(e) => return Err(ProxyError::Backend(e.to_string())),
        }
    } else {
        (resp, None)
    };
    let parts = cx.parts;
    // A create's id is checked here, where its answer is buffered anyway (placement.rs).
    let pinned = note_created(cx, table, response.as_deref());
    repl.accepted(
        pinned.as_ref().unwrap_or(table),
        AcceptedWrite {
            cluster: cx.class.cluster,
            headers: &parts.headers,
            method: parts.method.as_str(),
            path: parts.uri.path(),
            body: sent.as_deref(),
            body_note: sent
                .is_none()
                .then_some("larger than limits.inspect_body_bytes; not recorded"),
            response: response.as_deref(),
        },
    )
    .await;
    Ok(resp)
}

/// The local `GET /v2/clusters` answer merged with replicated clusters of shards held
/// elsewhere. An answer that is not a 200 JSON array (or is too large) passes untouched.
pub(super) async fn merge_list(
    cx: &Ctx<'_>,
    table: Arc<RoutingTable>,
    resp: Response<ProxyBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Some(repl) = &cx.proxy.replication else {
        return Ok(resp);
    };
    let parts = cx.parts;
    if resp.status() != StatusCode::OK || parts.method != Method::GET {
        return Ok(resp);
    }
    let (mut head, body) = resp.into_parts();
    let (bytes, body) = match buffer(body, repl.list_body_bytes()).await {
        Ok(b) => b,
        Err(e) => return Err(ProxyError::Backend(e.to_string())),
    };
    let Ok(serde_json::Value::Array(local)) = serde_json::from_slice(&bytes) else {
        return Ok(Response::from_parts(head, body));
    };
    let merged = repl
        .merge_list(table, local, parts.uri.query(), &parts.headers)
        .await;
    let text = serde_json::Value::Array(merged).to_string();
    head.headers.remove(header::CONTENT_LENGTH);
    head.headers.remove(header::TRANSFER_ENCODING);
    Ok(Response::from_parts(head, ProxyBody::full(text)))
}

/// `Cache-Control: no-cache` (or `no-store`, or `max-age=0`): the owner must answer.
fn no_cache(h: &HeaderMap) -> bool {
    h.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',').map(str::trim).any(|d| {
                d.eq_ignore_ascii_case("no-cache")
                    || d.eq_ignore_ascii_case("no-store")
                    || d.eq_ignore_ascii_case("max-age=0")
            })
        })
    })
}

/// The response for a replica answer, with the router's headers, `Age` and the epoch.
fn replica_response(
    a: ReplicaAnswer,
    dc: HeaderValue,
    route: Route,
    head_only: bool,
) -> Response<ProxyBody> {
    let len = a.body.len();
    let mut resp = Response::new(if head_only {
        ProxyBody::Empty
    } else {
        ProxyBody::full(a.body)
    });
    *resp.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if a.json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }),
    );
    if head_only {
        h.insert(header::CONTENT_LENGTH, headers::number(len as u64));
    }
    h.insert(headers::DC, dc);
    h.insert(headers::ROUTE, HeaderValue::from_static("replica"));
    if let Some(shard) = route.shard {
        h.insert(headers::SHARD, headers::number(u64::from(shard)));
    }
    h.insert(header::AGE, headers::number(a.age_seconds));
    h.insert(headers::REPLICA_EPOCH, headers::number(a.epoch));
    h.insert(
        headers::WITHHELD,
        HeaderValue::from_static(headers::WITHHELD_PARTS),
    );
    resp
}
