//! Operations from `pending` to their outcome. A job starts `running` with a deadline
//! (`now + op_delay`) and a failure decided up front; nothing runs in the background. Every
//! access evaluates the job against the clock ([`effective`], read-only) and writes settle it
//! ([`settle`]), so the answer is right even when nobody polls.
//!
//! As in Coopr, success leaves the job `complete` and the cluster `active` (`terminated` for a
//! delete); failure leaves the job `failed` and the cluster in the action's failure status.
//!
//! Under [`super::TaskMode::External`] a job has no deadline: it advances only as provisioners
//! finish its tasks (`super::tasks`), and its progress is the number of finished tasks.

use super::rng::Rng;
use super::state::{Action, Cluster, ClusterStatus, Counters, Job, JobStatus, PlanTask, TaskState};

/// What a cluster looks like right now.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Effective {
    pub status: ClusterStatus,
    pub action: Option<Action>,
    pub job: Option<JobStatus>,
    pub steps_total: u64,
    pub steps_done: u64,
}

/// The cluster's status and progress at `now`, without changing anything.
pub(crate) fn effective(c: &Cluster, now: u64) -> Effective {
    let Some(job) = c.latest() else {
        return Effective {
            status: c.status,
            action: None,
            job: None,
            steps_total: 0,
            steps_done: 0,
        };
    };
    let total = job.tasks.len() as u64;
    let partial = |left: u64| {
        let span = job.deadline_ms.saturating_sub(job.start_ms).max(1);
        let done = total * (span - left.min(span)) / span;
        done.min(total.saturating_sub(1))
    };
    let finished = job
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::Done)
        .count() as u64;
    let (status, job_status, done) = match job.status {
        JobStatus::Running | JobStatus::Paused if job.external => {
            (ClusterStatus::Pending, job.status, finished)
        }
        JobStatus::Complete | JobStatus::Failed if job.external => (c.status, job.status, finished),
        JobStatus::Running if now >= job.deadline_ms => outcome(job),
        JobStatus::Running => (
            ClusterStatus::Pending,
            JobStatus::Running,
            partial(job.deadline_ms - now),
        ),
        JobStatus::Paused => (
            ClusterStatus::Pending,
            JobStatus::Paused,
            partial(job.paused_left_ms.unwrap_or(0)),
        ),
        JobStatus::Complete => (c.status, JobStatus::Complete, total),
        other => (c.status, other, total / 2),
    };
    Effective {
        status,
        action: Some(job.action),
        job: Some(job_status),
        steps_total: total,
        steps_done: done,
    }
}

/// The end state of a job whose deadline has passed.
fn outcome(job: &Job) -> (ClusterStatus, JobStatus, u64) {
    let total = job.tasks.len() as u64;
    if job.fails {
        (job.action.failure_status(), JobStatus::Failed, total / 2)
    } else {
        (job.action.success_status(), JobStatus::Complete, total)
    }
}

/// Writes the effective state into the cluster (call under the write lock before a change).
pub(crate) fn settle(c: &mut Cluster, now: u64) {
    let e = effective(c, now);
    if let (Some(job), Some(status)) = (c.jobs.last_mut(), e.job) {
        job.status = status;
    }
    c.status = e.status;
}

/// What a new operation needs besides the cluster.
pub(crate) struct OpStart<'a> {
    pub counters: &'a mut Counters,
    pub rng: &'a mut Rng,
    pub now: u64,
    pub delay_ms: u64,
    pub failure_rate: f64,
    /// Wait for provisioners instead of the clock.
    pub external: bool,
    /// The cluster id as the request wrote it, when job ids follow it.
    pub cluster_ref: Option<String>,
}

/// Records a `solve_layout` job, complete at once (the simulator's solver never fails): Coopr's
/// create and add-services first run the solver under a job of their own
/// (`coopr-server/.../cluster/ClusterService.java`, `.../scheduler/SolverScheduler.java`).
pub(crate) fn solved(
    counters: &mut Counters,
    c: &mut Cluster,
    now: u64,
    cluster_ref: Option<String>,
) {
    let num = counters.next_job();
    c.jobs.push(Job {
        num,
        action: Action::SolveLayout,
        status: JobStatus::Complete,
        start_ms: now,
        deadline_ms: now,
        fails: false,
        paused_left_ms: None,
        tasks: Vec::new(),
        cluster_ref,
        external: false,
    });
}

/// Starts `action` on the cluster: a new running job (the new `latestJobId`) with a plan over
/// `services`, and the cluster `pending`.
pub(crate) fn start(op: OpStart<'_>, c: &mut Cluster, action: Action, services: &[String]) {
    let fails = op.rng.chance(op.failure_rate);
    let num = op.counters.next_job();
    let tasks = plan(action, &c.nodes, services)
        .into_iter()
        .map(|(stage, name, node, service)| PlanTask {
            num: op.counters.next_task(),
            stage,
            name: name.to_string(),
            node,
            service,
            state: TaskState::Queued,
        })
        .collect::<Vec<_>>();
    let deadline = if op.external {
        u64::MAX
    } else {
        op.now.saturating_add(op.delay_ms)
    };
    let nothing_to_do = op.external && tasks.is_empty();
    c.jobs.push(Job {
        num,
        action,
        status: if nothing_to_do {
            JobStatus::Complete
        } else {
            JobStatus::Running
        },
        start_ms: op.now,
        deadline_ms: deadline,
        fails,
        paused_left_ms: None,
        tasks,
        cluster_ref: op.cluster_ref,
        external: op.external,
    });
    c.status = if nothing_to_do {
        action.success_status()
    } else {
        ClusterStatus::Pending
    };
}

/// The task names of each stage: node-level stages, then per-service stages.
fn stages(action: Action) -> (&'static [&'static str], &'static [&'static str]) {
    match action {
        Action::SolveLayout => (&[], &[]),
        Action::ClusterCreate => (
            &["CREATE", "CONFIRM", "BOOTSTRAP"],
            &["INSTALL", "CONFIGURE", "INITIALIZE", "START"],
        ),
        Action::ClusterDelete => (&["DELETE"], &[]),
        Action::ClusterConfigure => (&[], &["CONFIGURE"]),
        Action::ClusterConfigureWithRestart => (&[], &["STOP", "CONFIGURE", "START"]),
        Action::StopServices => (&[], &["STOP"]),
        Action::StartServices => (&[], &["START"]),
        Action::RestartServices => (&[], &["STOP", "START"]),
        Action::AddServices => (&[], &["INSTALL", "CONFIGURE", "INITIALIZE", "START"]),
    }
}

/// The plan: `(stage, task name, node id, service)`; never empty while there are nodes.
fn plan(
    action: Action,
    nodes: &[String],
    services: &[String],
) -> Vec<(u32, &'static str, String, String)> {
    let (node_stages, service_stages) = stages(action);
    let mut out = Vec::new();
    let mut stage = 0u32;
    for name in node_stages {
        out.extend(
            nodes
                .iter()
                .map(|n| (stage, *name, n.clone(), String::new())),
        );
        stage += 1;
    }
    if !services.is_empty() {
        for name in service_stages {
            for n in nodes {
                out.extend(
                    services
                        .iter()
                        .map(|s| (stage, *name, n.clone(), s.clone())),
                );
            }
            stage += 1;
        }
    }
    if out.is_empty() {
        let name = service_stages.first().copied().unwrap_or("CONFIGURE");
        out.extend(nodes.iter().map(|n| (0, name, n.clone(), String::new())));
    }
    out
}
