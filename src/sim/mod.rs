//! The Coopr simulator: a small in-process stand-in for an unmodified Coopr server, following
//! `docs/coopr-api.md`. This file owns the public surface: [`SimConfig`], [`Sim`],
//! [`SimError`] and [`LogEntry`], plus the shared-state handle every handler receives.
//!
//! Real Coopr (github.com/cdapio/coopr) is the reference; each behaviour cites the Coopr file it
//! follows. Defaults keep the simulator's historical behaviour; Coopr's stricter rules are opt-in:
//! - Two servers ([`Port`]): [`Sim::serve_external`] (`server.port`) and [`Sim::serve_tasks`]
//!   (`server.tasks.port`); [`Sim::serve`] serves both on one listener. [`Sim::addr`] and
//!   [`Sim::tasks_addr`] give the bound addresses.
//! - [`SimConfig::security_token`]: Coopr's 401 on every request without the bearer token.
//! - Planted secrets, for tests that assert they never leave the owner DC: [`API_PASSWORD`]
//!   (`sim-secret-api-password`) in every cluster's `provider.provisioner.api_password` (the
//!   demo provider's admin field), and [`SSH_PASSWORD`] (`sim-secret-ssh-password`) in
//!   `nodes[].provisionerResults.ssh-auth.password` once a create is done.
//! - [`SimConfig::id_counter_start`], [`SimConfig::job_ids_as_written`],
//!   [`SimConfig::solve_layout`] ([`SimConfig::like_coopr`] sets the last two).
//! - [`SimConfig::tasks`] = [`TaskMode::External`]: operations advance only as provisioners take
//!   and finish tasks; [`SimConfig::provisioner`] runs a built-in one over HTTP.
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
//! - `auth`: the `Coopr-*` header check and the security token.
//! - `clusters`, `cluster_ops`: the cluster API; `nodes`: nodes and `getNodeProperties`;
//!   `tenants`, `catalog`: superadmin tenants and per-tenant catalog entities;
//!   `tasks`: the internal API (take/finish under [`TaskMode::External`]); `plugins`: streamed
//!   plugin resources and `/v2/sim/blob`; `simlog`: `/sim/log`; `janitor`: `/sim/expire/{id}`
//!   (Coopr's lease janitor, by hand); `persist`: `--data`; `rng`: seeded splitmix64.
//! - `worker`: the built-in provisioner ([`ProvisionerConfig`]), an HTTP client of a tasks API.
//! - `routes` also knows which [`Port`] serves each route; `auth` also holds the
//!   `--security-token` check; `catalog` also holds plugin types (`PUT /v2/plugins/…` on the
//!   tasks port) and the `providerFields` split.

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
mod janitor;
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
mod worker;

use std::net::SocketAddr;
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
    /// The value the id counters hold in "ZooKeeper" when a fresh simulator starts, as if a
    /// Coopr server had already run for a while: `IdService` only writes `server.ids.start.num`
    /// when the counter node does not exist yet, then hands out the stored value and adds
    /// `server.ids.increment.by` (`coopr-server/.../common/zookeeper/IdService.java`). `None`
    /// (default): the counters start at `id_start`. A state loaded from `data` keeps its own.
    pub id_counter_start: Option<u64>,
    /// `security.enabled` with this token: every request on every port, `/status` included,
    /// needs `Authorization: Bearer <token>`, else Coopr's 401
    /// (`coopr-server/.../http/handler/auth/SecurityAuthenticationHttpHandler.java`). Default
    /// `None`: no check.
    pub security_token: Option<String>,
    /// Coopr's job-id rules (default `false`, the simulator's old behaviour): a job started by a
    /// request on `/v2/clusters/{id}` is named after `{id}` AS WRITTEN (`DELETE
    /// /v2/clusters/42` makes `42-007`), and `GET /v2/clusters/{id}/plans/{job}` is 400 unless the
    /// job's cluster part equals `{id}` as a string (`coopr-server/.../cluster/ClusterService.java`,
    /// `.../scheduler/task/JobId.java`, `.../http/handler/ClusterHandler.java`).
    pub job_ids_as_written: bool,
    /// Run a `solve_layout` job (complete at once) before `cluster_create` and before
    /// `add_services`, as Coopr's solver does (`coopr-server/.../cluster/ClusterService.java`,
    /// `.../scheduler/SolverScheduler.java`). Default `false`.
    pub solve_layout: bool,
    /// How operations advance (default [`TaskMode::Timer`]).
    pub tasks: TaskMode,
    /// Start a built-in provisioner that works over HTTP against a tasks API (see
    /// [`ProvisionerConfig`]). Default `None`.
    pub provisioner: Option<ProvisionerConfig>,
}

