//! Request-head limits the HTTP layer does not enforce itself: the request target's length
//! (414), and HAProxy's strictness: `CONNECT` (405), the asterisk form, `Host` (missing,
//! repeated, disagreeing with `:authority`), `Connection` naming protected headers, and a
//! repeated or non-final `chunked` (400). (A `Content-Length` beside `Transfer-Encoding: chunked` never gets here: hyper drops
//! the length, reads the chunked body and closes the connection after the response, RFC 9112
//! §6.1, so nothing can be smuggled behind it.) hyper enforces the head's size (`limits.max_header_bytes`, 431 or a closed
//! connection), the header count (`limits.max_headers`, 431) and the head read time; the body
//! inspection limit is enforced where bodies are read (`proxy::body`).

use crate::config::Limits;
use crate::error::ProxyError;
use http::request::Parts;
use http::{Method, Version, header};

/// Refuses a request whose target is over `limits.max_uri_bytes` (414), a method the router
/// does not proxy (`CONNECT`, 405), the asterisk form (`OPTIONS *`), a missing, repeated or
/// disagreeing `Host`, a `Connection` header naming a header hop-by-hop removal must never
/// take (framing, `Host`, the router's own), and a `chunked` coding that is repeated or not
/// last (400), as HAProxy does.
pub fn check_head(parts: &Parts, limits: &Limits) -> Result<(), ProxyError> {
    let len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > limits.max_uri_bytes {
        return Err(ProxyError::UriTooLong {
            limit: limits.max_uri_bytes,
        });
    }
    if parts.method == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed {
            method: parts.method.to_string(),
        });
    }
    if parts
        .uri
        .path_and_query()
        .is_some_and(|pq| pq.as_str() == "*")
        || parts.uri == "*"
    {
        return Err(ProxyError::BadHead(
            "the asterisk form (OPTIONS *) is not served",
        ));
    }
    check_headers(parts)
}

/// `Host`, `Connection` and `Transfer-Encoding`, in one pass over the headers (a lookup per
/// name costs more than a look at each of a request's few headers); the first problem is
/// reported in that order.
fn check_headers(parts: &Parts) -> Result<(), ProxyError> {
    let (mut host, mut hosts) = (None, 0usize);
    let mut connection = Ok(());
    let mut codings: Result<Vec<&str>, ProxyError> = Ok(Vec::new());
    for (name, value) in &parts.headers {
        if *name == header::HOST {
            hosts += 1;
            host = host.or(Some(value));
        } else if *name == header::CONNECTION {
            if connection.is_ok() {
                connection = check_connection(value);
            }
        } else if *name == header::TRANSFER_ENCODING
            && let Ok(list) = &mut codings
        {
            match value.to_str() {
                Ok(v) => list.extend(v.split(',').map(str::trim).filter(|c| !c.is_empty())),
                Err(_) => {
                    codings = Err(ProxyError::BadHead("a Transfer-Encoding that is not text"));
                }
            }
        }
    }
    check_host(parts, host, hosts)?;
    connection?;
    check_codings(&codings?)
}

