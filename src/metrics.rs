//! Prometheus metrics (through the `metrics` crate): the recorder, installed once per process,
//! the metric names, the typed functions the rest of the router calls, and the text `/metrics`
//! serves. docs/METRICS.md lists every series.
//!
//! Per request: one `OnceLock` check, one lock-free load of the per-DC table, a counter
//! increment and a histogram sample on cached handles. Labels are `&'static str` or cached per
//! DC, so no labels are built once a series exists (no registry lookup, no allocation).

use ::metrics::{Counter, Gauge, Histogram, Unit};
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Requests answered, by `route`, `class`, `status` (class: `2xx`, ...) and `dc`.
pub const REQUESTS: &str = "coopr_router_requests_total";
/// Time to the response head, by `route` and `class` (histogram).
pub const REQUEST_DURATION: &str = "coopr_router_request_duration_seconds";
/// Responses the router made itself, by error `kind`.
pub const UPSTREAM_ERRORS: &str = "coopr_router_upstream_errors_total";
/// The revision of the published ownership map.
pub const MAP_REVISION: &str = "coopr_router_map_revision";
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
/// 1 when a local Coopr server passes its health checks, by `backend` (its URL).
pub const BACKEND_UP: &str = "coopr_router_backend_up";
/// 1 when another DC's router passes its health checks, by `dc`.
pub const PEER_UP: &str = "coopr_router_peer_up";
/// TLS handshakes refused or timed out, by `listener` (`client`, `peer`).
pub const TLS_HANDSHAKE_FAILURES: &str = "coopr_router_tls_handshake_failures_total";

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

/// The route kinds with cached handles (`replica` is reserved for replica reads).
const ROUTES: [&str; 4] = ["local", "forwarded", "replica", "error"];
/// Request classes; `none` is a request refused before it could be classified.
const CLASSES: [&str; 5] = ["read", "write", "local", "global", "none"];
const STATUSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
const SLOTS: usize = ROUTES.len() * CLASSES.len() * STATUSES.len();
const NEVER: u64 = u64::MAX;

/// The label value of a status code: `2xx`, `4xx`, ...
pub fn status_class(status: u16) -> &'static str {
    STATUSES[status_index(status)]
}

fn status_index(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => STATUSES.len() - 1,
    }
}

/// The request counters of one DC label, created on first use.
struct DcSlots {
    dc: Box<str>,
    counters: [OnceLock<Counter>; SLOTS],
}

/// Handles for a small set of `&'static str` label values, created on first use.
struct ByLabel<T> {
    name: &'static str,
    label: &'static str,
    list: ArcSwap<Vec<(&'static str, T)>>,
}

impl<T: Clone> ByLabel<T> {
    fn new(name: &'static str, label: &'static str) -> Self {
        ByLabel {
            name,
            label,
            list: ArcSwap::from_pointee(Vec::new()),
        }
    }

