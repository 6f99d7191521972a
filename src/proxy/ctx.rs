//! What every phase of a request shares: the [`Proxy`] (the routing snapshot's readers, the
//! runtime, the fence, in-flight counts, replication), and the per-request context [`Ctx`]
//! (pingora's `CTX`) with the [`Outcome`] the access log reports.

use super::replicas::Replicas;
use crate::classify::{Class, Classification};
use crate::inflight::InFlight;
use crate::ownership::Freshness;
use crate::routing::{Origin, Routes};
use crate::runtime::Runtime;
use arc_swap::ArcSwap;
use http::request::Parts;
use std::net::SocketAddr;
use std::sync::Arc;

/// The proxy: cheap to clone, shared by every connection of the client and peer ports.
#[derive(Clone)]
pub struct Proxy {
    pub(super) routes: Routes,
    pub(super) runtime: Arc<ArcSwap<Runtime>>,
    pub(super) freshness: Arc<Freshness>,
    pub(super) inflight: Arc<InFlight>,
    /// Writes held while their owner DC cannot be reached (`held.rs`).
    pub(super) held: Arc<super::held::Held>,
    /// Replication, when `[replication] enabled`.
    pub(super) replication: Option<Arc<dyn Replicas>>,
    /// Where a create whose id lands outside this DC's home shards is reported.
    pub(super) misplaced: Option<Arc<crate::ownership::Misplaced>>,
    /// At the catalog's home DC: one global write at a time is applied and queued, so the
    /// other DCs get them in the order this DC's Coopr applied them (`catalog.rs`).
    pub(super) catalog_order: Arc<tokio::sync::Mutex<()>>,
}

/// What the access log and the metrics say about a request, filled in as it goes.
#[derive(Default)]
pub(super) struct Outcome {
    pub class: Option<Classification>,
    pub route: Option<&'static str>,
    /// The DC that answered, when it is not this one.
    pub dc: Option<String>,
    pub shard: Option<u32>,
}

/// One request once classified: what every later phase reads.
pub(super) struct Ctx<'a> {
    pub proxy: &'a Proxy,
    /// The runtime (config, servers, upstream client, TLS) loaded once for the request.
    pub rt: &'a Runtime,
    pub parts: &'a Parts,
    pub origin: Origin,
    pub remote: SocketAddr,
    pub class: Classification,
}

impl Ctx<'_> {
    pub fn is_write(&self) -> bool {
        self.class.class == Class::Write
    }

    /// Whether this request is a write refused by the fence (no proof the map is current).
    /// Asked again before every attempt: a slow attempt can outlast the proof.
    pub fn fenced(&self) -> bool {
        self.is_write() && self.proxy.freshness.is_fenced()
    }

    /// Whether the request may still carry `x-coopr-router-*` headers: every port but the
    /// client port, whose requests lose them on arrival (`Proxy::handle`).
    pub fn carries_router_headers(&self) -> bool {
        self.origin != Origin::Client
    }

    /// Whether the answer goes to another DC's router (the peer port), which decorates it itself.
    pub fn answers_a_peer(&self) -> bool {
        self.origin == Origin::Peer
    }

    /// This DC's name.
    pub fn dc(&self) -> &str {
        &self.rt.config.dcs[self.rt.config.local].name
    }
}
