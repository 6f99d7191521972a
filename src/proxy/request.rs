//! One request's life, as named steps over one context value (pingora's `CTX`), in the order
//! they run. `Proxy::handle` (mod.rs) strips the router's headers and sets the request id
//! before, and turns an error into its response after; everything in between is here:
//!
//! 1. **limits**: the request target's length (hyper enforces the rest of the head).
//! 2. **replication endpoint**: the peer port's `/replication/v1/*` routes.
//! 3. **classify**: method + path (+ a small body when a rule needs it) -> [`Classification`].
//!    Coopr's internal API is served on the provisioner port only (to the local servers' tasks
//!    API) and refused (404 `internal_route`) on the client and peer ports. A cluster id in
//!    the path goes on as Coopr writes it (`42` -> `00000042`).
//! 4. **shared mode**: every DC serves every cluster (`shared.rs`); the rest is skipped.
//!    A node (`/v2/nodes/{id}`) is routed by its cluster, looked up first (`node.rs`).
//! 5. **snapshot**: one routing table for the whole request; a forwarded write whose epoch is
//!    newer than ours waits (at most `epoch_wait_ms`) for our watch.
//! 6. **hold**: a write counts itself in flight and waits while its shard is handed off.
//! 7. **fence and decide**: the pure `routing::decide` on the snapshot; a global (catalog)
//!    write by the pure `routing::decide_global` (the catalog's home DC first).
//! 8. **act**: local Coopr (with replication's operation after an accepted write, the
//!    catalog delivery after a global write at the home DC (`catalog.rs`), and the list
//!    merge), a replica answer, the owner DC's router (for a catalog write: the home DC's),
//!    or a standby server; a decision that sends the request nowhere becomes its error.
//!
//! Decoration (the router's headers on the answer) happens where each answer is made
//! (`respond.rs`).

use super::catalog::{to_home, to_local_catalog};
use super::ctx::{Ctx, Outcome, Proxy};
use super::hold::hold;
use super::local::{to_local, to_standby, to_tasks};
use super::node::cluster_of_node;
use super::peer::to_peer;
use super::placement::check_create;
use super::replica::{
    merge_list, replica_read, replicates, replication_endpoint, to_local_replicated,
};
use super::replicas::is_endpoint;
use super::respond::{inspect, prefixed, refusal};
use super::shared::serve_shared;
use crate::body::ClientBody;
use crate::body::{Inspected, ProxyBody};
use crate::classify::{self, Api, Class, Classification, Head, Kind};
use crate::config::OwnershipMode;
use crate::error::ProxyError;
use crate::headers;
use crate::inflight::Guard;
use crate::routing::{
    Decision, Origin, Route, RoutingTable, Target, decide, decide_global, fans_out,
};
use crate::runtime::Runtime;
use http::request::Parts;
use http::{Method, Response, header};
use std::net::SocketAddr;

