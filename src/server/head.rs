//! Pure: what the router's own HTTP/1.1 server (`fast.rs`) makes of the bytes read from a
//! client: a plain request it serves itself (its head parsed by httparse into `http`'s parts,
//! its body, if any, already read whole), more bytes needed, or a request it leaves to hyper.
//!
//! It takes only requests whose every byte hyper 1's server (`proto/h1/role.rs`,
//! `Server::parse`) would read the same way, and leaves hyper everything else: HTTP/1.0, a
//! `Transfer-Encoding`, an `Expect`, an `Upgrade` or `CONNECT`, more than one
//! `Content-Length` or one that is not plain digits, a body not all read yet, and every
//! malformed or oversized head (hyper answers those as it always did: 400, 414, 431). So a
//! request either reaches the proxy exactly as hyper would have handed it over, or goes to
//! hyper; `tests/server_vs_hyper.rs` holds that against hyper on random requests, and
//! `fuzz/fuzz_targets/request.rs` feeds it arbitrary bytes.

use bytes::Bytes;
use http::header;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use std::mem::MaybeUninit;

/// hyper's longest request target (`MAX_URI_LEN`); a longer one gets hyper's 414.
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;

/// The most header lines this parser reads; a head with more goes to hyper (whose own limit,
/// `limits.max_headers`, answers it).
pub const MAX_HEADERS: usize = 64;

/// What the server's limits allow a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// `limits.max_header_bytes`: a longer head goes to hyper (431).
    pub max_head: usize,
    /// `limits.max_headers`.
    pub max_headers: usize,
}

/// A request served by the router's own server.
#[derive(Debug)]
pub struct Parsed {
    pub parts: Parts,
    /// Its body, read whole (`None`: none, or `Content-Length: 0`).
    pub body: Option<Bytes>,
    /// How many bytes of the buffer it took, head and body.
    pub len: usize,
    /// The client asked to close after it (`Connection: close`).
    pub close: bool,
}

/// What the bytes read so far are. Not boxed: it is returned once per request and its
/// parts moved on, where a box would be an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Head {
    /// A whole request this server serves.
    Request(Parsed),
    /// Not a whole request yet (head or body); nothing wrong with it so far.
    More,
    /// A request for hyper: see the module header.
    Hyper,
}

/// Reads the request at the start of `buf` (see [`Head`]).
pub fn parse(buf: &[u8], limits: HeadLimits) -> Head {
    let cap = limits.max_headers.min(MAX_HEADERS);
    let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut lines[..cap],
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < limits.max_head => return Head::More,
        _ => return Head::Hyper,
    };
    if len > limits.max_head || req.version != Some(1) {
        return Head::Hyper;
    }
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Head::Hyper;
    };
    if path.len() > MAX_URI_LEN {
        return Head::Hyper;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Head::Hyper;
    };
    if method == Method::CONNECT {
        return Head::Hyper;
    }
    // The head is copied out of the read buffer (one small allocation) so that the buffer
    // stays the connection's alone and is reused; header values are slices of the copy.
    let start = buf.as_ptr() as usize;
    let at = |p: *const u8| p as usize - start;
    let head = Bytes::copy_from_slice(&buf[..len]);
    let path_at = at(path.as_ptr());
    let Ok(uri) = Uri::from_maybe_shared(head.slice(path_at..path_at + path.len())) else {
        return Head::Hyper;
    };
    let mut headers = HeaderMap::with_capacity(req.headers.len() + ANSWER_ROOM);
    let (mut length, mut close) = (None, false);
    for h in req.headers.iter() {
        let Ok(name) = crate::headers::name(h.name.as_bytes()) else {
            return Head::Hyper;
        };
        let v = at(h.value.as_ptr());
        let Ok(value) = HeaderValue::from_maybe_shared(head.slice(v..v + h.value.len())) else {
            return Head::Hyper;
        };
        match name {
            header::TRANSFER_ENCODING | header::EXPECT | header::UPGRADE => return Head::Hyper,
            header::CONTENT_LENGTH => {
                if length.is_some() {
                    return Head::Hyper;
                }
                let Some(n) = digits(value.as_bytes()) else {
                    return Head::Hyper;
                };
                length = Some(n);
            }
            header::CONNECTION => close |= has_close(&value),
            _ => {}
        }
        headers.append(name, value);
    }
    let body_len = match length.map(usize::try_from) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Head::Hyper,
    };
    let Some(end) = len.checked_add(body_len) else {
        return Head::Hyper;
    };
    if buf.len() < end {
        return Head::More;
    }
    let body = (body_len > 0).then(|| Bytes::copy_from_slice(&buf[len..end]));
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = headers;
    Head::Request(Parsed {
        parts,
        body,
        len: end,
        close,
    })
}

