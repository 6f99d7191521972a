//! The request path, in phases (after pingora's `ProxyHttp`): strip what clients may not send,
//! classify (reading a small body only when a rule needs it), load the routing snapshot once,
//! decide, forward to a local Coopr server or a peer router, and decorate the response. Errors
//! are typed ([`ProxyError`]) and become responses in `error.rs` only.

pub mod body;
pub mod forward;
pub mod headers;
mod hold;
mod peer;
pub mod pool;
mod replicated;
mod shared;

use crate::backend::Backends;
use crate::classify::{self, Api, Class, Classification, Head};
use crate::config::Config;
use crate::config::OwnershipMode;
use crate::error::ProxyError;
use crate::health::PeerHealth;
use crate::inflight::InFlight;
use crate::ownership::Freshness;
use crate::replication::Replication;
use crate::routing::{Decision, Origin, Route, Routes, RoutingTable, Target, decide};
use arc_swap::ArcSwap;
use body::{Inspected, ProxyBody, read_up_to};
use forward::{SendError, Upstream, upstream_request};
use http::request::Parts;
use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// What a reload may change: the config, and the backend pool and client built from it.
pub struct Runtime {
    pub config: Arc<Config>,
    pub backends: Backends,
    /// Health of the other DCs' routers.
    pub peers: PeerHealth,
    pub upstream: Upstream,
    /// TLS built from `config` (listener configs, the outgoing client's trust).
    pub tls: Arc<crate::tls::Material>,
    /// This DC's name as a header value.
    dc_header: HeaderValue,
}

impl Runtime {
    /// Keeps what health checks learned across a reload: servers by URL, peers by DC name.
    pub fn inherit_health(&self, old: &Runtime) {
        for b in self.backends.iter() {
            if let Some(o) = old.backends.iter().find(|o| o.url == b.url) {
                b.health.copy_from(&o.health);
            }
        }
        for (i, d) in self.config.dcs.iter().enumerate() {
            if let (Some(j), Some(h)) = (
                old.config.dcs.iter().position(|o| o.name == d.name),
                self.peers.0.get(i),
            ) && let Some(o) = old.peers.0.get(j)
            {
                h.copy_from(o);
            }
        }
    }

    pub fn new(config: Arc<Config>, tls: Arc<crate::tls::Material>) -> Self {
        let dc = &config.dcs[config.local].name;
        Runtime {
            backends: Backends::from_config(&config),
            peers: PeerHealth::new(config.dcs.len()),
            upstream: Upstream::new(&config.raw.timeouts, &tls),
            tls,
            // DC names are validated to [a-z0-9_-], always a valid header value.
            dc_header: HeaderValue::from_str(dc).unwrap_or(HeaderValue::from_static("unknown")),
            config,
        }
    }
}

/// The proxy: cheap to clone, shared by every connection of the client and peer ports.
#[derive(Clone)]
pub struct Proxy {
    routes: Routes,
    runtime: Arc<ArcSwap<Runtime>>,
    freshness: Arc<Freshness>,
    inflight: Arc<InFlight>,
    /// Replication, when `[replication] enabled` (see `replicated.rs`).
    replication: Option<Replication>,
}

/// What the access log says about a request.
#[derive(Default)]
pub(super) struct Outcome {
    class: Option<Classification>,
    route: Option<&'static str>,
    dc: Option<String>,
    shard: Option<u32>,
}

impl Proxy {
    pub fn new(
        routes: Routes,
        runtime: Arc<ArcSwap<Runtime>>,
        freshness: Arc<Freshness>,
        inflight: Arc<InFlight>,
    ) -> Self {
        Proxy {
            routes,
            runtime,
            freshness,
            inflight,
            replication: None,
        }
    }

