//! The upstream connection pool: HTTP/1.1 keep-alive connections to Coopr servers and peer
//! routers (plain or TLS by URL scheme), kept per upstream (scheme and authority) as a stack of
//! idle `hyper::client::conn::http1` senders. It replaces hyper-util's legacy client (SipHash
//! of its pool key on checkout and return, a boxed request future and a spawned task per
//! request: about a tenth of the user-space instructions of a local read, load/README.md).
//! TCP connections still come from hyper-util's `HttpConnector` (resolution, connect timeout,
//! TCP_NODELAY, keepalive); TLS from `tls::UpstreamTls`.
//!
//! A connection is checked out (the most recently used first), the request handed to it, and
//! its sender parked in the connection's [`Slot`]; the connection's task returns it to the idle
//! stack once hyper wants the next request (the response was read to its end), so nothing is
//! spawned per request. A connection the upstream closed while idle is skipped at checkout;
//! one that closes between checkout and sending hands the request back, and it is sent again on
//! another connection (nothing was written). Idle connections older than the idle timeout are
//! dropped at checkout and by a sweep; at most `max_idle` are kept per upstream.

use crate::body::ProxyBody;
use crate::tls::UpstreamTls;
use http::uri::{PathAndQuery, Uri};
use http::{HeaderValue, Request, Response, header};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::time::Instant;
use tower_service::Service;

/// Why a request could not be exchanged.
#[derive(Debug)]
pub enum Failure {
    /// Nothing was sent (no connection, or it closed before the request was written).
    Connect(String),
    /// The exchange failed once the request had been handed to a connection.
    Exchange(hyper::Error),
}

/// Where a request goes, the pool key: TLS or not, and the URI's authority (host and port) as
/// written. Comparing it is a short string compare, no hashing and no parsing (`h` and `h:80`
/// are two keys: upstream URLs come from the config, each spelled one way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key<'a> {
    pub tls: bool,
    pub authority: &'a str,
}

impl<'a> Key<'a> {
    /// The key of an absolute `http` or `https` URI.
    pub fn of(uri: &'a Uri) -> Result<Key<'a>, String> {
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(format!("unsupported URL scheme {other:?} in {uri}")),
            None => return Err(format!("the upstream URL {uri} has no scheme")),
        };
        match uri.authority() {
            Some(a) if !a.as_str().is_empty() => Ok(Key {
                tls,
                authority: a.as_str(),
            }),
            _ => Err(format!("the upstream URL {uri} has no host")),
        }
    }
}

/// Whether a connection idle since `since` is too old to use at `now`.
pub fn expired(since: Instant, now: Instant, idle_timeout: Duration) -> bool {
    now.saturating_duration_since(since) >= idle_timeout
}

/// How many connections at the bottom of a stack (oldest first, as pushed) are expired.
fn expired_prefix(idle: &[Idle], now: Instant, idle_timeout: Duration) -> usize {
    idle.partition_point(|c| expired(c.since, now, idle_timeout))
}

/// A connection's sender while a request is in flight on it: the requester parks it here right
/// after handing over the request, the connection's task moves it back to the idle stack.
#[derive(Default)]
struct Slot(Mutex<Option<SendRequest<ProxyBody>>>);

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Option<SendRequest<ProxyBody>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's sender and its slot.
type Conn = (SendRequest<ProxyBody>, Arc<Slot>);

/// An idle connection.
struct Idle {
    tx: SendRequest<ProxyBody>,
    slot: Arc<Slot>,
    since: Instant,
}

/// The idle connections to one upstream.
struct Host {
    tls: bool,
    authority: Box<str>,
    /// Oldest at the bottom, the most recently used on top.
    idle: Vec<Idle>,
}

impl Host {
    fn is(&self, k: &Key<'_>) -> bool {
        self.tls == k.tls && *self.authority == *k.authority
    }
}

struct Inner {
    /// One entry per upstream ever used; entries are never removed, so an index is stable.
    hosts: Mutex<Vec<Host>>,
    idle_timeout: Duration,
    max_idle: usize,
    connect_timeout: Duration,
    tcp: HttpConnector,
    tls: UpstreamTls,
    sweeping: AtomicBool,
}

/// The pool (cheap to clone).
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

impl Pool {
    /// TCP connections with `connect_timeout` (also bounding the TLS handshake), TCP_NODELAY and
    /// keepalive probes after 60 s; idle ones closed after `idle_timeout`.
    pub fn new(
        connect_timeout: Duration,
        idle_timeout: Duration,
        max_idle: usize,
        tls: UpstreamTls,
    ) -> Pool {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        tcp.set_keepalive(Some(Duration::from_secs(60)));
        Pool(Arc::new(Inner {
            hosts: Mutex::new(Vec::new()),
            idle_timeout,
            max_idle,
            connect_timeout,
            tcp,
            tls,
            sweeping: AtomicBool::new(false),
        }))
    }