    fn get(
        &self,
        value: &'static str,
        make: fn(&'static str, &'static str, &'static str) -> T,
    ) -> T {
        if let Some((_, h)) = self.list.load().iter().find(|(v, _)| *v == value) {
            return h.clone();
        }
        let h = make(self.name, self.label, value);
        self.list.rcu(|list| {
            let mut list = (**list).clone();
            if !list.iter().any(|(v, _)| *v == value) {
                list.push((value, h.clone()));
            }
            list
        });
        h
    }
}

struct State {
    handle: Option<PrometheusHandle>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last map publish, or `NEVER`.
    published_ms: AtomicU64,
    /// `(revision, age)`, registered at the first publish (no map, no series).
    map: OnceLock<(Gauge, Gauge)>,
    flips: Counter,
    fenced: Gauge,
    /// `[failed, ok]`
    reloads: [Counter; 2],
    durations: [OnceLock<Histogram>; ROUTES.len() * CLASSES.len()],
    dcs: ArcSwap<Vec<Arc<DcSlots>>>,
    errors: ByLabel<Counter>,
    connections: ByLabel<Gauge>,
    parked: ByLabel<Gauge>,
}

static STATE: OnceLock<State> = OnceLock::new();

fn state() -> &'static State {
    STATE.get_or_init(State::init)
}

impl State {
    fn init() -> State {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(REPL_LAG.into()), &DURATION_BUCKETS)
            })
            .and_then(PrometheusBuilder::install_recorder);
        let handle = match handle {
            Ok(h) => {
                // Histogram samples are drained into buckets at render time or here: without
                // scrapes they must not pile up.
                let upkeep = h.clone();
                let spawned = std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
                }
                Some(h)
            }
            Err(e) => {
                // Another recorder is installed (an embedding program's): record into it.
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                None
            }
        };
        describe();
        let s = State {
            handle,
            epoch: Instant::now(),
            published_ms: AtomicU64::new(NEVER),
            map: OnceLock::new(),
            flips: ::metrics::counter!(OWNERSHIP_FLIPS),
            fenced: ::metrics::gauge!(FENCED),
            reloads: [
                ::metrics::counter!(RELOADS, "result" => "failed"),
                ::metrics::counter!(RELOADS, "result" => "ok"),
            ],
            durations: std::array::from_fn(|_| OnceLock::new()),
            dcs: ArcSwap::from_pointee(Vec::new()),
            errors: ByLabel::new(UPSTREAM_ERRORS, "kind"),
            connections: ByLabel::new(OPEN_CONNECTIONS, "listener"),
            parked: ByLabel::new(PARKED_CONNECTIONS, "listener"),
        };
        // Series without dynamic labels exist from the start, at zero.
        s.flips.increment(0);
        s.fenced.set(0.0);
        for r in &s.reloads {
            r.increment(0);
        }
        s
    }

    /// Runs `f` on the request counters of `dc`, adding them on first use.
    fn with_dc(&self, dc: &str, f: impl FnOnce(&DcSlots)) {
        if let Some(slots) = self.dcs.load().iter().find(|s| &*s.dc == dc) {
            return f(slots);
        }
        let new = Arc::new(DcSlots {
            dc: dc.into(),
            counters: std::array::from_fn(|_| OnceLock::new()),
        });
        self.dcs.rcu(|list| {
            let mut list = (**list).clone();
            if !list.iter().any(|s| &*s.dc == dc) {
                list.push(new.clone());
            }
            list
        });
        if let Some(slots) = self.dcs.load().iter().find(|s| &*s.dc == dc) {
            f(slots);
        }
    }
}

