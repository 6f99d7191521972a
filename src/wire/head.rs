//! The HTTP/1.1 wire of the upstream client, pure (no I/O): how a request body is framed and
//! the request head written; a response head parsed (httparse, its header values sliced out of
//! the read buffer without a copy) and how that response's body is framed. The chunked body
//! decoder is `chunked.rs`.
//!
//! It follows hyper 1's client (`proto/h1/role.rs` `Client::encode`, `set_length`, `parse`,
//! `decoder`; `headers.rs`), which it replaced on the hot path, rule for rule, so that no
//! message changes: `tests/wire_vs_hyper.rs` holds it against hyper on random messages, and
//! `fuzz/fuzz_targets/response.rs` feeds it arbitrary bytes.

use bytes::{Bytes, BytesMut};
use http::header::{self, Entry};
use http::response::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};
use std::mem::MaybeUninit;

/// The most header lines a response head may have (hyper's default).
pub const MAX_HEADERS: usize = 100;

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("invalid response head: {0}")]
    Head(String),
    #[error("response head larger than {0} bytes")]
    TooLarge(usize),
    #[error("invalid Content-Length in the response")]
    ContentLength,
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncoding10,
    #[error("the upstream answered 101 Switching Protocols; the router does not proxy upgrades")]
    Upgrade,
    #[error("invalid chunked body: {0}")]
    Chunked(&'static str),
    #[error("the connection closed before the end of the response body")]
    Incomplete,
    #[error("reading the response: {0}")]
    Io(String),
}

/// What is known of a request body before it is sent (hyper's `BodyLength`, `Ended` for a
/// body already at its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Ended,
    Known(u64),
    Unknown,
}

impl Length {
    /// What a body says of itself before it is sent, as hyper's dispatcher asks it: at its
    /// end already, of an exact size, or unknown.
    pub fn of<B: http_body::Body>(body: &B) -> Length {
        if body.is_end_stream() {
            Length::Ended
        } else {
            body.size_hint()
                .exact()
                .map_or(Length::Unknown, Length::Known)
        }
    }
}

/// How a request body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (more are not sent; fewer fail the exchange).
    Length(u64),
    Chunked,
}

/// The request body's framing, as hyper's client decides it for HTTP/1.1 (`set_length`); it
/// edits `headers` as hyper does (a `Content-Length` for a body of known length, `chunked`
/// made the last transfer coding, no `Content-Length` beside a `Transfer-Encoding`).
pub fn request_framing(method: &Method, headers: &mut HeaderMap, body: Length) -> Framing {
    if body == Length::Ended {
        headers.remove(header::TRANSFER_ENCODING);
        return Framing::Length(0);
    }
    let existing = content_length(headers);
    match headers.entry(header::TRANSFER_ENCODING) {
        Entry::Occupied(mut te) => {
            if !te.iter().next_back().is_some_and(is_chunked) {
                add_chunked(&mut te);
            }
            headers.remove(header::CONTENT_LENGTH);
            Framing::Chunked
        }
        Entry::Vacant(te) => {
            let (framing, length) = framing_without_te(method, existing, body);
            match length {
                LengthHeader::Keep => {}
                LengthHeader::Set(n) => {
                    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                }
                LengthHeader::Drop => {
                    te.insert(HeaderValue::from_static("chunked"));
                    headers.remove(header::CONTENT_LENGTH);
                }
            }
            framing
        }
    }
}

/// What becomes of a request's `Content-Length` header(s) when it has no `Transfer-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthHeader {
    /// Sent as they are (or none, as none came).
    Keep,
    /// Replaced by one with this value.
    Set(u64),
    /// Removed: the body goes chunked (`Transfer-Encoding: chunked` is added).
    Drop,
}

/// [`request_framing`]'s choice for a request without `Transfer-Encoding` (the router strips
/// the client's as hop-by-hop), as a pure function of the method, the request's own
/// `Content-Length` (see [`content_length`]) and what the body says of itself.
pub fn framing_without_te(
    method: &Method,
    existing: Option<u64>,
    body: Length,
) -> (Framing, LengthHeader) {
    match (body, existing) {
        (Length::Ended, _) => (Framing::Length(0), LengthHeader::Keep),
        (_, Some(n)) => (Framing::Length(n), LengthHeader::Keep),
        (Length::Known(n), None) => (Framing::Length(n), LengthHeader::Set(n)),
        (Length::Unknown, None)
            if matches!(*method, Method::GET | Method::HEAD | Method::CONNECT) =>
        {
            (Framing::Length(0), LengthHeader::Keep)
        }
        (Length::Unknown, None) => (Framing::Chunked, LengthHeader::Drop),
    }
}

