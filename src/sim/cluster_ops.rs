//! State-changing requests on an existing cluster (`POST/PUT/DELETE /v2/clusters/{id}[/…]`):
//! delete, extend lease, abort, pause, resume, reconfigure, add services, service actions and
//! template sync. A non-numeric id is 400 here. Each checks, in Coopr's order: id, body,
//! visibility (404), then the cluster's state (409).

use serde_json::Value;

use super::auth::Caller;
use super::ctx::Ctx;
use super::lifecycle::{self, OpStart};
use super::reply::{self, Resp};
use super::routes::{SvcAction, WriteKind};
use super::state::{Action, Cluster, ClusterStatus, JobStatus, State};
use crate::ids::ClusterId;

/// Handles every write under `/v2/clusters/{id}`.
pub(crate) fn write(ctx: &Ctx, c: &Caller, id_text: &str, kind: WriteKind) -> Resp {
    let id = match ClusterId::parse(id_text) {
        Ok(id) => id,
        Err(e) => return reply::text(400, e.to_string()),
    };
    let body = match kind {
        WriteKind::Extend | WriteKind::Configure | WriteKind::AddServices => match ctx.json() {
            Ok(v) => v,
            Err(r) => return r,
        },
        _ => match ctx.optional_json() {
            Ok(v) => v.unwrap_or(Value::Null),
            Err(r) => return r,
        },
    };
    let now = ctx.shared.clock.now_ms();
    let mut guard = ctx.shared.write();
    let state = &mut *guard;
    if let Err(r) = super::clusters::find(state, c, id) {
        return r;
    }
    let mut w = Write {
        ctx,
        state,
        id: id.get(),
        written: ctx
            .shared
            .cfg
            .job_ids_as_written
            .then(|| id_text.to_string()),
        now,
    };
    let result = match kind {
        WriteKind::Delete => w.delete(),
        WriteKind::Extend => w.extend(&body),
        WriteKind::Abort => w.abort(),
        WriteKind::Pause => w.pause(),
        WriteKind::Resume => w.resume(),
        WriteKind::Configure => w.configure(&body),
        WriteKind::AddServices => w.add_services(&body),
        WriteKind::ServicesAll(a) => w.services(None, a),
        WriteKind::ServiceOne(svc, a) => w.services(Some(svc), a),
        WriteKind::Sync => w.sync(),
    };
    match result {
        Ok(()) => reply::empty(200),
        Err(r) => r,
    }
}

/// One write on one (visible, existing) cluster.
struct Write<'a, 'c> {
    ctx: &'a Ctx<'c>,
    state: &'a mut State,
    id: u64,
    /// The path's id as written, when job ids follow it (`ClusterService`: `getNewJobId(clusterId)`).
    written: Option<String>,
    now: u64,
}

fn conflict(id: u64, what: &str) -> Resp {
    reply::text(
        409,
        format!("cluster {id:08} is not in a state where it can {what}"),
    )
}

impl Write<'_, '_> {
    /// The cluster, settled to now. It exists: `write` checked.
    fn cluster(&mut self) -> Result<&mut Cluster, Resp> {
        let now = self.now;
        let cl = self
            .state
            .clusters
            .get_mut(&self.id)
            .ok_or_else(|| reply::text(404, "cluster not found"))?;
        lifecycle::settle(cl, now);
        Ok(cl)
    }

    /// Starts `action` over `services`, its job named after the path's id as written.
    fn start(&mut self, action: Action, services: &[String]) -> Result<(), Resp> {
        let written = self.written.clone();
        self.start_named(action, services, written)
    }

    /// Starts `action` over `services`; `cluster_ref` names its job (`None`: the 8-digit id).
    fn start_named(
        &mut self,
        action: Action,
        services: &[String],
        cluster_ref: Option<String>,
    ) -> Result<(), Resp> {
        let cfg = &self.ctx.shared.cfg;
        let state = &mut *self.state;
        let cl = state
            .clusters
            .get_mut(&self.id)
            .ok_or_else(|| reply::text(404, "cluster not found"))?;
        let op = OpStart {
            counters: &mut state.counters,
            rng: &mut state.rng,
            now: self.now,
            delay_ms: cfg.op_delay.as_millis() as u64,
            failure_rate: cfg.failure_rate,
            external: cfg.tasks == super::TaskMode::External,
            cluster_ref,
        };
        lifecycle::start(op, cl, action, services);
        Ok(())
    }

    fn delete(&mut self) -> Result<(), Resp> {
        let id = self.id;
        match self.cluster()?.status {
            ClusterStatus::Pending => Err(conflict(id, "be deleted")),
            ClusterStatus::Terminated => Ok(()),
            _ => self.start(Action::ClusterDelete, &[]),
        }
    }

    fn extend(&mut self, body: &Value) -> Result<(), Resp> {
        let Some(expire) = body.get("expireTime").and_then(Value::as_u64) else {
            return Err(reply::text(400, "expireTime must be specified."));
        };
        let cl = self.cluster()?;
        if matches!(
            cl.status,
            ClusterStatus::Pending | ClusterStatus::Terminated
        ) {
            return Err(reply::text(
                400,
                "cannot change the expire time of a pending or terminated cluster",
            ));
        }
        cl.expire_time = expire;
        Ok(())
    }

