//! Response helpers: plain-text errors (as Coopr sends them), JSON bodies, bare statuses, and the
//! response extension a handler uses to name the cluster a logged request touched.

use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use super::body::SimBody;

/// The HTTP response every handler returns.
pub(crate) type Resp = Response<SimBody>;

/// Set on a response to record the (8-digit) cluster id in `/sim/log`.
#[derive(Debug, Clone)]
pub(crate) struct LogCluster(pub String);

fn build(code: u16, content_type: Option<&'static str>, body: SimBody) -> Resp {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(ct) = content_type {
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    resp
}

/// A plain-text reply.
pub(crate) fn text(code: u16, msg: impl Into<String>) -> Resp {
    build(
        code,
        Some("text/plain; charset=utf-8"),
        SimBody::full(msg.into()),
    )
}

/// A bare status with an empty body.
pub(crate) fn empty(code: u16) -> Resp {
    build(code, None, SimBody::full(bytes::Bytes::new()))
}

/// A JSON reply.
pub(crate) fn json(code: u16, value: &impl Serialize) -> Resp {
    match serde_json::to_vec(value) {
        Ok(buf) => build(code, Some("application/json"), SimBody::full(buf)),
        Err(e) => text(500, format!("cannot encode response: {e}")),
    }
}

/// 200 with a JSON body.
pub(crate) fn ok(value: &impl Serialize) -> Resp {
    json(200, value)
}

/// A pattern stream of `len` bytes.
pub(crate) fn stream(len: u64) -> Resp {
    let mut resp = build(200, Some("application/octet-stream"), SimBody::pattern(len));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// Tags `resp` with the cluster id it concerns (for `/sim/log`).
pub(crate) fn with_cluster(mut resp: Resp, cluster: impl Into<String>) -> Resp {
    resp.extensions_mut().insert(LogCluster(cluster.into()));
    resp
}

/// `{"missingFields":[…]}` with 400.
pub(crate) fn missing_fields(fields: &[&str]) -> Resp {
    json(400, &serde_json::json!({ "missingFields": fields }))
}
