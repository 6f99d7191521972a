//! `/admin/explain`: what the router would do with a request (method, path, body), and why.

use super::Admin;
use super::reply::{json_response, query_param};
use crate::body::ProxyBody;
use crate::classify::{self, Class, Head};
use crate::routing::{Decision, Origin, Target, decide};
use http::{Method, Response, StatusCode};
use serde_json::json;

impl Admin {
    pub(super) fn explain(&self, query: &str) -> Response<ProxyBody> {
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
