//! Header work at the proxy's edges: the router's own `x-coopr-router-*` headers, hop-by-hop
//! removal (RFC 9110 §7.6.1), request ids, header names read off the wire and numbers written
//! as values. `X-Forwarded-For` / `Forwarded` are `forwarded.rs`.

mod forwarded;

pub use forwarded::{IpText, add_forwarded, write_forwarded, write_forwarded_for};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
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
/// On a `catalog_home_down` refusal: the catalog's home DC the write waits for.
pub const CATALOG_HOME: HeaderName = HeaderName::from_static("x-coopr-router-catalog-home");
/// On a catalog delivery (peer port only): the home DC that applied the write first and now
/// delivers it; the receiving router applies it locally and delivers it nowhere else.
pub const CATALOG: HeaderName = HeaderName::from_static("x-coopr-router-catalog");
/// On an answer from the replica store: the epoch of the owner that captured the state.
pub const REPLICA_EPOCH: HeaderName = HeaderName::from_static("x-coopr-router-replica-epoch");
/// On an answer from the replica store: what the owner DC withheld from it (secrets stay home);
/// `Cache-Control: no-cache` reads the owner, which has them.
/// On the answer to a write that was held across an unplanned failover (its owner DC could not
/// be reached, nothing was sent) and then sent to the new owner: how long it waited, in ms.
pub const HELD_MS: HeaderName = HeaderName::from_static("x-coopr-router-held-ms");
pub const WITHHELD: HeaderName = HeaderName::from_static("x-coopr-router-withheld");
/// The value of [`WITHHELD`]: the parts replication never copies.
pub const WITHHELD_PARTS: &str =
    "provider.provisioner, nodes.provisionerResults, providerFields, credential-named members";
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

/// Headers that only concern one connection, besides those `Connection` names.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The common case, nothing to remove, costs one pass over the names and no hashing.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    for name in connection_named(headers) {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether `name` is hop-by-hop by itself (not counting what `Connection` names).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// The headers every `Connection` header names (they concern one connection only); empty,
/// without allocating, when there is no `Connection` header.
pub fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    if !headers.contains_key(header::CONNECTION) {
        return Vec::new();
    }
    // Every Connection header counts, not just the first.
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|list| list.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect()
}

/// Writes `n` in decimal.
pub fn push_decimal(out: &mut impl BufMut, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut rest = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

/// The request id: the client's `x-request-id` if it is sane, else a new one (set on the
/// headers so it travels upstream).
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    let sane = |v: &HeaderValue| {
        !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
    };
    // One lookup for the look and the replacement.
    match headers.entry(REQUEST_ID) {
        http::header::Entry::Occupied(e) if sane(e.get()) => e.get().clone(),
        http::header::Entry::Occupied(mut e) => {
            let v = new_request_id();
            e.insert(v.clone());
            v
        }
        http::header::Entry::Vacant(e) => e.insert(new_request_id()).clone(),
    }
}

/// Puts the request id on the answer (unless the server already did) and marks it sensitive:
/// HTTP/2's HPACK then sends it as a literal never indexed. A value new with every response
/// would otherwise be added to the connection's header table each time, pushing out the values
/// that do repeat, and every lookup would compare the value with each earlier request id still
/// in the table (about 60 comparisons per response, ~1,800 instructions).
pub fn answer_request_id(h: &mut HeaderMap, rid: &HeaderValue) {
    match h.entry(REQUEST_ID) {
        http::header::Entry::Occupied(mut e) => e.get_mut().set_sensitive(true),
        http::header::Entry::Vacant(e) => {
            let mut v = rid.clone();
            v.set_sensitive(true);
            e.insert(v);
        }
    }
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
    // 8 hex digits of the prefix, then 12 of the counter (2^48 requests before it wraps).
    let mut text = [0u8; 20];
    let (head, tail) = text.split_at_mut(8);
    fill_hex(head, prefix);
    fill_hex(tail, n);
    // Hex digits only, so always a valid header value.
    // Owned by its `Bytes` (one allocation, shared by the clones on the request and the answer).
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).unwrap_or(HeaderValue::from_static("0"))
}

