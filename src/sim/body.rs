//! The response body type: either a complete buffer or a deterministic byte stream generated
//! chunk by chunk (plugin resource downloads and `/v2/sim/blob`), plus the FNV-1a 64 checksum
//! used for uploads.
//!
//! **Byte pattern:** byte `i` (0-based offset in the stream) is `(i % 251) as u8`. See
//! [`blob_byte`].

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Size of each generated chunk.
const CHUNK: u64 = 64 * 1024;

/// Byte `i` of every generated stream: `(i % 251) as u8`.
pub fn blob_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// FNV-1a 64 over `data`, continuing from `hash` (start with [`FNV_OFFSET`]).
pub fn fnv1a64(mut hash: u64, data: &[u8]) -> u64 {
    for &b in data {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

/// The FNV-1a 64 offset basis.
pub(crate) const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

/// A simulator response body.
pub(crate) enum SimBody {
    /// A buffered body, taken on the first poll.
    Full(Option<Bytes>),
    /// `len - pos` more bytes of the pattern, starting at offset `pos`.
    Pattern { pos: u64, len: u64 },
}

impl SimBody {
    pub(crate) fn full(data: impl Into<Bytes>) -> SimBody {
        let data = data.into();
        if data.is_empty() {
            SimBody::Full(None)
        } else {
            SimBody::Full(Some(data))
        }
    }

    pub(crate) fn pattern(len: u64) -> SimBody {
        SimBody::Pattern { pos: 0, len }
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            SimBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            SimBody::Pattern { pos, len } => {
                if *pos >= *len {
                    return Poll::Ready(None);
                }
                let n = (*len - *pos).min(CHUNK);
                let chunk: Vec<u8> = (*pos..*pos + n).map(blob_byte).collect();
                *pos += n;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(data) => data.is_none(),
            SimBody::Pattern { pos, len } => pos >= len,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            SimBody::Pattern { pos, len } => SizeHint::with_exact(len.saturating_sub(*pos)),
        }
    }
}