impl SimConfig {
    /// Every Coopr rule that differs from the simulator's historical defaults:
    /// `job_ids_as_written`, `solve_layout`.
    pub fn like_coopr(self) -> SimConfig {
        SimConfig {
            job_ids_as_written: true,
            solve_layout: true,
            ..self
        }
    }
}

/// How an operation goes from `pending` to its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskMode {
    /// By itself, `op_delay` after it started (the simulator's historical behaviour).
    #[default]
    Timer,
    /// Only when provisioners take (`POST /v2/tasks/take`) and finish (`POST /v2/tasks/finish`)
    /// its tasks, stage by stage, as in Coopr (`coopr-server/.../scheduler/task/TaskQueueService.java`).
    External,
}

/// The built-in provisioner: registers (`PUT /v2/provisioners/{id}`), heartbeats, takes and
/// finishes tasks like Coopr's `MockWorker` (`coopr-server/.../provisioner/mock/MockWorker.java`),
/// putting `ssh-auth` with [`SSH_PASSWORD`] into the result of every `CONFIRM` task.
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// The tasks API base, e.g. `http://127.0.0.1:55055` (a router's provisioner listener in
    /// router tests). `None`: this simulator's own tasks listener (or its only listener).
    pub url: Option<String>,
    /// Provisioner id (default `sim-provisioner`).
    pub id: String,
    /// Tenant ids whose queues it takes from (default `["superadmin"]`).
    pub tenants: Vec<String>,
    /// Pause between polls and how long each task "runs" (default 20 ms).
    pub poll: Duration,
    /// Sent as `Authorization: Bearer <token>` (default: the simulator's `security_token`).
    pub token: Option<String>,
}

impl Default for ProvisionerConfig {
    fn default() -> Self {
        ProvisionerConfig {
            url: None,
            id: "sim-provisioner".to_string(),
            tenants: vec![auth::SUPERADMIN.to_string()],
            poll: Duration::from_millis(20),
            token: None,
        }
    }
}

/// The planted admin secret: the demo provider's `provisioner.api_password`.
pub const API_PASSWORD: &str = "sim-secret-api-password";
/// The planted node secret: `nodes[].provisionerResults.ssh-auth.password` once a create is done.
pub const SSH_PASSWORD: &str = "sim-secret-ssh-password";

