//! The request path: one [`Proxy`] shared by every connection of the client and peer ports.
//! [`Proxy::handle`] is the one rescue point: every phase returns a typed [`ProxyError`](crate::error::ProxyError), and
//! only here does an error become a response (through `error.rs`); here too the request is
//! counted and logged once.
//!
//! Module map, in the order a request meets them:
//! - `ctx`: the [`Proxy`] every request shares, and one request's context.
//! - `request`: the phases of one request over one context value, top to bottom.
//! - `hold`: holding a shard's writes while this DC hands it off.
//! - `local`: sending to a local Coopr server or a standby server.
//! - `node`: finding the cluster of a node a request names.
//! - `peer`: forwarding to the owner DC's router, and routing again after a 421.
//! - `shared`: shared-database mode (local while healthy, else the next healthy DC).
//! - `replicas`: the narrow trait through which the proxy reaches replication ([`Replicas`]).
//! - `replica`: the answers built through it (the peer endpoint, replica reads, the operation
//!   after an accepted write, the list merge).
//! - `respond`: the router's headers on an upstream answer, bodies the proxy buffers.

mod catalog;
mod ctx;
mod held;
mod hold;
mod local;
mod node;
mod peer;
mod placement;
mod replica;
mod replicas;
mod request;
mod respond;
mod shared;

pub use ctx::Proxy;
pub use held::Held;
pub use replicas::{
    AcceptedWrite, BATCH_PATH, BoxFut, CALLBACK_PATH, CatalogWrite, RESYNC_PATH, ReplicaAnswer,
    Replicas, is_endpoint,
};

use crate::body::ClientBody;
use crate::body::ProxyBody;
use crate::headers;
use crate::inflight::InFlight;
use crate::ownership::Freshness;
use crate::routing::{Origin, Routes};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use ctx::Outcome;
use http::{Request, Response, header};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

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
            held: Arc::new(Held::default()),
            replication: None,
            misplaced: None,
            catalog_order: Arc::default(),
        }
    }

    /// Checks the id of every cluster a local Coopr server creates (`placement.rs`).
    pub fn with_misplaced(mut self, misplaced: Option<Arc<crate::ownership::Misplaced>>) -> Self {
        self.misplaced = misplaced;
        self
    }

    /// Serves replica reads, merges lists and opens operations through `replication`.
    /// The writes held across a failover now (for `/admin/routes`).
    pub fn held(&self) -> Arc<Held> {
        self.held.clone()
    }

    pub fn with_replication(mut self, replication: Option<Arc<dyn Replicas>>) -> Self {
        self.replication = replication;
        self
    }

    /// Serves one request that arrived on the client or the peer port: the phases
    /// (`request.rs`), then the rescue (an error becomes its response), the request id on the
    /// answer, the metrics and the access log.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<ClientBody>,
        origin: Origin,
        remote: SocketAddr,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let rt = self.runtime.load_full();
        let (mut parts, body) = req.into_parts();
        // Clients cannot speak for a router; every request gets an id.
        if origin == Origin::Client {
            headers::strip_router_headers(&mut parts.headers);
        }
        let rid = headers::ensure_request_id(&mut parts.headers);
        let mut out = Outcome::default();
        let mut resp = match request::serve(&self, &rt, &mut parts, body, origin, remote, &mut out)
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(request_id = ?rid, error = %e, kind = e.kind(), "request refused");
                crate::metrics::upstream_error(e.kind());
                e.to_response(&rid, rt.config.dcs[rt.config.local].name.as_str())
            }
        };
        headers::answer_request_id(resp.headers_mut(), &rid);
        crate::metrics::request(
            out.route.unwrap_or("error"),
            out.class.map_or("none", |c| c.class.as_str()),
            resp.status().as_u16(),
            out.dc
                .as_deref()
                .unwrap_or(&rt.config.dcs[rt.config.local].name),
            started.elapsed().as_secs_f64(),
        );
        let log = &rt.config.raw.log;
        if log.access_log && (log.access_log_health || !is_health_check(&parts)) {
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
                dc = match (&out.dc, out.route) {
                    (Some(dc), _) => dc.as_str(),
                    (None, Some(_)) => rt.config.dcs[rt.config.local].name.as_str(),
                    (None, None) => "",
                },
                status = resp.status().as_u16(),
                // Declared lengths (Content-Length); a chunked body logs none.
                bytes_in = content_length(&parts.headers),
                bytes_out = content_length(resp.headers()),
                origin = if origin == Origin::Peer { "peer" } else { "client" },
                // On the peer port: the sending DC (its certificate's, under mutual TLS).
                from_dc = (origin == Origin::Peer)
                    .then(|| parts.headers.get(headers::HOP)?.to_str().ok())
                    .flatten(),
                micros = started.elapsed().as_micros() as u64,
            );
        }
        resp
    }
}

/// `GET /status`: a load balancer's or another DC's health probe.
fn is_health_check(parts: &http::request::Parts) -> bool {
    parts.method == http::Method::GET && parts.uri.path() == "/status"
}

/// The declared body length, if any.
fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}