/// Appends `, chunked` to the last `Transfer-Encoding` line (hyper's `add_chunked`).
fn add_chunked(te: &mut header::OccupiedEntry<'_, HeaderValue>) {
    let Some(last) = te.iter_mut().next_back() else {
        return;
    };
    let mut v = Vec::with_capacity(last.len() + 9);
    v.extend_from_slice(last.as_bytes());
    v.extend_from_slice(b", chunked");
    if let Ok(value) = HeaderValue::from_bytes(&v) {
        *last = value;
    }
}

/// Writes the request head: request line in origin form, then every header as
/// `name: value` in the map's order (names lower case), then the empty line.
pub fn encode_head(method: &Method, target: &str, headers: &HeaderMap, dst: &mut Vec<u8>) {
    dst.reserve(32 + target.len() + headers.len() * 32);
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    dst.extend_from_slice(b"\r\n");
}

/// Writes one chunk's size line (`{len:X}\r\n`); the data and its `\r\n` follow.
pub fn chunk_size_line(len: usize, dst: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&digits[i..]);
    dst.extend_from_slice(b"\r\n");
}

/// The last chunk of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a response body is delimited (hyper's `DecodedLength`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub parts: Parts,
    pub body: BodyFraming,
    /// The connection may carry the next request once this response was read whole.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf`, consuming it (and any informational 1xx
/// answer before it, which is skipped as hyper skips it). `None`: more bytes are needed. A head
/// that is not complete within `max_head` bytes is an error.
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
    max_head: usize,
) -> Result<Option<ResponseHead>, WireError> {
    // Where each name and value is in `buf`, to slice them out once it is frozen (declared
    // here, not returned from the parse: moving it would copy all of it on every response;
    // set only once a head is complete: it is 1.6 KB to clear).
    let mut indices: [[u32; 4]; MAX_HEADERS];
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let (len, status, reason, minor, n) = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut lines)
        {
            Ok(httparse::Status::Complete(len)) => {
                indices = [[0u32; 4]; MAX_HEADERS];
                let start = buf.as_ptr() as usize;
                let at = |p: *const u8| (p as usize - start) as u32;
                for (slot, h) in indices.iter_mut().zip(res.headers.iter()) {
                    let (n, v) = (at(h.name.as_ptr()), at(h.value.as_ptr()));
                    *slot = [n, n + h.name.len() as u32, v, v + h.value.len() as u32];
                }
                let n = res.headers.len();
                let status = res.code.and_then(|c| StatusCode::from_u16(c).ok());
                // Kept only when it is not the status's own (hyper's `ReasonPhrase`).
                let reason = match (status, res.reason) {
                    (Some(s), Some(r)) if s.canonical_reason() != Some(r) => {
                        Some(Bytes::copy_from_slice(r.as_bytes()))
                    }
                    _ => None,
                };
                (len, status, reason, res.version, n)
            }
            Ok(httparse::Status::Partial) if buf.len() >= max_head => {
                return Err(WireError::TooLarge(max_head));
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(WireError::Head(e.to_string())),
        };
        if len > max_head {
            return Err(WireError::TooLarge(max_head));
        }
        let status = status.ok_or_else(|| WireError::Head("invalid status code".into()))?;
        let version = if minor == Some(1) {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        let head = buf.split_to(len).freeze();
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            continue;
        }
        // Room for the headers the router adds to an answer (`respond::decorate`, the request
        // id), so that adding them does not grow the map (a rehash of every header).
        let mut headers = HeaderMap::with_capacity(n + ANSWER_ROOM);
        let mut keep_alive = version == Version::HTTP_11;
        let mut saw_close = false;
        let (mut length, mut transfer_encoding) = (Lengths::Absent, false);
        for &[n0, n1, v0, v1] in &indices[..n] {
            let (n0, n1, v0, v1) = (n0 as usize, n1 as usize, v0 as usize, v1 as usize);
            let name = crate::headers::name(&head[n0..n1])
                .map_err(|_| WireError::Head("invalid header name".into()))?;
            let value = HeaderValue::from_maybe_shared(head.slice(v0..v1))
                .map_err(|_| WireError::Head("invalid header value".into()))?;
            if name == header::CONNECTION {
                if saw_close || has_token(&value, "close") {
                    saw_close = true;
                    keep_alive = false;
                } else if !keep_alive {
                    keep_alive = has_token(&value, "keep-alive");
                }
            } else if name == header::CONTENT_LENGTH {
                length = length.and(&value);
            } else if name == header::TRANSFER_ENCODING {
                transfer_encoding = true;
            }
            headers.append(name, value);
        }
        let seen = Seen {
            length,
            transfer_encoding,
        };
        let body = body_framing(status, version, method, &headers, seen)?;
        let (mut parts, ()) = Response::new(()).into_parts();
        parts.status = status;
        parts.version = version;
        parts.headers = headers;
        if let Some(reason) = reason
            && let Ok(r) = hyper::ext::ReasonPhrase::try_from(reason)
        {
            parts.extensions.insert(r);
        }
        return Ok(Some(ResponseHead {
            parts,
            body,
            keep_alive,
        }));
    }
}

