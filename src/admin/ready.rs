//! `/ready` (what takes this DC out of the load balancer, and the warnings that do not) and
//! `/admin/drain`, with the probe of the local Coopr servers readiness needs.

use super::Admin;
use super::reply::json_response;
use crate::body::ProxyBody;
use crate::runtime::Runtime;
use http::{Request, Response, StatusCode, header};
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::Duration;

impl Admin {
    /// Readiness turns false at once; after `drain_delay_ms` the listeners stop accepting, idle
    /// keep-alive connections close, and in-flight requests get the shutdown grace period.
    pub(super) fn drain(&self) -> Response<ProxyBody> {
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

    pub(super) async fn ready(&self) -> Response<ProxyBody> {
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
