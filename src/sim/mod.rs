//! The Coopr simulator: a small in-process stand-in for an unmodified Coopr server, following
//! `docs/coopr-api.md`. This file owns the public surface: [`SimConfig`], [`Sim`],
//! [`SimError`] and [`LogEntry`], plus the shared-state handle every handler receives.
//!
//! Module map:
//! - `state`: the data model (tenants, catalog, clusters, jobs, nodes, counters, log).
//! - `clock`: the simulator clock (wall-clock base + `tokio::time::Instant`, so paused-time
//!   tests work).
//! - `lifecycle`: how an operation goes from `pending` to its outcome, evaluated lazily.
//! - `views`: the JSON shapes Coopr returns for clusters, statuses and plans.
//! - `http`: the listener, HTTP/1.1 + h2c serving and graceful shutdown.
//! - `dispatch`: one request's flow: route, auth, body, handler, log, persist.
//! - `routes`: path routing (404/405 before auth) and dispatch.
//! - `reply`, `body`: response helpers and the streaming response body.
//! - `auth`: the `Coopr-*` header check.
//! - `clusters`, `cluster_ops`: the cluster API; `nodes`: nodes and `getNodeProperties`;
//!   `tenants`, `catalog`: superadmin tenants and per-tenant catalog entities;
//!   `tasks`: the internal API; `plugins`: streamed plugin resources and `/v2/sim/blob`;
//!   `simlog`: `/sim/log`; `persist`: `--data`; `rng`: seeded splitmix64.

// Handlers return `Result<_, Response>` so an early `return Err(reply)` reads like Coopr's own
// code. The error is built at most once per request and immediately sent, so boxing it would
// only add an allocation.
#![allow(clippy::result_large_err)]

mod auth;
mod body;
mod catalog;
mod clock;
mod cluster_ops;
mod clusters;
mod ctx;
mod dispatch;
mod http;
mod lifecycle;
mod nodes;
mod persist;
mod plugins;
mod reply;
mod rng;
mod routes;
mod simlog;
mod state;
mod tasks;
mod tenants;
mod views;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

pub use body::{blob_byte, fnv1a64};
pub use simlog::LogEntry;

/// How a simulator behaves. Mirrors the Coopr settings it stands in for.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// `server.ids.start.num`: the first value of every id counter (default 1).
    pub id_start: u64,
    /// `server.ids.increment.by`: what each use adds to a counter (default 1).
    pub id_increment: u64,
    /// How long an operation stays `pending` (default 2 s).
    pub op_delay: Duration,
    /// Chance, 0.0..=1.0, that an operation fails (default 0).
    pub failure_rate: f64,
    /// Seed for the failure draws and generated UUIDs (default 1).
    pub seed: u64,
    /// Persist the state to this JSON file (temp + fsync + rename) and load it at start.
    pub data: Option<PathBuf>,
    /// A label for logs, e.g. `dc1` (default `sim`).
    pub name: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            id_start: 1,
            id_increment: 1,
            op_delay: Duration::from_secs(2),
            failure_rate: 0.0,
            seed: 1,
            data: None,
            name: "sim".to_string(),
        }
    }
}

/// Why a simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator config: {0}")]
    Config(String),
    #[error("cannot read state file {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is not valid simulator state: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A running simulator's shared state. Cloning is cheap; every clone (and every listener serving
/// one) sees the same state and the same id counters.
#[derive(Clone)]
pub struct Sim {
    pub(crate) shared: Arc<Shared>,
}

/// What every handler can reach.
pub(crate) struct Shared {
    pub(crate) cfg: SimConfig,
    pub(crate) clock: clock::Clock,
    state: RwLock<state::State>,
    /// Serialises writes of the `--data` file, so the newest snapshot is written last.
    pub(crate) persist_lock: Mutex<()>,
}

impl Sim {
    /// Builds a simulator, loading `cfg.data` if that file exists.
    pub fn new(cfg: SimConfig) -> Result<Sim, SimError> {
        if cfg.id_increment == 0 {
            return Err(SimError::Config("id_increment must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&cfg.failure_rate) {
            return Err(SimError::Config(
                "failure_rate must be within 0.0..=1.0".into(),
            ));
        }
        let clock = clock::Clock::new();
        let state = match &cfg.data {
            Some(path) => persist::load(path)?,
            None => None,
        };
        let state = state.unwrap_or_else(|| state::State::fresh(&cfg));
        tracing::debug!(sim = %cfg.name, "simulator state ready");
        Ok(Sim {
            shared: Arc::new(Shared {
                cfg,
                clock,
                state: RwLock::new(state),
                persist_lock: Mutex::new(()),
            }),
        })
    }

    /// Serves HTTP/1.1 (keep-alive) and h2c on this listener until `shutdown` resolves, then
    /// finishes in-flight requests and returns. Several listeners may serve clones of one Sim:
    /// they then share ONE state and ONE id counter.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        http::serve(self.shared, listener, shutdown).await
    }

    /// Every state-changing request that got a 2xx, in order (same as `GET /sim/log`).
    pub fn log(&self) -> Vec<LogEntry> {
        self.shared.read().log.clone()
    }
}

impl Shared {
    /// A read guard; a poisoned lock is recovered (the state is plain data).
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, state::State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A write guard; a poisoned lock is recovered (the state is plain data).
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, state::State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }
}
