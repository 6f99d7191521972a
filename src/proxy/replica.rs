//! The proxy's side of replication, and the narrow trait ([`Replicas`]) through which the proxy
//! reaches it: the proxy knows "after an accepted write", "answer this read from a replica?",
//! "merge this list" and "serve this peer endpoint", never stores, outboxes or trackers.
//! `crate::replication` implements the trait; `app` hands it to the proxy.

use super::Proxy;
use super::request::Ctx;
use super::respond::{buffer, inspect, json_response, replayable};
use crate::body::{Inspected, ProxyBody};
use crate::classify::{Api, Kind};
use crate::error::ProxyError;
use crate::headers;
use crate::ids::ClusterId;
use crate::routing::{Route, RoutingTable};
use crate::runtime::Runtime;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The peer-port route a router posts its replication batches to.
pub const BATCH_PATH: &str = "/replication/v1/batch";

/// The peer-port route Coopr's HTTP callbacks (`server.callback.http.{success,failure}.url`)
/// can be pointed at: a finish is learned at once instead of at the next poll.
pub const CALLBACK_PATH: &str = "/replication/v1/coopr-callback";

/// Whether a peer-port path is one of replication's own routes.
pub fn is_endpoint(path: &str) -> bool {
    path == BATCH_PATH || path == CALLBACK_PATH
}

/// A boxed future, so that the trait can be used as `dyn Replicas`.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A write the local Coopr server answered with 2xx, as the proxy saw it.
pub struct AcceptedWrite<'a> {
    /// From the path; `None` for a create (then it is read from the response).
    pub cluster: Option<ClusterId>,
    pub headers: &'a HeaderMap,
    pub method: &'a str,
    pub path: &'a str,
    /// The request body if it was buffered whole, else `None` with `body_note` saying why.
    pub body: Option<&'a [u8]>,
    pub body_note: Option<&'a str>,
    /// The response body (creates only).
    pub response: Option<&'a [u8]>,
}

/// A read answered from the replica store.
pub struct ReplicaAnswer {
    pub status: u16,
    pub body: Bytes,
    /// JSON (else Coopr's plain-text error).
    pub json: bool,
    /// The epoch of the owner that captured the state (`x-coopr-router-replica-epoch`).
    pub epoch: u64,
    /// How old the captured state is (`Age`).
    pub age_seconds: u64,
}

/// What the proxy needs from replication.
pub trait Replicas: Send + Sync + 'static {
    /// Serves `POST` to one of the peer endpoints ([`is_endpoint`]) with its whole body: the
    /// JSON answer, or the error to send back.
    fn endpoint<'a>(&'a self, path: &'a str, body: Bytes)
    -> BoxFut<'a, Result<String, ProxyError>>;

    /// After the local Coopr server accepted a write: opens an operation (on disk before the
    /// client hears back). Never fails the request.
    fn accepted<'a>(&'a self, table: &'a RoutingTable, write: AcceptedWrite<'a>) -> BoxFut<'a, ()>;

    /// A read (`path`, as `headers`' caller) of a cluster this DC's Coopr does not hold,
    /// answered from the replica store; `None` to read through.
    fn read<'a>(
        &'a self,
        cluster: ClusterId,
        path: &'a str,
        headers: &'a HeaderMap,
    ) -> BoxFut<'a, Option<ReplicaAnswer>>;

    /// The local `GET /v2/clusters` list merged with replicated clusters of shards held
    /// elsewhere, as `headers`' caller sees them.
    fn merge_list<'a>(
        &'a self,
        table: Arc<RoutingTable>,
        local: Vec<serde_json::Value>,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> BoxFut<'a, Vec<serde_json::Value>>;

    /// The largest local list body that is merged (a larger one passes untouched).
    fn list_body_bytes(&self) -> usize;
}

impl Proxy {
    /// The peer port's replication routes: `POST /replication/v1/batch` applies a batch (200
    /// `{applied, ignored}`); `POST /replication/v1/coopr-callback` takes a Coopr HTTP callback
    /// (its `cluster.id`) and wakes that cluster's tracker (200 either way: Coopr does not retry).
    pub(super) async fn replication_endpoint(
        &self,
        rt: &Runtime,
        parts: &Parts,
        body: Incoming,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let Some(repl) = &self.replication else {
            return Err(ProxyError::ReplicationOff);
        };
        if parts.method != Method::POST {
            return Err(ProxyError::ReplicationBatch("use POST".into()));
        }
        // A batch is at most batch_max_records captured states, and a callback carries the
        // cluster's nodes: allow far more than the inspection limit, but not an unbounded body.
        let limit = 64 * 1024 * 1024;
        let bytes = match inspect(rt, body, limit).await? {
            Inspected::Whole(b) => b,
            Inspected::TooLarge { .. } => return Err(ProxyError::BodyTooLarge { limit }),
        };
        repl.endpoint(parts.uri.path(), bytes)
            .await
            .map(json_response)
    }

    /// A read of a cluster whose shard this DC's Coopr does not hold, answered from the replica
    /// store; `None` to read through (no copy, a read the store cannot answer, or
    /// `Cache-Control: no-cache`).
    pub(super) async fn replica_read(
        &self,
        cx: &Ctx<'_>,
        route: Route,
    ) -> Option<Response<ProxyBody>> {
        let repl = self.replication.as_ref()?;
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

    /// Whether a local request should go through [`Self::to_local_replicated`].
    pub(super) fn replicates(&self, cx: &Ctx<'_>) -> bool {
        self.replication.is_some() && matches!(cx.class.kind, Kind::ClusterWrite | Kind::Create)
    }

    /// Sends a write to a local Coopr server; after a 2xx, opens an operation (on disk before
    /// the client hears back). The body is buffered up to the inspection limit to record it.
    pub(super) async fn to_local_replicated(
        &self,
        cx: &Ctx<'_>,
        table: &RoutingTable,
        body: ProxyBody,
        route: Route,
        api: Api,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let Some(repl) = self.replication.clone() else {
            return self.to_local(cx, body, route, api).await;
        };
        let body = replayable(cx.rt, body).await?;
        let sent: Option<Bytes> = match &body {
            ProxyBody::Empty => Some(Bytes::new()),
            ProxyBody::Full(b) => Some(b.clone().unwrap_or_default()),
            _ => None,
        };
        let resp = self.to_local(cx, body, route, api).await?;
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
        repl.accepted(
            table,
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
        &self,
        cx: &Ctx<'_>,
        table: Arc<RoutingTable>,
        resp: Response<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let Some(repl) = &self.replication else {
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
    resp
}