/// Room for the header the proxy adds to a request's map (its id, when the client sent none),
/// so that adding it does not grow the map. The forwarding headers, the hop and the epoch are
/// written straight into the upstream head (`upstream/request.rs`), not into the map.
const ANSWER_ROOM: usize = 1;

/// A `Content-Length` hyper reads as this one number: plain digits (one to nineteen, so no
/// overflow), nothing else (`5, 5` or `+5` go to hyper).
fn digits(v: &[u8]) -> Option<u64> {
    if v.len() > 19 {
        return None;
    }
    crate::wire::head::digits(v)
}

/// Whether a `Connection` value lists `close` (hyper's `connection_close`: a visible-ASCII
/// value, comma-separated tokens, trimmed, any case). Once one line says so, the connection
/// closes after the answer.
fn has_close(v: &HeaderValue) -> bool {
    v.to_str()
        .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        max_head: 8192,
        max_headers: 100,
    };

    fn served(bytes: &[u8]) -> Parsed {
        match parse(bytes, LIMITS) {
            Head::Request(p) => p,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
        }
    }

    fn kind(bytes: &[u8]) -> &'static str {
        match parse(bytes, LIMITS) {
            Head::Request(_) => "request",
            Head::More => "more",
            Head::Hyper => "hyper",
        }
    }

    #[test]
    fn a_plain_request_is_read_as_hyper_reads_it() {
        let bytes: &[u8] = b"GET /v2/clusters/00000001/status?x=1 HTTP/1.1\r\nHost: a\r\nCoopr-UserID: admin\r\nX: 1\r\nx: 2\r\n\r\nGET /next";
        let p = served(bytes);
        assert_eq!(p.parts.method, Method::GET);
        assert_eq!(p.parts.uri, "/v2/clusters/00000001/status?x=1");
        assert_eq!(p.parts.version, Version::HTTP_11);
        assert_eq!(p.parts.headers["host"], "a");
        assert_eq!(p.parts.headers["coopr-userid"], "admin");
        let xs: Vec<_> = p.parts.headers.get_all("x").iter().collect();
        assert_eq!(xs, ["1", "2"]);
        assert_eq!(p.body, None);
        assert!(!p.close);
        assert_eq!(
            p.len,
            bytes.len() - b"GET /next".len(),
            "the head only, not the next request"
        );
    }

    #[test]
    fn a_body_is_taken_once_all_of_it_is_here() {
        let head = b"POST /v2/clusters/1/pause HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(kind(head), "more");
        assert_eq!(kind(&[&head[..], b"{"].concat()), "more");
        let p = served(&[&head[..], b"{}GET"].concat());
        assert_eq!(p.body.as_deref(), Some(&b"{}"[..]));
        assert_eq!(p.len, head.len() + 2);
        let p = served(b"POST /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(p.body, None);
    }

    #[test]
    fn what_is_not_plain_goes_to_hyper() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET / HTTP/1.1\r\n: x\r\n\r\n",
            b"G@T / HTTP/1.1\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \x01\r\n\r\n",
        ];
        for c in cases {
            assert_eq!(kind(c), "hyper", "{:?}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn limits_send_a_head_to_hyper() {
        let small = HeadLimits {
            max_head: 64,
            max_headers: 2,
        };
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(80));
        assert!(matches!(parse(long.as_bytes(), small), Head::Hyper));
        assert!(matches!(parse(&long.as_bytes()[..70], small), Head::Hyper));
        assert!(matches!(parse(&long.as_bytes()[..40], small), Head::More));
        let many = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert!(matches!(parse(many, small), Head::Hyper));
        let two = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(matches!(parse(two, small), Head::Request(_)));
        let target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_LEN));
        let roomy = HeadLimits {
            max_head: 1 << 20,
            max_headers: 100,
        };
        assert!(matches!(parse(target.as_bytes(), roomy), Head::Hyper));
    }

    #[test]
    fn connection_close_is_heard_on_any_line() {
        assert!(served(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").close);
        assert!(served(b"GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE \r\n\r\n").close);
        assert!(
            served(b"GET / HTTP/1.1\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n").close
        );
        assert!(!served(b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n").close);
    }

    #[test]
    fn content_lengths_are_plain_digits() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"0012"), Some(12));
        assert_eq!(
            digits(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"-1",
            b"1 ",
            b"1,1",
            b"0x1",
            b"12345678901234567890",
        ] {
            assert_eq!(digits(bad), None, "{bad:?}");
        }
    }
}