/// Which API a listener serves (`coopr-server/.../http/guice/HttpModule.java`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// `server.port`: Admin, Cluster, Node, Status, RPC, Superadmin, Plugin, User, Metric.
    External,
    /// `server.tasks.port`: Task and Provisioner handlers.
    Internal,
    /// Both on one listener (the simulator's historical single-port mode).
    Both,
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
            id_counter_start: None,
            security_token: None,
            job_ids_as_written: false,
            solve_layout: false,
            tasks: TaskMode::Timer,
            provisioner: None,
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
    /// Bound addresses: external API and tasks API (the same for a [`Port::Both`] listener).
    addrs: Mutex<(Option<SocketAddr>, Option<SocketAddr>)>,
    /// Whether the built-in provisioner runs (with the tasks listener that started it; a later
    /// tasks listener starts it again once that one stopped, as a restarted server would).
    worker_running: Arc<std::sync::atomic::AtomicBool>,
    /// The provisioners' worker capacity tenants share (`u64::MAX`: unlimited, the default);
    /// see [`Sim::set_tenant_worker_capacity`].
    pub(crate) tenant_capacity: std::sync::atomic::AtomicU64,
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
                addrs: Mutex::new((None, None)),
                worker_running: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                tenant_capacity: std::sync::atomic::AtomicU64::new(u64::MAX),
            }),
        })
    }

    /// Serves HTTP/1.1 (keep-alive) and h2c on this listener until `shutdown` resolves, then
    /// finishes in-flight requests and returns. Several listeners may serve clones of one Sim:
    /// they then share ONE state and ONE id counter.
    pub fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        self.serve_port(Port::Both, listener, shutdown)
    }

    /// Like [`Sim::serve`], but only the external API (`server.port`): the internal routes get
    /// the 404/405 Coopr's external server gives them.
    pub fn serve_external(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        self.serve_port(Port::External, listener, shutdown)
    }

    /// Like [`Sim::serve`], but only the internal API (`server.tasks.port`).
    pub fn serve_tasks(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        self.serve_port(Port::Internal, listener, shutdown)
    }

    /// Serves `port`'s API on this listener until `shutdown` resolves. Records the bound
    /// address (see [`Sim::addr`], [`Sim::tasks_addr`]) and, on the first listener that serves
    /// the tasks API, starts the built-in provisioner if one is configured.
    pub fn serve_port(
        self,
        port: Port,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        // Recorded now, so `addr()`/`tasks_addr()` are right as soon as this returns.
        let mut start_worker = None;
        if let Ok(addr) = listener.local_addr() {
            let mut addrs = self.shared.addrs.lock().unwrap_or_else(|e| e.into_inner());
            if port != Port::Internal && addrs.0.is_none() {
                addrs.0 = Some(addr);
            }
            if port != Port::External && addrs.1.is_none() {
                addrs.1 = Some(addr);
            }
            if port != Port::External
                && let Some(p) = &self.shared.cfg.provisioner
                && !self
                    .shared
                    .worker_running
                    .swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let url = p.url.clone().unwrap_or_else(|| format!("http://{addr}"));
                start_worker = Some((p.clone(), url));
            }
        }
        async move {
            // The built-in provisioner stops with the listener that started it.
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let running = start_worker
                .is_some()
                .then(|| self.shared.worker_running.clone());
            if let Some((p, url)) = start_worker {
                worker::spawn(self.shared.clone(), p, url, stop_rx);
            }
            let shutdown = async move {
                shutdown.await;
                let _ = stop_tx.send(true);
                if let Some(r) = running {
                    r.store(false, std::sync::atomic::Ordering::SeqCst);
                }
            };
            http::serve(self.shared, port, listener, shutdown).await
        }
    }

    /// The address of the first listener serving the external API, once one is served.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.shared
            .addrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// The address of the first listener serving the tasks API (`server.tasks.port`; in
    /// single-port mode the same as [`Sim::addr`]), once one is served.
    pub fn tasks_addr(&self) -> Option<SocketAddr> {
        self.shared
            .addrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
    }

    /// Every state-changing request that got a 2xx, in order (same as `GET /sim/log`).
    pub fn log(&self) -> Vec<LogEntry> {
        self.shared.read().log.clone()
    }

    /// Caps the workers all tenants but `superadmin` together may ask for (`None`: no cap, the
    /// default),
    /// standing in for the registered provisioners' free capacity: a tenant create or update
    /// past it gets Coopr's 409 "Not enough capacity to add tenant." / "... update tenant."
    /// (`coopr-server/.../provisioner/TenantProvisionerService.java` `checkCapacity`,
    /// `.../http/handler/SuperadminHandler.java`).
    pub fn set_tenant_worker_capacity(&self, cap: Option<u64>) {
        self.shared
            .tenant_capacity
            .store(cap.unwrap_or(u64::MAX), std::sync::atomic::Ordering::SeqCst);
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
