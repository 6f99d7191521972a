//! Prometheus metrics (through the `metrics` crate): the recorder, installed once per process,
//! the metric names, the typed functions the rest of the router calls, and the text `/metrics`
//! serves. docs/METRICS.md lists every series.
//!
//! Per request: one `OnceLock` check, one lock-free load of the per-DC table, a counter
//! increment and a histogram sample on cached handles. Labels are `&'static str` or cached per
//! DC, so no labels are built once a series exists (no registry lookup, no allocation).//!
//! The series' names and help texts are in `names.rs`, the label sets with cached handles in
//! `labels.rs`, the recorder and its handle caches in `registry.rs` (which also renders the
//! text). The typed recording functions are grouped by what they record: `requests.rs`
//! (requests, connections, handshakes), `routing.rs` (the map, the fence, reloads, held writes,
//! health), `replication.rs` (replication and catalog deliveries). Everything is re-exported
//! here: callers name `metrics::request`, `metrics::REQUESTS`, ...

mod labels;
mod names;
mod registry;
mod replication;
mod requests;
mod routing;

pub use labels::status_class;
pub use names::*;
pub use registry::{install, render};
pub use replication::*;
pub use requests::*;
pub use routing::*;
