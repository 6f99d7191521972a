//! Catalog drift (issue 24): each DC's catalog compared with the home DC's, by name, and the
//! repair of a DC from the home DC by replayed writes. A catalog is read through Coopr's own
//! listings (`GET /v2/tenants` as the superadmin, then `GET /v2/{kind}` of each catalog kind as
//! each tenant's admin), from the local Coopr at the home and through each other DC's router
//! (peer port: a read is served by that DC's Coopr). Per-DC facts (a tenant's `id`) are not
//! compared. Plugin types are left out: provisioners push them into each DC (the internal API).
//! The comparison and the repair plan are pure; a repair is queued as catalog deliveries for
//! that DC alone (`catalog.rs`), in an order Coopr accepts (tenants, then entities before the
//! templates that name them, deletions last).

use super::Inner;
use super::catalog::{CatalogRecord, queue};
use super::store::now_ms;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The per-tenant catalog kinds, dependencies first (templates name the others).
pub const KINDS: [&str; 6] = [
    "providers",
    "hardwaretypes",
    "imagetypes",
    "services",
    "partialtemplates",
    "clustertemplates",
];

/// The kind of a tenant itself (its tenant key is empty).
pub const TENANTS: &str = "tenants";

/// The superadmin tenant (Coopr's, every DC has it).
const SUPERADMIN: &str = "superadmin";

/// A catalog: (tenant, kind, name) -> the entity as Coopr shows it.
pub type Catalog = BTreeMap<(String, String, String), Value>;

/// One difference of a DC's catalog from the home DC's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// Empty for a tenant itself.
    pub tenant: String,
    pub kind: String,
    pub name: String,
    /// `missing` (the home has it, the DC not), `extra` (the other way), `differs`.
    pub what: &'static str,
}

/// Pure: what differs in `other` from `home`, in catalog order.
pub fn diff(home: &Catalog, other: &Catalog) -> Vec<Drift> {
    let drift = |(t, k, n): &(String, String, String), what| Drift {
        tenant: t.clone(),
        kind: k.clone(),
        name: n.clone(),
        what,
    };
    let mut out: Vec<Drift> = Vec::new();
    for (key, v) in home {
        match other.get(key) {
            None => out.push(drift(key, "missing")),
            Some(o) if o != v => out.push(drift(key, "differs")),
            Some(_) => {}
        }
    }
    out.extend(
        other
            .keys()
            .filter(|k| !home.contains_key(*k))
            .map(|k| drift(k, "extra")),
    );
    out
}

/// Pure: the writes that make `other` equal to `home`, in an order Coopr accepts: tenants
/// created or updated, then entities kind by kind (dependencies first), then entities deleted
/// (templates first), then tenants deleted. Each is the request a client would make, as the
/// superadmin (tenants) or the tenant's admin (entities).
pub fn repair(home: &Catalog, other: &Catalog, origin: &str) -> Vec<CatalogRecord> {
    let drifts = diff(home, other);
    let rank = |d: &Drift| -> (u8, usize) {
        let kind = KINDS.iter().position(|k| *k == d.kind).unwrap_or(0);
        match (d.kind == TENANTS, d.what) {
            (true, "extra") => (3, 0),
            (true, _) => (0, 0),
            (false, "extra") => (2, KINDS.len() - kind),
            (false, _) => (1, kind),
        }
    };
    let mut drifts = drifts;
    drifts.sort_by_key(|d| rank(d));
    drifts
        .iter()
        .map(|d| {
            let key = (d.tenant.clone(), d.kind.clone(), d.name.clone());
            let (user_tenant, base) = if d.kind == TENANTS {
                (SUPERADMIN.to_string(), "/v2/tenants".to_string())
            } else {
                (d.tenant.clone(), format!("/v2/{}", d.kind))
            };
            let (method, target, body) = match d.what {
                "missing" => ("POST", base, home.get(&key)),
                "differs" => ("PUT", format!("{base}/{}", d.name), home.get(&key)),
                _ => ("DELETE", format!("{base}/{}", d.name), None),
            };
            CatalogRecord {
                origin: origin.to_string(),
                method: method.to_string(),
                target,
                headers: vec![
                    ("coopr-userid".to_string(), "admin".to_string()),
                    ("coopr-tenantid".to_string(), user_tenant),
                ],
                body: body.map(Value::to_string),
                body_hex: None,
                time_ms: now_ms(),
                home_status: 0,
            }
        })
        .collect()
}

