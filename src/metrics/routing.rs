//! Recording the ownership side: published maps, owner changes, the fence, misplaced ids,
//! reloads, writes held across a failover, failback, and the health of local servers and peers.

use super::names::{
    BACKEND_UP, FAILBACK_REQUESTED, FAILBACK_WAITING, HELD_BYTES, HELD_NOW, HELD_WRITES, MAP_AGE,
    MAP_REVISION, MISPLACED_IDS, PEER_UP,
};
use super::registry::{install, state};
use std::sync::atomic::Ordering;

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

/// This router compacted etcd's history to `revision`.
pub fn etcd_compacted(revision: i64) {
    ::metrics::gauge!(super::names::ETCD_COMPACTED).set(revision as f64);
}

/// This DC's Coopr created a cluster outside this DC's home shards.
pub fn misplaced_id() {
    state();
    ::metrics::counter!(MISPLACED_IDS).increment(1);
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