    /// Serves replica reads, merges lists and opens operations through `replication`.
    pub fn with_replication(mut self, replication: Option<Replication>) -> Self {
        self.replication = replication;
        self
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Serves one request that arrived on the client or the peer port.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        origin: Origin,
        remote: SocketAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let rt = self.runtime.load_full();
        let (mut parts, body) = req.into_parts();
        if origin == Origin::Client {
            headers::strip_router_headers(&mut parts.headers);
        }
        let rid = headers::ensure_request_id(&mut parts.headers);
        let mut out = Outcome::default();
        let mut resp = match self
            .serve(&rt, &parts, body, origin, remote, &mut out)
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(request_id = ?rid, error = %e, kind = e.kind(), "request refused");
                crate::metrics::upstream_error(e.kind());
                e.to_response(&rid, rt.config.dcs[rt.config.local].name.as_str())
            }
        };
        resp.headers_mut()
            .entry(headers::REQUEST_ID)
            .or_insert_with(|| rid.clone());
        crate::metrics::request(
            out.route.unwrap_or("error"),
            out.class.map_or("none", |c| c.class.as_str()),
            resp.status().as_u16(),
            out.dc
                .as_deref()
                .unwrap_or(&rt.config.dcs[rt.config.local].name),
            started.elapsed().as_secs_f64(),
        );
        if rt.config.raw.log.access_log {
            let c = out.class;
            tracing::info!(
                target: "access",
                request_id = rid.to_str().unwrap_or(""),
                method = %parts.method,
                path = parts.uri.path(),
                cluster = c.and_then(|c| c.cluster).map(|id| id.get()),
                shard = out.shard,
                class = c.map(|c| c.class.as_str()),
                route = out.route.unwrap_or("error"),
                dc = out.dc.as_deref().unwrap_or(""),
                status = resp.status().as_u16(),
                // Declared lengths (Content-Length); a chunked body logs none.
                bytes_in = content_length(&parts.headers),
                bytes_out = content_length(resp.headers()),
                origin = if origin == Origin::Peer { "peer" } else { "client" },
                micros = started.elapsed().as_micros() as u64,
            );
        }
        resp
    }

    async fn serve(
        &self,
        rt: &Runtime,
        parts: &Parts,
        body: Incoming,
        origin: Origin,
        remote: SocketAddr,
        out: &mut Outcome,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        crate::limits::check_head(parts, &rt.config.raw.limits)?;
        if origin == Origin::Peer && crate::replication::is_endpoint(parts.uri.path()) {
            return self.replication_endpoint(rt, parts, body).await;
        }
        let limit = rt.config.raw.limits.inspect_body_bytes;
        let (class, body) =
            match classify::classify_head(&parts.method, parts.uri.path(), parts.uri.query())? {
                Head::Done(c) => (c, stream_body(body)),
                Head::NeedBody(rule) => {
                    let declared = parts
                        .headers
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    if rule.must_fit() && declared.is_some_and(|n| n > limit as u64) {
                        return Err(ProxyError::BodyTooLarge { limit });
                    }
                    match inspect(rt, body, limit).await? {
                        Inspected::Whole(bytes) => (
                            classify::classify_body(rule, &bytes)?,
                            ProxyBody::full(bytes),
                        ),
                        Inspected::TooLarge { .. } if rule.must_fit() => {
                            return Err(ProxyError::BodyTooLarge { limit });
                        }
                        Inspected::TooLarge { prefix, rest } => (
                            rule.fallback(),
                            ProxyBody::Prefixed {
                                prefix: Some(prefix),
                                rest,
                            },
                        ),
                    }
                }
            };
        out.class = Some(class);
        if rt.config.raw.ownership.mode == OwnershipMode::Shared {
            let table = self.routes.load();
            return self
                .serve_shared(rt, &table, parts, body, &class, origin, remote, out)
                .await;
        }
        let mut table = self.routes.load();
        // A forwarded write from a router whose map is newer than ours: let our watch catch up
        // (briefly) before deciding whether we own the shard at that epoch.
        if origin == Origin::Peer
            && let Some(id) = class.cluster
            && let Some(theirs) = parts
                .headers
                .get(headers::EPOCH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            && table
                .shard(table.shard_of(id))
                .is_some_and(|e| e.epoch < theirs)
        {
            let wait = std::time::Duration::from_millis(rt.config.raw.ownership.epoch_wait_ms);
            table = self.routes.wait_for_revision(theirs, wait).await;
        }
        // A write counts as in flight from here until its answer, and waits while its shard
        // is being handed off from this DC (then it is decided on the map after the move).
        let _inflight = match (class.class, class.cluster) {
            (Class::Write, Some(id)) => Some(self.hold(rt, table.shard_of(id), &mut table).await?),
            _ => None,
        };
        let fenced = class.class == Class::Write && self.freshness.is_fenced();
        match decide(&table, &class, origin, fenced) {
            Decision::Go(route) => {
                out.shard = route.shard;
                match route.target {
                    Target::Local(api) => {
                        out.route = Some("local");
                        out.dc = Some(table.local_name().to_string());
                        if self.replicates(&class) {
                            return self
                                .to_local_replicated(
                                    rt, &table, parts, body, route, api, &class, remote,
                                )
                                .await;
                        }
                        let resp = self
                            .to_local(rt, parts, body, route, api, &class, remote)
                            .await?;
                        if class.kind == classify::Kind::List {
                            return self.merge_list(parts, table.clone(), resp).await;
                        }
                        Ok(resp)
                    }
                    Target::Peer(_)
                        if origin == Origin::Client
                            && class.class == Class::Read
                            && let Some(resp) =
                                self.replica_read(rt, parts, &class, route).await =>
                    {
                        out.route = Some("replica");
                        out.dc = Some(table.local_name().to_string());
                        Ok(resp)
                    }
                    Target::Peer(dc) => {
                        out.route = Some("forwarded");
                        out.dc = Some(table.dc_name(dc).to_string());
                        self.to_peer(rt, &table, parts, body, route, dc, &class, remote)
                            .await
                    }
                    Target::Standby(home) => {
                        out.route = Some("standby");
                        out.dc = Some(table.local_name().to_string());
                        to_standby(
                            rt,
                            parts,
                            body,
                            route,
                            home,
                            remote,
                            &self.freshness,
                            &class,
                        )
                        .await
                    }
                }
            }
            Decision::Adopted { shard, .. }
                if class.class == Class::Read
                    && let Some(resp) = self
                        .replica_read(rt, parts, &class, adopted_route(&table, shard))
                        .await =>
            {
                out.shard = Some(shard);
                out.route = Some("replica");
                out.dc = Some(table.local_name().to_string());
                Ok(resp)
            }
            other => Err(refusal(other, &table)),
        }
    }

    /// Sends to a local Coopr server, trying the next one when a connection is refused and the
    /// body can be sent again.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn to_local(
        &self,
        rt: &Runtime,
        parts: &Parts,
        mut body: ProxyBody,
        route: Route,
        api: Api,
        class: &Classification,
        remote: SocketAddr,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        const MAX_TRIES: usize = 4;
        let mut tried = [usize::MAX; MAX_TRIES];
        let mut n = 0;
        loop {
            // Checked again before every attempt: refused connections and connect timeouts can
            // take long enough for the fence to close meanwhile.
            if class.class == Class::Write && self.freshness.is_fenced() {
                return Err(ProxyError::Fenced {
                    dc: rt.config.dcs[rt.config.local].name.clone(),
                    shard: route.shard,
                });
            }
            let Some(i) = rt.backends.pick(&tried[..n]) else {
                return Err(ProxyError::BackendUnreachable(
                    "no Coopr server is configured".into(),
                ));
            };
            let Some(backend) = rt.backends.get(i) else {
                return Err(ProxyError::BackendUnreachable(
                    "no Coopr server is configured".into(),
                ));
            };
            let replay = body.try_clone();
            let mut req = upstream_request(parts, backend.base(api), remote, body);
            let epoch = if class.class == Class::Write {
                route.epoch
            } else {
                0
            };
            headers::set_hop_and_epoch(req.headers_mut(), None, epoch);
            match rt
                .upstream
                .send(req, rt.config.raw.timeouts.response())
                .await
            {
                Ok(resp) => {
                    rt.backends.mark_up(i);
                    return Ok(decorate(resp, rt.dc_header.clone(), "local", route));
                }
                Err(SendError::Connect(e)) => {
                    tracing::warn!(backend = %backend.base(api), error = %e, "Coopr server refused the connection; skipping it for a while");
                    rt.backends.mark_down(i);
                    backend.health.observe(false, &rt.config.raw.health);
                    tried[n] = i;
                    n += 1;
                    match replay {
                        Some(again) if n < MAX_TRIES.min(rt.backends.len()) => body = again,
                        _ => return Err(ProxyError::BackendUnreachable(e)),
                    }
                }
                Err(SendError::Timeout) => return Err(ProxyError::BackendTimeout),
                Err(SendError::Failed(e)) => return Err(ProxyError::Backend(e)),
                Err(SendError::RequestBody(e)) => return Err(ProxyError::BodyRead(e)),
            }
        }
    }
}

