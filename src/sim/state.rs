//! The simulator's data model: everything a Coopr server keeps in its database and ZooKeeper
//! that the simulator needs, as one serialisable value (the `--data` file holds exactly this).
//! Enums serialise lowercase, as Coopr's REST codecs do.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::SimConfig;
use super::auth::SUPERADMIN;
use super::rng::Rng;
use super::simlog::LogEntry;

/// `Cluster.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClusterStatus {
    Pending,
    Active,
    Incomplete,
    Inconsistent,
    Terminated,
}

impl ClusterStatus {
    pub(crate) fn parse(text: &str) -> Option<ClusterStatus> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "pending" => ClusterStatus::Pending,
            "active" => ClusterStatus::Active,
            "incomplete" => ClusterStatus::Incomplete,
            "inconsistent" => ClusterStatus::Inconsistent,
            "terminated" => ClusterStatus::Terminated,
            _ => return None,
        })
    }
}

/// `ClusterJob.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JobStatus {
    NotSubmitted,
    Running,
    Complete,
    Failed,
    Paused,
}

/// `ClusterAction` (the ones the simulator runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Action {
    SolveLayout,
    ClusterCreate,
    ClusterDelete,
    ClusterConfigure,
    ClusterConfigureWithRestart,
    StopServices,
    StartServices,
    RestartServices,
    AddServices,
}

impl Action {
    /// The lowercase REST name.
    pub(crate) fn lower(self) -> &'static str {
        match self {
            Action::SolveLayout => "solve_layout",
            Action::ClusterCreate => "cluster_create",
            Action::ClusterDelete => "cluster_delete",
            Action::ClusterConfigure => "cluster_configure",
            Action::ClusterConfigureWithRestart => "cluster_configure_with_restart",
            Action::StopServices => "stop_services",
            Action::StartServices => "start_services",
            Action::RestartServices => "restart_services",
            Action::AddServices => "add_services",
        }
    }

    /// The cluster status after the job succeeds.
    pub(crate) fn success_status(self) -> ClusterStatus {
        match self {
            Action::ClusterDelete => ClusterStatus::Terminated,
            _ => ClusterStatus::Active,
        }
    }

    /// The cluster status after the job fails (`ClusterAction.getFailureStatus`).
    pub(crate) fn failure_status(self) -> ClusterStatus {
        match self {
            Action::SolveLayout => ClusterStatus::Terminated,
            Action::ClusterCreate | Action::ClusterDelete => ClusterStatus::Incomplete,
            _ => ClusterStatus::Inconsistent,
        }
    }
}

/// One task of a job's plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlanTask {
    pub num: u64,
    pub stage: u32,
    pub name: String,
    pub node: String,
    pub service: String,
    /// Where the task is in the task protocol ([`super::TaskMode::External`] only).
    #[serde(default)]
    pub state: TaskState,
}

/// A task under [`super::TaskMode::External`]: queued, taken by a worker, or finished.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TaskState {
    #[default]
    Queued,
    /// By `provisionerId.workerId` (`TaskQueueService`'s consumer id).
    Taken(String),
    Done,
    Failed,
}

/// A cluster job. While `status` is `Running`, its outcome is decided by the clock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    pub num: u64,
    pub action: Action,
    pub status: JobStatus,
    pub start_ms: u64,
    pub deadline_ms: u64,
    /// Drawn when the job started: whether it will fail.
    pub fails: bool,
    /// Set while paused: how much of the delay was left.
    pub paused_left_ms: Option<u64>,
    pub tasks: Vec<PlanTask>,
    /// The cluster part of the job id as the request wrote it (`42` for `DELETE
    /// /v2/clusters/42`); `None`: the 8-digit id (`coopr-server/.../scheduler/task/JobId.java`).
    #[serde(default)]
    pub cluster_ref: Option<String>,
    /// Advanced by provisioners, not by the clock ([`super::TaskMode::External`]).
    #[serde(default)]
    pub external: bool,
}

