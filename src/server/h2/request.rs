//! Pure: a request's head from its decoded header fields, as h2 builds it (`server.rs`,
//! `convert_poll_message`), and what makes one malformed (RFC 9113 §8.2.2, §8.3): pseudo-header
//! fields after regular ones or twice, missing ones, connection-specific fields, a `te` other
//! than `trailers`, a `content-length` that is not one number.

use crate::h2::hpack::Field;
use http::{HeaderMap, Method, Request, Uri, Version, header};

pub(super) use crate::h2::fields::connection_specific;

/// A request's head from its fields, as h2 builds it (`server.rs`, `convert_poll_message`),
/// and its `content-length`; `None` when it is malformed (RFC 9113 §8.1.1, §8.3.1).
pub fn request(fields: Vec<Field>) -> Option<(Request<()>, Option<u64>)> {
    let (mut method, mut scheme, mut authority, mut path) = (None, None, None, None);
    let mut headers = HeaderMap::with_capacity(fields.len());
    let mut regular = false;
    let mut content_length: Option<u64> = None;
    for f in fields {
        let (slot, v) = match f {
            Field::Header(name, value) => {
                regular = true;
                if connection_specific(&name) && !(name == header::TE && value == "trailers") {
                    return None;
                }
                if name == header::CONTENT_LENGTH {
                    crate::h2::fields::note_content_length(&mut content_length, &value)?;
                }
                headers.append(name, value);
                continue;
            }
            Field::Method(v) => (&mut method, v),
            Field::Scheme(v) => (&mut scheme, v),
            Field::Authority(v) => (&mut authority, v),
            Field::Path(v) => (&mut path, v),
            Field::Protocol(_) | Field::Status(_) | Field::Bad { .. } => return None,
        };
        // A pseudo-header after a regular field, or twice: malformed.
        if regular || slot.is_some() {
            return None;
        }
        *slot = Some(v);
    }
    let method = Method::from_bytes(&method?).ok()?;
    let mut parts = http::uri::Parts::default();
    if let Some(a) = authority {
        parts.authority = Some(http::uri::Authority::from_maybe_shared(a).ok()?);
    }
    if method == Method::CONNECT {
        // Only :authority (RFC 9113 §8.5); the proxy refuses CONNECT itself.
        if scheme.is_some() || path.is_some() || parts.authority.is_none() {
            return None;
        }
    } else {
        let scheme = http::uri::Scheme::try_from(&scheme?[..]).ok()?;
        // A URI cannot be a scheme and a path: the scheme goes with an authority only.
        if parts.authority.is_some() {
            parts.scheme = Some(scheme);
        }
        let path = path.filter(|p| !p.is_empty())?;
        parts.path_and_query = Some(http::uri::PathAndQuery::from_maybe_shared(path).ok()?);
    }
    let mut req = Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = Uri::from_parts(parts).ok()?;
    *req.version_mut() = Version::HTTP_2;
    *req.headers_mut() = headers;
    Some((req, content_length))
}