/// How many headers [`parse_response`] leaves room for beyond the upstream's: those
/// `respond::decorate` adds (DC, route, shard, epoch) and the request id.
const ANSWER_ROOM: usize = 5;

/// The `Content-Length` values of one head, folded as they are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lengths {
    /// None yet.
    Absent,
    /// Every value so far is this number.
    Same(u64),
    /// A value is not a number, or two differ.
    Bad,
}

impl Lengths {
    /// Folds in one `Content-Length` line (a comma-separated list counts each element).
    fn and(self, v: &HeaderValue) -> Lengths {
        let Ok(line) = v.to_str() else {
            return Lengths::Bad;
        };
        line.split(',').fold(self, |acc, part| {
            match (acc, digits(part.trim().as_bytes())) {
                (Lengths::Bad, _) | (_, None) => Lengths::Bad,
                (Lengths::Absent, Some(n)) => Lengths::Same(n),
                (Lengths::Same(m), Some(n)) if m == n => Lengths::Same(m),
                (Lengths::Same(_), Some(_)) => Lengths::Bad,
            }
        })
    }
}

/// What the header loop learnt about the body's framing, so that no header is looked up again.
#[derive(Clone, Copy, Debug)]
struct Seen {
    length: Lengths,
    transfer_encoding: bool,
}

/// How the body of a response is delimited (RFC 9112 6.3, as hyper's `Client::decoder`).
fn body_framing(
    status: StatusCode,
    version: Version,
    method: &Method,
    headers: &HeaderMap,
    seen: Seen,
) -> Result<BodyFraming, WireError> {
    match status.as_u16() {
        101 => return Err(WireError::Upgrade),
        204 | 304 => return Ok(BodyFraming::Length(0)),
        _ => {}
    }
    if *method == Method::HEAD {
        return Ok(BodyFraming::Length(0));
    }
    if *method == Method::CONNECT && status.is_success() {
        return Err(WireError::Upgrade);
    }
    if seen.transfer_encoding {
        if version == Version::HTTP_10 {
            return Err(WireError::TransferEncoding10);
        }
        let chunked = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .is_some_and(is_chunked);
        return Ok(if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::Close
        });
    }
    match seen.length {
        // hyper's `DecodedLength` reserves the top values.
        Lengths::Same(n) if n >= u64::MAX - 2 => Err(WireError::ContentLength),
        Lengths::Same(n) => Ok(BodyFraming::Length(n)),
        Lengths::Bad => Err(WireError::ContentLength),
        Lengths::Absent => Ok(BodyFraming::Close),
    }
}

/// Every `Content-Length` value (comma-separated lists included), when all are the same
/// number (hyper's `content_length_parse_all`).
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    let folded = headers
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .fold(Lengths::Absent, Lengths::and);
    match folded {
        Lengths::Same(n) => Some(n),
        Lengths::Absent | Lengths::Bad => None,
    }
}

/// A decimal length as hyper reads one (`from_digits`): digits only, no sign, no overflow.
pub fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| match c {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(c - b'0')),
        _ => None,
    })
}

/// Whether the last coding of a `Transfer-Encoding` line is `chunked`.
fn is_chunked(v: &HeaderValue) -> bool {
    v.to_str()
        .ok()
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
}

/// Whether a comma-separated header value holds `token` (case-insensitive).
fn has_token(v: &HeaderValue, token: &str) -> bool {
    v.to_str()
        .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
