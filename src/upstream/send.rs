//! Sending one request upstream (a Coopr server or a peer router) through the pool with a
//! response timeout; the kinds of failure ([`SendError`]); the one mapping from a failure to
//! the router's error kinds ([`SendError::into_error`]); and a buffered exchange for the
//! router's own small requests (health checks, replication).

use super::h2::LinkError;
use super::pool::{Failure, Pool};
use super::request::Outbound;
use crate::body::ProxyBody;
use crate::config::Timeouts;
use crate::error::ProxyError;
use crate::wire::Wire;
use bytes::Bytes;
use http::{Request, Response, Uri};
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
    /// The client's request body brought no bytes for `timeouts.body_idle_ms` while the
    /// upstream waited for them: the upstream request was aborted.
    BodyStalled,
}

/// The pooled client.
#[derive(Clone)]
pub struct Upstream {
    pool: Pool,
    /// HTTP/2 links to peer routers (`upstream/h2`).
    links: super::h2::Links,
    /// How long a streamed request body may bring nothing while the upstream waits for it.
    body_idle: Duration,
}

/// Idle connections kept per upstream: as many as the requests recently in flight to it at
/// once, up to this (h2 clients multiplex: 32 connections of 10 streams each need 320; with 256
/// kept, 1.6% of their requests opened a new connection and closed it after). nginx in
/// load/nginx.conf keeps 512 per worker, HAProxy (`http-reuse always`) has no limit. Each is
/// closed after `timeouts.upstream_idle_ms` unused.
const MAX_IDLE_PER_UPSTREAM: usize = 1024;

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
            links: super::h2::Links::new(0),
            body_idle: t.body_idle(),
        }
    }

    /// Forwards to peer routers over HTTP/2 links of at most `max_streams` streams each (0:
    /// over HTTP/1.1 only).
    pub fn with_peer_links(mut self, max_streams: u32) -> Self {
        self.links = super::h2::Links::new(max_streams);
        self
    }

    /// [`send_outbound`](Self::send_outbound) to a peer router: over an HTTP/2 link when the
    /// request can leave whole (`upstream/h2`), else over HTTP/1.1.
    pub fn send_to_peer(
        &self,
        out: Outbound,
        body: ProxyBody,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response<ProxyBody>, SendError>> + '_ {
        use futures_util::future::{Either, FutureExt};
        // Not an async fn: one would keep the request and its body beside the future they
        // are moved into. The link's exchange is boxed apart, with its fallback.
        match self.links.eligible(&out, &body) {
            Some(bytes) => Either::Left(Box::pin(self.send_over_link(out, body, bytes, timeout))),
            None => Either::Right(
                self.send_outbound(out, body, timeout)
                    .map(|r| r.map(|resp| resp.map(ProxyBody::Upstream))),
            ),
        }
    }

    /// A request that may take a link: over it, or over HTTP/1.1 when no link could take it.
    async fn send_over_link(
        &self,
        out: Outbound,
        body: ProxyBody,
        bytes: Option<bytes::Bytes>,
        timeout: Duration,
    ) -> Result<Response<ProxyBody>, SendError> {
        match self
            .links
            .send(&self.pool, &out, bytes.as_ref(), timeout)
            .await
        {
            Some(Ok(resp)) => return Ok(resp),
            Some(Err(LinkError::Refused(e))) => return Err(SendError::Connect(e)),
            Some(Err(LinkError::Broken(e))) => return Err(SendError::Failed(e)),
            Some(Err(LinkError::Timeout)) => return Err(SendError::Timeout),
            None => crate::metrics::peer_over_http1("full"),
        }
        let resp = self.send_outbound(out, body, timeout).await?;
        Ok(resp.map(ProxyBody::Upstream))
    }

    /// Sends a request (its URI absolute: it names the upstream) and waits for the response
    /// head at most `timeout`.
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<Wire>, SendError> {
        let (out, body) = Outbound::of_request(req);
        self.send_outbound(out, body, timeout).await
    }

    /// Sends a request whose head is already written ([`Outbound::proxied`]) and waits for
    /// the response head at most `timeout` once the request was sent whole.
    pub async fn send_outbound(
        &self,
        out: Outbound,
        body: ProxyBody,
        timeout: Duration,
    ) -> Result<Response<Wire>, SendError> {
        // The response timeout is the exchange's own (`wire::exchange`): it starts once the
        // request was sent whole, so a large upload may take longer than `timeout` by itself.
        // A streamed body's watchdog is boxed apart: the common request (a body read whole, or
        // none) keeps a small future, which every layer above it carries.
        let result = if body.is_streamed() {
            Box::pin(self.send_streamed(out, body, timeout)).await?
        } else {
            self.pool.send(out, body, timeout).await
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(Failure::Timeout) => Err(SendError::Timeout),
            Err(Failure::Connect(e)) => Err(SendError::Connect(e)),
            Err(Failure::RequestBody(e)) => Err(SendError::RequestBody(e)),
            Err(Failure::Exchange(e)) => Err(SendError::Failed(e)),
        }
    }

    /// [`send_outbound`](Self::send_outbound) for a body streamed from its client: a body
    /// that stalls while the upstream waits for it is cut (`SendError::BodyStalled`).
    async fn send_streamed(
        &self,
        out: Outbound,
        body: ProxyBody,
        timeout: Duration,
    ) -> Result<Result<Response<Wire>, Failure>, SendError> {
        let progress = std::sync::Arc::new(crate::body::Progress::default());
        let body = ProxyBody::Tracked {
            inner: Box::new(body),
            progress: crate::body::Reporter(progress.clone()),
        };
        let exchange = self.pool.send(out, body, timeout);
        tokio::pin!(exchange);
        let sent = std::future::poll_fn(|cx| progress.poll_done(cx));
        // A body that stalls while the upstream waits for it is cut: it would hold an
        // upstream connection for as long as the client likes. The watchdog's timer is
        // armed only once the body waits for its client.
        let stalled = async {
            std::future::poll_fn(|cx| progress.poll_waiting(cx)).await;
            let mut seen = progress.frames();
            loop {
                tokio::time::sleep(self.body_idle).await;
                let now = progress.frames();
                if now == seen && progress.waiting() {
                    return;
                }
                seen = now;
            }
        };
        Ok(tokio::select! {
            r = &mut exchange => r,
            _ = sent => exchange.await,
            _ = stalled => return Err(SendError::BodyStalled),
        })
    }
}

