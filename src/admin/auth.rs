//! Who may call the admin port: the bearer token (compared in constant time), and which
//! endpoints need it even with `admin.open_reads`.

use super::Admin;
use super::reply::json_response;
use crate::body::ClientBody;
use crate::body::ProxyBody;
use http::{Method, Request, Response, StatusCode, header};
use serde_json::json;

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Admin {
    /// `None` when the request may proceed, else the 401/403 to send. `changes`: the endpoint
    /// changes something, or can show user data (tenants, users, clusters of operations): it
    /// needs the token whatever `admin.open_reads` says.
    pub(super) fn refuse(
        &self,
        req: &Request<ClientBody>,
        changes: bool,
    ) -> Option<Response<ProxyBody>> {
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
}

/// Whether an admin request needs the token even with `admin.open_reads`: anything that changes
/// something, and the views that can show user data (`/admin/operations`: tenants, users and
/// clusters of operations; `/admin/catalog`: tenants and catalog writes). `/metrics`,
/// `/admin/routes`, `/admin/status.json` and `/admin/explain` show only the router's own state.
pub(super) fn needs_token(method: &Method, path: &str) -> bool {
    const USER_DATA: [&str; 3] = ["/admin/operations", "/admin/catalog", "/admin/catalog/diff"];
    method != Method::GET || USER_DATA.contains(&path)
}
