//! The admin port's small HTTP pieces: JSON answers, a query parameter's value, the static
//! status page.

use crate::body::ProxyBody;
use http::{Response, StatusCode, header};
use serde_json::Value;

pub(super) fn json_response(status: StatusCode, body: Value) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The status page: static, so it is served without the token; it sends the token (given in
/// the URL fragment) on the requests that read data. It may not be framed by another site.
pub(super) fn status_page() -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(crate::status::PAGE));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// The first value of a query parameter, percent-decoded.
pub(super) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}
