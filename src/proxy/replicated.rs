//! The proxy's side of replication, kept in one file: the peer-port batch endpoint, reads of
//! clusters owned elsewhere answered from the replica store, the list merge, and opening an
//! operation after the local Coopr server accepted a write. Each is one call from `mod.rs`.

use super::body::{Inspected, ProxyBody, read_up_to};
use super::{Proxy, Runtime, headers, inspect, replayable};
use crate::classify::{Api, Classification, Kind};
use crate::error::ProxyError;
use crate::replication::{Answer, Caller, WriteSeen, merge_list, read_answer, read_target};
use crate::routing::{Route, RoutingTable};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use std::net::SocketAddr;

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
        if parts.uri.path() == crate::replication::CALLBACK_PATH {
            let woke = repl.callback(&bytes);
            return Ok(json_response(
                serde_json::json!({ "woke": woke }).to_string(),
            ));
        }
        match repl.apply(bytes).await {
            Ok(a) => Ok(json_response(
                serde_json::json!({"applied": a.applied, "ignored": a.ignored}).to_string(),
            )),
            Err(None) => Err(ProxyError::ReplicationBatch(
                "the body is not a replication batch".into(),
            )),
            Err(Some(e)) => Err(ProxyError::ReplicationStore(e.to_string())),
        }
    }

    /// A read of a cluster whose shard this DC's Coopr does not hold, answered from the replica
    /// store; `None` to read through (no copy, a read the store cannot answer, or
    /// `Cache-Control: no-cache`).
    pub(super) async fn replica_read(
        &self,
        rt: &Runtime,
        parts: &Parts,
        class: &Classification,
        route: Route,
    ) -> Option<Response<ProxyBody>> {
        let repl = self.replication.as_ref()?;
        if class.kind != Kind::ClusterRead || no_cache(&parts.headers) {
            return None;
        }
        let target = read_target(parts.uri.path())?;
        let entry = repl.replica(class.cluster?).await?;
        let answer = read_answer(&entry, &target, Caller::from_headers(&parts.headers))?;
        Some(replica_response(
            answer,
            rt.dc_header.clone(),
            route,
            parts.method == Method::HEAD,
        ))
    }

    /// Sends a write to a local Coopr server; after a 2xx, opens an operation (on disk before
    /// the client hears back). The body is buffered up to the inspection limit to record it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn to_local_replicated(
        &self,
        rt: &Runtime,
        table: &RoutingTable,
        parts: &Parts,
        body: ProxyBody,
        route: Route,
        api: Api,
        class: &Classification,
        remote: SocketAddr,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let Some(repl) = self.replication.clone() else {
            return self
                .to_local(rt, parts, body, route, api, class, remote)
                .await;
        };
        let body = replayable(rt, body).await?;
        let sent: Option<Bytes> = match &body {
            ProxyBody::Empty => Some(Bytes::new()),
            ProxyBody::Full(b) => Some(b.clone().unwrap_or_default()),
            _ => None,
        };
        let resp = self
            .to_local(rt, parts, body, route, api, class, remote)
            .await?;
        if !resp.status().is_success() {
            return Ok(resp);
        }
        let (resp, response) = if class.kind == Kind::Create {
            let (head, body) = resp.into_parts();
            match buffer(body, rt.config.raw.limits.inspect_body_bytes).await {
                Ok((bytes, body)) => (Response::from_parts(head, body), Some(bytes)),
                Err(e) => return Err(ProxyError::Backend(e.to_string())),
            }
        } else {
            (resp, None)
        };
        repl.on_write(
            table,
            WriteSeen {
                cluster: class.cluster,
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
        parts: &Parts,
        table: std::sync::Arc<RoutingTable>,
        resp: Response<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let Some(repl) = &self.replication else {
            return Ok(resp);
        };
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
        let remote = repl.remote_summaries(table).await;
        let merged = merge_list(
            local,
            &remote,
            parts.uri.query(),
            Caller::from_headers(&parts.headers),
        );
        let text = serde_json::Value::Array(merged).to_string();
        head.headers.remove(header::CONTENT_LENGTH);
        head.headers.remove(header::TRANSFER_ENCODING);
        Ok(Response::from_parts(head, ProxyBody::full(text)))
    }

    /// Whether a local request should go through [`Self::to_local_replicated`].
    pub(super) fn replicates(&self, class: &Classification) -> bool {
        self.replication.is_some() && matches!(class.kind, Kind::ClusterWrite | Kind::Create)
    }
}

/// Reads a body whole when it is at most `limit` bytes; returns its bytes (empty when larger)
/// and a body to pass on either way.
async fn buffer(body: ProxyBody, limit: usize) -> Result<(Bytes, ProxyBody), hyper::Error> {
    match body {
        ProxyBody::Stream(s) => match read_up_to(s, limit).await? {
            Inspected::Whole(b) => Ok((b.clone(), ProxyBody::full(b))),
            Inspected::TooLarge { prefix, rest } => Ok((
                Bytes::new(),
                ProxyBody::Prefixed {
                    prefix: Some(prefix),
                    rest,
                },
            )),
        },
        ProxyBody::Full(b) => {
            let b = b.unwrap_or_default();
            Ok((b.clone(), ProxyBody::full(b)))
        }
        other => Ok((Bytes::new(), other)),
    }
}

/// `Cache-Control: no-cache` (or `no-store`, or `max-age=0`): the owner must answer.
fn no_cache(h: &http::HeaderMap) -> bool {
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
    a: Answer,
    dc: HeaderValue,
    route: Route,
    head_only: bool,
) -> Response<ProxyBody> {
    let age = crate::replication::Store::age_seconds(a.captured_ms);
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
    h.insert(header::AGE, headers::number(age));
    h.insert(headers::REPLICA_EPOCH, headers::number(a.epoch));
    resp
}

fn json_response(text: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
