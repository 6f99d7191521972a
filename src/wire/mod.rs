//! The HTTP/1.1 client on the wire, which the upstream pool (`upstream/pool.rs`) sends every
//! request through: the request head and body framing and the response head (`head`), the
//! chunked body decoder (`chunked`), and one connection driven in its request's own task
//! (`conn`). It replaced hyper's client connection (a task and a channel per connection, a
//! `HeaderMap` re-encoded): the rules are hyper 1's, held against hyper by
//! `tests/wire_vs_hyper.rs` and fuzzed by `fuzz/fuzz_targets/response.rs`.
//!
//! It knows no pool, no proxy and no router type: a connection goes back to whatever
//! [`conn::Home`] its response names.

pub mod chunked;
pub mod conn;
pub mod head;

pub use conn::{Conn, ExchangeError, Home, Io, Outgoing, Wire, exchange};
pub use head::{BodyFraming, Framing, Length, ResponseHead, WireError};

use bytes::BytesMut;
use http::{HeaderMap, Method};

/// One whole response read from `bytes` (their end is the connection's end): its head, its
/// body's data and its trailers. The connection's reading without the connection, for the
/// fuzz target and the tests.
pub fn read_response(
    method: &Method,
    bytes: &[u8],
) -> Result<(ResponseHead, Vec<u8>, Option<HeaderMap>), WireError> {
    let mut buf = BytesMut::from(bytes);
    let head = head::parse_response(&mut buf, method, 64 * 1024)?.ok_or(WireError::Incomplete)?;
    let mut data = Vec::new();
    let mut trailers = None;
    match head.body {
        BodyFraming::Length(n) => {
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if buf.len() < n {
                return Err(WireError::Incomplete);
            }
            data.extend_from_slice(&buf[..n]);
        }
        BodyFraming::Close => data.extend_from_slice(&buf),
        BodyFraming::Chunked => {
            let mut decoder = chunked::Chunked::default();
            loop {
                match decoder.decode(&mut buf)? {
                    chunked::Step::Data(d) => data.extend_from_slice(&d),
                    chunked::Step::Trailers(t) => trailers = Some(t),
                    chunked::Step::End => break,
                    chunked::Step::More => return Err(WireError::Incomplete),
                }
            }
        }
    }
    Ok((head, data, trailers))
}
