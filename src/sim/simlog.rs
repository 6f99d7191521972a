//! `/sim/log`: the record of every state-changing request that got a 2xx, in order. Reads are
//! never logged. Tests (and the router's tests) use it to see which requests reached this
//! simulator, with the router's epoch and request-id headers.

use serde::{Deserialize, Serialize};

use super::Shared;
use super::auth::{TENANT_HEADER, USER_HEADER, header};
use super::ctx::Ctx;
use super::reply::{self, Resp};

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// 1, 2, 3, … in the order the requests completed.
    pub seq: u64,
    pub method: String,
    /// The request path as received (not normalised).
    pub path: String,
    /// The 8-digit cluster id the request concerned, if any.
    pub cluster_id: Option<String>,
    /// The `x-coopr-router-epoch` header.
    pub epoch: Option<String>,
    /// The `x-request-id` header.
    pub request_id: Option<String>,
    pub status: u16,
    /// The `Coopr-TenantID` header (a tenant name).
    pub tenant: Option<String>,
    /// The `Coopr-UserID` header.
    pub user: Option<String>,
    /// When it was handled: milliseconds since the Unix epoch (simulator clock).
    pub time_ms: u64,
}

/// Appends an entry for a request that changed state.
pub(crate) fn record(
    shared: &Shared,
    parts: &http::request::Parts,
    status: u16,
    cluster_id: Option<String>,
) {
    let h = |name: &str| header(&parts.headers, name).map(str::to_string);
    let time_ms = shared.clock.now_ms();
    let mut state = shared.write();
    state.log_seq += 1;
    let entry = LogEntry {
        seq: state.log_seq,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        cluster_id,
        epoch: h("x-coopr-router-epoch"),
        request_id: h("x-request-id"),
        status,
        tenant: h(TENANT_HEADER),
        user: h(USER_HEADER),
        time_ms,
    };
    state.log.push(entry);
}

/// `GET /sim/log[?since=SEQ]`.
pub(crate) fn get(ctx: &Ctx) -> Resp {
    let since = match ctx.query_values("since").first() {
        None => 0,
        Some(v) => match v.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return reply::text(400, "since must be a number"),
        },
    };
    let state = ctx.shared.read();
    let start = state.log.partition_point(|e| e.seq <= since);
    reply::ok(&&state.log[start..])
}
