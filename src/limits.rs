//! Request-head limits the HTTP layer does not enforce itself: the request target's length
//! (414). (A `Content-Length` beside `Transfer-Encoding: chunked` never gets here: hyper drops
//! the length, reads the chunked body and closes the connection after the response, RFC 9112
//! §6.1, so nothing can be smuggled behind it.) hyper enforces the head's size (`limits.max_header_bytes`, 431 or a closed
//! connection), the header count (`limits.max_headers`, 431) and the head read time; the body
//! inspection limit is enforced where bodies are read (`proxy::body`).

use crate::config::Limits;
use crate::error::ProxyError;
use http::request::Parts;

/// Refuses a request whose target is over `limits.max_uri_bytes`.
pub fn check_head(parts: &Parts, limits: &Limits) -> Result<(), ProxyError> {
    let len = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > limits.max_uri_bytes {
        return Err(ProxyError::UriTooLong {
            limit: limits.max_uri_bytes,
        });
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
}
