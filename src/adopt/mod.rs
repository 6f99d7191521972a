//! `coopr-router adopt`: puts the router in front of Coopr installations that already hold
//! clusters. Lists every cluster of every tenant in every DC's Coopr (through the runtime's
//! upstream client, with an admin identity and the service token), plans the pins that keep each
//! cluster where it lives (`plan.rs`, pure), writes them to etcd (each write a no-op when the
//! pin is already there), and renders the report: pins, ids found in two DCs, and the id
//! settings and counter to set in each DC's Coopr.

pub mod plan;

use crate::config::{Config, OwnershipSource};
use crate::etcd::pins::{PinWrite, pin_with};
use crate::etcd::{EtcdError, Settings};
use crate::runtime::Runtime;
use plan::{DcIds, Listed, Plan};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Why adoption stopped.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("{dc}: {reason}")]
    Coopr { dc: String, reason: String },
    #[error("no Coopr URL given for DC {0} (--coopr {0}=http://...)")]
    MissingDc(String),
    #[error("--coopr names {0}, which is not a DC of the config")]
    UnknownDc(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}

/// What to adopt and as whom.
#[derive(Debug, Clone)]
pub struct Options {
    /// DC name -> its Coopr server's external API URL.
    pub coopr: Vec<(String, String)>,
    /// `Coopr-UserID` (the tenants' admin).
    pub user: String,
    /// Tenant names to list; empty: every tenant (`GET /v2/tenants` as the superadmin).
    pub tenants: Vec<String>,
    pub dry_run: bool,
}

/// What happened to one planned pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Dry run, or a static map: nothing written.
    Planned,
    Written(i64),
    Unchanged,
}

/// The plan and what was done with it.
#[derive(Debug)]
pub struct Report {
    pub plan: Plan,
    /// One per planned pin (same order); a refused write carries its reason.
    pub outcomes: Vec<Result<Outcome, String>>,
    pub wrote_to_etcd: bool,
}

impl Report {
    /// Whether every planned pin is in place (or was only planned) and no id is duplicated.
    pub fn clean(&self) -> bool {
        self.plan.duplicates.is_empty()
            && self.plan.conflicts.is_empty()
            && self.outcomes.iter().all(Result::is_ok)
    }
}

/// Lists, plans and (unless `dry_run`, and only with the etcd source) writes the pins.
pub async fn run(cfg: Arc<Config>, opts: &Options) -> Result<Report, AdoptError> {
    for (dc, _) in &opts.coopr {
        if !cfg.dcs.iter().any(|d| &d.name == dc) {
            return Err(AdoptError::UnknownDc(dc.clone()));
        }
    }
    let tls = crate::tls::Material::load(&cfg).map_err(|e| AdoptError::Tls(e.to_string()))?;
    let rt = Runtime::new(cfg.clone(), Arc::new(tls));
    let mut lists = BTreeMap::new();
    for d in &cfg.dcs {
        let Some((_, url)) = opts.coopr.iter().find(|(n, _)| n == &d.name) else {
            return Err(AdoptError::MissingDc(d.name.clone()));
        };
        let list = list_dc(&rt, url, &opts.user, &opts.tenants)
            .await
            .map_err(|reason| AdoptError::Coopr {
                dc: d.name.clone(),
                reason,
            })?;
        lists.insert(d.name.clone(), list);
    }
    let dcs: Vec<DcIds> = cfg
        .dcs
        .iter()
        .map(|d| DcIds {
            name: d.name.clone(),
            id_start: d.id_start,
            id_increment: d.id_increment,
        })
        .collect();
    let etcd = cfg.raw.ownership.source == OwnershipSource::Etcd;
    let existing: Vec<(u64, u64, String)> = match etcd {
        true => crate::etcd::pins::list(&Settings::from_config(&cfg.raw.ownership))
            .await?
            .into_iter()
            .map(|r| (r.lo, r.hi, r.dc))
            .collect(),
        false => cfg
            .raw
            .ownership
            .pins
            .iter()
            .map(|p| (p.lo, p.hi(), p.dc.clone()))
            .collect(),
    };
    let plan = plan::plan(&dcs, &lists, &existing);
    let mut outcomes = Vec::with_capacity(plan.pins.len());
    if opts.dry_run || !etcd {
        outcomes.extend(plan.pins.iter().map(|_| Ok(Outcome::Planned)));
    } else {
        let s = Settings::from_config(&cfg.raw.ownership);
        let mut client = s.connect().await?;
        for (lo, hi, dc) in &plan.pins {
            let reason = "adopt: the cluster existed before the router";
            outcomes.push(
                match pin_with(&s, &mut client, (*lo, *hi), dc, "adopt", reason).await {
                    Ok(PinWrite::Written(rev)) => Ok(Outcome::Written(rev)),
                    Ok(PinWrite::Unchanged) => Ok(Outcome::Unchanged),
                    Err(EtcdError::Refused(why)) => Err(why),
                    Err(e) => return Err(e.into()),
                },
            );
        }
    }
    Ok(Report {
        plan,
        outcomes,
        wrote_to_etcd: etcd && !opts.dry_run,
    })
}

