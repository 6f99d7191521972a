//! Building the request sent upstream from the client's: same method, path and query on the
//! upstream's scheme and authority, hop-by-hop headers removed, the client added to
//! `X-Forwarded-For` / `Forwarded`, always HTTP/1.1.

use crate::body::ProxyBody;
use crate::headers;
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Version, header};
use std::net::SocketAddr;

/// Builds the upstream request: same method, path and query on `base`'s scheme and host;
/// hop-by-hop headers removed; `Host` kept (taken from the HTTP/2 `:authority` when there is no
/// `Host` header); the client added to `X-Forwarded-For` and `Forwarded`; always HTTP/1.1.
pub fn upstream_request(
    parts: &Parts,
    base: &Uri,
    remote: SocketAddr,
    body: ProxyBody,
) -> Request<ProxyBody> {
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    upstream_request_to(parts, base, pq, remote, body)
}

/// [`upstream_request`] with another path and query than the client's.
pub fn upstream_request_to(
    parts: &Parts,
    base: &Uri,
    pq: PathAndQuery,
    remote: SocketAddr,
    body: ProxyBody,
) -> Request<ProxyBody> {
    let mut uri = Uri::builder().path_and_query(pq);
    if let Some(s) = base.scheme() {
        uri = uri.scheme(s.clone());
    }
    if let Some(a) = base.authority() {
        uri = uri.authority(a.clone());
    }
    let mut req = Request::new(body);
    // Scheme, authority and path-and-query all come from valid parts, so this cannot fail; the
    // fallback keeps the function total all the same.
    *req.uri_mut() = uri.build().unwrap_or_else(|_| base.clone());
    *req.method_mut() = parts.method.clone();
    *req.version_mut() = Version::HTTP_11;
    let h = req.headers_mut();
    *h = parts.headers.clone();
    headers::strip_hop_by_hop(h);
    if !h.contains_key(header::HOST)
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = header::HeaderValue::from_str(a.as_str())
    {
        h.insert(header::HOST, v);
    }
    headers::add_forwarded(h, remote);
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_requests_keep_host_and_add_forwarding_headers() {
        let req = Request::post("http://router.example:8080/v2/clusters/42/abort?x=1")
            .version(Version::HTTP_2)
            .header("connection", "keep-alive, x-drop")
            .header("x-drop", "1")
            .header("te", "trailers")
            .header("coopr-userid", "u")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        let base: Uri = "http://10.0.0.9:55054".parse().unwrap();
        let out = upstream_request(
            &parts,
            &base,
            "192.0.2.7:4000".parse().unwrap(),
            ProxyBody::Empty,
        );
        assert_eq!(out.uri(), "http://10.0.0.9:55054/v2/clusters/42/abort?x=1");
        assert_eq!(out.version(), Version::HTTP_11);
        let h = out.headers();
        assert_eq!(
            h["host"], "router.example:8080",
            "Host comes from :authority and is kept"
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["forwarded"], "for=192.0.2.7;proto=http");
        assert_eq!(h["coopr-userid"], "u");
        assert!(
            h.get("x-drop").is_none() && h.get("te").is_none() && h.get("connection").is_none()
        );
    }
}