/// Pure: a catalog from Coopr's listings: the tenants (`GET /v2/tenants`) and, per tenant
/// name, per kind, the entities (`GET /v2/{kind}`). A tenant's per-DC `id` is dropped.
pub fn catalog_of(tenants: &[Value], entities: &BTreeMap<(String, String), Vec<Value>>) -> Catalog {
    let mut out = Catalog::new();
    for t in tenants {
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        let mut spec = t.clone();
        if let Some(o) = spec.as_object_mut() {
            o.remove("id");
        }
        out.insert((String::new(), TENANTS.to_string(), name.to_string()), spec);
    }
    for ((tenant, kind), list) in entities {
        for e in list {
            if let Some(name) = e.get("name").and_then(Value::as_str) {
                out.insert((tenant.clone(), kind.clone(), name.to_string()), e.clone());
            }
        }
    }
    out
}

/// How often the home DC compares the other DCs' catalogs with its own.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads a DC's catalog: this DC's Coopr's (`via` None), or DC `via`'s through its router
/// (its peer port; a read there is served by its own Coopr).
async fn fetch(inner: &Inner, via: Option<&str>) -> Result<Catalog, String> {
    let base = match via {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => inner
            .http
            .local_base()
            .ok_or_else(|| "no Coopr server is configured".to_string())?,
    };
    let get = |path: String, tenant: String| {
        let base = &base;
        async move {
            let url = format!("{base}{path}");
            let h = [
                ("Coopr-UserID", "admin"),
                ("Coopr-TenantID", tenant.as_str()),
            ];
            let r = match via {
                Some(_) => {
                    inner
                        .http
                        .send(http::Method::GET, &url, &h, bytes::Bytes::new())
                        .await?
                }
                None => inner.http.get_local(&url, &h).await?,
            };
            if !r.ok() {
                return Err(format!("{url}: status {}", r.status));
            }
            match r.json() {
                Some(Value::Array(a)) => Ok(a),
                _ => Err(format!("{url}: not a JSON array")),
            }
        }
    };
    let tenants = get("/v2/tenants".into(), SUPERADMIN.into()).await?;
    let mut entities = BTreeMap::new();
    for t in &tenants {
        let Some(name) = t.get("name").and_then(Value::as_str) else {
            continue;
        };
        for kind in KINDS {
            let list = get(format!("/v2/{kind}"), name.to_string()).await?;
            entities.insert((name.to_string(), kind.to_string()), list);
        }
    }
    Ok(catalog_of(&tenants, &entities))
}

/// Whether this router's DC is the catalog's home; else the home's name (or an error text).
fn home_check(inner: &Inner) -> Result<(), String> {
    let table = inner.routes.load();
    let home = table
        .catalog_home(inner.http.catalog_home().as_deref())
        .map(|h| table.dc_name(h).to_string());
    match home {
        Some(h) if h == table.local_name() => Ok(()),
        Some(h) => Err(format!(
            "this router is in {}, not in the catalog's home DC {h}: ask a router of {h}",
            table.local_name()
        )),
        None => Err("catalog.home is not set".into()),
    }
}

/// Compares every other DC's catalog with this DC's (the home's): the differences per DC (or
/// why a DC could not be read), recorded for `/ready` and the drift metric.
pub(super) async fn compare(inner: &Inner) -> Result<Value, String> {
    home_check(inner)?;
    let home = fetch(inner, None).await?;
    let table = inner.routes.load();
    let mut dcs = serde_json::Map::new();
    for dc in (0..table.dcs.len()).filter(|&dc| dc != table.local) {
        let name = table.dc_name(dc).to_string();
        let peer = table.dcs[dc].peer_url.to_string();
        let entry = match fetch(inner, Some(&peer)).await {
            Ok(c) => {
                let drift = diff(&home, &c);
                for kind in std::iter::once(TENANTS).chain(KINDS) {
                    let n = drift.iter().filter(|d| d.kind == kind).count();
                    crate::metrics::catalog_drift(&name, kind, n);
                }
                inner
                    .drift
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone(), Some(drift.len()));
                serde_json::json!({ "differences": drift.len(), "drift": drift })
            }
            Err(e) => {
                inner
                    .drift
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(name.clone(), None);
                serde_json::json!({ "error": e })
            }
        };
        dcs.insert(name, entry);
    }
    Ok(serde_json::json!({ "home": table.local_name(), "dcs": dcs }))
}

