//! The admin listener (loopback by default): `/live`, `/ready` for the load balancer,
//! `/metrics`, `/admin/routes` (the current snapshot), `/admin/explain` (what the router would do
//! with a request, and why), and the endpoints that change something (`/admin/reload`,
//! `/admin/drain`, `/admin/log-level`), which need the bearer token. `GET /` and
//! `/admin/status` serve the status page (static HTML, always open: it holds no data and reads
//! `/admin/status.json` and `/admin/operations` with the token the user gives it).

use crate::body::ProxyBody;
use crate::classify::{self, Class, Head};
use crate::ownership::Freshness;
use crate::reload::Reloader;
use crate::routing::{Decision, Origin, Routes, Target, decide};
use crate::runtime::Runtime;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::status::changes::ChangeLog;
use arc_swap::ArcSwap;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the admin API needs from the rest of the router.
pub struct AdminParts {
    pub routes: Routes,
    pub runtime: Arc<ArcSwap<Runtime>>,
    pub shutdown: Shutdown,
    pub trigger: ShutdownTrigger,
    pub freshness: Arc<Freshness>,
    pub reloader: Arc<Reloader>,
    /// Replication, when enabled (`GET /admin/operations`).
    pub replication: Option<crate::replication::Replication>,
    /// Misplaced creates (sharded mode): `/ready` fails while any is not cleared.
    pub misplaced: Option<Arc<crate::ownership::Misplaced>>,
    /// The writes held across a failover (`/admin/routes`).
    pub held: Arc<crate::proxy::Held>,
    /// What the failback driver last decided (`/admin/routes` `failback`; etcd source only).
    pub failback: Option<Arc<crate::etcd::failback::Status>>,
}

#[derive(Clone)]
pub struct Admin {
    routes: Routes,
    runtime: Arc<ArcSwap<Runtime>>,
    shutdown: Shutdown,
    trigger: ShutdownTrigger,
    freshness: Arc<Freshness>,
    reloader: Arc<Reloader>,
    draining: Arc<AtomicBool>,
    replication: Option<crate::replication::Replication>,
    misplaced: Option<Arc<crate::ownership::Misplaced>>,
    changes: Arc<ChangeLog>,
    held: Arc<crate::proxy::Held>,
    failback: Option<Arc<crate::etcd::failback::Status>>,
}

