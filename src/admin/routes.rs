//! `/admin/routes`: the current snapshot, the fence, held writes, failback, reload state, local
//! servers' health, pins and the catalog's home, as one JSON document (also the base of
//! `/admin/status.json`).

use super::Admin;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

impl Admin {
    /// The shards away from home that are not handed back now, and why each waits.
    pub(super) fn failback_view(&self, t: &crate::routing::RoutingTable) -> Value {
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

    pub(super) fn routes_view(&self) -> Value {
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
    pub(super) fn catalog_home_view(&self, t: &crate::routing::RoutingTable) -> Value {
        match t.catalog_home_entry() {
            Some((dc, epoch)) => json!({"dc": t.dc_name(dc), "epoch": epoch, "source": "etcd"}),
            None => match self.runtime.load().config.raw.catalog.home.clone() {
                Some(dc) => json!({"dc": dc, "source": "config"}),
                None => Value::Null,
            },
        }
    }
}
