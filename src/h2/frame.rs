//! Pure: HTTP/2 frames on the wire (RFC 9113 §4 and §6). The nine-octet frame header read
//! from a buffer, the error codes, the settings a peer sends, and the frames the server
//! writes, appended to an output buffer. No state: what a frame means for a stream or the
//! connection is `conn.rs`'s.

use bytes::{BufMut, BytesMut};

/// The connection preface a client opens with (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The frame header's length.
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value, and the largest frame this server accepts.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;
/// The largest a flow-control window may be (RFC 9113 §6.9.1).
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// SETTINGS_INITIAL_WINDOW_SIZE's initial value.
pub const DEFAULT_WINDOW: i64 = 65_535;

/// Frame types (RFC 9113 §6).
pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// Error codes (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Reason = Reason(0x0);
    pub const PROTOCOL_ERROR: Reason = Reason(0x1);
    pub const INTERNAL_ERROR: Reason = Reason(0x2);
    pub const FLOW_CONTROL_ERROR: Reason = Reason(0x3);
    pub const STREAM_CLOSED: Reason = Reason(0x5);
    pub const FRAME_SIZE_ERROR: Reason = Reason(0x6);
    pub const REFUSED_STREAM: Reason = Reason(0x7);
    pub const CANCEL: Reason = Reason(0x8);
    pub const COMPRESSION_ERROR: Reason = Reason(0x9);
    pub const ENHANCE_YOUR_CALM: Reason = Reason(0xb);
}

/// A frame's nine-octet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: usize,
    pub kind: u8,
    pub flags: u8,
    /// The stream, without the reserved bit.
    pub stream: u32,
}