/// A body the client sent, as-is; an empty one becomes `Empty` so it can be replayed.
fn stream_body(body: Incoming) -> ProxyBody {
    use http_body::Body;
    if body.is_end_stream() {
        ProxyBody::Empty
    } else {
        ProxyBody::Stream(body)
    }
}

/// Reads at most `limit` bytes of a body, within the request-head timeout.
pub(super) async fn inspect(
    rt: &Runtime,
    body: Incoming,
    limit: usize,
) -> Result<Inspected, ProxyError> {
    match tokio::time::timeout(
        rt.config.raw.timeouts.request_head(),
        read_up_to(body, limit),
    )
    .await
    {
        Err(_) => Err(ProxyError::BodyTimeout),
        Ok(Err(e)) => Err(ProxyError::BodyRead(e.to_string())),
        Ok(Ok(i)) => Ok(i),
    }
}

/// Strips hop-by-hop headers from an upstream response and adds the router's headers.
pub(super) fn decorate(
    resp: Response<Incoming>,
    dc: HeaderValue,
    route: &'static str,
    r: Route,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    let h = &mut parts.headers;
    h.insert(headers::DC, dc);
    h.insert(headers::ROUTE, HeaderValue::from_static(route));
    if let Some(shard) = r.shard {
        h.insert(headers::SHARD, headers::number(u64::from(shard)));
    }
    // The epoch that served it: ours when our Coopr answered; a peer's answer keeps its own.
    if route == "local" || route == "standby" {
        h.remove(headers::EPOCH);
        if r.epoch > 0 {
            h.insert(headers::EPOCH, headers::number(r.epoch));
        }
    }
    Response::from_parts(parts, ProxyBody::Stream(body))
}