    /// Sends `req` (an absolute URI: it picks the upstream) on a pooled or new connection and
    /// waits for the response head. The request goes out in origin form, with a `Host` header
    /// from the URI when it has none.
    pub async fn send(&self, mut req: Request<ProxyBody>) -> Result<Response<Incoming>, Failure> {
        let uri = std::mem::take(req.uri_mut());
        let key = Key::of(&uri).map_err(Failure::Connect)?;
        prepare(&mut req, &uri);
        loop {
            let (host, pooled) = self.0.checkout(&key);
            let (mut tx, slot, reused) = match pooled {
                Some((tx, slot)) => (tx, slot, true),
                // Boxed: the connect future is large and rare; the request's future stays small.
                None => {
                    let (tx, slot) = Box::pin(self.connect(&uri, key.tls, host))
                        .await
                        .map_err(Failure::Connect)?;
                    (tx, slot, false)
                }
            };
            let exchange = tx.try_send_request(req);
            park(&self.0, host, tx, slot);
            match exchange.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    // Closed before the request was written: another connection may take it.
                    Some(back) if reused => req = back,
                    Some(_) => {
                        return Err(Failure::Connect(format!(
                            "the new connection to {uri} closed before the request was sent: {}",
                            e.into_error()
                        )));
                    }
                    None => return Err(Failure::Exchange(e.into_error())),
                },
            }
        }
    }

    /// A new connection to the upstream `uri` names, its task spawned.
    async fn connect(&self, uri: &Uri, tls: bool, host: usize) -> Result<Conn, String> {
        let inner = &self.0;
        if !inner.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(inner), inner.idle_timeout));
        }
        let tcp = inner
            .tcp
            .clone()
            .call(uri.clone())
            .await
            .map_err(|e| format!("{uri}: {}", error_chain(&e)))?;
        let slot = Arc::new(Slot::default());
        let pool = Arc::downgrade(inner);
        let tx = if tls {
            let handshake = inner.tls.connect(uri, tcp.into_inner());
            let stream = tokio::time::timeout(inner.connect_timeout, handshake)
                .await
                .map_err(|_| format!("{uri}: TLS handshake timed out"))?
                .map_err(|e| format!("{uri}: {e}"))?;
            start(TokioIo::new(stream), slot.clone(), pool, host).await
        } else {
            start(tcp, slot.clone(), pool, host).await
        }
        .map_err(|e| format!("{uri}: HTTP/1.1 handshake: {e}"))?;
        Ok((tx, slot))
    }
}

