//! Building the request sent upstream from the client's: same method, path and query on the
//! upstream's scheme and authority, hop-by-hop headers removed, the client added to
//! `X-Forwarded-For` / `Forwarded`, always HTTP/1.1. A proxied request's head is written
//! straight from the client's parts ([`Outbound::proxied`]): no second `HeaderMap` is built,
//! grown and dropped per request. [`upstream_request`] builds the same request as a
//! `Request` (for the router's rare requests that edit it); a property test holds the two to
//! the same head.

use crate::body::ProxyBody;
use crate::headers;
use crate::wire::head::{self as wire_head, LengthHeader};
use crate::wire::{Framing, Length};
use bytes::BufMut;
use http::header::{HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Version, header};
use std::net::SocketAddr;

/// A request ready for the pool: the upstream it goes to (its scheme and authority), its
/// method, its head as it goes on the wire, and how its body is framed.
#[derive(Debug)]
pub struct Outbound {
    /// The upstream's URI: its scheme and authority pick the connection.
    pub base: Uri,
    pub method: Method,
    /// Request line, headers and the empty line.
    pub head: Vec<u8>,
    pub framing: Framing,
}

/// What the router sets on a proxied request besides the client's headers
/// ([`headers::set_hop_and_epoch`]'s arguments).
#[derive(Debug, Clone, Default)]
pub struct RouterHeaders {
    /// The hop header naming this DC (to a peer router), or none (to a Coopr server).
    pub hop: Option<HeaderValue>,
    /// This router's epoch for the shard (0: none).
    pub epoch: u64,
    /// The request may carry router headers of its own (it did not come from the client port).
    pub carried: bool,
}

impl Outbound {
    /// A request as the pool sends it: `Host` from the URI when it has none, the body's
    /// framing decided as hyper's client does, the head encoded in origin form.
    pub fn of_request(req: Request<ProxyBody>) -> (Outbound, ProxyBody) {
        let (parts, body) = req.into_parts();
        let length = Length::of(&body);
        (Outbound::of_parts(parts, length), body)
    }

    /// [`Outbound::of_request`] for a request's parts and what its body says of itself.
    pub fn of_parts(mut parts: Parts, length: Length) -> Outbound {
        add_host(&mut parts.headers, &parts.uri);
        let framing = wire_head::request_framing(&parts.method, &mut parts.headers, length);
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut head = Vec::new();
        wire_head::encode_head(&parts.method, target, &parts.headers, &mut head);
        Outbound {
            base: parts.uri,
            method: parts.method,
            head,
            framing,
        }
    }