/// The route of a read of an adopted shard answered from the replica store.
fn adopted_route(table: &crate::routing::RoutingTable, shard: u32) -> Route {
    Route {
        target: Target::Local(Api::External),
        shard: Some(shard),
        epoch: table.shard(shard).map_or(0, |s| s.epoch),
    }
}

/// The declared body length, if any.
fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Sends a request for an adopted shard to this DC's standby Coopr server for its home DC.
#[allow(clippy::too_many_arguments)]
async fn to_standby(
    rt: &Runtime,
    parts: &Parts,
    body: ProxyBody,
    route: Route,
    home: usize,
    remote: SocketAddr,
    freshness: &Freshness,
    class: &Classification,
) -> Result<Response<ProxyBody>, ProxyError> {
    if class.class == Class::Write && freshness.is_fenced() {
        return Err(ProxyError::Fenced {
            dc: rt.config.dcs[rt.config.local].name.clone(),
            shard: route.shard,
        });
    }
    let Some(Some(base)) = rt.config.standby.get(home) else {
        return Err(ProxyError::BackendUnreachable(
            "no standby server is configured".into(),
        ));
    };
    let mut req = upstream_request(parts, base, remote, body);
    headers::set_hop_and_epoch(req.headers_mut(), None, route.epoch);
    match rt
        .upstream
        .send(req, rt.config.raw.timeouts.response())
        .await
    {
        Ok(resp) => Ok(decorate(resp, rt.dc_header.clone(), "standby", route)),
        Err(SendError::Connect(e)) => Err(ProxyError::BackendUnreachable(format!(
            "standby server {base}: {e}"
        ))),
        Err(SendError::Timeout) => Err(ProxyError::BackendTimeout),
        Err(SendError::Failed(e)) => Err(ProxyError::Backend(e)),
        Err(SendError::RequestBody(e)) => Err(ProxyError::BodyRead(e)),
    }
}

/// The error for a decision that sends the request nowhere (`Go` has no error: it is mapped to
/// `owner_moved`, which only a caller that expected a refusal can reach).
pub(super) fn refusal(decision: Decision, table: &RoutingTable) -> ProxyError {
    match decision {
        Decision::Adopted { shard, home } => ProxyError::Adopted {
            dc: table.local_name().to_string(),
            shard,
            home: table.dc_name(home).to_string(),
        },
        Decision::Misdirected {
            shard,
            owner,
            epoch,
        } => ProxyError::Misdirected {
            dc: table.local_name().to_string(),
            shard,
            owner: owner.map(|o| table.dc_name(o).to_string()),
            epoch,
            revision: table.revision,
        },
        Decision::NoCreateTarget => ProxyError::NoCreateTarget,
        Decision::Fenced { shard } => ProxyError::Fenced {
            dc: table.local_name().to_string(),
            shard,
        },
        Decision::Go(route) => ProxyError::OwnerMoved {
            dc: match route.target {
                Target::Peer(dc) => table.dc_name(dc).to_string(),
                _ => table.local_name().to_string(),
            },
        },
    }
}

/// Buffers a streamed body of at most the inspection limit, so it can be sent again (a retry
/// after a 421 or a refused connection); a larger one streams on and cannot be.
pub(super) async fn replayable(rt: &Runtime, body: ProxyBody) -> Result<ProxyBody, ProxyError> {
    Ok(match body {
        ProxyBody::Stream(s) => {
            match inspect(rt, s, rt.config.raw.limits.inspect_body_bytes).await? {
                Inspected::Whole(b) => ProxyBody::full(b),
                Inspected::TooLarge { prefix, rest } => ProxyBody::Prefixed {
                    prefix: Some(prefix),
                    rest,
                },
            }
        }
        other => other,
    })
}
