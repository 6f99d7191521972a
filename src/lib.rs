//! coopr-router: a reverse proxy that turns several datacenters of unmodified Coopr servers into
//! one hot-hot service. See ARCHITECTURE.md for the map of modules and the invariants.

pub mod admin;
pub mod app;
pub mod backoff;
pub mod body;
pub mod classify;
pub mod config;
pub mod demo;
pub mod error;
pub mod etcd;
pub mod failover;
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
pub mod tls;
pub mod upstream;