/// Origin form (`/path?query`), and `Host` from the URI when missing (a default port left out).
fn prepare(req: &mut Request<ProxyBody>, uri: &Uri) {
    if !req.headers().contains_key(header::HOST)
        && let Some(a) = uri.authority()
    {
        let default = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let value = match a.port_u16() {
            Some(p) if p == default => HeaderValue::from_str(a.host()),
            _ => HeaderValue::from_str(a.as_str()),
        };
        if let Ok(v) = value {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    let pq = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(pq);
}

/// Parks a sender that was just handed a request; if the exchange is already over (hyper wants
/// the next request), it goes straight back to the idle stack.
fn park(pool: &Arc<Inner>, host: usize, tx: SendRequest<ProxyBody>, slot: Arc<Slot>) {
    let mut parked = slot.lock();
    if tx.is_ready() {
        drop(parked);
        pool.release(host, tx, slot);
    } else {
        *parked = Some(tx);
    }
}

impl Inner {
    fn hosts(&self) -> MutexGuard<'_, Vec<Host>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index of `t`'s entry and, if there is one, a ready idle connection to it.
    fn checkout(&self, k: &Key<'_>) -> (usize, Option<Conn>) {
        let now = Instant::now();
        let mut hosts = self.hosts();
        let Some(i) = hosts.iter().position(|h| h.is(k)) else {
            hosts.push(Host {
                tls: k.tls,
                authority: k.authority.into(),
                idle: Vec::new(),
            });
            return (hosts.len() - 1, None);
        };
        let idle = &mut hosts[i].idle;
        let old = expired_prefix(idle, now, self.idle_timeout);
        if old > 0 {
            idle.drain(..old);
        }
        while let Some(c) = idle.pop() {
            // Not ready: the upstream closed it (or it broke) while idle.
            if c.tx.is_ready() {
                return (i, Some((c.tx, c.slot)));
            }
        }
        (i, None)
    }

    /// Puts an idle connection back on top of its stack, or drops it (closing it) when full.
    fn release(&self, host: usize, tx: SendRequest<ProxyBody>, slot: Arc<Slot>) {
        let mut hosts = self.hosts();
        if let Some(h) = hosts.get_mut(host)
            && h.idle.len() < self.max_idle
        {
            h.idle.push(Idle {
                tx,
                slot,
                since: Instant::now(),
            });
        }
    }

    /// Drops every idle connection older than the idle timeout.
    fn drop_expired(&self) {
        let now = Instant::now();
        for h in self.hosts().iter_mut() {
            let old = expired_prefix(&h.idle, now, self.idle_timeout);
            h.idle.drain(..old);
        }
    }
}

/// The most an upstream connection's read buffer grows to (hyper's default is ~400 KiB): a
/// response streamed to a slow client waits in it, so this bounds the memory of a stalled
/// download (load/SCALE.md: ~947 KiB per stalled stream at hyper's default, ~300 KiB at this).
/// It is also the largest response head an upstream may send, far above
/// `limits.max_header_bytes`' use.
const READ_BUF_MAX: usize = 64 * 1024;

/// hyper's handshake on `io`, and the connection's task spawned.
async fn start<T>(
    io: T,
    slot: Arc<Slot>,
    pool: Weak<Inner>,
    host: usize,
) -> hyper::Result<SendRequest<ProxyBody>>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (tx, conn) = http1::Builder::new()
        .max_buf_size(READ_BUF_MAX)
        .handshake(io)
        .await?;
    tokio::spawn(drive(conn, slot, pool, host));
    Ok(tx)
}

/// Runs a connection; after each step, returns its parked sender to the idle stack once hyper
/// wants the next request.
async fn drive<T>(
    conn: http1::Connection<T, ProxyBody>,
    slot: Arc<Slot>,
    pool: Weak<Inner>,
    host: usize,
) where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut conn = std::pin::pin!(conn);
    let ended = std::future::poll_fn(|cx| {
        let polled = conn.as_mut().poll(cx);
        if polled.is_pending() {
            let mut parked = slot.lock();
            if parked.as_ref().is_some_and(|tx| tx.is_ready())
                && let Some(tx) = parked.take()
            {
                drop(parked);
                if let Some(p) = pool.upgrade() {
                    p.release(host, tx, slot.clone());
                }
            }
        }
        polled
    })
    .await;
    drop(slot.lock().take());
    if let Err(e) = ended {
        tracing::debug!(error = %error_chain(&e), "upstream connection ended");
    }
}

/// Drops expired idle connections every `every` (at least 1 s) until the pool is gone.
async fn sweep(pool: Weak<Inner>, every: Duration) {
    let every = every.max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        match pool.upgrade() {
            Some(p) => p.drop_expired(),
            None => return,
        }
    }
}

/// The error and its causes, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_tls_and_authority() {
        let k = |tls, authority| Some(Key { tls, authority });
        let cases: &[(&str, Option<Key<'static>>)] = &[
            ("http://10.0.0.9:55054/v2/x?y=1", k(false, "10.0.0.9:55054")),
            ("https://10.1.0.5:55081", k(true, "10.1.0.5:55081")),
            ("http://coopr.internal/", k(false, "coopr.internal")),
            ("HTTPS://Coopr.internal:443/", k(true, "Coopr.internal:443")),
            ("http://[::1]:8080/a", k(false, "[::1]:8080")),
            ("ftp://h/", None),
            ("/just/a/path", None),
        ];
        for (uri, want) in cases {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(&Key::of(&uri).ok(), want, "{uri}");
        }
    }

    #[test]
    fn idle_connections_expire_at_the_idle_timeout() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(90);
        let cases = [(0, false), (89_999, false), (90_000, true), (200_000, true)];
        for (ms, want) in cases {
            let now = t0 + Duration::from_millis(ms);
            assert_eq!(expired(t0, now, idle), want, "{ms} ms");
        }
        assert!(
            !expired(t0 + idle, t0, idle),
            "a clock read earlier is not expired"
        );
    }

    #[test]
    fn requests_go_out_in_origin_form_with_a_host() {
        let cases = [
            (
                "http://10.0.0.9:55054/v2/a?b=1",
                None,
                "/v2/a?b=1",
                "10.0.0.9:55054",
            ),
            ("https://h:443/", None, "/", "h"),
            ("http://h:80", None, "/", "h"),
            (
                "http://h:81/x",
                Some("client.example"),
                "/x",
                "client.example",
            ),
        ];
        for (uri, host, path, want_host) in cases {
            let mut b = Request::get(uri);
            if let Some(h) = host {
                b = b.header("host", h);
            }
            let mut req = b.body(ProxyBody::Empty).unwrap();
            let uri = std::mem::take(req.uri_mut());
            prepare(&mut req, &uri);
            assert_eq!(req.uri(), path, "{uri}");
            assert_eq!(req.headers()["host"], want_host, "{uri}");
        }
    }
}