fn json_response(status: StatusCode, body: Value) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Admin {
    pub fn new(p: AdminParts) -> Self {
        let changes = Arc::new(ChangeLog::default());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(crate::status::changes::follow(
                p.routes.clone(),
                changes.clone(),
                p.shutdown.clone(),
            ));
        }
        Admin {
            changes,
            routes: p.routes,
            runtime: p.runtime,
            shutdown: p.shutdown,
            trigger: p.trigger,
            freshness: p.freshness,
            reloader: p.reloader,
            draining: Arc::new(AtomicBool::new(false)),
            replication: p.replication,
            misplaced: p.misplaced,
            failback: p.failback,
            held: p.held,
        }
    }

    /// `None` when the request may proceed, else the 401/403 to send. `changes`: the endpoint
    /// changes something, or can show user data (tenants, users, clusters of operations): it
    /// needs the token whatever `admin.open_reads` says.
    fn refuse(&self, req: &Request<Incoming>, changes: bool) -> Option<Response<ProxyBody>> {
        let rt = self.runtime.load_full();
        let admin = &rt.config.raw.admin;
        let token = match admin.resolve_token() {
            Ok(t) => t,
            Err(e) => {
                return Some(json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": e}),
                ));
            }
        };
        let Some(token) = token else {
            return (changes || !admin.open_reads).then(|| {
                json_response(StatusCode::FORBIDDEN, json!({"error": "set admin.token (or admin.token_file) to enable endpoints that change something or show user data"}))
            });
        };
        if !changes && admin.open_reads {
            return None;
        }
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given.is_some_and(|g| same(g.trim().as_bytes(), token.as_bytes())) {
            return None;
        }
        let mut resp = json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "this endpoint needs Authorization: Bearer <admin token>"}),
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        Some(resp)
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let path = req.uri().path().to_string();
        let open = matches!(path.as_str(), "/live" | "/ready" | "/" | "/admin/status");
        if !open && let Some(refused) = self.refuse(&req, needs_token(req.method(), &path)) {
            return refused;
        }
        let query = req.uri().query().unwrap_or("").to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/live") => json_response(StatusCode::OK, json!({"status": "live"})),
            (&Method::GET, "/ready") => self.ready().await,
            (&Method::GET, "/metrics") => {
                // Brings the fence gauge up to date at scrape time.
                let _ = self.freshness.is_fenced();
                let mut resp = Response::new(ProxyBody::full(crate::metrics::render()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                resp
            }
            (&Method::GET, "/admin/routes") => json_response(StatusCode::OK, self.routes_view()),
            (&Method::GET, "/" | "/admin/status") => status_page(),
            (&Method::GET, "/admin/status.json") => {
                let doc = crate::status::document(
                    self.routes_view(),
                    &self.routes.load(),
                    &self.runtime.load_full(),
                    self.replication.as_ref(),
                    &self.changes,
                )
                .await;
                json_response(StatusCode::OK, doc)
            }
            (&Method::GET, "/admin/explain") => self.explain(&query),
            (&Method::POST, "/admin/reload") => {
                let report = self.reloader.reload().await;
                let status = if report.applied {
                    StatusCode::OK
                } else {
                    StatusCode::BAD_REQUEST
                };
                json_response(status, json!(report))
            }
            (&Method::POST, "/admin/drain") => self.drain(),
            (&Method::GET, "/admin/operations") => self.operations(&query).await,
            (&Method::GET, "/admin/misplaced") => json_response(
                StatusCode::OK,
                json!({"misplaced": self.misplaced.as_ref().map(|m| m.pending()).unwrap_or_default()}),
            ),
            (&Method::POST, "/admin/misplaced/clear") => {
                let cleared = self.misplaced.as_ref().map_or(0, |m| m.clear());
                tracing::warn!(cleared, "misplaced ids cleared by an operator");
                json_response(StatusCode::OK, json!({"cleared": cleared}))
            }
            (&Method::GET, "/admin/catalog") => self.catalog(&query).await,
            (&Method::GET, "/admin/catalog/diff") => self.catalog_diff().await,
            (&Method::POST, "/admin/catalog/sync") => {
                self.catalog_sync(&query_param(&query, "to").unwrap_or_default())
                    .await
            }
            (&Method::GET, "/admin/log-level") => {
                json_response(StatusCode::OK, json!({"filter": crate::logging::level()}))
            }
            (&Method::POST, "/admin/log-level") => {
                let filter = query_param(&query, "filter").unwrap_or_default();
                match crate::logging::set_level(&filter) {
                    Ok(()) => json_response(StatusCode::OK, json!({"filter": filter})),
                    Err(e) => json_response(StatusCode::BAD_REQUEST, json!({"error": e})),
                }
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "no such admin endpoint"}),
            ),
        }
    }

    /// Readiness turns false at once; after `drain_delay_ms` the listeners stop accepting, idle
    /// keep-alive connections close, and in-flight requests get the shutdown grace period.
    fn drain(&self) -> Response<ProxyBody> {
        let delay = self.runtime.load().config.raw.admin.drain_delay_ms;
        if !self.draining.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                drain_delay_ms = delay,
                "drain requested: readiness is now false"
            );
            let trigger = self.trigger.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                tracing::warn!("drain: closing listeners; in-flight requests may finish");
                trigger.trigger();
            });
        }
        json_response(
            StatusCode::ACCEPTED,
            json!({"draining": true, "listeners_close_after_ms": delay}),
        )
    }

    async fn ready(&self) -> Response<ProxyBody> {
        let rt = self.runtime.load_full();
        let mut failed = Vec::new();
        if self.shutdown.is_triggered() || self.draining.load(Ordering::SeqCst) {
            failed.push(json!({"check": "not_draining", "detail": "the router is shutting down"}));
        }
        // Fenced only: a lost watch alone (an etcd election) leaves owned writes open.
        if self.freshness.is_fenced() && self.freshness.is_stale() {
            failed.push(json!({"check": "map_fresh", "detail": "the ownership map is stale (etcd unreachable, or loaded from disk) and the lease is not proven; owned writes are refused"}));
        } else if self.freshness.is_fenced() {
            failed.push(json!({"check": "not_fenced", "detail": "this router cannot prove its etcd lease alive with failover.fence_margin_ms to spare (or its map current since the lease began); owned writes are refused"}));
        }
        match probe_backends(&rt).await {
            Probe::Ok => {}
            Probe::Unauthorized => failed.push(json!({"check": "coopr_token", "detail": "the local Coopr servers answer GET /status with 401: the router's service token (coopr.token_file) is missing or wrong for Coopr's security mode"})),
            Probe::Down => failed.push(
                json!({"check": "backend", "detail": "no local Coopr server answers GET /status"}),
            ),
        }
        let misplaced = self
            .misplaced
            .as_ref()
            .map(|m| m.pending())
            .unwrap_or_default();
        if let Some(last) = misplaced.last() {
            failed.push(json!({
                "check": "ids_placed",
                "detail": format!(
                    "this DC's Coopr created {} cluster(s) outside its home shards (last {}): set its id counter to {} (server.ids.start.num = {}, server.ids.increment.by = {}), then POST /admin/misplaced/clear",
                    misplaced.len(), last.id, last.counter, last.start, last.increment
                ),
                "ids": misplaced.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            }));
        }
        let table = self.routes.load();
        // Warnings name a problem that does not take this DC out of the load balancer.
        let warnings: Vec<Value> = self
            .replication
            .as_ref()
            .map(|r| r.catalog_drift())
            .unwrap_or_default()
            .into_iter()
            .map(|(dc, n)| json!({"check": "catalog_drift", "dc": dc, "detail": format!("{n} differences from the home DC's catalog at the last comparison (GET /admin/catalog/diff; repair: POST /admin/catalog/sync?to={dc})")}))
            .collect();
        if failed.is_empty() {
            let mut body = json!({"status": "ready", "revision": table.revision});
            if !warnings.is_empty() {
                body["warnings"] = json!(warnings);
            }
            json_response(StatusCode::OK, body)
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "not_ready", "failed": failed}),
            )
        }
    }

    /// The shards away from home that are not handed back now, and why each waits.
    fn failback_view(&self, t: &crate::routing::RoutingTable) -> Value {
        let Some(f) = &self.failback else {
            return json!([]);
        };
        let rows: Vec<Value> = f
            .waiting()
            .into_iter()
            .map(|(n, why)| {
                let mut v = serde_json::to_value(&why).unwrap_or_else(|_| json!({}));
                if let Some(o) = v.as_object_mut() {
                    o.insert("shard".into(), json!(n));
                    let e = t.shard(n);
                    o.insert("owner".into(), json!(e.map(|e| t.dc_name(e.owner))));
                    o.insert(
                        "home".into(),
                        json!(e.and_then(|e| e.home).map(|h| t.dc_name(h))),
                    );
                }
                v
            })
            .collect();
        json!(rows)
    }

    fn routes_view(&self) -> Value {
        let t = self.routes.load();
        let rt = self.runtime.load_full();
        let shards: Vec<Value> = t
            .shards
            .iter()
            .enumerate()
            .map(|(n, s)| {
                json!({
                    "shard": n,
                    "owner": t.dc_name(s.owner),
                    "replicas": s.replicas.iter().map(|&r| t.dc_name(r)).collect::<Vec<_>>(),
                    "epoch": s.epoch,
                    "home": s.home.map(|h| t.dc_name(h)),
                    "handoff_to": s.handoff.map(|h| t.dc_name(h)),
                })
            })
            .collect();
        let dcs: Vec<Value> = t
            .dcs
            .iter()
            .enumerate()
            .map(|(i, d)| json!({"name": d.name, "peer_url": d.peer_url.to_string(), "id_start": d.id_start, "id_increment": d.id_increment, "owns_all_home_shards": t.owns_all_home(i)}))
            .collect();
        let backends: Vec<Value> = rt
            .backends
            .iter()
            .enumerate()
            .map(|(i, b)| json!({"url": b.url.to_string(), "tasks_url": b.tasks_url.to_string(), "healthy": !rt.backends.is_down(i)}))
            .collect();
        {
            let f = &self.freshness;
            let source = if f.is_dynamic() { "etcd" } else { "static" };
            json!({
                "dc": t.local_name(), "revision": t.revision, "source": source,
                "stale": f.is_stale(), "fenced": f.is_fenced(), "progress_age_ms": f.progress_age_ms(),
                "held": self.held.summary(), "failback": self.failback_view(&t), "fence_after_ms": f.fence_after_ms(), "lease_left_ms": f.lease_left_ms(), "fence_margin_ms": f.margin_ms(), "relists": f.relists(), "watch_restarts": f.watch_restarts(),
                "reload": self.reloader.status(), "draining": self.draining.load(Ordering::SeqCst),
                "dcs": dcs, "shards": shards, "backends": backends,
                "pins": t.pins.iter().map(|p| json!({"lo": p.lo, "hi": p.hi, "dc": t.dc_name(p.dc), "epoch": p.epoch})).collect::<Vec<_>>(),
                "catalog_home": self.catalog_home_view(&t),
            })
        }
    }

    /// The catalog's home in force and where it comes from (etcd `catalog/home`, with its
    /// epoch, or `catalog.home`), or null.
    fn catalog_home_view(&self, t: &crate::routing::RoutingTable) -> Value {
        match t.catalog_home_entry() {
            Some((dc, epoch)) => json!({"dc": t.dc_name(dc), "epoch": epoch, "source": "etcd"}),
            None => match self.runtime.load().config.raw.catalog.home.clone() {
                Some(dc) => json!({"dc": dc, "source": "config"}),
                None => Value::Null,
            },
        }
    }

    fn explain(&self, query: &str) -> Response<ProxyBody> {
        let param = |name: &str| query_param(query, name);
        let method = param("method").unwrap_or_else(|| "GET".into());
        let Some(target) = param("path") else {
            return json_response(
                StatusCode::BAD_REQUEST,
                json!({"error": "give ?method=&path= (and &body= for body rules)"}),
            );
        };
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return json_response(StatusCode::BAD_REQUEST, json!({"error": "bad method"}));
        };
        let (path, q) = target
            .split_once('?')
            .map_or((target.as_str(), None), |(p, q)| (p, Some(q)));
        let class = match classify::classify_head(&method, path, q) {
            Ok(Head::Done(c)) => c,
            Ok(Head::NeedBody(rule)) => match param("body") {
                Some(b) => match classify::classify_body(rule, b.as_bytes()) {
                    Ok(c) => c,
                    Err(e) => {
                        return json_response(
                            StatusCode::OK,
                            json!({"status": 400, "error": e.to_string()}),
                        );
                    }
                },
                None => {
                    return json_response(
                        StatusCode::OK,
                        json!({"needs_body": format!("{rule:?}"), "hint": "add &body={...}"}),
                    );
                }
            },
            Err(e) => {
                return json_response(
                    StatusCode::OK,
                    json!({"status": 400, "error": e.to_string()}),
                );
            }
        };
        let t = self.routes.load();
        let fenced = class.class == Class::Write && self.freshness.is_fenced();
        let home = t.catalog_home(self.runtime.load().config.raw.catalog.home.as_deref());
        let decision = match class.class {
            Class::Global => crate::routing::decide_global(&t, home, Origin::Client, false),
            _ => decide(&t, &class, Origin::Client, fenced),
        };
        let (destination, why) = match decision {
            Decision::Go(r) if class.class == Class::Global => match r.target {
                Target::Peer(dc) => (
                    format!("router of {} (the catalog's home)", t.dc_name(dc)),
                    "a catalog write is applied at the catalog's home DC first, then delivered to the others",
                ),
                _ if home.is_some() => (
                    "local Coopr server (External API), then delivered to every other DC".into(),
                    "this DC is the catalog's home",
                ),
                _ => (
                    "local Coopr server (External API)".into(),
                    "no catalog.home: catalog writes stay in the DC that received them",
                ),
            },
            Decision::Go(r) => match r.target {
                Target::Local(api) => (
                    format!("local Coopr server ({api:?} API)"),
                    "this DC owns the shard, or the request names no cluster",
                ),
                Target::Peer(dc) => (
                    format!("router of {}", t.dc_name(dc)),
                    "another DC owns the shard (or can take creates)",
                ),
                Target::Standby(home) => (
                    format!("standby Coopr server for {}", t.dc_name(home)),
                    "this DC adopted the shard from its home DC after a failover",
                ),
            },
            Decision::Adopted { .. } => (
                "503".into(),
                "adopted shard: its data lives in the home DC (no standby, or a read)",
            ),
            Decision::Misdirected { .. } => ("421".into(), "not the owner"),
            Decision::NoCreateTarget => ("503".into(), "no DC owns all of its home shards"),
            Decision::Fenced { .. } => (
                "503".into(),
                "fenced: the router cannot prove its map is fresh",
            ),
        };
        let shard = class.cluster.map(|id| t.shard_of(id));
        let entry = shard.and_then(|s| t.shard(s));
        let pin = class.cluster.and_then(|id| t.pin_of(id));
        let why = match (pin, shard) {
            (Some(p), Some(s)) => format!(
                "pinned: ids {}..={} live in {} (routed by its home shard {s}); {why}",
                p.lo,
                p.hi,
                t.dc_name(p.dc)
            ),
            _ => why.to_string(),
        };
        json_response(
            StatusCode::OK,
            json!({
                "class": class.class.as_str(),
                "kind": class.kind.as_str(),
                "cluster_id": class.cluster.map(|c| c.to_string()),
                "shard": shard,
                "owner": entry.map(|e| t.dc_name(e.owner)),
                "epoch": entry.map(|e| e.epoch),
                "revision": t.revision,
                "destination": destination,
                "why": why,
                "pinned": pin.map(|p| json!({
                    "lo": p.lo,
                    "hi": p.hi,
                    "dc": t.dc_name(p.dc),
                    "epoch": p.epoch,
                })),
            }),
        )
    }
}

