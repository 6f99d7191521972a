//! Recording replication: records sent, retried, queued, dropped, applied and refused, the
//! replica store's size and retention, sweeps and resyncs, and catalog deliveries and drift.

use super::names::*;
use super::registry::install;

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
