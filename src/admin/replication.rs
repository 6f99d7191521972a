//! The endpoints that read replication: `/admin/operations`, `/admin/catalog`,
//! `/admin/catalog/diff` and `/admin/catalog/sync` (404 without replication).

use super::Admin;
use super::reply::{json_response, query_param};
use crate::body::ProxyBody;
use http::{Response, StatusCode};
use serde_json::{Value, json};

/// An endpoint's answer from what replication returned: `Ok` is 200 with it, `Err` is `fail`
/// with the message.
fn answer(result: Result<Value, String>, fail: StatusCode) -> Response<ProxyBody> {
    match result {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => json_response(fail, json!({"error": e})),
    }
}

/// The 404 every endpoint here answers without replication.
fn not_enabled() -> Response<ProxyBody> {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": "replication is not enabled ([replication] enabled = true)"}),
    )
}

impl Admin {
    /// `GET /admin/operations?state=interrupted|open` (replication).
    pub(super) async fn operations(&self, query: &str) -> Response<ProxyBody> {
        let Some(r) = &self.replication else {
            return not_enabled();
        };
        let state = query_param(query, "state").unwrap_or_else(|| "interrupted".into());
        answer(r.operations(&state).await, StatusCode::BAD_REQUEST)
    }

    /// `GET /admin/catalog?limit=N`: the catalog's home, and per other DC the catalog writes
    /// queued for it and its last answer (replication).
    pub(super) async fn catalog(&self, query: &str) -> Response<ProxyBody> {
        let Some(r) = &self.replication else {
            return not_enabled();
        };
        let limit = query_param(query, "limit")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let home = {
            let t = self.routes.load();
            t.catalog_home(self.runtime.load().config.raw.catalog.home.as_deref())
                .map(|h| t.dc_name(h).to_string())
        };
        let view = r.catalog_view(limit).await.map(|mut v| {
            v["home"] = json!(home);
            v
        });
        answer(view, StatusCode::SERVICE_UNAVAILABLE)
    }

    /// `GET /admin/catalog/diff` (at the catalog's home DC).
    pub(super) async fn catalog_diff(&self) -> Response<ProxyBody> {
        match &self.replication {
            Some(r) => answer(r.catalog_diff().await, StatusCode::CONFLICT),
            None => not_enabled(),
        }
    }

    /// `POST /admin/catalog/sync?to=dcN` (at the catalog's home DC).
    pub(super) async fn catalog_sync(&self, to: &str) -> Response<ProxyBody> {
        match &self.replication {
            Some(r) => answer(r.catalog_sync(to).await, StatusCode::CONFLICT),
            None => not_enabled(),
        }
    }
}
