//! The upstream connection pool: HTTP/1.1 keep-alive connections to Coopr servers and peer
//! routers (plain or TLS by URL scheme), kept per upstream (scheme and authority) as a stack of
//! idle [`wire::Conn`]s. A request is exchanged on its connection in the request's own task
//! (`wire::exchange`): no task per connection, no channel, nothing spawned per request. It
//! replaced hyper's client connection (a task per connection and a dispatch channel to it:
//! about 18k of a local read's 41.5k user-space instructions, load/README.md).
//! TCP connections still come from hyper-util's `HttpConnector` (resolution, connect timeout,
//! TCP_NODELAY, keepalive); TLS from `tls::UpstreamTls`.
//!
//! Idle connections are kept per lane too (`lane.rs`): a serving thread reuses only the
//! connections it opened, which its own event loop watches.
//!
//! A connection is checked out (the most recently used first), the request exchanged on it,
//! and the response body ([`Wire`]) gives the connection back once it was read whole. An idle
//! connection the upstream closed (or wrote to) is dropped at checkout; one that closes before
//! anything of the request was written hands the request back, and it is sent again on another
//! connection. Idle connections older than the idle timeout are dropped at checkout and by a
//! sweep; at most `max_idle` are kept per upstream.

use super::request::Outbound;
use crate::body::ProxyBody;
use crate::tls::UpstreamTls;
use crate::wire::{self, Conn, ExchangeError, Home, Io, Outgoing, Wire};
use http::Response;
use http::uri::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
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
    /// The exchange failed once the request had been written, wholly or in part.
    Exchange(String),
    /// The client's request body failed while it was being sent.
    RequestBody(String),
    /// No response head within the wait once the request was sent whole.
    Timeout,
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

/// How many connections at the bottom of a stack (oldest first, as pushed) are expired: those
/// idle since the cutoff or before ([`expired`], with one subtraction instead of one per look).
fn expired_prefix(idle: &[Idle], now: Instant, idle_timeout: Duration) -> usize {
    idle_since_cutoff(idle, |c| c.since, now, idle_timeout)
}

fn idle_since_cutoff<T>(
    stack: &[T],
    since: impl Fn(&T) -> Instant,
    now: Instant,
    idle_timeout: Duration,
) -> usize {
    match now.checked_sub(idle_timeout) {
        Some(cutoff) => stack.partition_point(|c| since(c) <= cutoff),
        None => 0,
    }
}

/// An idle connection.
struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// The idle connections to one upstream, of one lane (serving thread, `lane.rs`).
struct Host {
    tls: bool,
    authority: Box<str>,
    lane: u32,
    /// Oldest at the bottom, the most recently used on top.
    idle: Vec<Idle>,
}

impl Host {
    fn is(&self, k: &Key<'_>, lane: u32) -> bool {
        self.lane == lane && self.tls == k.tls && *self.authority == *k.authority
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

    /// Sends a request on a pooled or new connection to the upstream its base URI names and
    /// waits for the response head, at most `wait` once the request was sent whole
    /// (`Outbound::of_request` makes one of a `Request`).
    pub async fn send(
        &self,
        req: Outbound,
        body: ProxyBody,
        wait: Duration,
    ) -> Result<Response<Wire>, Failure> {
        let Outbound {
            base: uri,
            method,
            head,
            framing,
        } = req;
        let key = Key::of(&uri).map_err(Failure::Connect)?;
        let mut out = Outgoing::new(head, body, framing);
        loop {
            let (host, pooled) = self.0.checkout(&key);
            let (conn, reused) = match pooled {
                Some(conn) => (conn, true),
                // Boxed: the connect future is large and rare; the request's future stays small.
                None => {
                    let conn = Box::pin(self.connect(&uri, key.tls))
                        .await
                        .map_err(Failure::Connect)?;
                    (conn, false)
                }
            };
            match wire::exchange(conn, &mut out, &method, READ_BUF_MAX, wait).await {
                Ok((conn, head, keep_alive)) => {
                    let home = keep_alive.then(|| {
                        let pool: Weak<dyn Home> = Arc::downgrade(&self.0) as Weak<Inner>;
                        (pool, host)
                    });
                    let body = Wire::new(conn, head.body, home);
                    return Ok(Response::from_parts(head.parts, body));
                }
                // Closed before anything was written: another connection may take it.
                Err(ExchangeError::NotSent(_)) if reused && out.unsent() => continue,
                Err(ExchangeError::NotSent(e)) => {
                    return Err(Failure::Connect(format!(
                        "the new connection to {uri} closed before the request was sent: {e}"
                    )));
                }
                Err(ExchangeError::Broken(e)) => return Err(Failure::Exchange(e)),
                Err(ExchangeError::RequestBody(e)) => return Err(Failure::RequestBody(e)),
                Err(ExchangeError::Timeout) => return Err(Failure::Timeout),
            }
        }
    }

    /// A new connection to the upstream `uri` names.
    async fn connect(&self, uri: &Uri, tls: bool) -> Result<Box<Conn>, String> {
        let inner = &self.0;
        if !inner.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(inner), inner.idle_timeout));
        }
        Ok(Conn::new(self.connect_io(uri, tls, false).await?))
    }

    /// A new socket to the upstream `uri` names (TCP, then TLS when `tls`, offering ALPN `h2`
    /// only when `h2`), within the connect timeout.
    pub async fn connect_io(&self, uri: &Uri, tls: bool, h2: bool) -> Result<Io, String> {
        let inner = &self.0;
        let tcp = inner
            .tcp
            .clone()
            .call(uri.clone())
            .await
            .map_err(|e| format!("{uri}: {}", error_chain(&e)))?
            .into_inner();
        if !tls {
            return Ok(Io::Plain(tcp));
        }
        let stream = if h2 {
            let handshake = inner.tls.connect_h2(uri, tcp);
            tokio::time::timeout(inner.connect_timeout, handshake).await
        } else {
            let handshake = inner.tls.connect(uri, tcp);
            tokio::time::timeout(inner.connect_timeout, handshake).await
        };
        let stream = stream
            .map_err(|_| format!("{uri}: TLS handshake timed out"))?
            .map_err(|e| format!("{uri}: {e}"))?;
        Ok(Io::Tls(Box::new(stream)))
    }
}