/// HTTP/1.1 needs exactly one `Host`; HTTP/1.0 at most one; HTTP/2 at most one, which must
/// agree with `:authority` (which stands in for it).
fn check_host(
    parts: &Parts,
    first: Option<&http::HeaderValue>,
    hosts: usize,
) -> Result<(), ProxyError> {
    if hosts > 1 {
        return Err(ProxyError::BadHead("more than one Host header"));
    }
    match parts.version {
        Version::HTTP_11 if first.is_none() => Err(ProxyError::BadHead(
            "an HTTP/1.1 request needs a Host header",
        )),
        Version::HTTP_2 | Version::HTTP_3 => match (first, parts.uri.authority()) {
            (None, None) => Err(ProxyError::BadHead(
                "an HTTP/2 request needs :authority or a Host header",
            )),
            (Some(h), Some(a)) if !h.as_bytes().eq_ignore_ascii_case(a.as_str().as_bytes()) => {
                Err(ProxyError::BadHead("Host disagrees with :authority"))
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Headers a `Connection` header may not name: removing them as hop-by-hop would change how
/// the request is framed or routed, or drop what the router itself sets.
fn protected(name: &str) -> bool {
    name.eq_ignore_ascii_case("host")
        || name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("transfer-encoding")
        || name.eq_ignore_ascii_case(crate::headers::REQUEST_ID.as_str())
        || name
            .get(..15)
            .is_some_and(|p| p.eq_ignore_ascii_case("x-coopr-router-"))
}

/// One `Connection` value: text, naming nothing [`protected`].
fn check_connection(v: &http::HeaderValue) -> Result<(), ProxyError> {
    let Ok(v) = v.to_str() else {
        return Err(ProxyError::BadHead("a Connection header that is not text"));
    };
    if v.split(',').map(str::trim).any(protected) {
        return Err(ProxyError::BadHead(
            "Connection names Host, a framing header or one of the router's headers",
        ));
    }
    Ok(())
}

/// `chunked` at most once, and last (RFC 9112 §6.1), over every `Transfer-Encoding`'s codings.
fn check_codings(codings: &[&str]) -> Result<(), ProxyError> {
    let chunked = |c: &str| c.eq_ignore_ascii_case("chunked");
    let count = codings.iter().filter(|c| chunked(c)).count();
    if count > 1 || (count == 1 && !codings.last().is_some_and(|c| chunked(c))) {
        return Err(ProxyError::BadHead(
            "chunked must be the last transfer coding, once",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_targets_are_refused_at_the_limit() {
        let limits = Limits {
            max_uri_bytes: 300,
            ..Limits::default()
        };
        let at = format!("/v2/clusters?{}", "a".repeat(300 - 13));
        let (parts, ()) = http::Request::get(at.as_str())
            .header("host", "r")
            .body(())
            .unwrap()
            .into_parts();
        assert!(check_head(&parts, &limits).is_ok());
        let over = format!("{at}b");
        let (parts, ()) = http::Request::get(over.as_str())
            .body(())
            .unwrap()
            .into_parts();
        let e = check_head(&parts, &limits).unwrap_err();
        assert_eq!(e.status(), http::StatusCode::URI_TOO_LONG);
    }

    fn head(f: impl FnOnce(http::request::Builder) -> http::request::Builder) -> Parts {
        f(http::Request::get("/status").header("host", "r"))
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn strict_heads() {
        let l = Limits::default();
        let bad = |p: Parts| check_head(&p, &l).unwrap_err().status().as_u16();
        assert!(check_head(&head(|b| b), &l).is_ok());
        assert_eq!(bad(head(|b| b.header("host", "s"))), 400);
        assert_eq!(
            bad(http::Request::get("/").body(()).unwrap().into_parts().0),
            400
        );
        assert_eq!(
            bad(head(|b| b.header("connection", "close, X-Request-Id"))),
            400
        );
        assert_eq!(
            bad(head(|b| b.header("connection", "x-coopr-router-dc"))),
            400
        );
        assert!(check_head(&head(|b| b.header("connection", "keep-alive, x-other")), &l).is_ok());
        assert_eq!(
            bad(head(|b| b.header("transfer-encoding", "chunked, chunked"))),
            400
        );
        assert_eq!(
            bad(head(|b| b.header("transfer-encoding", "chunked, gzip"))),
            400
        );
        assert!(
            check_head(
                &head(|b| b.header("transfer-encoding", "gzip, chunked")),
                &l
            )
            .is_ok()
        );
        let h2 = |host: Option<&str>, uri: &str| {
            let mut b = http::Request::get(uri).version(Version::HTTP_2);
            if let Some(h) = host {
                b = b.header("host", h);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert!(check_head(&h2(None, "https://r/status"), &l).is_ok());
        assert!(check_head(&h2(Some("R"), "https://r/status"), &l).is_ok());
        assert_eq!(bad(h2(Some("s"), "https://r/status")), 400);
        assert_eq!(bad(h2(None, "/status")), 400);
    }

    /// A header repeated on several lines counts as its values in order; the first problem is
    /// reported in the order Host, Connection, Transfer-Encoding.
    #[test]
    fn headers_over_several_lines() {
        let l = Limits::default();
        let why = |p: Parts| match check_head(&p, &l) {
            Err(ProxyError::BadHead(why)) => why,
            other => panic!("{other:?}"),
        };
        let te = |a: &str, b: &str| {
            head(|r| {
                r.header("transfer-encoding", a)
                    .header("transfer-encoding", b)
            })
        };
        assert!(check_head(&te("gzip", "chunked"), &l).is_ok());
        assert!(why(te("chunked", "gzip")).starts_with("chunked must be"));
        assert!(why(te("chunked", "chunked")).starts_with("chunked must be"));
        let conn = head(|r| {
            r.header("connection", "keep-alive")
                .header("connection", "host")
        });
        assert!(why(conn).starts_with("Connection names"));
        let all = head(|r| {
            r.header("transfer-encoding", "chunked, gzip")
                .header("connection", "content-length")
                .header("host", "s")
        });
        assert_eq!(why(all), "more than one Host header");
        let two = head(|r| {
            r.header("transfer-encoding", "chunked, gzip")
                .header("connection", "content-length")
        });
        assert!(why(two).starts_with("Connection names"));
        let bytes = http::HeaderValue::from_bytes(b"\xff").unwrap();
        let not_text = head(|r| {
            r.header("transfer-encoding", bytes.clone())
                .header("transfer-encoding", "chunked, chunked")
        });
        assert_eq!(why(not_text), "a Transfer-Encoding that is not text");
    }
}