/// A cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Cluster {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub owner: String,
    pub tenant_id: String,
    pub create_time: u64,
    pub expire_time: u64,
    pub template: Value,
    pub provider: Value,
    pub hardwaretype: String,
    pub imagetype: String,
    pub services: Vec<String>,
    pub config: Value,
    pub nodes: Vec<String>,
    /// Every job, oldest first; the last one is `latestJobId`.
    pub jobs: Vec<Job>,
    /// The status once the latest job has settled (see `lifecycle`).
    pub status: ClusterStatus,
    /// The credential store's entry for this cluster: sensitive provider fields of the request,
    /// never in the cluster's JSON, added to the provider of each task a provisioner takes
    /// (`coopr-server/.../cluster/ClusterService.java`, `.../scheduler/task/TaskQueueService.java`).
    #[serde(default)]
    pub sensitive: serde_json::Map<String, Value>,
}

impl Cluster {
    pub(crate) fn latest(&self) -> Option<&Job> {
        self.jobs.last()
    }
}

/// A node: its tenant (for visibility) and the Node JSON Coopr would return.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Node {
    pub tenant_id: String,
    pub body: Value,
}

/// A tenant: its id (UUID, or `superadmin`) and its specification as given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tenant {
    pub id: String,
    pub spec: Value,
}

/// One stored version of a plugin resource: only its length and checksum are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ResVersion {
    pub version: u64,
    pub size: u64,
    pub fnv1a64: u64,
    pub status: String,
}

/// Coopr's id counters (`IdService`): each use returns the value and adds the increment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Counters {
    pub cluster: u64,
    pub job: u64,
    pub task: u64,
    pub increment: u64,
}

impl Counters {
    fn take(slot: &mut u64, increment: u64) -> u64 {
        let v = *slot;
        *slot = slot.saturating_add(increment);
        v
    }
    pub(crate) fn next_cluster(&mut self) -> u64 {
        Counters::take(&mut self.cluster, self.increment)
    }
    pub(crate) fn next_job(&mut self) -> u64 {
        Counters::take(&mut self.job, self.increment)
    }
    pub(crate) fn next_task(&mut self) -> u64 {
        Counters::take(&mut self.task, self.increment)
    }
}

/// Everything the simulator knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub counters: Counters,
    /// Failure draws.
    pub rng: Rng,
    /// UUIDs for tenants and nodes (separate, so ids do not shift the failure draws).
    pub uuids: Rng,
    /// By tenant name.
    pub tenants: BTreeMap<String, Tenant>,
    /// tenant id → entity type (`clustertemplates`, …) → name → JSON.
    pub catalog: BTreeMap<String, BTreeMap<String, BTreeMap<String, Value>>>,
    pub clusters: BTreeMap<u64, Cluster>,
    /// By node id.
    pub nodes: BTreeMap<String, Node>,
    /// `tenantId/kind/name/resType/resName` → versions.
    pub plugins: BTreeMap<String, Vec<ResVersion>>,
    /// By provisioner id.
    pub provisioners: BTreeMap<String, Value>,
    pub log: Vec<LogEntry>,
    pub log_seq: u64,
}

impl State {
    /// A new simulator: tenant `superadmin` and the demo catalog.
    pub(crate) fn fresh(cfg: &SimConfig) -> State {
        // `IdService` keeps a stored counter; `id_counter_start` stands for one.
        let start = cfg.id_counter_start.unwrap_or(cfg.id_start);
        let mut state = State {
            counters: Counters {
                cluster: start,
                job: start,
                task: start,
                increment: cfg.id_increment,
            },
            rng: Rng::new(cfg.seed),
            uuids: Rng::new(cfg.seed ^ 0x5EED_0F1D_5EED_0F1D),
            tenants: BTreeMap::new(),
            catalog: BTreeMap::new(),
            clusters: BTreeMap::new(),
            nodes: BTreeMap::new(),
            plugins: BTreeMap::new(),
            provisioners: BTreeMap::new(),
            log: Vec::new(),
            log_seq: 0,
        };
        let spec = json!({"name": SUPERADMIN, "workers": 100, "maxClusters": 0, "maxNodes": 0});
        state.add_tenant(SUPERADMIN.to_string(), spec);
        state
    }

    /// Adds a tenant with the demo catalog. `superadmin` keeps its fixed id.
    pub(crate) fn add_tenant(&mut self, name: String, spec: Value) -> String {
        let id = if name == SUPERADMIN {
            SUPERADMIN.to_string()
        } else {
            self.uuids.uuid()
        };
        self.catalog
            .insert(id.clone(), super::catalog::demo_catalog());
        self.tenants.insert(
            name,
            Tenant {
                id: id.clone(),
                spec,
            },
        );
        id
    }
}
