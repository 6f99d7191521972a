//! Header work at the proxy's edges: the router's own `x-coopr-router-*` headers, hop-by-hop
//! removal (RFC 9110 §7.6.1), `X-Forwarded-For` / `Forwarded`, and request ids.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

pub const DC: HeaderName = HeaderName::from_static("x-coopr-router-dc");
pub const ROUTE: HeaderName = HeaderName::from_static("x-coopr-router-route");
pub const SHARD: HeaderName = HeaderName::from_static("x-coopr-router-shard");
pub const EPOCH: HeaderName = HeaderName::from_static("x-coopr-router-epoch");
/// Set on a request one router forwards to another: the sending DC's name.
/// On a response the router made itself: the error kind (`backend_unreachable`, `fenced`, ...).
pub const ERROR: HeaderName = HeaderName::from_static("x-coopr-router-error");
/// Set on a request one router forwards to another: the sending DC's name.
pub const HOP: HeaderName = HeaderName::from_static("x-coopr-router-hop");
/// On an answer from the replica store: the epoch of the owner that captured the state.
pub const REPLICA_EPOCH: HeaderName = HeaderName::from_static("x-coopr-router-replica-epoch");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

const PREFIX: &str = "x-coopr-router-";

/// Removes every `x-coopr-router-*` header: clients cannot speak for a router.
pub fn strip_router_headers(headers: &mut HeaderMap) {
    if !headers.keys().any(|k| k.as_str().starts_with(PREFIX)) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        // Every Connection header counts, not just the first.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|list| list.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        headers.remove(header::CONNECTION);
        for name in named {
            headers.remove(name);
        }
    }
    for name in [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
    ] {
        headers.remove(name);
    }
}

/// Appends the client's address to `X-Forwarded-For` and `Forwarded`.
pub fn add_forwarded(headers: &mut HeaderMap, remote: SocketAddr) {
    let ip = remote.ip();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {ip}"),
        None => ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    let node = match ip {
        IpAddr::V4(v4) => format!("for={v4};proto=http"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\";proto=http"),
    };
    let fwd = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {node}"),
        None => node,
    };
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        headers.insert(header::FORWARDED, v);
    }
}

/// The request id: the client's `x-request-id` if it is sane, else a new one (set on the
/// headers so it travels upstream).
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&REQUEST_ID) {
        let ok =
            !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
        if ok {
            return v.clone();
        }
    }
    let v = new_request_id();
    headers.insert(REQUEST_ID, v.clone());
    v
}

/// A process-unique id: a per-process random prefix and a counter, in hex.
fn new_request_id() -> HeaderValue {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let text = format!("{:08x}{:012x}", prefix as u32, n);
    // Hex digits only, so always a valid header value.
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("0"))
}

/// Sets the router headers of an upstream request: the hop header naming this DC when sending
/// to a peer (removed when sending to a Coopr server), and our own epoch (0: none). Whatever
/// epoch arrived with the request is never passed on.
pub fn set_hop_and_epoch(h: &mut HeaderMap, hop: Option<HeaderValue>, epoch: u64) {
    match hop {
        Some(dc) => h.insert(HOP, dc),
        None => h.remove(HOP),
    };
    h.remove(EPOCH);
    if epoch > 0 {
        h.insert(EPOCH, number(epoch));
    }
}

/// A numeric header value.
pub fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::HOST, HeaderValue::from_static("a"));
        strip_hop_by_hop(&mut h);
        assert!(h.get("x-secret").is_none() && h.get(header::TRANSFER_ENCODING).is_none());
        assert_eq!(h.get(header::HOST).unwrap(), "a");
        let mut h2 = HeaderMap::new();
        h2.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h2.append(header::CONNECTION, HeaderValue::from_static("x-second"));
        h2.insert("x-second", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h2);
        assert!(
            h2.get("x-second").is_none(),
            "a second Connection header counts too"
        );
    }

    #[test]
    fn router_headers_are_stripped_and_forwarded_is_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-coopr-router-dc", HeaderValue::from_static("evil"));
        h.insert("x-coopr-router-hop", HeaderValue::from_static("dc1"));
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        strip_router_headers(&mut h);
        assert!(h.keys().all(|k| !k.as_str().starts_with(PREFIX)));
        add_forwarded(&mut h, "[::1]:5".parse().unwrap());
        assert_eq!(h.get(X_FORWARDED_FOR).unwrap(), "10.0.0.1, ::1");
        assert_eq!(
            h.get(header::FORWARDED).unwrap(),
            "for=\"[::1]\";proto=http"
        );
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let mut h = HeaderMap::new();
        let a = ensure_request_id(&mut h);
        let b = ensure_request_id(&mut HeaderMap::new());
        assert_ne!(a, b);
        assert_eq!(h.get(REQUEST_ID).unwrap(), &a);
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(ensure_request_id(&mut h), "abc");
    }
}