/// Writes the lowest `out.len()` hex digits of `n` into `out`.
fn fill_hex(out: &mut [u8], mut n: u64) {
    for byte in out.iter_mut().rev() {
        *byte = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// Sets the router headers of an upstream request: the hop header naming this DC when sending
/// to a peer (removed when sending to a Coopr server), and our own epoch (0: none). Whatever
/// epoch arrived with the request is never passed on. `carried`: the request may carry router
/// headers (it did not come from the client port, whose requests lose them on arrival,
/// `strip_router_headers`); without it there is nothing to remove (two lookups saved).
pub fn set_hop_and_epoch(h: &mut HeaderMap, hop: Option<HeaderValue>, epoch: u64, carried: bool) {
    match hop {
        Some(dc) => {
            h.insert(HOP, dc);
        }
        None if carried => {
            h.remove(HOP);
        }
        None => {}
    }
    if epoch > 0 {
        h.insert(EPOCH, number(epoch));
    } else if carried {
        h.remove(EPOCH);
    }
}

/// Coopr's identity headers, which come with nearly every request.
pub const COOPR_USERID: HeaderName = HeaderName::from_static("coopr-userid");
pub const COOPR_TENANTID: HeaderName = HeaderName::from_static("coopr-tenantid");
pub const COOPR_APIKEY: HeaderName = HeaderName::from_static("coopr-apikey");

/// A header name read off the wire, as `HeaderName::from_bytes` makes it. The names that come
/// with nearly every request or answer and that `http` does not know (Coopr's identity
/// headers, the router's own between DCs) are matched against literals and made from static
/// bytes, not allocated; a name of another length costs one `match`.
#[inline]
pub fn name(b: &[u8]) -> Result<HeaderName, header::InvalidHeaderName> {
    let known = match b.len() {
        12 if b.eq_ignore_ascii_case(b"coopr-userid") => COOPR_USERID,
        12 if b.eq_ignore_ascii_case(b"coopr-apikey") => COOPR_APIKEY,
        12 if b.eq_ignore_ascii_case(b"x-request-id") => REQUEST_ID,
        14 if b.eq_ignore_ascii_case(b"coopr-tenantid") => COOPR_TENANTID,
        15 if b.eq_ignore_ascii_case(b"x-forwarded-for") => X_FORWARDED_FOR,
        18 if b.eq_ignore_ascii_case(b"x-coopr-router-hop") => HOP,
        20 if b.eq_ignore_ascii_case(b"x-coopr-router-epoch") => EPOCH,
        _ => return HeaderName::from_bytes(b),
    };
    Ok(known)
}

/// How many numbers [`number`] has written out already (shards, epochs, lengths: nearly all
/// the numbers the router writes are below it).
const SMALL: usize = 10_000;

/// `0000` to `9999`, four digits each: a small number's value is a slice of it, shared, with no
/// allocation (two per answer otherwise: its shard and its epoch).
static DIGITS: [u8; SMALL * 4] = {
    let mut t = [b'0'; SMALL * 4];
    let mut n = 0;
    while n < SMALL {
        let (mut v, mut i) = (n, 4);
        while i > 0 {
            i -= 1;
            t[n * 4 + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        n += 1;
    }
    t
};

/// A numeric header value.
pub fn number(n: u64) -> HeaderValue {
    if let Ok(small) = usize::try_from(n)
        && small < SMALL
    {
        let skip = match small {
            0..10 => 3,
            10..100 => 2,
            100..1000 => 1,
            _ => 0,
        };
        if let Ok(text) = std::str::from_utf8(&DIGITS[small * 4 + skip..small * 4 + 4]) {
            return HeaderValue::from_static(text);
        }
    }
    let mut buf = BytesMut::with_capacity(20);
    push_decimal(&mut buf, n);
    // Digits only, so always a valid header value.
    HeaderValue::from_maybe_shared(buf.freeze()).unwrap_or(HeaderValue::from_static("0"))
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
    fn known_names_are_the_names_http_makes() {
        let known = [
            COOPR_USERID,
            COOPR_TENANTID,
            COOPR_APIKEY,
            REQUEST_ID,
            X_FORWARDED_FOR,
            HOP,
            EPOCH,
        ];
        for k in &known {
            for text in [k.as_str().to_string(), k.as_str().to_ascii_uppercase()] {
                assert_eq!(
                    name(text.as_bytes()).unwrap(),
                    HeaderName::from_bytes(text.as_bytes()).unwrap()
                );
            }
        }
        for other in [
            &b"coopr-userix"[..],
            b"x-request-ie",
            b"host",
            b"x",
            b"bad name",
            b"",
        ] {
            assert_eq!(
                name(other).ok(),
                HeaderName::from_bytes(other).ok(),
                "{other:?}"
            );
        }
    }

    #[test]
    fn numbers_are_decimal() {
        for n in (0..=10_001).chain([u64::MAX]) {
            assert_eq!(number(n), n.to_string().as_str());
        }
    }

    #[test]
    fn request_ids_are_kept_or_made() {
        let mut h = HeaderMap::new();
        let a = ensure_request_id(&mut h);
        let b = ensure_request_id(&mut HeaderMap::new());
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 20, "{id:?}");
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        }
        assert_eq!(
            a.as_bytes()[..8],
            b.as_bytes()[..8],
            "one prefix per process"
        );
        assert_eq!(h.get(REQUEST_ID).unwrap(), &a);
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(ensure_request_id(&mut h), "abc");
        // A client's id that is not sane is replaced, every line of it.
        for bad in ["", "a b", &"x".repeat(129)] {
            let mut h = HeaderMap::new();
            h.append(REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            h.append(REQUEST_ID, HeaderValue::from_static("second"));
            let id = ensure_request_id(&mut h);
            assert_eq!(id.len(), 20, "{bad:?} -> {id:?}");
            let all: Vec<_> = h.get_all(REQUEST_ID).iter().collect();
            assert_eq!(all, [&id], "{bad:?}");
        }
    }

    #[test]
    fn hop_and_epoch_by_table() {
        let dc = HeaderValue::from_static("dc2");
        // (arrived with hop and epoch, carried, hop, epoch) -> (hop, epoch) sent
        #[allow(clippy::type_complexity)]
        let cases: [(
            bool,
            bool,
            Option<&HeaderValue>,
            u64,
            Option<&str>,
            Option<&str>,
        ); 6] = [
            (true, true, None, 0, None, None), // a peer's request to Coopr: both go
            (true, true, None, 7, None, Some("7")), // ours replaces the peer's epoch
            (true, true, Some(&dc), 0, Some("dc2"), None),
            (false, false, None, 0, None, None), // a client's: nothing to remove
            (false, false, None, 7, None, Some("7")),
            (false, false, Some(&dc), 3, Some("dc2"), Some("3")),
        ];
        for (arrived, carried, hop, epoch, want_hop, want_epoch) in cases {
            let mut h = HeaderMap::new();
            if arrived {
                h.insert(HOP, HeaderValue::from_static("dc9"));
                h.insert(EPOCH, HeaderValue::from_static("99"));
            }
            set_hop_and_epoch(&mut h, hop.cloned(), epoch, carried);
            let got = |n: &HeaderName| h.get(n).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(got(&HOP).as_deref(), want_hop, "{arrived} {hop:?} {epoch}");
            assert_eq!(
                got(&EPOCH).as_deref(),
                want_epoch,
                "{arrived} {hop:?} {epoch}"
            );
            assert_eq!(
                h.get_all(EPOCH).iter().count(),
                usize::from(want_epoch.is_some())
            );
        }
    }

    #[test]
    fn the_answer_carries_the_request_id_never_indexed() {
        let rid = HeaderValue::from_static("0123456789abcdef0123");
        // The router adds it ...
        let mut h = HeaderMap::new();
        answer_request_id(&mut h, &rid);
        assert_eq!(h[REQUEST_ID], rid);
        assert!(h[REQUEST_ID].is_sensitive(), "HPACK must not index it");
        // ... or keeps the server's, marked the same way.
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, HeaderValue::from_static("from-coopr"));
        answer_request_id(&mut h, &rid);
        assert_eq!(h[REQUEST_ID], "from-coopr");
        assert!(h[REQUEST_ID].is_sensitive());
        assert_eq!(h.get_all(REQUEST_ID).iter().count(), 1);
    }
}