/// The phases, in order (see the module header).
pub(super) async fn serve(
    proxy: &Proxy,
    rt: &Runtime,
    parts: &mut Parts,
    body: ClientBody,
    origin: Origin,
    remote: SocketAddr,
    out: &mut Outcome,
) -> Result<Response<ProxyBody>, ProxyError> {
    // 1. limits
    crate::limits::check_head(parts, &rt.config.raw.limits)?;
    // 2. replication endpoint
    if origin == Origin::Peer && is_endpoint(parts.uri.path()) {
        return Box::pin(replication_endpoint(proxy, rt, parts, body)).await;
    }
    // 3. classify
    let (class, body) = classify(rt, parts, body).await?;
    out.class = Some(class);
    if matches!(class.kind, Kind::ClusterRead | Kind::ClusterWrite) {
        write_ids_as_coopr(parts);
    }
    let parts: &Parts = parts;
    let mut cx = Ctx {
        proxy,
        rt,
        parts,
        origin,
        remote,
        class,
    };
    // 3b. Coopr's internal API: only the provisioner port serves it, always from this DC's
    // servers' tasks API (what Coopr itself binds to `server.tasks.port` authenticates nobody).
    if origin == Origin::Provisioner {
        out.route = Some("local");
        return Box::pin(to_tasks(&cx, body)).await;
    }
    if class.api == Api::Tasks {
        return Err(ProxyError::InternalRoute {
            path: parts.uri.path().to_string(),
        });
    }
    // 4. shared mode
    if rt.config.raw.ownership.mode == OwnershipMode::Shared {
        let table = proxy.routes.load();
        return Box::pin(serve_shared(&cx, &table, body, out)).await;
    }
    // 4b. a node's cluster: `/v2/nodes/{id}` is routed by the cluster that holds the node.
    if class.kind == Kind::NodeById {
        cx.class.cluster = Box::pin(cluster_of_node(&cx)).await;
        out.class = Some(cx.class);
    }
    let class = cx.class;
    let cx = cx;
    // 5. snapshot
    let mut table = proxy.routes.load();
    if let Some(theirs) = newer_epoch(&cx, &table) {
        let wait = std::time::Duration::from_millis(rt.config.raw.ownership.epoch_wait_ms);
        table = proxy.routes.wait_for_revision(theirs, wait).await;
    }
    // 6. hold: a write counts as in flight from here until its answer.
    let _inflight: Option<Guard> = match (class.class, class.cluster) {
        (Class::Write, Some(id)) => Some(hold(&cx, table.shard_of(id), &mut table).await?),
        _ => None,
    };
    // 7. fence and decide (a catalog write: by the catalog's home DC)
    let global = (class.class == Class::Global).then(|| {
        let home = table.catalog_home(rt.config.raw.catalog.home.as_deref());
        let delivery = origin == Origin::Peer && parts.headers.contains_key(headers::CATALOG);
        (home, delivery)
    });
    let decision = match global {
        Some((home, delivery)) => decide_global(&table, home, origin, delivery),
        None => decide(&table, &class, origin, cx.fenced()),
    };
    // 8. act: carry out the decision. The common answers (this DC's Coopr, a peer router,
    // a replica) are awaited inline; the rare ones are boxed, so that the request's future,
    // which is as large as its largest step, stays small for every request.
    let (cx, table) = (&cx, &table);
    // `out.dc` stays `None` for this DC (no allocation per request); only a forward names one.
    match decision {
        Decision::Go(route) => {
            out.shard = route.shard;
            match route.target {
                Target::Local(api) => {
                    out.route = Some("local");
                    if let Some((home, delivery)) = global
                        && fans_out(table, home, origin, delivery)
                    {
                        return Box::pin(to_local_catalog(cx, body, route, api)).await;
                    }
                    if replicates(cx) {
                        let replicated = to_local_replicated(cx, table, body, route, api, None);
                        return Box::pin(replicated).await;
                    }
                    let resp = to_local(cx, body, route, api).await?;
                    if cx.class.kind == Kind::Create {
                        return Box::pin(check_create(cx, table, resp)).await;
                    }
                    if cx.class.kind == Kind::List {
                        return Box::pin(merge_list(cx, table.clone(), resp)).await;
                    }
                    Ok(resp)
                }
                Target::Peer(_)
                    if cx.origin == Origin::Client
                        && cx.class.class == Class::Read
                        && let Some(resp) = replica_read(cx, route).await =>
                {
                    out.route = Some("replica");
                    Ok(resp)
                }
                Target::Peer(dc) => {
                    (out.route, out.dc) = (Some("forwarded"), Some(table.dc_name(dc).into()));
                    if global.is_some() {
                        return Box::pin(to_home(cx, table, body, route, dc)).await;
                    }
                    to_peer(cx, table, body, route, dc).await
                }
                Target::Standby(home) => {
                    out.route = Some("standby");
                    if replicates(cx) {
                        // A write through a standby server opens an operation like any other.
                        let api = Api::External;
                        let replicated =
                            to_local_replicated(cx, table, body, route, api, Some(home));
                        return Box::pin(replicated).await;
                    }
                    Box::pin(to_standby(cx, body, route, home)).await
                }
            }
        }
        Decision::Adopted { shard, .. }
            if cx.class.class == Class::Read
                && let Some(resp) = replica_read(cx, adopted_route(table, shard)).await =>
        {
            out.shard = Some(shard);
            out.route = Some("replica");
            Ok(resp)
        }
        other => Err(refusal(other, table)),
    }
}

/// Step 5: the epoch a forwarded write was routed by, when it is newer than our snapshot's
/// for its shard: our watch is behind the sender's, and we let it catch up (briefly) before
/// we decide whether we own the shard at that epoch.
fn newer_epoch(cx: &Ctx<'_>, table: &RoutingTable) -> Option<u64> {
    if cx.origin != Origin::Peer {
        return None;
    }
    let id = cx.class.cluster?;
    let theirs = cx
        .parts
        .headers
        .get(headers::EPOCH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())?;
    table
        .shard(table.shard_of(id))
        .is_some_and(|e| e.epoch < theirs)
        .then_some(theirs)
}