impl Home for Inner {
    fn take_back(&self, host: usize, conn: Box<Conn>) {
        self.release(host, conn);
    }
}

impl Inner {
    fn hosts(&self) -> MutexGuard<'_, Vec<Host>> {
        self.hosts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The index of `k`'s entry in this thread's lane and, if there is one, an idle connection
    /// to it that nothing arrived on while it was idle (each is probed outside the lock).
    fn checkout(&self, k: &Key<'_>) -> (usize, Option<Box<Conn>>) {
        let now = Instant::now();
        let lane = super::lane::current();
        let (i, mut next) = {
            let mut hosts = self.hosts();
            let Some(i) = hosts.iter().position(|h| h.is(k, lane)) else {
                hosts.push(Host {
                    tls: k.tls,
                    authority: k.authority.into(),
                    lane,
                    idle: Vec::new(),
                });
                return (hosts.len() - 1, None);
            };
            let idle = &mut hosts[i].idle;
            let old = expired_prefix(idle, now, self.idle_timeout);
            if old > 0 {
                idle.drain(..old);
            }
            (i, idle.pop())
        };
        while let Some(mut c) = next {
            if c.conn.usable() {
                return (i, Some(c.conn));
            }
            next = self.hosts().get_mut(i).and_then(|h| h.idle.pop());
        }
        (i, None)
    }

    /// Puts an idle connection back on top of its stack, or drops it (closing it) when full.
    fn release(&self, host: usize, conn: Box<Conn>) {
        let mut hosts = self.hosts();
        if let Some(h) = hosts.get_mut(host)
            && h.idle.len() < self.max_idle
        {
            h.idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Drops every idle connection older than the idle timeout, and every one the upstream
    /// closed (or wrote to) while it was idle: no task watches an idle connection, so this is
    /// how a closed one leaves `CLOSE_WAIT` within a sweep.
    fn drop_expired(&self) {
        let now = Instant::now();
        for h in self.hosts().iter_mut() {
            let old = expired_prefix(&h.idle, now, self.idle_timeout);
            h.idle.drain(..old);
            h.idle.retain_mut(|c| c.conn.usable());
        }
    }
}

/// The largest response head an upstream may send (far above `limits.max_header_bytes`' use).
/// A response body is read one buffer at a time as the client takes it, so a stalled download
/// holds about one read buffer (`wire::conn`), not this.
const READ_BUF_MAX: usize = 64 * 1024;

/// Drops expired and closed idle connections every `every` (at most 1 s, at least 100 ms)
/// until the pool is gone.
async fn sweep(pool: Weak<Inner>, every: Duration) {
    let every = every.clamp(Duration::from_millis(100), Duration::from_secs(1));
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

    /// `expired_prefix` counts what `expired` says, for stacks of idle times around the
    /// timeout (as pushed: oldest first).
    #[test]
    fn the_expired_prefix_is_what_expired_says() {
        let idle = Duration::from_millis(1_000);
        let now = Instant::now() + Duration::from_secs(10);
        let ages_ms = [
            [5_000, 1_001, 1_000, 999, 0],
            [999, 998, 10, 1, 0],
            [2_000; 5],
        ];
        for ages in ages_ms {
            let stack: Vec<Instant> = ages
                .iter()
                .map(|&ms| now - Duration::from_millis(ms))
                .collect();
            let want = stack.iter().filter(|&&t| expired(t, now, idle)).count();
            let got = idle_since_cutoff(&stack, |&t| t, now, idle);
            assert_eq!(got, want, "{ages:?}");
        }
    }
}
