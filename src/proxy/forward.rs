//! The upstream side: one pooled keep-alive hyper client (plain or TLS by URL scheme) for Coopr
//! servers and peer routers, building the upstream request (URI, headers) and sending it with a
//! response timeout.

use super::body::ProxyBody;
use super::headers;
use crate::config::Timeouts;
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version, header};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tower_service::Service;

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
    client: Client<HttpsConnector<Connector>, ProxyBody>,
}

impl Upstream {
    /// `tls` decides trust for https URLs (peer routers, Coopr servers); http URLs stay plain.
    pub fn new(t: &Timeouts, tls: &crate::tls::Material) -> Self {
        let mut conn = HttpConnector::new();
        conn.enforce_http(false);
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(t.connect()));
        conn.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(t.upstream_idle())
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(tls.connector(Connector(conn)));
        Upstream { client }
    }

    /// Sends a request and waits for the response head at most `timeout`.
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
            let exchange = self.client.request(req);
            tokio::pin!(exchange);
            tokio::select! {
                r = &mut exchange => Ok(r),
                _ = &mut sent => tokio::time::timeout(timeout, exchange).await,
            }
        } else {
            tokio::time::timeout(timeout, self.client.request(req)).await
        };
        match result {
            Err(_) => Err(SendError::Timeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) if e.is_connect() => Err(SendError::Connect(error_chain(&e))),
            Ok(Err(e)) if crate::limits::is_request_body_error(&e) => {
                Err(SendError::RequestBody(error_chain(&e)))
            }
            Ok(Err(e)) => Err(SendError::Failed(error_chain(&e))),
        }
    }
}

/// hyper-util's TCP connector, minus the `HttpInfo` (peer and local address) its connections
/// attach to every response: two allocations and a map insert per request that nothing reads.
#[derive(Clone)]
struct Connector(HttpConnector);

type HttpConnecting = <HttpConnector as Service<Uri>>::Future;
type ConnectError = <HttpConnector as Service<Uri>>::Error;

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Connecting;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Connecting {
        Connecting(self.0.call(uri))
    }
}

/// Connecting: hyper-util's connect future, its stream wrapped in [`Conn`].
struct Connecting(HttpConnecting);

impl Future for Connecting {
    type Output = Result<Conn, ConnectError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map_ok(Conn)
    }
}

/// A connection to an upstream that reports no extra information about itself.
struct Conn(TokioIo<TcpStream>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

/// The error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
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
