//! Tests of `wire/head.rs` (kept in their own file; the module is `tests` of it).
//!
//! Test code only: `wire/head.rs` includes this file under `#[cfg(test)]`, so its unwraps never
//! run on a request path.

use super::*;

fn parse(text: &str, method: Method) -> Result<Option<ResponseHead>, WireError> {
    let mut buf = BytesMut::from(text);
    parse_response(&mut buf, &method, 64 * 1024)
}

#[test]
fn response_bodies_are_framed_by_table() {
    use BodyFraming::*;
    let ok = |t: &str, m: Method| parse(t, m).ok().flatten().map(|h| (h.body, h.keep_alive));
    type Case<'a> = (&'a str, Method, Option<(BodyFraming, bool)>);
    let cases: &[Case] = &[
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            Method::GET,
            Some((Length(5), true)),
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            Method::GET,
            Some((Length(5), true)),
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
            Method::GET,
            None,
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n",
            Method::GET,
            None,
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            Method::GET,
            Some((Chunked, true)),
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n",
            Method::GET,
            Some((Chunked, true)),
        ),
        (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n",
            Method::GET,
            Some((Close, true)),
        ),
        (
            "HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            Method::GET,
            None,
        ),
        ("HTTP/1.1 200 OK\r\n\r\n", Method::GET, Some((Close, true))),
        (
            "HTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n",
            Method::GET,
            Some((Length(0), true)),
        ),
        (
            "HTTP/1.1 304 Not Modified\r\n\r\n",
            Method::GET,
            Some((Length(0), true)),
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n",
            Method::HEAD,
            Some((Length(0), true)),
        ),
        (
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n",
            Method::GET,
            Some((Length(2), false)),
        ),
        (
            "HTTP/1.1 200 OK\r\nconnection: close\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n",
            Method::GET,
            Some((Length(2), false)),
        ),
        (
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n",
            Method::GET,
            Some((Length(2), false)),
        ),
        (
            "HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\ncontent-length: 2\r\n\r\n",
            Method::GET,
            Some((Length(2), true)),
        ),
        (
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n",
            Method::POST,
            Some((Length(0), true)),
        ),
        (
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            Method::GET,
            None,
        ),
        ("HTTP/1.1 099 Odd\r\n\r\n", Method::GET, None),
        ("HTTP/1.1 200 OK\r\nbad header\r\n\r\n", Method::GET, None),
    ];
    for (text, method, want) in cases {
        assert_eq!(&ok(text, method.clone()), want, "{text:?}");
    }
}

#[test]
fn a_head_arrives_in_pieces_and_keeps_what_follows() {
    let text =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Fine\r\nx-a: 1\r\ncontent-length: 3\r\n\r\nabc";
    let head_end = text.len() - 3;
    for cut in 0..head_end {
        let mut buf = BytesMut::from(&text[..cut]);
        let first = parse_response(&mut buf, &Method::GET, 1024);
        if let Ok(Some(_)) = first {
            panic!("complete at {cut} bytes");
        }
        buf.extend_from_slice(&text[cut..]);
        let head = parse_response(&mut buf, &Method::GET, 1024).ok().flatten();
        let head = head.map(|h| {
            (
                h.parts.status,
                h.parts.headers["x-a"].clone(),
                h.parts
                    .extensions
                    .get::<hyper::ext::ReasonPhrase>()
                    .map(|r| r.as_bytes().to_vec()),
            )
        });
        assert_eq!(
            head,
            Some((
                StatusCode::OK,
                HeaderValue::from_static("1"),
                Some(b"Fine".to_vec())
            )),
            "cut at {cut}"
        );
        assert_eq!(&buf[..], b"abc", "cut at {cut}");
    }
}

#[test]
fn a_head_over_the_limit_is_refused() {
    let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nx-long: aaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
    assert_eq!(
        parse_response(&mut buf, &Method::GET, 32).err(),
        Some(WireError::TooLarge(32))
    );
}

#[test]
fn request_bodies_are_framed_as_hyper_frames_them() {
    use Framing::{Chunked, Length as L};
    let h = |pairs: &[(&str, &str)]| {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    };
    type Case<'a> = (
        Method,
        &'a [(&'a str, &'a str)],
        Length,
        Framing,
        &'a [(&'a str, &'a str)],
    );
    let cases: &[Case] = &[
        (Method::GET, &[], Length::Ended, L(0), &[]),
        (
            Method::POST,
            &[("transfer-encoding", "chunked")],
            Length::Ended,
            L(0),
            &[],
        ),
        (
            Method::POST,
            &[("content-length", "2")],
            Length::Known(2),
            L(2),
            &[("content-length", "2")],
        ),
        (
            Method::POST,
            &[],
            Length::Known(2),
            L(2),
            &[("content-length", "2")],
        ),
        (
            Method::POST,
            &[],
            Length::Unknown,
            Chunked,
            &[("transfer-encoding", "chunked")],
        ),
        (Method::GET, &[], Length::Unknown, L(0), &[]),
        (
            Method::PUT,
            &[("transfer-encoding", "gzip"), ("content-length", "4")],
            Length::Unknown,
            Chunked,
            &[("transfer-encoding", "gzip, chunked")],
        ),
        (
            Method::PUT,
            &[("content-length", "x")],
            Length::Unknown,
            Chunked,
            &[("transfer-encoding", "chunked")],
        ),
        (
            Method::PUT,
            &[("content-length", "7")],
            Length::Unknown,
            L(7),
            &[("content-length", "7")],
        ),
    ];
    for (method, before, body, framing, after) in cases {
        let mut headers = h(before);
        assert_eq!(
            request_framing(method, &mut headers, *body),
            *framing,
            "{method} {before:?} {body:?}"
        );
        assert_eq!(headers, h(after), "{method} {before:?} {body:?}");
    }
}

#[test]
fn chunk_sizes_are_hex() {
    for (n, want) in [
        (0, "0\r\n"),
        (9, "9\r\n"),
        (255, "FF\r\n"),
        (4096, "1000\r\n"),
    ] {
        let mut v = Vec::new();
        chunk_size_line(n, &mut v);
        assert_eq!(v, want.as_bytes());
    }
}
