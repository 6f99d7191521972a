//! The metric families: every series' name (docs/METRICS.md lists them), the latency buckets,
//! and the help text each is described with.

use ::metrics::Unit;

/// Requests answered, by `route`, `class`, `status` (class: `2xx`, ...) and `dc`.
pub const REQUESTS: &str = "coopr_router_requests_total";
/// Time to the response head, by `route` and `class` (histogram).
pub const REQUEST_DURATION: &str = "coopr_router_request_duration_seconds";
/// Responses the router made itself, by error `kind`.
pub const UPSTREAM_ERRORS: &str = "coopr_router_upstream_errors_total";
/// The revision of the published ownership map.
pub const MAP_REVISION: &str = "coopr_router_map_revision";
/// The revision this router last compacted etcd's history to (`etcd/compact.rs`).
pub const ETCD_COMPACTED: &str = "coopr_router_etcd_compacted_revision";
/// Seconds since the ownership map was last published (computed at scrape time).
pub const MAP_AGE: &str = "coopr_router_map_age_seconds";
/// Shards whose owner changed in a published map.
pub const OWNERSHIP_FLIPS: &str = "coopr_router_ownership_flips_total";
/// 1 while writes to owned shards are refused (the fence), else 0.
pub const FENCED: &str = "coopr_router_fenced";
/// Config reloads, by `result` (`ok` or `failed`).
pub const RELOADS: &str = "coopr_router_reloads_total";
/// Open connections, by `listener` (`client`, `peer`, `admin`).
pub const OPEN_CONNECTIONS: &str = "coopr_router_open_connections";
/// Open HTTP/1.1 connections waiting for their next request without buffers, by `listener`.
pub const PARKED_CONNECTIONS: &str = "coopr_router_parked_connections";
/// Live tasks on each serving thread (`listen.threads`), by `thread` (its pool lane, from 1;
/// computed at scrape time).
pub const SERVING_THREAD_TASKS: &str = "coopr_router_serving_thread_tasks";
/// 1 when a local Coopr server passes its health checks, by `backend` (its URL).
pub const BACKEND_UP: &str = "coopr_router_backend_up";
/// 1 when another DC's router passes its health checks, by `dc`.
pub const PEER_UP: &str = "coopr_router_peer_up";
/// TLS handshakes refused or timed out, by `listener` (`client`, `peer`).
pub const TLS_HANDSHAKE_FAILURES: &str = "coopr_router_tls_handshake_failures_total";
/// HTTP/1.1 requests the router's own server left to hyper's, by `listener` (`server/fast.rs`).
pub const HTTP1_TO_HYPER: &str = "coopr_router_http1_to_hyper_total";
/// HTTP/2 connections opened to peer routers (`upstream/h2`), by `peer` (its authority).
pub const PEER_LINKS_OPENED: &str = "coopr_router_peer_h2_links_opened_total";
/// Requests forwarded to a peer router over HTTP/1.1 while HTTP/2 links are on, by `why`
/// (`body`: streamed or too large for the windows; `full`: every link was full).
pub const PEER_OVER_HTTP1: &str = "coopr_router_peer_over_http1_total";

/// Clusters this DC's Coopr created outside this DC's home shards (its id settings or counter
/// are wrong); each is pinned to this DC and `/ready` fails until an operator clears it.
pub const MISPLACED_IDS: &str = "coopr_router_misplaced_ids_total";

/// Replication records acknowledged by a peer, by `peer`.
pub const REPL_SENT: &str = "coopr_router_replication_sent_total";
/// Replication batches a peer did not acknowledge (retried), by `peer`.
pub const REPL_RETRIES: &str = "coopr_router_replication_retries_total";
/// Records queued for a peer now, by `peer` (set after every acknowledged batch and enqueue).
pub const REPL_QUEUED: &str = "coopr_router_replication_queued";
/// Records dropped because a peer's outbox queue was at `outbox_max_records`, by `peer`.
pub const REPL_DROPPED: &str = "coopr_router_replication_dropped_total";
/// Operations whose intent could not be recorded (store failure), so not replicated.
pub const REPL_LOST: &str = "coopr_router_replication_unrecorded_total";
/// Replication records a replica refused (not the shard's owner, wrong shard, ...), by
/// `reason`; a whole batch from the wrong sender counts once as `reason="sender"`.
pub const REPL_REFUSED: &str = "coopr_router_replication_refused_total";
/// Records a replica applied or ignored (not newer), by `result`.
pub const REPL_APPLIED: &str = "coopr_router_replication_applied_total";
/// At a replica: seconds from a finished state's capture at the owner to its apply here
/// (histogram; the two routers' clocks are compared, so skew adds to it).
pub const REPL_LAG: &str = "coopr_router_replication_lag_seconds";

