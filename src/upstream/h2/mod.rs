//! The HTTP/2 link to peer routers: a request forwarded to another DC's router goes as a
//! stream on one connection of this serving thread's (its lane, `lane.rs`) to that router,
//! so the requests forwarded at once share reads and writes instead of each taking a
//! connection and two system calls of its own. Only a request that can leave whole goes this
//! way (no body, or a body read whole that fits the peer's windows); one streaming from its
//! client, or any request when every link to the peer is full, goes over the HTTP/1.1 pool as
//! before (`limits.peer_h2_streams = 0` sends every request that way).
//!
//! Module map: `conn` (pure: one connection's state) <- `link` (its task and handle) <- this
//! file (the links per lane and peer, and sending one request); `head` (pure: the request's
//! header block from the head `upstream::request` wrote).

pub mod conn;
pub mod head;
pub mod link;

use super::pool::{Key, Pool};
use super::request::Outbound;
use crate::body::ProxyBody;
use crate::wire::Framing;
use bytes::{Bytes, BytesMut};
use conn::{Answer, Failure, Limits};
use http::Response;
use link::Link;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Connections per peer and lane at most; a request that finds them all full goes over
/// HTTP/1.1.
const LINKS_PER_PEER: usize = 4;
/// An answer's body the peer may send ahead of the proxy reading it, per stream.
const STREAM_WINDOW: u32 = 256 * 1024;

/// Why a request sent over a link got no answer.
#[derive(Debug)]
pub enum LinkError {
    /// Nothing was acted on: the same as a connection that could not be made.
    Refused(String),
    /// The request may have been acted on.
    Broken(String),
    /// No answer head in time (the stream was reset, the link retired).
    Timeout,
}

struct Entry {
    lane: u32,
    tls: bool,
    authority: Box<str>,
    link: Link,
}

/// The links of every lane to every peer (cheap to clone).
#[derive(Clone)]
pub struct Links {
    entries: Arc<Mutex<Vec<Entry>>>,
    limits: Limits,
}

impl Links {
    /// `max_streams`: streams per connection at most (0: no link is ever used).
    pub fn new(max_streams: u32) -> Links {
        Links {
            entries: Arc::new(Mutex::new(Vec::new())),
            limits: Limits {
                max_streams,
                stream_window: STREAM_WINDOW,
            },
        }
    }

    /// The body a request must have to go over a link: none, or one read whole (the bytes).
    /// `None`: it goes over HTTP/1.1.
    pub fn eligible(&self, out: &Outbound, body: &ProxyBody) -> Option<Option<Bytes>> {
        if self.limits.max_streams == 0 {
            return None;
        }
        let bytes = match body {
            ProxyBody::Empty => None,
            ProxyBody::Full(b) => b.clone(),
            _ => {
                crate::metrics::peer_over_http1("body");
                return None;
            }
        };
        let len = bytes.as_ref().map_or(0, Bytes::len) as u64;
        match out.framing {
            Framing::Length(n) if n == len => Some(bytes),
            _ => {
                crate::metrics::peer_over_http1("body");
                None
            }
        }
    }

    /// Sends `out` with `body` (as [`eligible`](Self::eligible) gave it) over a link to the
    /// upstream it names, and waits at most `wait` for the answer's head. `None`: no link
    /// could take it (every one full, or the body too big for the windows); nothing was sent.
    /// A request the peer refused (or a connection lost before it left) is sent once more
    /// (the link that failed takes no new stream).
    pub async fn send(
        &self,
        pool: &Pool,
        out: &Outbound,
        body: Option<&Bytes>,
        wait: Duration,
    ) -> Option<Result<Response<ProxyBody>, LinkError>> {
        let key = Key::of(&out.base).ok()?;
        let mut block = BytesMut::new();
        head::block(&out.head, key.tls, key.authority, &mut block)?;
        for attempt in 0..2 {
            let (link, id) = self.open(pool, &out.base, &key, &block, body)?;
            let mut guard = Cancel {
                link: &link,
                id: Some(id),
            };
            let head = std::future::poll_fn(|cx| link.poll_head(id, cx));
            let answer = match tokio::time::timeout(wait, head).await {
                Ok(r) => r,
                Err(_) => {
                    link.retire();
                    return Some(Err(LinkError::Timeout));
                }
            };
            guard.id = None;
            match answer {
                Ok((parts, answer)) => {
                    let body = match answer {
                        Answer::Whole(Some(b)) => ProxyBody::Full(Some(b)),
                        Answer::Whole(None) => ProxyBody::Empty,
                        Answer::Streamed(r) => ProxyBody::Peer(r),
                    };
                    return Some(Ok(Response::from_parts(parts, body)));
                }
                Err(Failure::Refused(e)) if attempt == 0 => {
                    tracing::debug!(upstream = %out.base, error = %e, "HTTP/2 stream refused: sending it again");
                }
                Err(Failure::Refused(e)) => return Some(Err(LinkError::Refused(e))),
                Err(Failure::Broken(e)) => return Some(Err(LinkError::Broken(e))),
            }
        }
        None
    }

    /// A stream for the request on a link of this lane to `key` (a new link when those there
    /// are full, up to [`LINKS_PER_PEER`]).
    fn open(
        &self,
        pool: &Pool,
        uri: &http::Uri,
        key: &Key<'_>,
        block: &[u8],
        body: Option<&Bytes>,
    ) -> Option<(Link, u32)> {
        let lane = super::lane::current();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let is = |e: &Entry| e.lane == lane && e.tls == key.tls && *e.authority == *key.authority;
        for e in entries.iter().filter(|e| is(e)) {
            if let Ok(id) = e.link.open(block, body) {
                return Some((e.link.clone(), id));
            }
        }
        // Links that take no new stream are forgotten (their tasks end with their streams).
        entries.retain(|e| !is(e) || e.link.usable());
        if entries.iter().filter(|e| is(e)).count() >= LINKS_PER_PEER {
            return None;
        }
        let (pool, target, tls) = (pool.clone(), uri.clone(), key.tls);
        let link = Link::start(self.limits, async move {
            pool.connect_io(&target, tls, true).await
        });
        let id = link.open(block, body).ok()?;
        crate::metrics::peer_link_opened(key.authority);
        entries.push(Entry {
            lane,
            tls: key.tls,
            authority: key.authority.into(),
            link: link.clone(),
        });
        Some((link, id))
    }
}

/// Resets a stream whose waiter is dropped before its answer came (its client left).
struct Cancel<'a> {
    link: &'a Link,
    id: Option<u32>,
}

impl Drop for Cancel<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.link.cancel(id);
        }
    }
}
