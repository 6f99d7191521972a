//! Pure: a response head as the router's own HTTP/1.1 server (`fast.rs`) writes it, and how
//! its body is framed. A port of hyper 1's `Server::encode` (`proto/h1/role.rs`, lower-case
//! names, no header-case map), rule for rule, so that a client reads the same bytes whichever
//! server answered it (`tests/server_vs_hyper.rs` compares the two byte for byte).

use http::header::{self, HeaderValue};
use http::response::Parts;
use http::{Method, StatusCode, Version};

/// The length of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub const DATE_LEN: usize = 29;

/// What a response body says of itself before it is written (hyper's `BodyLength`; `None`
/// where hyper has no body: one already at its end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    Known(u64),
    Unknown,
}

impl BodyLength {
    /// What `body` says of itself, as hyper's dispatcher asks it (`None`: already at its end).
    pub fn of<B: http_body::Body>(body: &B) -> Option<BodyLength> {
        if body.is_end_stream() {
            None
        } else {
            Some(
                body.size_hint()
                    .exact()
                    .map_or(BodyLength::Unknown, BodyLength::Known),
            )
        }
    }
}

/// How the body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (none for a HEAD, a 204 or a 304).
    Length(u64),
    Chunked,
    /// Until the connection closes.
    Close,
}

/// The head's verdict: the framing, and whether the connection ends after this response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    pub framing: Framing,
    pub last: bool,
}

/// A response hyper refuses to write (its `new_user_header`): no byte of it is written and
/// the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// The request's facts the head depends on.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub method: &'a Method,
    /// The connection stays open after this exchange, as far as the request goes.
    pub keep_alive: bool,
}

/// Writes `parts`'s head into `dst` (appended; on `Err` `dst` is as it was) and says how its
/// body goes. `body` is `None` for a body already at its end. An informational status is not
/// a response hyper sends: it writes a 500 instead, ends the connection, and so does this.
/// When the request asked to close (or the server is shutting down), the answer says so
/// (`connection: close` added unless a `Connection` line already has it), as hyper's
/// `Conn::enforce_version` does: `parts` is changed so.
pub fn response_head(
    dst: &mut Vec<u8>,
    parts: &mut Parts,
    body: Option<BodyLength>,
    asked: Asked<'_>,
    date: &[u8; DATE_LEN],
) -> Result<Encoder, Refused> {
    let status = parts.status;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        // hyper replaces the whole head (version, headers) with a default 500's.
        let (mut blank, ()) = http::Response::new(()).into_parts();
        blank.status = StatusCode::INTERNAL_SERVER_ERROR;
        let e = head(dst, &blank, None, asked.method, true, date)?;
        return Ok(Encoder { last: true, ..e });
    }
    if !asked.keep_alive {
        match parts.headers.entry(header::CONNECTION) {
            header::Entry::Occupied(mut e) => {
                if !e.iter().any(connection_close) {
                    e.append(HeaderValue::from_static("close"));
                }
            }
            header::Entry::Vacant(e) => {
                e.insert(HeaderValue::from_static("close"));
            }
        }
    }
    let last = status == StatusCode::SWITCHING_PROTOCOLS || !asked.keep_alive;
    head(dst, parts, body, asked.method, last, date)
}