/// Every cluster a DC's Coopr lists, over the given tenants (or all of them).
async fn list_dc(
    rt: &Runtime,
    base: &str,
    user: &str,
    tenants: &[String],
) -> Result<Vec<Listed>, String> {
    let base = base.trim_end_matches('/');
    let tenants = match tenants.is_empty() {
        false => tenants.to_vec(),
        true => {
            let v = get_json(rt, &format!("{base}/v2/tenants"), user, "superadmin").await?;
            let names: Vec<String> = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| Some(t.get("name")?.as_str()?.to_string()))
                        .collect()
                })
                .unwrap_or_default();
            match names.is_empty() {
                true => vec!["superadmin".to_string()],
                false => names,
            }
        }
    };
    let mut out = Vec::new();
    for tenant in tenants {
        let v = get_json(rt, &format!("{base}/v2/clusters"), user, &tenant).await?;
        let Some(items) = v.as_array() else {
            return Err(format!("{base}/v2/clusters for {tenant}: not a JSON array"));
        };
        for c in items {
            let Some(id) = c
                .get("id")
                .and_then(|i| i.as_str())
                .and_then(|i| crate::ids::ClusterId::parse(i).ok())
            else {
                continue;
            };
            out.push(Listed {
                id: id.get(),
                tenant: tenant.clone(),
                name: str_of(c, "name"),
                create_time: c.get("createTime").and_then(serde_json::Value::as_u64),
                status: str_of(c, "status"),
            });
        }
    }
    Ok(out)
}

fn str_of(v: &serde_json::Value, key: &str) -> String {
    v.get(key)
        .and_then(|s| s.as_str())
        .unwrap_or_default()
        .to_string()
}

/// One GET with the admin identity and the service token; a non-200 answer is an error.
async fn get_json(
    rt: &Runtime,
    url: &str,
    user: &str,
    tenant: &str,
) -> Result<serde_json::Value, String> {
    let mut req = http::Request::builder()
        .method(http::Method::GET)
        .uri(url)
        .header("Coopr-UserID", user)
        .header("Coopr-TenantID", tenant)
        .body(crate::body::ProxyBody::Empty)
        .map_err(|e| e.to_string())?;
    rt.authorize(req.headers_mut());
    let reply = rt
        .upstream
        .fetch(req, Duration::from_secs(30), 256 << 20)
        .await?;
    if reply.status != 200 {
        return Err(format!(
            "GET {url} as {user}@{tenant}: {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(200)])
        ));
    }
    serde_json::from_slice(&reply.body).map_err(|e| format!("GET {url}: {e}"))
}

/// The report as the command prints it.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let p = &r.plan;
    let _ = writeln!(s, "clusters already pinned where they live: {}", p.kept);
    let _ = writeln!(
        s,
        "new pins ({}){}:",
        p.pins.len(),
        match (
            r.wrote_to_etcd,
            r.outcomes.iter().all(|o| *o == Ok(Outcome::Planned))
        ) {
            (true, _) => " written to etcd",
            (false, true) => " planned, nothing changed",
            (false, false) => "",
        }
    );
    for ((lo, hi, dc), o) in p.pins.iter().zip(&r.outcomes) {
        let what = match o {
            Ok(Outcome::Planned) => "planned".to_string(),
            Ok(Outcome::Written(rev)) => format!("written at revision {rev}"),
            Ok(Outcome::Unchanged) => "unchanged".to_string(),
            Err(why) => format!("REFUSED: {why}"),
        };
        let _ = writeln!(s, "  ids {lo}..={hi} -> {dc}: {what}");
    }
    if !r.wrote_to_etcd && !p.pins.is_empty() {
        let _ = writeln!(
            s,
            "  (with the static map, add them to every router's config:)"
        );
        for (lo, hi, dc) in &p.pins {
            let _ = writeln!(
                s,
                "  [[ownership.pins]] lo = {lo}, hi = {hi}, dc = \"{dc}\""
            );
        }
    }
    let _ = writeln!(
        s,
        "ids pinned to a DC that does not hold them ({}): check, then `ownership unpin` and pin again:",
        p.conflicts.len()
    );
    for c in &p.conflicts {
        let _ = writeln!(
            s,
            "  id {:08}: lives in {}, pinned to {}",
            c.id, c.lives, c.pinned
        );
    }
    let _ = writeln!(
        s,
        "ids in more than one DC ({}), not pinned: decide which cluster keeps the id, delete or \
         re-create the other, then pin the id with `coopr-router ownership pin --ids ID --dc DC`:",
        p.duplicates.len()
    );
    for d in &p.duplicates {
        let _ = writeln!(s, "  id {:08}:", d.id);
        for (dc, c) in &d.copies {
            let _ = writeln!(
                s,
                "    {dc}: name {:?}, tenant {}, status {}, createTime {}",
                c.name,
                c.tenant,
                c.status,
                c.create_time.map_or("?".into(), |t| t.to_string())
            );
        }
    }
    let _ = writeln!(
        s,
        "Coopr id settings (set in each DC's coopr-site.xml; then, with its servers stopped, \
         the cluster id counter, an 8-byte big-endian long in ZooKeeper /ids/clusters):"
    );
    for f in &p.counters {
        let _ = writeln!(
            s,
            "  {}: server.ids.start.num = {}, server.ids.increment.by = {}, counter = {} \
             ({} clusters, highest id {})",
            f.dc,
            f.start,
            f.increment,
            f.counter,
            f.clusters,
            f.highest.map_or("none".into(), |h| h.to_string())
        );
    }
    s
}
