//! Pure: a request's HTTP/2 header block from the HTTP/1.1 head `upstream::request` wrote for
//! it (`Outbound`), so the one place that decides a proxied request's headers stays the one
//! place: the request line's method and target become `:method` and `:path`, `Host` becomes
//! `:authority`, the fields HTTP/2 does not carry (RFC 9113 §8.2.2) are left out, and every
//! other field goes as written. And an answer's head from its decoded fields.

use crate::h2::encoder::RequestEncoder as E;
use crate::h2::fields::{connection_specific as not_carried, note_content_length};
use crate::h2::hpack::Field;
use bytes::BytesMut;
use http::response::Parts;
use http::{HeaderMap, Response, StatusCode, Version, header};

/// The fields HTTP/2 does not carry (names as `Outbound` writes them: lowercase).
fn connection_specific(name: &[u8]) -> bool {
    matches!(
        name,
        b"connection"
            | b"transfer-encoding"
            | b"upgrade"
            | b"te"
            | b"keep-alive"
            | b"proxy-connection"
    )
}

/// The header block for the HTTP/1.1 request head `head` (request line, fields, empty line),
/// sent to an `https` upstream or not; `authority`: the upstream's, when the head has no
/// `Host`. `None` when `head` is not such a head.
pub fn block(head: &[u8], https: bool, authority: &str, dst: &mut BytesMut) -> Option<()> {
    let line_end = find_crlf(head)?;
    let line = &head[..line_end];
    let sp1 = line.iter().position(|&b| b == b' ')?;
    let sp2 = line.iter().rposition(|&b| b == b' ')?;
    if sp2 <= sp1 || &line[sp2 + 1..] != b"HTTP/1.1" {
        return None;
    }
    let (method, target) = (&line[..sp1], &line[sp1 + 1..sp2]);
    let fields = &head[line_end + 2..];
    // `Outbound` writes names lowercase: `Host` is found without walking the lines twice.
    let host = memchr::memmem::find(&head[line_end..], b"\r\nhost:")
        .and_then(|at| lines(&head[line_end + at + 2..]).next())
        .or_else(|| lines(fields).find(|(n, _)| n.eq_ignore_ascii_case(b"host")))
        .map(|(_, v)| v);
    dst.reserve(head.len() + 16);
    E::method(dst, method);
    E::scheme(dst, https);
    E::authority(dst, host.unwrap_or(authority.as_bytes()));
    E::path(dst, target);
    let mut lowered = Vec::new();
    for (name, value) in lines(fields) {
        let name = if name.iter().any(u8::is_ascii_uppercase) {
            lowered.clear();
            lowered.extend(name.iter().map(u8::to_ascii_lowercase));
            &lowered[..]
        } else {
            name
        };
        if name == b"host" || connection_specific(name) {
            continue;
        }
        E::header(dst, name, value);
    }
    Some(())
}

/// Where the first `\r\n` starts.
fn find_crlf(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + memchr::memchr(b'\n', b.get(from..)?)?;
        if at > 0 && b[at - 1] == b'\r' {
            return Some(at - 1);
        }
        from = at + 1;
    }
}

/// The `name: value` lines of a head's fields, up to the empty line.
fn lines(mut rest: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        let end = find_crlf(rest)?;
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line.is_empty() {
            rest = &[];
            return None;
        }
        let colon = line.iter().position(|&b| b == b':')?;
        let value = &line[colon + 1..];
        let start = value
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(value.len());
        Some((&line[..colon], &value[start..]))
    })
}

/// An answer's head from its fields (RFC 9113 §8.3.2): `:status` first and once, no other
/// pseudo-header, no connection-specific field; with its `content-length`. `None`: malformed.
/// Its version is HTTP/1.1, as an answer read over HTTP/1.1 says.
pub fn response(fields: Vec<Field>) -> Option<(Parts, Option<u64>)> {
    let mut status = None;
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut content_length = None;
    for f in fields {
        match f {
            Field::Status(v) if status.is_none() && headers.is_empty() => {
                status = Some(StatusCode::from_bytes(&v).ok()?);
            }
            Field::Header(name, value) => {
                if not_carried(&name) {
                    return None;
                }
                if name == header::CONTENT_LENGTH {
                    note_content_length(&mut content_length, &value)?;
                }
                headers.append(name, value);
            }
            _ => return None,
        }
    }
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = status?;
    parts.version = Version::HTTP_11;
    parts.headers = headers;
    Some((parts, content_length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::hpack::{Decoder, Field};

    fn decode(block: &[u8]) -> Vec<(String, String)> {
        let mut d = Decoder::new(4096);
        let mut out = Vec::new();
        d.decode(block, |f| {
            let (n, v) = match f {
                Field::Method(v) => (":method".into(), v.to_vec()),
                Field::Scheme(v) => (":scheme".into(), v.to_vec()),
                Field::Authority(v) => (":authority".into(), v.to_vec()),
                Field::Path(v) => (":path".into(), v.to_vec()),
                Field::Header(n, v) => (n.to_string(), v.as_bytes().to_vec()),
                other => panic!("unexpected {other:?}"),
            };
            out.push((n, String::from_utf8(v).unwrap()));
        })
        .unwrap();
        out
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_head_becomes_pseudo_fields_then_its_fields_without_host_or_hop_by_hop_ones() {
        let head = b"POST /v2/clusters/00000042/pause?x=1 HTTP/1.1\r\ncoopr-userid: admin\r\nHost: dc2.example:8080\r\nx-forwarded-for: 10.0.0.1\r\ntransfer-encoding: chunked\r\nte: trailers\r\ncontent-length: 2\r\nX-Odd:  spaced\r\n\r\n";
        let mut b = BytesMut::new();
        block(head, false, "peer:1", &mut b).unwrap();
        assert_eq!(
            decode(&b),
            pairs(&[
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", "dc2.example:8080"),
                (":path", "/v2/clusters/00000042/pause?x=1"),
                ("coopr-userid", "admin"),
                ("x-forwarded-for", "10.0.0.1"),
                ("content-length", "2"),
                ("x-odd", "spaced"),
            ])
        );
    }

    #[test]
    fn without_host_the_upstreams_authority_is_used_and_other_methods_are_literals() {
        let mut b = BytesMut::new();
        block(b"DELETE / HTTP/1.1\r\n\r\n", true, "peer:1", &mut b).unwrap();
        assert_eq!(
            decode(&b),
            pairs(&[
                (":method", "DELETE"),
                (":scheme", "https"),
                (":authority", "peer:1"),
                (":path", "/")
            ])
        );
    }

    #[test]
    fn what_is_not_a_request_head_is_refused() {
        for bad in [
            &b"GET /"[..],
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET\r\n\r\n",
            b"",
        ] {
            assert!(
                block(bad, false, "a", &mut BytesMut::new()).is_none(),
                "{bad:?}"
            );
        }
    }
}
