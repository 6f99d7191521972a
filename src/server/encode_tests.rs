//! Tests of `server/encode.rs` (kept in their own file; the module is `tests` of it).
//!
//! Test code only: `server/encode.rs` includes this file under `#[cfg(test)]`, so its unwraps
//! never run on a request path.

use super::*;

const DATE: &[u8; DATE_LEN] = b"Sat, 05 Dec 2026 01:00:00 GMT";

fn encode(
    status: u16,
    headers: &[(&str, &str)],
    body: Option<BodyLength>,
    method: Method,
    keep_alive: bool,
) -> (String, Result<Encoder, Refused>) {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        parts.headers.append(
            header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut dst = b"x".to_vec();
    let asked = Asked {
        method: &method,
        keep_alive,
    };
    let e = response_head(&mut dst, &mut parts, body, asked, DATE);
    (String::from_utf8(dst[1..].to_vec()).unwrap(), e)
}

const D: &str = "date: Sat, 05 Dec 2026 01:00:00 GMT\r\n\r\n";

/// Status, headers, body, method; the head written and the verdict.
type Case = (
    u16,
    Vec<(&'static str, &'static str)>,
    Option<BodyLength>,
    Method,
    String,
    Result<Encoder, Refused>,
);

#[test]
fn heads_are_written_as_hyper_writes_them() {
    use BodyLength::*;
    let len = |n| {
        Ok(Encoder {
            framing: Framing::Length(n),
            last: false,
        })
    };
    let cases: Vec<Case> = vec![
        (
            200,
            vec![("content-type", "a")],
            Some(Known(2)),
            Method::GET,
            format!("HTTP/1.1 200 OK\r\ncontent-type: a\r\ncontent-length: 2\r\n{D}"),
            len(2),
        ),
        (
            200,
            vec![("content-length", "2")],
            Some(Known(2)),
            Method::GET,
            format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{D}"),
            len(2),
        ),
        (
            404,
            vec![],
            None,
            Method::GET,
            format!("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n{D}"),
            len(0),
        ),
        (
            200,
            vec![],
            Some(Unknown),
            Method::GET,
            format!("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n{D}"),
            Ok(Encoder {
                framing: Framing::Chunked,
                last: false,
            }),
        ),
        (
            200,
            vec![("content-length", "7")],
            Some(Unknown),
            Method::GET,
            format!("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n{D}"),
            len(7),
        ),
        (
            200,
            vec![("content-length", "7")],
            Some(Known(7)),
            Method::HEAD,
            format!("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n{D}"),
            len(0),
        ),
        (
            200,
            vec![("content-length", "7")],
            None,
            Method::HEAD,
            format!("HTTP/1.1 200 OK\r\ncontent-length: 7\r\n{D}"),
            len(0),
        ),
        (
            200,
            vec![],
            None,
            Method::HEAD,
            format!("HTTP/1.1 200 OK\r\n{D}"),
            len(0),
        ),
        (
            204,
            vec![("content-length", "0")],
            None,
            Method::GET,
            format!("HTTP/1.1 204 No Content\r\n{D}"),
            len(0),
        ),
        (
            304,
            vec![],
            Some(Known(5)),
            Method::GET,
            format!("HTTP/1.1 304 Not Modified\r\n{D}"),
            len(0),
        ),
        (
            200,
            vec![("connection", "close")],
            Some(Known(0)),
            Method::GET,
            format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n{D}"),
            Ok(Encoder {
                framing: Framing::Length(0),
                last: true,
            }),
        ),
        (
            200,
            vec![("transfer-encoding", "gzip")],
            Some(Unknown),
            Method::GET,
            format!("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n{D}"),
            Ok(Encoder {
                framing: Framing::Chunked,
                last: false,
            }),
        ),
        (
            200,
            vec![("date", "x"), ("vary", "a"), ("vary", "b")],
            Some(Known(1)),
            Method::GET,
            "HTTP/1.1 200 OK\r\ndate: x\r\nvary: a\r\nvary: b\r\ncontent-length: 1\r\n\r\n".into(),
            len(1),
        ),
        (
            599,
            vec![],
            None,
            Method::GET,
            format!("HTTP/1.1 599 <none>\r\ncontent-length: 0\r\n{D}"),
            len(0),
        ),
        (
            200,
            vec![("content-length", "1"), ("transfer-encoding", "chunked")],
            Some(Unknown),
            Method::GET,
            String::new(),
            Err(Refused),
        ),
        (
            200,
            vec![("content-length", "x")],
            Some(Unknown),
            Method::GET,
            String::new(),
            Err(Refused),
        ),
        (
            100,
            vec![("x", "y")],
            None,
            Method::GET,
            format!("HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n{D}"),
            Ok(Encoder {
                framing: Framing::Length(0),
                last: true,
            }),
        ),
    ];
    for (status, headers, body, method, want, verdict) in cases {
        let (got, e) = encode(status, &headers, body, method.clone(), true);
        assert_eq!(
            (got.as_str(), e),
            (want.as_str(), verdict),
            "{status} {headers:?} {body:?} {method}"
        );
    }
}

#[test]
fn a_request_that_closes_makes_the_answer_the_last_and_says_so() {
    let last = |n| {
        Ok(Encoder {
            framing: Framing::Length(n),
            last: true,
        })
    };
    let cases = [
        (
            vec![],
            format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n{D}"),
        ),
        (
            vec![("x-a", "1")],
            format!("HTTP/1.1 200 OK\r\nx-a: 1\r\nconnection: close\r\ncontent-length: 1\r\n{D}"),
        ),
        (
            vec![("connection", "keep-alive")],
            format!("HTTP/1.1 200 OK\r\nconnection: keep-alive, close\r\ncontent-length: 1\r\n{D}"),
        ),
        (
            vec![("connection", "Close")],
            format!("HTTP/1.1 200 OK\r\nconnection: Close\r\ncontent-length: 1\r\n{D}"),
        ),
    ];
    for (headers, want) in cases {
        let (got, e) = encode(
            200,
            &headers,
            Some(BodyLength::Known(1)),
            Method::GET,
            false,
        );
        assert_eq!((got, e), (want, last(1)), "{headers:?}");
    }
    // A 1xx is replaced whole by a 500, with no line added.
    let (got, e) = encode(100, &[], None, Method::GET, false);
    assert_eq!(
        got,
        format!("HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n{D}")
    );
    assert_eq!(e, last(0));
}

#[test]
fn a_custom_reason_and_an_old_version_are_kept() {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.version = Version::HTTP_10;
    parts
        .extensions
        .insert(hyper::ext::ReasonPhrase::from_static(b"Fine"));
    let mut dst = Vec::new();
    let asked = Asked {
        method: &Method::GET,
        keep_alive: true,
    };
    let e = response_head(&mut dst, &mut parts, Some(BodyLength::Unknown), asked, DATE);
    assert_eq!(
        String::from_utf8(dst).unwrap(),
        format!("HTTP/1.0 200 Fine\r\n{D}")
    );
    assert_eq!(
        e,
        Ok(Encoder {
            framing: Framing::Close,
            last: false
        })
    );
}

#[test]
fn lengths_are_read_as_hyper_reads_them() {
    let d = |v: &'static str| crate::wire::head::digits(HeaderValue::from_static(v).as_bytes());
    assert_eq!(d("0012"), Some(12));
    assert_eq!(d("18446744073709551616"), None);
    assert_eq!(d("+1"), None);
    assert_eq!(d(""), None);
}