    /// The head of the client's request proxied to `base`, written from `parts` as it goes:
    /// what [`upstream_request_to`], [`headers::set_hop_and_epoch`] and
    /// [`Outbound::of_request`] make of it, without building a second header map. `target`:
    /// another path and query than the client's; `body`: what the body says of itself.
    pub fn proxied(
        parts: &Parts,
        base: &Uri,
        target: Option<&str>,
        remote: SocketAddr,
        router: &RouterHeaders,
        body: Length,
    ) -> Outbound {
        let h = &parts.headers;
        let named = headers::connection_named(h);
        let dropped = |n: &HeaderName| headers::is_hop_by_hop(n) || named.contains(n);
        let existing = if dropped(&header::CONTENT_LENGTH) {
            None
        } else {
            wire_head::content_length(h)
        };
        let (framing, length) = wire_head::framing_without_te(&parts.method, existing, body);
        let replaced = |n: &HeaderName| {
            *n == headers::X_FORWARDED_FOR
                || *n == header::FORWARDED
                || (*n == headers::HOP && (router.hop.is_some() || router.carried))
                || (*n == headers::EPOCH && (router.epoch > 0 || router.carried))
                || (*n == header::CONTENT_LENGTH && length != LengthHeader::Keep)
        };
        let target =
            target.unwrap_or_else(|| parts.uri.path_and_query().map_or("/", |pq| pq.as_str()));
        let mut head = Vec::with_capacity(160 + target.len() + h.len() * 40);
        head.put_slice(parts.method.as_str().as_bytes());
        head.put_u8(b' ');
        head.put_slice(target.as_bytes());
        head.put_slice(b" HTTP/1.1\r\n");
        // The client's values the router's headers are made from (the first of each), noted
        // on the way instead of looked up.
        let (mut host, mut xff, mut fwd) = (false, None, None);
        for (name, value) in h {
            if dropped(name) {
                continue;
            }
            if *name == header::HOST {
                host = true;
            } else if *name == headers::X_FORWARDED_FOR {
                xff = xff.or(Some(value));
            } else if *name == header::FORWARDED {
                fwd = fwd.or(Some(value));
            }
            if !replaced(name) {
                put_header(&mut head, name.as_str().as_bytes(), value.as_bytes());
            }
        }
        if !host {
            // An HTTP/2 request's `:authority`, else the upstream's own.
            let host = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .or_else(|| host_of(base));
            if let Some(host) = host {
                put_header(&mut head, b"host", host.as_bytes());
            }
        }
        let ip = headers::IpText::of(remote.ip());
        head.put_slice(b"x-forwarded-for: ");
        headers::write_forwarded_for(&mut head, xff, &ip);
        head.put_slice(b"\r\nforwarded: ");
        headers::write_forwarded(&mut head, fwd, &ip);
        head.put_slice(b"\r\n");
        if let Some(dc) = &router.hop {
            put_header(&mut head, headers::HOP.as_str().as_bytes(), dc.as_bytes());
        }
        if router.epoch > 0 {
            head.put_slice(headers::EPOCH.as_str().as_bytes());
            head.put_slice(b": ");
            headers::push_decimal(&mut head, router.epoch);
            head.put_slice(b"\r\n");
        }
        match length {
            LengthHeader::Keep => {}
            LengthHeader::Set(n) => {
                head.put_slice(b"content-length: ");
                headers::push_decimal(&mut head, n);
                head.put_slice(b"\r\n");
            }
            LengthHeader::Drop => head.put_slice(b"transfer-encoding: chunked\r\n"),
        }
        head.put_slice(b"\r\n");
        Outbound {
            base: base.clone(),
            method: parts.method.clone(),
            head,
            framing,
        }
    }
}

fn put_header(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    head.put_slice(name);
    head.put_slice(b": ");
    head.put_slice(value);
    head.put_slice(b"\r\n");
}

/// `Host` from the URI when missing (a default port left out).
fn add_host(headers: &mut http::HeaderMap, uri: &Uri) {
    if headers.contains_key(header::HOST) {
        return;
    }
    if let Some(v) = host_of(uri) {
        headers.insert(header::HOST, v);
    }
}

/// The `Host` of an upstream URI: its authority, the port left out when it is the scheme's
/// default.
fn host_of(uri: &Uri) -> Option<HeaderValue> {
    let a = uri.authority()?;
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    let value = match a.port_u16() {
        Some(p) if p == default => HeaderValue::from_str(a.host()),
        _ => HeaderValue::from_str(a.as_str()),
    };
    value.ok()
}

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

    #[test]
    fn requests_get_a_host_from_the_uri_when_they_have_none() {
        let cases = [
            ("http://10.0.0.9:55054/v2/a?b=1", None, "10.0.0.9:55054"),
            ("https://h:443/", None, "h"),
            ("http://h:80", None, "h"),
            ("http://h:81/x", Some("client.example"), "client.example"),
        ];
        for (uri, host, want_host) in cases {
            let uri: Uri = uri.parse().unwrap();
            let mut h = http::HeaderMap::new();
            if let Some(v) = host {
                h.insert("host", HeaderValue::from_static(v));
            }
            add_host(&mut h, &uri);
            assert_eq!(h["host"], want_host, "{uri}");
        }
    }
}