impl Head {
    /// The header at the start of `buf`, if all nine octets are there.
    pub fn parse(buf: &[u8]) -> Option<Head> {
        let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Head {
            len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// A big-endian u32 at `at` of `p` (the caller checked the length), without the reserved bit.
pub fn u31(p: &[u8], at: usize) -> u32 {
    match p.get(at..at + 4) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7fff_ffff,
        None => 0,
    }
}

/// A padded frame's payload without its padding (RFC 9113 §6.1): `None` when the padding is
/// as long as the payload or longer (a connection error, PROTOCOL_ERROR).
pub fn unpad(head: &Head, payload: &[u8]) -> Option<std::ops::Range<usize>> {
    if !head.has(flag::PADDED) {
        return Some(0..payload.len());
    }
    let pad = usize::from(*payload.first()?);
    let end = payload.len().checked_sub(pad)?;
    (end >= 1).then_some(1..end)
}

/// The settings a peer sent (RFC 9113 §6.5.2), each as it last set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSettings {
    pub initial_window: i64,
    pub max_frame: u32,
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            initial_window: DEFAULT_WINDOW,
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

/// Applies one SETTINGS payload: the new settings, or the connection error it is.
pub fn apply_settings(mut s: PeerSettings, payload: &[u8]) -> Result<PeerSettings, Reason> {
    if !payload.len().is_multiple_of(6) {
        return Err(Reason::FRAME_SIZE_ERROR);
    }
    for p in payload.chunks_exact(6) {
        let id = u16::from_be_bytes([p[0], p[1]]);
        let v = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
        match id {
            // ENABLE_PUSH: a server may only be told 0 or 1.
            0x2 if v > 1 => return Err(Reason::PROTOCOL_ERROR),
            0x4 if i64::from(v) > MAX_WINDOW => return Err(Reason::FLOW_CONTROL_ERROR),
            0x4 => s.initial_window = i64::from(v),
            0x5 if !(DEFAULT_MAX_FRAME..=(1 << 24) - 1).contains(&v) => {
                return Err(Reason::PROTOCOL_ERROR);
            }
            0x5 => s.max_frame = v,
            // HEADER_TABLE_SIZE (the encoder never indexes), MAX_CONCURRENT_STREAMS (the
            // server opens none), MAX_HEADER_LIST_SIZE (advisory) and unknown ones.
            _ => {}
        }
    }
    Ok(s)
}

/// Appends a frame header.
pub fn put_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = len.min((1 << 24) - 1) as u32;
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// The server's SETTINGS: the most streams, the initial stream window and the header list
/// limit it holds clients to.
pub fn put_settings(out: &mut BytesMut, max_streams: u32, window: u32, max_header_list: u32) {
    put_head(out, 18, kind::SETTINGS, 0, 0);
    for (id, v) in [(0x3u16, max_streams), (0x4, window), (0x6, max_header_list)] {
        out.put_u16(id);
        out.put_u32(v);
    }
}

pub fn put_settings_ack(out: &mut BytesMut) {
    put_head(out, 0, kind::SETTINGS, flag::ACK, 0);
}

pub fn put_ping(out: &mut BytesMut, ack: bool, data: &[u8; 8]) {
    put_head(out, 8, kind::PING, if ack { flag::ACK } else { 0 }, 0);
    out.put_slice(data);
}

pub fn put_goaway(out: &mut BytesMut, last_stream: u32, reason: Reason) {
    put_head(out, 8, kind::GOAWAY, 0, 0);
    out.put_u32(last_stream);
    out.put_u32(reason.0);
}

pub fn put_rst(out: &mut BytesMut, stream: u32, reason: Reason) {
    put_head(out, 4, kind::RST_STREAM, 0, stream);
    out.put_u32(reason.0);
}

pub fn put_window_update(out: &mut BytesMut, stream: u32, increment: u32) {
    put_head(out, 4, kind::WINDOW_UPDATE, 0, stream);
    out.put_u32(increment);
}

/// A header block as HEADERS and as many CONTINUATION frames as `max_frame` asks.
pub fn put_headers(
    out: &mut BytesMut,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: u32,
) {
    let max = (max_frame as usize).max(1);
    let mut chunks = block.chunks(max);
    let first = chunks.next().unwrap_or(&[]);
    let end = if end_stream { flag::END_STREAM } else { 0 };
    let last = block.len() <= max;
    let flags = end | if last { flag::END_HEADERS } else { 0 };
    put_head(out, first.len(), kind::HEADERS, flags, stream);
    out.put_slice(first);
    let rest: Vec<&[u8]> = chunks.collect();
    let n = rest.len();
    for (i, c) in rest.into_iter().enumerate() {
        let flags = if i + 1 == n { flag::END_HEADERS } else { 0 };
        put_head(out, c.len(), kind::CONTINUATION, flags, stream);
        out.put_slice(c);
    }
}

/// One DATA frame (the caller keeps it within the peer's frame size and windows).
pub fn put_data(out: &mut BytesMut, stream: u32, data: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    put_head(out, data.len(), kind::DATA, flags, stream);
    out.put_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reads_back_as_written_without_the_reserved_bit() {
        let mut out = BytesMut::new();
        put_head(&mut out, 0x01_0203, kind::HEADERS, flag::END_HEADERS, 7);
        assert_eq!(&out[..], &[1, 2, 3, 1, 4, 0, 0, 0, 7]);
        let h = Head::parse(&out).unwrap();
        assert_eq!(
            h,
            Head {
                len: 0x01_0203,
                kind: kind::HEADERS,
                flags: flag::END_HEADERS,
                stream: 7
            }
        );
        let mut reserved = out.to_vec();
        reserved[5] |= 0x80;
        assert_eq!(Head::parse(&reserved).unwrap().stream, 7);
        assert_eq!(Head::parse(&out[..8]), None);
    }

    #[test]
    fn padding_by_table() {
        let padded = Head {
            len: 0,
            kind: kind::DATA,
            flags: flag::PADDED,
            stream: 1,
        };
        let plain = Head { flags: 0, ..padded };
        assert_eq!(unpad(&plain, b"abc"), Some(0..3));
        assert_eq!(unpad(&padded, &[2, b'a', 0, 0]), Some(1..2));
        assert_eq!(unpad(&padded, &[0, b'a']), Some(1..2));
        assert_eq!(unpad(&padded, &[0]), Some(1..1));
        // Padding as long as the rest of the payload, or longer: an error.
        assert_eq!(unpad(&padded, &[1, 0]), Some(1..1));
        assert_eq!(unpad(&padded, &[2, 0]), None);
        assert_eq!(unpad(&padded, &[]), None);
    }

    #[test]
    fn settings_by_table() {
        let s = PeerSettings::default();
        let one = |id: u16, v: u32| {
            let mut p = id.to_be_bytes().to_vec();
            p.extend_from_slice(&v.to_be_bytes());
            apply_settings(s, &p)
        };
        assert_eq!(one(0x4, 1).unwrap().initial_window, 1);
        assert_eq!(one(0x4, 1 << 31), Err(Reason::FLOW_CONTROL_ERROR));
        assert_eq!(one(0x5, 16_383), Err(Reason::PROTOCOL_ERROR));
        assert_eq!(one(0x5, 1 << 24), Err(Reason::PROTOCOL_ERROR));
        assert_eq!(one(0x5, (1 << 24) - 1).unwrap().max_frame, (1 << 24) - 1);
        assert_eq!(one(0x2, 2), Err(Reason::PROTOCOL_ERROR));
        assert_eq!(one(0x2, 1), Ok(s));
        assert_eq!(one(0x99, 7), Ok(s), "unknown settings are ignored");
        assert_eq!(apply_settings(s, &[0; 5]), Err(Reason::FRAME_SIZE_ERROR));
    }

    #[test]
    fn a_long_header_block_goes_on_in_continuations() {
        let block: Vec<u8> = (0..40u8).collect();
        let mut out = BytesMut::new();
        put_headers(&mut out, 3, &block, true, 16);
        let mut at = 0;
        let mut seen = Vec::new();
        let mut frames = Vec::new();
        while let Some(h) = Head::parse(&out[at..]) {
            seen.extend_from_slice(&out[at + HEADER_LEN..at + HEADER_LEN + h.len]);
            frames.push((h.kind, h.flags));
            at += HEADER_LEN + h.len;
        }
        assert_eq!(seen, block);
        assert_eq!(
            frames,
            vec![
                (kind::HEADERS, flag::END_STREAM),
                (kind::CONTINUATION, 0),
                (kind::CONTINUATION, flag::END_HEADERS)
            ]
        );
        let mut out = BytesMut::new();
        put_headers(&mut out, 3, &block[..16], false, 16);
        assert_eq!(Head::parse(&out).unwrap().flags, flag::END_HEADERS);
    }
}