/// Repairs DC `to` from this DC (the home): the writes of [`repair`], queued for `to` alone
/// behind whatever it has queued, and delivered like any catalog write.
pub(super) async fn sync(inner: &Inner, to: &str) -> Result<Value, String> {
    home_check(inner)?;
    let table = inner.routes.load();
    let dc = table
        .dc_index(to)
        .filter(|&dc| dc != table.local)
        .ok_or_else(|| format!("{to:?} is not another DC of the map"))?;
    let home = fetch(inner, None).await?;
    let other = fetch(inner, Some(&table.dcs[dc].peer_url.to_string())).await?;
    let writes = repair(&home, &other, table.local_name());
    let listed: Vec<String> = writes
        .iter()
        .map(|w| format!("{} {}", w.method, w.target))
        .collect();
    let cap = inner.cfg.outbox_max_records;
    let target = vec![to.to_string()];
    let queued = inner
        .store
        .run(move |s| {
            let mut n = 0;
            for w in &writes {
                if s.enqueue_catalog(w, &target, cap)?.is_empty() {
                    n += 1;
                }
            }
            Ok(n)
        })
        .await
        .map_err(|e| e.to_string())?;
    inner.wake_peer(&queue(to)).notify_one();
    tracing::info!(dc = %to, writes = queued, "catalog sync queued");
    Ok(serde_json::json!({ "to": to, "queued": queued, "writes": listed }))
}

/// At the home DC: compares the other DCs' catalogs every [`EVERY`] until the router stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = &mut stop => return,
        }
        if home_check(&inner).is_err() {
            continue;
        }
        match compare(&inner).await {
            Ok(v) => tracing::debug!(result = %v, "catalog drift compared"),
            Err(e) => tracing::warn!(error = %e, "catalog drift comparison failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cat(items: &[(&str, &str, &str, Value)]) -> Catalog {
        items
            .iter()
            .map(|(t, k, n, v)| ((t.to_string(), k.to_string(), n.to_string()), v.clone()))
            .collect()
    }

    #[test]
    fn listings_make_a_catalog_by_name_without_tenant_ids() {
        let tenants = [
            json!({"id": "uuid-1", "name": "acme", "workers": 1}),
            json!({"id": "superadmin", "name": "superadmin", "workers": 0}),
        ];
        let mut ents = BTreeMap::new();
        ents.insert(
            ("acme".to_string(), "services".to_string()),
            vec![json!({"name": "base", "description": "b"})],
        );
        let c = catalog_of(&tenants, &ents);
        let other = catalog_of(
            &[
                json!({"id": "uuid-2", "name": "acme", "workers": 1}),
                json!({"id": "superadmin", "name": "superadmin", "workers": 0}),
            ],
            &ents,
        );
        assert_eq!(diff(&c, &other), [], "tenant ids differ per DC by design");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn differences_and_their_repair() {
        let home = cat(&[
            ("", "tenants", "acme", json!({"name": "acme", "workers": 1})),
            ("acme", "services", "base", json!({"name": "base", "d": 1})),
            ("acme", "clustertemplates", "t", json!({"name": "t"})),
            ("acme", "hardwaretypes", "small", json!({"name": "small"})),
        ]);
        let other = cat(&[
            ("acme", "services", "base", json!({"name": "base", "d": 2})),
            ("acme", "services", "old", json!({"name": "old"})),
            ("acme", "partialtemplates", "p", json!({"name": "p"})),
            ("", "tenants", "gone", json!({"name": "gone"})),
        ]);
        let d = diff(&home, &other);
        let seen: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|d| (d.kind.as_str(), d.name.as_str(), d.what))
            .collect();
        assert_eq!(
            seen,
            [
                ("tenants", "acme", "missing"),
                ("clustertemplates", "t", "missing"),
                ("hardwaretypes", "small", "missing"),
                ("services", "base", "differs"),
                ("tenants", "gone", "extra"),
                ("partialtemplates", "p", "extra"),
                ("services", "old", "extra"),
            ]
        );
        let writes: Vec<String> = repair(&home, &other, "dc1")
            .iter()
            .map(|r| format!("{} {} as {}", r.method, r.target, r.headers[1].1))
            .collect();
        assert_eq!(
            writes,
            [
                "POST /v2/tenants as superadmin",
                "POST /v2/hardwaretypes as acme",
                "PUT /v2/services/base as acme",
                "POST /v2/clustertemplates as acme",
                "DELETE /v2/partialtemplates/p as acme",
                "DELETE /v2/services/old as acme",
                "DELETE /v2/tenants/gone as superadmin",
            ]
        );
        let put = &repair(&home, &other, "dc1")[2];
        assert_eq!(put.body.as_deref(), Some(r#"{"d":1,"name":"base"}"#));
        assert_eq!(repair(&home, &home, "dc1"), []);
    }
}
