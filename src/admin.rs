//! The admin listener (loopback by default): `/live`, `/ready` for the load balancer,
//! `/admin/routes` (the current snapshot) and `/admin/explain` (what the router would do with a
//! request, and why).

use crate::classify::{self, Class, Head};
use crate::ownership::Freshness;
use crate::proxy::Runtime;
use crate::proxy::body::ProxyBody;
use crate::routing::{Decision, Origin, Routes, Target, decide};
use crate::server::Shutdown;
use arc_swap::ArcSwap;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Admin {
    routes: Routes,
    runtime: Arc<ArcSwap<Runtime>>,
    shutdown: Shutdown,
    freshness: Arc<Freshness>,
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

impl Admin {
    pub fn new(
        routes: Routes,
        runtime: Arc<ArcSwap<Runtime>>,
        shutdown: Shutdown,
        freshness: Arc<Freshness>,
    ) -> Self {
        Admin {
            routes,
            runtime,
            shutdown,
            freshness,
        }
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/live") => json_response(StatusCode::OK, json!({"status": "live"})),
            (&Method::GET, "/ready") => self.ready().await,
            (&Method::GET, "/metrics") => {
                let mut resp = Response::new(ProxyBody::full(crate::metrics::render()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                resp
            }
            (&Method::GET, "/admin/routes") => json_response(StatusCode::OK, self.routes_view()),
            (&Method::GET, "/admin/explain") => self.explain(req.uri().query().unwrap_or("")),
            _ => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "no such admin endpoint"}),
            ),
        }
    }

    async fn ready(&self) -> Response<ProxyBody> {
        let rt = self.runtime.load_full();
        let mut failed = Vec::new();
        if self.shutdown.is_triggered() {
            failed.push(json!({"check": "not_draining", "detail": "the router is shutting down"}));
        }
        if self.freshness.is_stale() {
            failed.push(json!({"check": "map_fresh", "detail": "the ownership map is stale (etcd unreachable, or loaded from disk)"}));
        } else if self.freshness.is_fenced() {
            failed.push(json!({"check": "not_fenced", "detail": "no etcd progress within fence_after; owned writes are refused"}));
        }
        if !probe_backends(&rt).await {
            failed.push(
                json!({"check": "backend", "detail": "no local Coopr server answers GET /status"}),
            );
        }
        let table = self.routes.load();
        if failed.is_empty() {
            json_response(
                StatusCode::OK,
                json!({"status": "ready", "revision": table.revision}),
            )
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "not_ready", "failed": failed}),
            )
        }
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
                "fence_after_ms": f.fence_after_ms(), "relists": f.relists(), "watch_restarts": f.watch_restarts(),
                "dcs": dcs, "shards": shards, "backends": backends,
            })
        }
    }

    fn explain(&self, query: &str) -> Response<ProxyBody> {
        let param = |name: &str| {
            query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then(|| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                })
            })
        };
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
        let decision = decide(&t, &class, Origin::Client, fenced);
        let (destination, why) = match decision {
            Decision::Go(r) => match r.target {
                Target::Local(api) => (
                    format!("local Coopr server ({api:?} API)"),
                    "this DC owns the shard, or the request names no cluster",
                ),
                Target::Peer(dc) => (
                    format!("router of {}", t.dc_name(dc)),
                    "another DC owns the shard (or can take creates)",
                ),
            },
            Decision::Misdirected { .. } => ("421".into(), "not the owner"),
            Decision::NoCreateTarget => ("503".into(), "no DC owns all of its home shards"),
            Decision::Fenced { .. } => (
                "503".into(),
                "fenced: the router cannot prove its map is fresh",
            ),
        };
        let shard = class.cluster.map(|id| t.shard_of(id));
        let entry = shard.and_then(|s| t.shard(s));
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
            }),
        )
    }
}

/// Whether any local Coopr server answers `GET /status` with 200 within a second.
async fn probe_backends(rt: &Runtime) -> bool {
    for b in rt.backends.iter() {
        let uri = format!("{}status", b.url);
        let Ok(mut req) = Request::get(uri).body(ProxyBody::Empty) else {
            continue;
        };
        req.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("keep-alive"),
        );
        if let Ok(resp) = rt.upstream.send(req, Duration::from_secs(1)).await
            && resp.status() == StatusCode::OK
        {
            return true;
        }
    }
    false
}