/// Catalog writes delivered to a DC, by `dc` and `result` (`applied`, `already_there`,
/// `refused` (retried), `dropped`).
pub const CATALOG_DELIVERIES: &str = "coopr_router_catalog_deliveries_total";
/// Catalog writes queued for a DC, by `dc`.
pub const CATALOG_QUEUED: &str = "coopr_router_catalog_queued";
/// Catalog writes the home DC applied but could not queue for the other DCs.
pub const CATALOG_UNRECORDED: &str = "coopr_router_catalog_unrecorded_total";
/// Seconds from the home DC's answer to a catalog write to its delivery to a DC (histogram).
pub const CATALOG_LAG: &str = "coopr_router_catalog_lag_seconds";

/// At the catalog's home DC: a DC's differences from the home's catalog at the last
/// comparison, by `dc` and `kind` (`tenants`, `providers`, ...).
pub const CATALOG_DRIFT: &str = "coopr_router_catalog_drift";

/// Size of the replication store file, in bytes (after each retention sweep).
pub const REPL_STORE_BYTES: &str = "coopr_router_replication_store_bytes";
/// Replicated clusters in the store (with a state), after each retention sweep.
pub const REPL_STORE_CLUSTERS: &str = "coopr_router_replication_store_clusters";
/// Replicated clusters removed from the store after `replication.retain_terminated_ms`.
pub const REPL_RETIRED: &str = "coopr_router_replication_retired_total";
/// Anti-entropy sweeps at the owner, by `result` (`ok`, `failed`).
pub const REPL_SWEEPS: &str = "coopr_router_replication_sweeps_total";
/// Clusters a sweep found changed without the router, by `kind` (`changed`, `unknown`).
pub const REPL_SWEEP_DIFFS: &str = "coopr_router_replication_sweep_differences_total";
/// Full states queued for a peer that missed records or asked, by `peer`.
pub const REPL_RESYNCS: &str = "coopr_router_replication_resyncs_total";

/// Writes held because their owner DC could not be reached, by `outcome`: `released` (sent to
/// the new owner), `expired` (no new owner within `failover.buffer_max_ms`), `full` (not held:
/// the bound was reached).
pub const HELD_WRITES: &str = "coopr_router_held_writes_total";
/// Writes held now.
pub const HELD_NOW: &str = "coopr_router_held_writes";
/// Bytes of the bodies of the writes held now.
pub const HELD_BYTES: &str = "coopr_router_held_bytes";
/// Shards away from their home DC that are not handed back now (`/admin/routes` `failback`
/// says why each waits).
pub const FAILBACK_WAITING: &str = "coopr_router_failback_waiting";
/// Failback handoffs this router requested (and etcd accepted).
pub const FAILBACK_REQUESTED: &str = "coopr_router_failback_requested_total";

/// Upper bounds of the request latency buckets, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub(super) fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        Unit::Count,
        "Requests answered, by route kind, class, status class and target DC"
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response head, by route kind and class"
    );
    describe_counter!(
        UPSTREAM_ERRORS,
        Unit::Count,
        "Responses the router made itself, by error kind (the x-coopr-router-error value)"
    );
    describe_gauge!(
        MAP_REVISION,
        "Revision of the published ownership map (0: static map)"
    );
    describe_gauge!(
        ETCD_COMPACTED,
        "Revision this router last compacted etcd's history to (ownership.compact_every_ms)"
    );
    describe_gauge!(
        MAP_AGE,
        Unit::Seconds,
        "Seconds since the ownership map was last published"
    );
    describe_counter!(
        OWNERSHIP_FLIPS,
        Unit::Count,
        "Shards whose owner DC changed in a published map"
    );
    describe_gauge!(
        FENCED,
        "1 while writes to owned shards are refused (map not provably fresh)"
    );
    describe_counter!(RELOADS, Unit::Count, "Config reloads, by result");
    describe_counter!(
        MISPLACED_IDS,
        Unit::Count,
        "Clusters this DC's Coopr created outside this DC's home shards"
    );
    describe_gauge!(OPEN_CONNECTIONS, "Open connections, by listener");
    describe_gauge!(
        SERVING_THREAD_TASKS,
        "Live tasks (accept loops, connections, h2 streams) on each serving thread, by thread"
    );
    describe_gauge!(
        PARKED_CONNECTIONS,
        "Open HTTP/1.1 connections idle without buffers (parked), by listener"
    );
    describe_counter!(
        HTTP1_TO_HYPER,
        Unit::Count,
        "HTTP/1.1 requests left to hyper's server (not plain: a body still coming, chunked, Expect, HTTP/1.0, malformed), by listener"
    );
    describe_counter!(
        PEER_LINKS_OPENED,
        Unit::Count,
        "HTTP/2 connections opened to peer routers, by peer"
    );
    describe_counter!(
        PEER_OVER_HTTP1,
        Unit::Count,
        "Requests forwarded to a peer router over HTTP/1.1 although HTTP/2 links are on, by why (body, full)"
    );
    describe_gauge!(
        BACKEND_UP,
        "1 when a local Coopr server passes its health checks"
    );
    describe_gauge!(
        PEER_UP,
        "1 when another DC's router passes its health checks"
    );
}
