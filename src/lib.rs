//! coopr-router: a reverse proxy that turns several datacenters of unmodified Coopr servers into
//! one hot-hot service. ARCHITECTURE.md has the bird's-eye view and the invariants; the design
//! it follows is in docs/design.md.
//!
//! # Layout
//!
//! Modules in reading order, top (entry) to bottom (small shared types). Each imports only
//! modules below it (`tests/architecture.rs` checks that the graph has no cycle).
//!
//! **Entry.** [`app`] builds one router from a config and bound listeners and owns shutdown;
//! [`demo`] runs three DCs on loopback; the binaries (`main.rs` with `cli/`, `bin/coopr-sim.rs`)
//! are the CLI.
//!
//! **Listeners and operators.** [`server`] accepts connections and speaks HTTP/1.1, h2c and
//! (through [`tls`]) TLS; [`admin`] is the admin port; [`reload`] applies a changed config.
//!
//! **The request path.** [`proxy`] runs each request's phases (limits, classify, snapshot,
//! hold, decide, forward or answer, rescue) over one context. It decides with [`classify`] and
//! [`routing`] (both pure), and sends through [`upstream`] (pool, backends, health, send
//! failures as error kinds). [`limits`] and [`error`] are its refusals, the latter the one
//! place an error becomes a response.
//!
//! **Ownership sources.** [`ownership`] (the map, the fence, the state file) and [`etcd`]
//! (watch, liveness, failover driver, handoff, operator commands) publish routing snapshots;
//! the table knows no source. [`failover`] is the pure failover step. [`inflight`] counts
//! writes in flight per shard (what a handoff waits for).
//!
//! **Replication.** [`replication`] copies finished-operation state to the other DCs; the
//! proxy reaches it only through its own narrow trait (`proxy::Replicas`).
//!
//! **Background.** [`health`] probes local servers and peer DCs.
//!
//! **Shared types.** [`runtime`] (what a reload swaps: config, servers, upstream, TLS),
//! [`config`], [`body`], [`h2`] (HTTP/2 frames and HPACK), [`headers`], [`shutdown`],
//! [`backoff`], [`deadline`], [`ids`], [`metrics`], [`logging`].
//!
//! **The simulator.** [`sim`] is `coopr-sim`, the Coopr API simulator the tests run against;
//! it depends only on [`ids`].

pub mod admin;
pub mod adopt;
pub mod app;
pub mod backoff;
pub mod body;
pub mod classify;
pub mod config;
pub mod deadline;
pub mod demo;
pub mod error;
pub mod etcd;
pub mod failover;
pub mod h2;
pub mod headers;
pub mod health;
pub mod ids;
pub mod inflight;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod ownership;
pub mod proxy;
pub mod reload;
pub mod replication;
pub mod routing;
pub mod runtime;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod status;
pub mod tls;
pub mod upstream;
pub mod wire;