/// Whom a request was sent to, for the error a failure becomes.
#[derive(Debug, Clone, Copy)]
pub enum Hop<'a> {
    /// A local Coopr server.
    Local,
    /// This DC's standby Coopr server for another DC (its base URL).
    Standby(&'a Uri),
    /// The router of another DC (its name).
    Peer(&'a str),
}

impl SendError {
    /// The one mapping from an upstream failure to the router's error kinds.
    pub fn into_error(self, hop: Hop<'_>) -> ProxyError {
        match (self, hop) {
            (SendError::RequestBody(e), _) => ProxyError::BodyRead(e),
            (SendError::BodyStalled, _) => ProxyError::BodyTimeout,
            (SendError::Connect(e), Hop::Local) => ProxyError::BackendUnreachable(e),
            (SendError::Connect(e), Hop::Standby(base)) => {
                ProxyError::BackendUnreachable(format!("standby server {base}: {e}"))
            }
            (SendError::Connect(reason), Hop::Peer(dc)) => ProxyError::PeerUnreachable {
                dc: dc.to_string(),
                reason,
            },
            (SendError::Timeout, Hop::Local | Hop::Standby(_)) => ProxyError::BackendTimeout,
            (SendError::Timeout, Hop::Peer(dc)) => ProxyError::PeerTimeout { dc: dc.to_string() },
            (SendError::Failed(e), Hop::Local | Hop::Standby(_)) => ProxyError::Backend(e),
            (SendError::Failed(reason), Hop::Peer(dc)) => ProxyError::Peer {
                dc: dc.to_string(),
                reason,
            },
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Timeout => f.write_str("no answer in time"),
            SendError::Failed(e) => write!(f, "exchange failed: {e}"),
            SendError::RequestBody(e) => write!(f, "request body: {e}"),
            SendError::BodyStalled => f.write_str("the request body stalled"),
        }
    }
}

/// A response read whole (the router's own requests: small bodies).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl Upstream {
    /// Sends a request and reads at most `max_body` bytes of its answer, all within `timeout`.
    pub async fn fetch(
        &self,
        req: Request<ProxyBody>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Reply, String> {
        use http_body_util::{BodyExt, Limited};
        let uri = req.uri().clone();
        let exchange = async {
            let resp = self
                .send(req, timeout)
                .await
                .map_err(|e| format!("{uri}: {e}"))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), max_body)
                .collect()
                .await
                .map_err(|e| format!("{uri}: {e}"))?
                .to_bytes();
            Ok(Reply { status, body })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer from {uri} within {timeout:?}"))?
    }
}
