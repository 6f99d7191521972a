//! The upstream side: sending a request to a Coopr server or a peer router through the
//! connection pool (`pool.rs`: HTTP/1.1 keep-alive, plain or TLS by URL scheme) with a response
//! timeout, classifying failures, and building the upstream request (URI, headers).

use super::body::ProxyBody;
use super::headers;
use super::pool::{Failure, Pool};
use crate::config::Timeouts;
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version, header};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::time::Duration;

/// Why an upstream exchange failed.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be made: nothing was sent, so trying elsewhere is safe.
    Connect(String),
    /// No response head within the timeout (the request may have been applied).
    Timeout,
    /// The exchange broke after it started (the request may have been applied).
    Failed(String),
    /// The client's own request body broke (bad chunked framing, cut short): the client's
    /// fault, answered 400; the upstream saw an incomplete body.
    RequestBody(String),
}

/// The pooled client.
#[derive(Clone)]
pub struct Upstream {
    pool: Pool,
}

/// Idle connections kept per upstream.
const MAX_IDLE_PER_UPSTREAM: usize = 256;

impl Upstream {
    /// `tls` decides trust for https URLs (peer routers, Coopr servers); http URLs stay plain.
    pub fn new(t: &Timeouts, tls: &crate::tls::Material) -> Self {
        Upstream {
            pool: Pool::new(
                t.connect(),
                t.upstream_idle(),
                MAX_IDLE_PER_UPSTREAM,
                tls.upstream_tls(),
            ),
        }
    }

    /// Sends a request (its URI absolute: it names the upstream) and waits for the response
    /// head at most `timeout`.
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, SendError> {
        let result = if req.body().is_streamed() {
            // The response timeout starts once the body was sent whole: a large upload may
            // take longer than `timeout` by itself.
            let (tx, mut sent) = tokio::sync::oneshot::channel();
            let req = req.map(|b| ProxyBody::Tracked {
                inner: Box::new(b),
                done: Some(tx),
            });
            let exchange = self.pool.send(req);
            tokio::pin!(exchange);
            tokio::select! {
                r = &mut exchange => Ok(r),
                _ = &mut sent => tokio::time::timeout(timeout, exchange).await,
            }
        } else {
            tokio::time::timeout(timeout, self.pool.send(req)).await
        };
        match result {
            Err(_) => Err(SendError::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(Failure::Connect(e))) => Err(SendError::Connect(e)),
            Ok(Err(Failure::Exchange(e))) if crate::limits::is_request_body_error(&e) => {
                Err(SendError::RequestBody(error_chain(&e)))
            }
            Ok(Err(Failure::Exchange(e))) => Err(SendError::Failed(error_chain(&e))),
        }
    }
}

/// The error and its causes, on one line.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
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
    let mut h = parts.headers.clone();
    headers::strip_hop_by_hop(&mut h);
    if !h.contains_key(header::HOST)
        && let Some(a) = parts.uri.authority()
        && let Ok(v) = header::HeaderValue::from_str(a.as_str())
    {
        h.insert(header::HOST, v);
    }
    headers::add_forwarded(&mut h, remote);
    *req.headers_mut() = h;
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
