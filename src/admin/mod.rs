//! The admin listener (loopback by default): `/live`, `/ready` for the load balancer,
//! `/metrics`, `/admin/routes` (the current snapshot), `/admin/explain` (what the router would do
//! with a request, and why), and the endpoints that change something (`/admin/reload`,
//! `/admin/drain`, `/admin/log-level`), which need the bearer token. `GET /` and
//! `/admin/status` serve the status page (static HTML, always open: it holds no data and reads
//! `/admin/status.json` and `/admin/operations` with the token the user gives it).
//!
//! This file owns the admin state and the dispatch by method and path; each endpoint's work is
//! in the file of its concern: `auth.rs` (the token), `ready.rs` (readiness, drain),
//! `routes.rs` (`/admin/routes`), `explain.rs`, `replication.rs` (operations and the catalog),
//! `reply.rs` (JSON answers, query parameters, the status page).

mod auth;
mod explain;
mod ready;
mod replication;
mod reply;
mod routes;

use crate::body::ProxyBody;
use crate::ownership::Freshness;
use crate::reload::Reloader;
use crate::routing::Routes;
use crate::runtime::Runtime;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::status::changes::ChangeLog;
use arc_swap::ArcSwap;
use auth::needs_token;
use http::{Method, Request, Response, StatusCode, header};
use reply::{json_response, query_param, status_page};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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

    pub async fn handle(&self, req: Request<crate::body::ClientBody>) -> Response<ProxyBody> {
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
}