/// Step 3: classifies the request, reading at most `limits.inspect_body_bytes` of its body
/// when a rule needs the body; returns the body to pass on (what was read, then the rest).
async fn classify(
    rt: &Runtime,
    parts: &Parts,
    body: ClientBody,
) -> Result<(Classification, ProxyBody), ProxyError> {
    let limit = rt.config.raw.limits.inspect_body_bytes;
    let rule = match classify::classify_head(&parts.method, parts.uri.path(), parts.uri.query())? {
        Head::Done(c) if reads_first(&parts.method, &body) => {
            let body = match inspect(rt, body, limit).await? {
                Inspected::Whole(bytes) => ProxyBody::full(bytes),
                Inspected::TooLarge { prefix, rest } => prefixed(prefix, ProxyBody::Stream(rest)),
            };
            return Ok((c, body));
        }
        Head::Done(c) => return Ok((c, stream_body(body))),
        Head::NeedBody(rule) => rule,
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if rule.must_fit() && declared.is_some_and(|n| n > limit as u64) {
        crate::body::drain_in_background(body);
        return Err(ProxyError::BodyTooLarge { limit });
    }
    match inspect(rt, body, limit).await? {
        Inspected::Whole(bytes) => Ok((
            classify::classify_body(rule, &bytes)?,
            ProxyBody::full(bytes),
        )),
        Inspected::TooLarge { rest, .. } if rule.must_fit() => {
            crate::body::drain_in_background(rest);
            Err(ProxyError::BodyTooLarge { limit })
        }
        Inspected::TooLarge { prefix, rest } => {
            Ok((rule.fallback(), prefixed(prefix, ProxyBody::Stream(rest))))
        }
    }
}

/// Step 3: the cluster id in the path as Coopr writes it (`%08d`): Coopr builds job ids from
/// the path as written, and its own plan lookups use the padded id.
fn write_ids_as_coopr(parts: &mut Parts) {
    let Some(path) = crate::ids::canonical_cluster_path(parts.uri.path()) else {
        return;
    };
    let pq = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut uri = parts.uri.clone().into_parts();
    if let Ok(pq) = http::uri::PathAndQuery::try_from(pq)
        && let Ok(new) = {
            uri.path_and_query = Some(pq);
            http::Uri::from_parts(uri)
        }
    {
        parts.uri = new;
    }
}

/// Whether a body is read (up to the inspection limit) before the request goes on although no
/// rule needs it: a read's body (rare; Coopr ignores it). Read first, the read can be retried on
/// another server, and an HTTP/2 stream is not reset under a client still sending its body when
/// Coopr answers early (the client's own reset or malformed trailers then end the stream as it
/// sent them, RFC 9113 §5.1 and §8.1).
fn reads_first(method: &Method, body: &ClientBody) -> bool {
    use http_body::Body;
    (*method == Method::GET || *method == Method::HEAD) && !body.is_end_stream()
}

/// A body the client sent, as-is; an empty one becomes `Empty` and one the server read whole
/// `Full`, so that either can be replayed.
fn stream_body(body: ClientBody) -> ProxyBody {
    body.into_proxy()
}

/// The route of a read of an adopted shard answered from the replica store.
fn adopted_route(table: &RoutingTable, shard: u32) -> Route {
    Route {
        target: Target::Local(Api::External),
        shard: Some(shard),
        epoch: table.shard(shard).map_or(0, |s| s.epoch),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ctx::Outcome;
    use super::*;

    /// The size of the future `f` would return, without calling it.
    fn returned<A, F>(_: impl FnOnce(A) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    type Cx = &'static Ctx<'static>;
    type Table = &'static RoutingTable;

    /// Every request's future is boxed once (by the server) and moved into its box: its size
    /// is copied per request, and it is the size of its largest step. The rare steps are
    /// boxed apart (`serve`'s step 8, `to_peer`'s turns, `send_outbound`'s watchdog); with
    /// them inline the request's future was 4,944 bytes.
    #[test]
    fn a_request_future_is_as_large_as_its_common_steps() {
        let handle = returned(
            |(p, r, o, a): (
                std::sync::Arc<Proxy>,
                http::Request<ClientBody>,
                Origin,
                SocketAddr,
            )| { p.handle(r, o, a) },
        );
        let to_local =
            returned(|(cx, b, r): (Cx, ProxyBody, Route)| to_local(cx, b, r, Api::External));
        let to_peer =
            returned(|(cx, t, b, r): (Cx, Table, ProxyBody, Route)| to_peer(cx, t, b, r, 0));
        let rare = [
            returned(
                |(cx, t, b, o): (Cx, Table, ProxyBody, &'static mut Outcome)| {
                    serve_shared(cx, t, b, o)
                },
            ),
            returned(|cx: Cx| cluster_of_node(cx)),
            returned(|(cx, t, b, r): (Cx, Table, ProxyBody, Route)| {
                to_local_replicated(cx, t, b, r, Api::External, None)
            }),
            returned(|(cx, b, r): (Cx, ProxyBody, Route)| {
                to_local_catalog(cx, b, r, Api::External)
            }),
        ];
        let common = to_local.max(to_peer);
        eprintln!("handle {handle}, to_local {to_local}, to_peer {to_peer}, rare {rare:?}");
        assert!(
            common <= 1792,
            "the common steps grew: {to_local} / {to_peer} bytes"
        );
        assert!(
            handle <= common + 1280,
            "a rare step is inline again: the request's future is {handle} bytes"
        );
    }
}
