//! The narrow trait through which the proxy reaches replication ([`Replicas`]), and the data
//! that crosses it: the proxy knows "after an accepted write", "answer this read from a
//! replica?", "merge this list" and "serve this peer endpoint", never stores, outboxes or
//! trackers. `crate::replication` implements it; `app` hands it to the proxy.

use crate::error::ProxyError;
use crate::ids::ClusterId;
use crate::routing::RoutingTable;
use bytes::Bytes;
use http::HeaderMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The peer-port route a router posts its replication batches to.
pub const BATCH_PATH: &str = "/replication/v1/batch";

/// The peer-port route Coopr's HTTP callbacks (`server.callback.http.{success,failure}.url`)
/// can be pointed at: a finish is learned at once instead of at the next poll.
pub const CALLBACK_PATH: &str = "/replication/v1/coopr-callback";

/// The peer-port route a replica whose store is new asks an owner for the full state of its
/// shards on (`{"from": "dc2"}`, authenticated like a batch).
pub const RESYNC_PATH: &str = "/replication/v1/resync";

/// Whether a peer-port path is one of replication's own routes.
pub fn is_endpoint(path: &str) -> bool {
    path == BATCH_PATH || path == CALLBACK_PATH || path == RESYNC_PATH
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

/// A global (catalog) write the local Coopr server of the catalog's home DC answered with 2xx,
/// as the client made it (replication delivers it to the other DCs by name, never by id).
pub struct CatalogWrite<'a> {
    pub method: &'a str,
    /// Path and query, as the client sent them.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    /// The request body if it was buffered whole (else the write cannot be delivered).
    pub body: Option<&'a [u8]>,
    /// The home DC's answer.
    pub status: u16,
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
    /// JSON answer, or the error to send back. `extensions` are the request's, as the peer
    /// port's connection code left them (replication reads who the sender proved to be; the
    /// proxy does not look).
    fn endpoint<'a>(
        &'a self,
        path: &'a str,
        extensions: &'a http::Extensions,
        body: Bytes,
    ) -> BoxFut<'a, Result<String, ProxyError>>;

    /// The largest body the peer endpoints read (`replication.batch_body_bytes`).
    fn batch_body_bytes(&self) -> usize;

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

    /// The cluster of a node, when a replicated cluster's details list it.
    fn cluster_of_node<'a>(&'a self, node: &'a str) -> BoxFut<'a, Option<ClusterId>>;

    /// The largest local list body that is merged (a larger one passes untouched).
    fn list_body_bytes(&self) -> usize;

    /// After this DC, the catalog's home, applied a global write: queues it, on disk, for every
    /// other DC. Never fails the request.
    fn catalog_accepted<'a>(&'a self, write: CatalogWrite<'a>) -> BoxFut<'a, ()>;
}