    fn abort(&mut self) -> Result<(), Resp> {
        let id = self.id;
        let cl = self.cluster()?;
        if cl.status != ClusterStatus::Pending {
            return Ok(());
        }
        let Some(job) = cl.jobs.last_mut() else {
            return Ok(());
        };
        let running = matches!(job.status, JobStatus::Running | JobStatus::Paused);
        if job.action != Action::ClusterCreate || !running {
            return Err(conflict(id, "be aborted"));
        }
        job.status = JobStatus::Failed;
        job.paused_left_ms = None;
        cl.status = Action::ClusterCreate.failure_status();
        Ok(())
    }

    fn pause(&mut self) -> Result<(), Resp> {
        let now = self.now;
        let cl = self.cluster()?;
        if let Some(job) = cl
            .jobs
            .last_mut()
            .filter(|j| j.status == JobStatus::Running)
        {
            job.status = JobStatus::Paused;
            job.paused_left_ms = Some(job.deadline_ms.saturating_sub(now));
        }
        Ok(())
    }

    fn resume(&mut self) -> Result<(), Resp> {
        let now = self.now;
        let cl = self.cluster()?;
        if let Some(job) = cl.jobs.last_mut().filter(|j| j.status == JobStatus::Paused) {
            let span = job.deadline_ms.saturating_sub(job.start_ms);
            job.deadline_ms = now.saturating_add(job.paused_left_ms.take().unwrap_or(0));
            job.start_ms = job.deadline_ms.saturating_sub(span);
            job.status = JobStatus::Running;
        }
        Ok(())
    }

    fn configure(&mut self, body: &Value) -> Result<(), Resp> {
        let Some(config) = body.get("config").filter(|v| v.is_object()) else {
            return Err(reply::missing_fields(&["config"]));
        };
        let restart = body.get("restart").and_then(Value::as_bool).unwrap_or(true);
        let id = self.id;
        let cl = self.cluster()?;
        if !matches!(
            cl.status,
            ClusterStatus::Active | ClusterStatus::Inconsistent
        ) {
            return Err(conflict(id, "be reconfigured"));
        }
        cl.config = config.clone();
        let services = cl.services.clone();
        let action = if restart {
            Action::ClusterConfigureWithRestart
        } else {
            Action::ClusterConfigure
        };
        self.start(action, &services)
    }

    fn add_services(&mut self, body: &Value) -> Result<(), Resp> {
        let services: Option<Vec<String>> = body
            .get("services")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect());
        let Some(services) = services.filter(|s| !s.is_empty()) else {
            return Err(reply::text(
                400,
                "services must be a non-empty list of names.",
            ));
        };
        let id = self.id;
        let cl = self.cluster()?;
        if cl.status != ClusterStatus::Active {
            return Err(conflict(id, "add services"));
        }
        if let Some(dup) = services.iter().find(|s| cl.services.contains(s)) {
            return Err(reply::text(
                400,
                format!("service {dup} is already on the cluster"),
            ));
        }
        cl.services.extend(services.iter().cloned());
        let node_ids = cl.nodes.clone();
        for n in node_ids {
            if let Some(node) = self.state.nodes.get_mut(&n) {
                super::nodes::add_services(&mut node.body, &services);
            }
        }
        // `SolverScheduler.solveAddServices`: the solver job is named after the path's id as
        // written, the add-services job after the cluster's own (8-digit) id.
        if self.ctx.shared.cfg.solve_layout {
            let written = self.written.clone();
            let now = self.now;
            let state = &mut *self.state;
            if let Some(cl) = state.clusters.get_mut(&self.id) {
                lifecycle::solved(&mut state.counters, cl, now, written);
            }
        }
        self.start_named(Action::AddServices, &services, None)
    }

    fn services(&mut self, one: Option<String>, a: SvcAction) -> Result<(), Resp> {
        let id = self.id;
        let cl = self.cluster()?;
        if let Some(svc) = &one
            && !cl.services.contains(svc)
        {
            return Err(reply::text(
                404,
                format!("service {svc} is not on cluster {id:08}"),
            ));
        }
        if cl.status != ClusterStatus::Active {
            return Err(conflict(id, "run service actions"));
        }
        let services = one.map_or_else(|| cl.services.clone(), |s| vec![s]);
        let action = match a {
            SvcAction::Start => Action::StartServices,
            SvcAction::Stop => Action::StopServices,
            SvcAction::Restart => Action::RestartServices,
        };
        self.start(action, &services)
    }

    /// Template sync is synchronous in Coopr (no job): the cluster takes the tenant's current
    /// version of its template.
    fn sync(&mut self) -> Result<(), Resp> {
        let id = self.id;
        let cl = self.cluster()?;
        if cl.status != ClusterStatus::Active {
            return Err(conflict(id, "be synced"));
        }
        let name = cl
            .template
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let tenant = cl.tenant_id.clone();
        let current = self
            .state
            .catalog
            .get(&tenant)
            .and_then(|t| t.get("clustertemplates"))
            .and_then(|m| m.get(&name))
            .cloned();
        let Some(current) = current else {
            return Err(reply::text(
                400,
                format!("cluster template {name} no longer exists"),
            ));
        };
        if let Some(cl) = self.state.clusters.get_mut(&self.id) {
            cl.template = current;
        }
        Ok(())
    }
}