fn describe() {
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
        PARKED_CONNECTIONS,
        "Open HTTP/1.1 connections idle without buffers (parked), by listener"
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

/// Installs the process-wide recorder. Idempotent and cheap after the first call; every other
/// function here calls it too.
pub fn install() {
    state();
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render() -> String {
    let s = state();
    let published = s.published_ms.load(Ordering::Acquire);
    if published != NEVER
        && let Some((_, age)) = s.map.get()
    {
        let now = s.epoch.elapsed().as_millis() as u64;
        age.set(now.saturating_sub(published) as f64 / 1000.0);
    }
    s.handle
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// One answered request: its route kind (`local`, `forwarded`, `error`), class (`read`,
/// `write`, `local`, `none`), HTTP status, the DC it went to, and seconds to the response head.
pub fn request(route: &'static str, class: &'static str, status: u16, dc: &str, seconds: f64) {
    let s = state();
    let st = status_index(status);
    let status = STATUSES[st];
    let (Some(r), Some(c)) = (
        ROUTES.iter().position(|&x| x == route),
        CLASSES.iter().position(|&x| x == class),
    ) else {
        // A label outside the cached sets: correct, just slower.
        ::metrics::counter!(REQUESTS, "route" => route, "class" => class, "status" => status, "dc" => dc.to_string())
            .increment(1);
        ::metrics::histogram!(REQUEST_DURATION, "route" => route, "class" => class).record(seconds);
        return;
    };
    s.with_dc(dc, |slots| {
        slots.counters[(r * CLASSES.len() + c) * STATUSES.len() + st]
            .get_or_init(|| {
                ::metrics::counter!(REQUESTS, "route" => route, "class" => class, "status" => status, "dc" => slots.dc.to_string())
            })
            .increment(1);
    });
    s.durations[r * CLASSES.len() + c]
        .get_or_init(|| ::metrics::histogram!(REQUEST_DURATION, "route" => route, "class" => class))
        .record(seconds);
}

/// A response the router made itself; `kind` is `ProxyError::kind()`.
pub fn upstream_error(kind: &'static str) {
    state()
        .errors
        .get(
            kind,
            |name, label, value| ::metrics::counter!(name, label => value),
        )
        .increment(1);
}

/// A map was published (etcd watcher; the static map once at start, as revision 0).
pub fn map_published(revision: u64) {
    let s = state();
    let (rev, _) = s
        .map
        .get_or_init(|| (::metrics::gauge!(MAP_REVISION), ::metrics::gauge!(MAP_AGE)));
    rev.set(revision as f64);
    s.published_ms
        .store(s.epoch.elapsed().as_millis() as u64, Ordering::Release);
}

/// `n` shards changed owner in a published map.
pub fn ownership_flips(n: usize) {
    state().flips.increment(n as u64);
}

/// The fence engaged (`true`) or released.
pub fn fenced(on: bool) {
    state().fenced.set(if on { 1.0 } else { 0.0 });
}

/// This DC's Coopr created a cluster outside this DC's home shards.
pub fn misplaced_id() {
    state();
    ::metrics::counter!(MISPLACED_IDS).increment(1);
}

/// A retention sweep of the replica store finished.
pub fn replica_store(bytes: u64, clusters: u64, retired: u64) {
    install();
    ::metrics::gauge!(REPL_STORE_BYTES).set(bytes as f64);
    ::metrics::gauge!(REPL_STORE_CLUSTERS).set(clusters as f64);
    ::metrics::counter!(REPL_RETIRED).increment(retired);
}

/// An anti-entropy sweep ended (`ok`, `failed`).
pub fn replication_sweep(result: &'static str) {
    install();
    ::metrics::counter!(REPL_SWEEPS, "result" => result).increment(1);
}

/// A sweep found a cluster changed without the router (`changed`) or never replicated
/// (`unknown`).
pub fn replication_sweep_difference(kind: &'static str) {
    install();
    ::metrics::counter!(REPL_SWEEP_DIFFS, "kind" => kind).increment(1);
}

/// The full state of this DC's shards was queued for `peer`.
pub fn replication_resync(peer: &str) {
    install();
    ::metrics::counter!(REPL_RESYNCS, "peer" => peer.to_string()).increment(1);
}

/// A held write ended (`released`, `expired`) or was not held (`full`).
pub fn held_write(outcome: &'static str) {
    install();
    ::metrics::counter!(HELD_WRITES, "outcome" => outcome).increment(1);
}

/// What is held now.
pub fn holding(requests: u64, bytes: u64) {
    install();
    ::metrics::gauge!(HELD_NOW).set(requests as f64);
    ::metrics::gauge!(HELD_BYTES).set(bytes as f64);
}

/// How many shards wait to go home (the failback driver, after each decision).
pub fn failback_waiting(n: u64) {
    install();
    ::metrics::gauge!(FAILBACK_WAITING).set(n as f64);
}

/// This router requested a failback handoff.
pub fn failback_requested() {
    install();
    ::metrics::counter!(FAILBACK_REQUESTED).increment(1);
}

/// A config reload finished.
pub fn reload(ok: bool) {
    state().reloads[usize::from(ok)].increment(1);
}

fn connections(listener: &'static str) -> Gauge {
    state().connections.get(
        listener,
        |name, label, value| ::metrics::gauge!(name, label => value),
    )
}

/// Counts a connection as open on `listener` until dropped (also when its task is cancelled).
pub struct OpenConnection(Gauge);

impl OpenConnection {
    pub fn new(listener: &'static str) -> Self {
        let g = connections(listener);
        g.increment(1.0);
        OpenConnection(g)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Counts a connection as parked on `listener` until dropped.
pub struct ParkedConnection(Gauge);

impl ParkedConnection {
    pub fn new(listener: &'static str) -> Self {
        let g = state().parked.get(
            listener,
            |name, label, value| ::metrics::gauge!(name, label => value),
        );
        g.increment(1.0);
        ParkedConnection(g)
    }
}

impl Drop for ParkedConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The health of a local Coopr server (`backend` is its URL).
pub fn backend_health(backend: &str, up: bool) {
    install();
    ::metrics::gauge!(BACKEND_UP, "backend" => backend.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// The health of another DC's router.
pub fn peer_health(dc: &str, up: bool) {
    install();
    ::metrics::gauge!(PEER_UP, "dc" => dc.to_string()).set(if up { 1.0 } else { 0.0 });
}

/// A peer acknowledged a batch of `n` records.
pub fn replication_sent(peer: &str, n: usize, _seconds: f64) {
    install();
    ::metrics::counter!(REPL_SENT, "peer" => peer.to_string()).increment(n as u64);
}

/// A batch to `peer` was not acknowledged and will be retried.
pub fn replication_retry(peer: &str) {
    install();
    ::metrics::counter!(REPL_RETRIES, "peer" => peer.to_string()).increment(1);
}

/// `n` records are queued for `peer`.
pub fn replication_queued(peer: &str, n: u64) {
    install();
    ::metrics::gauge!(REPL_QUEUED, "peer" => peer.to_string()).set(n as f64);
}

/// A record for `peer` was dropped at the outbox cap.
pub fn replication_dropped(peer: &str) {
    install();
    ::metrics::counter!(REPL_DROPPED, "peer" => peer.to_string()).increment(1);
}

/// An accepted write whose intent could not be recorded.
pub fn replication_unrecorded() {
    install();
    ::metrics::counter!(REPL_LOST).increment(1);
}

/// A finished state captured `seconds` ago at its owner was applied here.
pub fn replication_lag(seconds: f64) {
    install();
    ::metrics::histogram!(REPL_LAG).record(seconds);
}

/// A catalog write's delivery to `dc` ended with `result`.
pub fn catalog_delivery(dc: &str, result: &'static str) {
    install();
    ::metrics::counter!(CATALOG_DELIVERIES, "dc" => dc.to_string(), "result" => result)
        .increment(1);
}

/// `n` catalog writes are queued for `dc`.
pub fn catalog_queued(dc: &str, n: u64) {
    install();
    ::metrics::gauge!(CATALOG_QUEUED, "dc" => dc.to_string()).set(n as f64);
}

/// DC `dc` differs from the home DC's catalog in `n` entities of `kind`.
pub fn catalog_drift(dc: &str, kind: &'static str, n: usize) {
    install();
    ::metrics::gauge!(CATALOG_DRIFT, "dc" => dc.to_string(), "kind" => kind).set(n as f64);
}

/// A catalog write applied at the home DC could not be queued for the others.
pub fn catalog_delivery_unrecorded() {
    install();
    ::metrics::counter!(CATALOG_UNRECORDED).increment(1);
}

/// A catalog write reached a DC `seconds` after the home DC answered it.
pub fn catalog_lag(seconds: f64) {
    install();
    ::metrics::histogram!(CATALOG_LAG).record(seconds);
}

/// A replica applied `applied` records of a batch and ignored `ignored`.
pub fn replication_applied(applied: usize, ignored: usize) {
    install();
    ::metrics::counter!(REPL_APPLIED, "result" => "applied").increment(applied as u64);
    ::metrics::counter!(REPL_APPLIED, "result" => "ignored").increment(ignored as u64);
}

/// A replica refused `n` records for `reason` (`wrong_shard`, `not_owner`, `epoch_ahead`, ...).
pub fn replication_refused(reason: &'static str, n: usize) {
    install();
    ::metrics::counter!(REPL_REFUSED, "reason" => reason).increment(n as u64);
}

/// Counts a TLS handshake that was refused or did not finish in time (rare: no handle cache).
pub fn tls_handshake_failed(listener: &'static str) {
    install();
    ::metrics::counter!(TLS_HANDSHAKE_FAILURES, "listener" => listener).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        let rows = [
            (101, "1xx"),
            (200, "2xx"),
            (304, "3xx"),
            (421, "4xx"),
            (599, "5xx"),
            (600, "other"),
        ];
        for (code, want) in rows {
            assert_eq!(status_class(code), want, "{code}");
        }
    }

    #[test]
    fn uncached_labels_and_many_dcs_are_recorded() {
        request("replica", "read", 200, "dc9", 0.001);
        request("someday", "read", 200, "dc9", 0.001);
        for dc in ["a", "b", "a", "c"] {
            request("local", "write", 503, dc, 0.002);
        }
        let text = render();
        for want in [
            r#"coopr_router_requests_total{route="replica",class="read",status="2xx",dc="dc9"}"#,
            r#"coopr_router_requests_total{route="someday",class="read",status="2xx",dc="dc9"}"#,
            r#"coopr_router_requests_total{route="local",class="write",status="5xx",dc="a"} 2"#,
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }
}