fn head(
    dst: &mut Vec<u8>,
    parts: &Parts,
    body: Option<BodyLength>,
    method: &Method,
    mut last: bool,
    date: &[u8; DATE_LEN],
) -> Result<Encoder, Refused> {
    let orig_len = dst.len();
    let status = parts.status;
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    dst.reserve(30 + parts.headers.len() * 30);
    if parts.version == Version::HTTP_11 && status == StatusCode::OK && reason.is_none() {
        dst.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        dst.extend_from_slice(if parts.version == Version::HTTP_10 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        dst.extend_from_slice(status.as_str().as_bytes());
        dst.push(b' ');
        match reason {
            Some(r) => dst.extend_from_slice(r.as_bytes()),
            None => dst.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
        }
        dst.extend_from_slice(b"\r\n");
    }
    let http10 = parts.version == Version::HTTP_10;
    let chunkable = !http10 && can_chunk(method, status);
    let mut framing = Framing::Length(0);
    let mut wrote_len = false;
    let mut wrote_date = false;
    let mut prev_len: Option<u64> = None;
    // A special header's later lines join its first (`, `); this is the open one.
    let mut open: Option<header::HeaderName> = None;
    let mut must_write_chunked = false;
    let close_line = |dst: &mut Vec<u8>, open: &mut Option<header::HeaderName>, chunked: bool| {
        if open.take().is_some() {
            dst.extend_from_slice(if chunked { b", chunked\r\n" } else { b"\r\n" });
        }
    };
    let mut current: Option<&header::HeaderName> = None;
    for (name, value) in parts.headers.iter() {
        // hyper drains the map: a new name closes the previous special line.
        if current != Some(name) {
            close_line(dst, &mut open, must_write_chunked);
            current = Some(name);
        }
        let continuing = open.as_ref() == Some(name);
        match *name {
            header::CONTENT_LENGTH => {
                if wrote_len && !continuing {
                    dst.truncate(orig_len);
                    return Err(Refused);
                }
                match body {
                    Some(BodyLength::Known(known)) => {
                        if !continuing {
                            framing = Framing::Length(known);
                            dst.extend_from_slice(b"content-length: ");
                            dst.extend_from_slice(value.as_bytes());
                            wrote_len = true;
                            open = Some(header::CONTENT_LENGTH);
                        }
                        continue;
                    }
                    Some(BodyLength::Unknown) => {
                        let Some(n) = crate::wire::head::digits(value.as_bytes()) else {
                            dst.truncate(orig_len);
                            return Err(Refused);
                        };
                        match prev_len {
                            Some(prev) if prev != n => {
                                dst.truncate(orig_len);
                                return Err(Refused);
                            }
                            Some(_) => continue,
                            None => {
                                framing = Framing::Length(n);
                                dst.extend_from_slice(b"content-length: ");
                                dst.extend_from_slice(value.as_bytes());
                                wrote_len = true;
                                open = Some(header::CONTENT_LENGTH);
                                prev_len = Some(n);
                                continue;
                            }
                        }
                    }
                    None => {
                        if *method != Method::HEAD {
                            continue;
                        }
                        // A HEAD's length is written as a plain line (below).
                    }
                }
                wrote_len = true;
            }
            header::TRANSFER_ENCODING => {
                if wrote_len && !continuing {
                    dst.truncate(orig_len);
                    return Err(Refused);
                }
                if !chunkable {
                    continue;
                }
                wrote_len = true;
                must_write_chunked = !is_chunked(value);
                if continuing {
                    dst.extend_from_slice(b", ");
                } else {
                    framing = Framing::Chunked;
                    dst.extend_from_slice(b"transfer-encoding: ");
                    open = Some(header::TRANSFER_ENCODING);
                }
                dst.extend_from_slice(value.as_bytes());
                continue;
            }
            header::CONNECTION => {
                if !last && connection_close(value) {
                    last = true;
                }
                if continuing {
                    dst.extend_from_slice(b", ");
                } else {
                    dst.extend_from_slice(b"connection: ");
                    open = Some(header::CONNECTION);
                }
                dst.extend_from_slice(value.as_bytes());
                continue;
            }
            header::DATE => wrote_date = true,
            header::TRAILER => {
                if !chunkable {
                    continue;
                }
                if continuing {
                    dst.extend_from_slice(b", ");
                } else {
                    dst.extend_from_slice(b"trailer: ");
                    open = Some(header::TRAILER);
                }
                dst.extend_from_slice(value.as_bytes());
                continue;
            }
            _ => {}
        }
        dst.extend_from_slice(name.as_str().as_bytes());
        dst.extend_from_slice(b": ");
        dst.extend_from_slice(value.as_bytes());
        dst.extend_from_slice(b"\r\n");
    }
    close_line(dst, &mut open, must_write_chunked);
    if !wrote_len {
        framing = match body {
            Some(BodyLength::Unknown) if chunkable => {
                dst.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            Some(BodyLength::Unknown) => Framing::Close,
            None | Some(BodyLength::Known(0)) => {
                if can_have_length(method, status) && *method != Method::HEAD {
                    dst.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            Some(BodyLength::Known(n)) => {
                if can_have_length(method, status) {
                    dst.extend_from_slice(b"content-length: ");
                    crate::headers::push_decimal(dst, n);
                    dst.extend_from_slice(b"\r\n");
                    Framing::Length(n)
                } else {
                    Framing::Length(0)
                }
            }
        };
    }
    if !can_chunk(method, status) {
        framing = Framing::Length(0);
    }
    if wrote_date {
        dst.extend_from_slice(b"\r\n");
    } else {
        dst.extend_from_slice(b"date: ");
        dst.extend_from_slice(date);
        dst.extend_from_slice(b"\r\n\r\n");
    }
    Ok(Encoder { framing, last })
}

/// hyper's `can_chunked` (and `can_have_body`): no body for a HEAD, a 1xx, a 204 or a 304.
fn can_chunk(method: &Method, status: StatusCode) -> bool {
    !(*method == Method::HEAD
        || (*method == Method::CONNECT && status.is_success())
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// hyper's `can_have_content_length`.
fn can_have_length(method: &Method, status: StatusCode) -> bool {
    !(status.is_informational()
        || (*method == Method::CONNECT && status.is_success())
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// hyper's `is_chunked_`: `chunked` is the last coding.
fn is_chunked(v: &HeaderValue) -> bool {
    v.to_str()
        .ok()
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|e| e.trim().eq_ignore_ascii_case("chunked"))
}

/// hyper's `connection_close`.
fn connection_close(v: &HeaderValue) -> bool {
    v.to_str()
        .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