/// The status page: static, so it is served without the token; it sends the token (given in
/// the URL fragment) on the requests that read data. It may not be framed by another site.
fn status_page() -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(crate::status::PAGE));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// What the local Coopr servers answered to `GET /status`.
enum Probe {
    /// One answered 200.
    Ok,
    /// None answered 200, and one answered 401 (the service credential).
    Unauthorized,
    Down,
}

async fn probe_backends(rt: &Runtime) -> Probe {
    let mut unauthorized = false;
    for b in rt.backends.iter() {
        let uri = format!("{}status", b.url);
        let Ok(mut req) = Request::get(uri).body(ProxyBody::Empty) else {
            continue;
        };
        req.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("keep-alive"),
        );
        rt.authorize(req.headers_mut());
        if let Ok(resp) = rt.upstream.send(req, Duration::from_secs(1)).await {
            match resp.status() {
                StatusCode::OK => return Probe::Ok,
                StatusCode::UNAUTHORIZED => unauthorized = true,
                _ => {}
            }
        }
    }
    if unauthorized {
        Probe::Unauthorized
    } else {
        Probe::Down
    }
}

impl Admin {
    /// `GET /admin/operations?state=interrupted|open` (replication).
    async fn operations(&self, query: &str) -> Response<ProxyBody> {
        let Some(r) = &self.replication else {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "replication is not enabled ([replication] enabled = true)"}),
            );
        };
        let state = query_param(query, "state").unwrap_or_else(|| "interrupted".into());
        match r.operations(&state).await {
            Ok(v) => json_response(StatusCode::OK, v),
            Err(e) => json_response(StatusCode::BAD_REQUEST, json!({"error": e})),
        }
    }
}

impl Admin {
    /// `GET /admin/catalog?limit=N`: the catalog's home, and per other DC the catalog writes
    /// queued for it and its last answer (replication).
    async fn catalog(&self, query: &str) -> Response<ProxyBody> {
        let Some(r) = &self.replication else {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "replication is not enabled ([replication] enabled = true)"}),
            );
        };
        let limit = query_param(query, "limit")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let home = {
            let t = self.routes.load();
            t.catalog_home(self.runtime.load().config.raw.catalog.home.as_deref())
                .map(|h| t.dc_name(h).to_string())
        };
        match r.catalog_view(limit).await {
            Ok(mut v) => {
                v["home"] = json!(home);
                json_response(StatusCode::OK, v)
            }
            Err(e) => json_response(StatusCode::SERVICE_UNAVAILABLE, json!({"error": e})),
        }
    }
}

impl Admin {
    /// `GET /admin/catalog/diff` (at the catalog's home DC).
    async fn catalog_diff(&self) -> Response<ProxyBody> {
        let Some(r) = &self.replication else {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "replication is not enabled ([replication] enabled = true)"}),
            );
        };
        match r.catalog_diff().await {
            Ok(v) => json_response(StatusCode::OK, v),
            Err(e) => json_response(StatusCode::CONFLICT, json!({"error": e})),
        }
    }

    /// `POST /admin/catalog/sync?to=dcN` (at the catalog's home DC).
    async fn catalog_sync(&self, to: &str) -> Response<ProxyBody> {
        let Some(r) = &self.replication else {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "replication is not enabled ([replication] enabled = true)"}),
            );
        };
        match r.catalog_sync(to).await {
            Ok(v) => json_response(StatusCode::OK, v),
            Err(e) => json_response(StatusCode::CONFLICT, json!({"error": e})),
        }
    }
}

/// Whether an admin request needs the token even with `admin.open_reads`: anything that changes
/// something, and the views that can show user data (`/admin/operations`: tenants, users and
/// clusters of operations; `/admin/catalog`: tenants and catalog writes). `/metrics`,
/// `/admin/routes`, `/admin/status.json` and `/admin/explain` show only the router's own state.
fn needs_token(method: &Method, path: &str) -> bool {
    const USER_DATA: [&str; 3] = ["/admin/operations", "/admin/catalog", "/admin/catalog/diff"];
    method != Method::GET || USER_DATA.contains(&path)
}

/// The first value of a query parameter, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}
