//! Pure: HPACK (RFC 7541) for the HTTP/2 server's answers: a stateless encoder. Every field
//! is a literal that is never added to a table (so the client's table is never used and no
//! size update is ever owed), with the name by its static index where there is one, and raw
//! strings (no Huffman): cheaper to write than a table lookup, a few bytes more on the wire.

use bytes::{BufMut, BytesMut};
use http::{HeaderName, HeaderValue};

/// First byte of a literal without indexing (§6.2.2), before its 4-bit name index.
const WITHOUT_INDEXING: u8 = 0x00;
/// First byte of a literal never indexed (§6.2.3), before its 4-bit name index.
const NEVER_INDEXED: u8 = 0x10;
/// The static table index of the first `:status` entry, used as the name of other statuses.
const STATUS_NAME_INDEX: usize = 8;

/// Response encoder: stateless, never touches a dynamic table (so it never needs to send a
/// size update and the peer's table is never used), no Huffman.
pub struct Encoder;

impl Encoder {
    /// `:status`: an indexed field for 200, 204, 206, 304, 400, 404, 500 (static table
    /// entries 8-14), else a literal without indexing with name index 8 and the decimal digits
    /// (three for any valid status).
    pub fn status(dst: &mut BytesMut, status: u16) {
        let index = match status {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => {
                put_integer(dst, WITHOUT_INDEXING, 4, STATUS_NAME_INDEX);
                put_decimal(dst, status);
                return;
            }
        };
        dst.put_u8(0x80 | index);
    }

    /// One header: literal without indexing (§6.2.2: 0000xxxx, 4-bit-prefix name index), or
    /// never indexed (§6.2.3: 0001xxxx) when the value is sensitive; the name by its static
    /// table index when the static table has that name, else as a literal string. Strings are
    /// raw (H bit 0).
    pub fn header(dst: &mut BytesMut, name: &HeaderName, value: &HeaderValue) {
        let first = if value.is_sensitive() {
            NEVER_INDEXED
        } else {
            WITHOUT_INDEXING
        };
        let name = name.as_str();
        // Room for the whole field in the common case: 3 prefix bytes each side at most.
        dst.reserve(name.len() + value.len() + 6);
        match static_name_index(name.as_bytes()) {
            Some(index) => put_integer(dst, first, 4, index),
            None => {
                dst.put_u8(first);
                put_string(dst, name.as_bytes());
            }
        }
        put_string(dst, value.as_bytes());
    }
}

/// Request encoder for the client to peer routers (`upstream/h2`): stateless like [`Encoder`].
pub struct RequestEncoder;

impl RequestEncoder {
    /// `:method`: indexed for GET (2) and POST (3), else a literal with name index 2.
    pub fn method(dst: &mut BytesMut, method: &[u8]) {
        match method {
            b"GET" => dst.put_u8(0x80 | 2),
            b"POST" => dst.put_u8(0x80 | 3),
            _ => {
                put_integer(dst, WITHOUT_INDEXING, 4, 2);
                put_string(dst, method);
            }
        }
    }

    /// `:scheme`: indexed, `http` (6) or `https` (7).
    pub fn scheme(dst: &mut BytesMut, https: bool) {
        dst.put_u8(0x80 | if https { 7 } else { 6 });
    }

    /// `:path`: indexed for `/` (4), else a literal with name index 4.
    pub fn path(dst: &mut BytesMut, path: &[u8]) {
        if path == b"/" {
            dst.put_u8(0x80 | 4);
        } else {
            put_integer(dst, WITHOUT_INDEXING, 4, 4);
            put_string(dst, path);
        }
    }

    /// `:authority`: a literal with name index 1.
    pub fn authority(dst: &mut BytesMut, authority: &[u8]) {
        put_integer(dst, WITHOUT_INDEXING, 4, 1);
        put_string(dst, authority);
    }

    /// A regular field from its bytes (the name already lowercase): a literal without
    /// indexing, the name by its static index where there is one.
    pub fn header(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
        dst.reserve(name.len() + value.len() + 6);
        match static_name_index(name) {
            Some(index) => put_integer(dst, WITHOUT_INDEXING, 4, index),
            None => {
                dst.put_u8(WITHOUT_INDEXING);
                put_string(dst, name);
            }
        }
        put_string(dst, value);
    }
}

/// Writes `value` as an integer (§5.1) with a `prefix_bits` prefix below the bits `first`.
pub(crate) fn put_integer(dst: &mut BytesMut, first: u8, prefix_bits: u32, value: usize) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        dst.put_u8(first | value as u8);
        return;
    }
    dst.put_u8(first | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 0x80 {
        dst.put_u8(0x80 | (rest & 0x7f) as u8);
        rest >>= 7;
    }
    dst.put_u8(rest as u8);
}

/// Writes a raw string literal (§5.2, H bit 0).
fn put_string(dst: &mut BytesMut, bytes: &[u8]) {
    put_integer(dst, 0, 7, bytes.len());
    dst.extend_from_slice(bytes);
}

/// Writes `n` in decimal as a raw string literal, without leading zeros.
fn put_decimal(dst: &mut BytesMut, n: u16) {
    let digits = [n / 10000, n / 1000 % 10, n / 100 % 10, n / 10 % 10, n % 10];
    let leading_zeros = digits.iter().take(4).take_while(|&&d| d == 0).count();
    let digits = digits.get(leading_zeros..).unwrap_or_default();
    put_integer(dst, 0, 7, digits.len());
    for &digit in digits {
        dst.put_u8(b'0' + digit as u8);
    }
}

/// The static table index of the first entry named `name`, if any (for regular names; the
/// pseudo-headers are not looked up). Matches on the length first, then the bytes.
fn static_name_index(name: &[u8]) -> Option<usize> {
    let index = match name.len() {
        3 => match name {
            b"age" => 21,
            b"via" => 60,
            _ => return None,
        },
        4 => match name {
            b"date" => 33,
            b"etag" => 34,
            b"from" => 37,
            b"host" => 38,
            b"link" => 45,
            b"vary" => 59,
            _ => return None,
        },
        5 => match name {
            b"allow" => 22,
            b"range" => 50,
            _ => return None,
        },
        6 => match name {
            b"accept" => 19,
            b"cookie" => 32,
            b"expect" => 35,
            b"server" => 54,
            _ => return None,
        },
        7 => match name {
            b"expires" => 36,
            b"referer" => 51,
            b"refresh" => 52,
            _ => return None,
        },
        8 => match name {
            b"if-match" => 39,
            b"if-range" => 42,
            b"location" => 46,
            _ => return None,
        },
        10 => match name {
            b"set-cookie" => 55,
            b"user-agent" => 58,
            _ => return None,
        },
        11 => match name {
            b"retry-after" => 53,
            _ => return None,
        },
        12 => match name {
            b"content-type" => 31,
            b"max-forwards" => 47,
            _ => return None,
        },
        13 => match name {
            b"accept-ranges" => 18,
            b"authorization" => 23,
            b"cache-control" => 24,
            b"content-range" => 30,
            b"if-none-match" => 41,
            b"last-modified" => 44,
            _ => return None,
        },
        14 => match name {
            b"accept-charset" => 15,
            b"content-length" => 28,
            _ => return None,
        },
        15 => match name {
            b"accept-encoding" => 16,
            b"accept-language" => 17,
            _ => return None,
        },
        16 => match name {
            b"content-encoding" => 26,
            b"content-language" => 27,
            b"content-location" => 29,
            b"www-authenticate" => 61,
            _ => return None,
        },
        17 => match name {
            b"if-modified-since" => 40,
            b"transfer-encoding" => 57,
            _ => return None,
        },
        18 => match name {
            b"proxy-authenticate" => 48,
            _ => return None,
        },
        19 => match name {
            b"content-disposition" => 25,
            b"if-unmodified-since" => 43,
            b"proxy-authorization" => 49,
            _ => return None,
        },
        25 => match name {
            b"strict-transport-security" => 56,
            _ => return None,
        },
        27 => match name {
            b"access-control-allow-origin" => 20,
            _ => return None,
        },
        _ => return None,
    };
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::hpack::tests::{
        RFC_STATIC, assert_table, decode_block, fields, hex, raw_literal,
    };
    use crate::h2::hpack::{Decoder, Field};

    #[test]
    fn static_name_index_finds_first_entry_with_the_name() {
        for (name, _) in RFC_STATIC {
            let expected = if name.starts_with(':') {
                None
            } else {
                RFC_STATIC
                    .iter()
                    .position(|(n, _)| *n == name)
                    .map(|i| i + 1)
            };
            assert_eq!(static_name_index(name.as_bytes()), expected, "{name}");
        }
        for name in ["", "x-foo", "ages", "content-typ", "content-typf", "Date"] {
            assert_eq!(static_name_index(name.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn encodes_indexed_statuses() {
        for (status, byte) in [
            (200, 0x88),
            (204, 0x89),
            (206, 0x8a),
            (304, 0x8b),
            (400, 0x8c),
            (404, 0x8d),
            (500, 0x8e),
        ] {
            let mut dst = BytesMut::new();
            Encoder::status(&mut dst, status);
            assert_eq!(&dst[..], &[byte]);
            let mut decoder = Decoder::new(4096);
            assert_eq!(
                decode_block(&mut decoder, &dst),
                Ok(fields(&[(":status", &status.to_string())]))
            );
        }
    }

    #[test]
    fn encodes_other_statuses_as_literals() {
        let mut dst = BytesMut::new();
        Encoder::status(&mut dst, 302);
        assert_eq!(&dst[..], &[0x08, 0x03, b'3', b'0', b'2']);
        for status in [100, 101, 201, 302, 418, 503, 599, 999] {
            let mut dst = BytesMut::new();
            Encoder::status(&mut dst, status);
            let mut decoder = Decoder::new(4096);
            assert_eq!(
                decode_block(&mut decoder, &dst),
                Ok(fields(&[(":status", &status.to_string())]))
            );
        }
        // Out-of-range numbers still come out as their digits.
        for (status, digits) in [(0, "0"), (42, "42"), (1000, "1000"), (65535, "65535")] {
            let mut dst = BytesMut::new();
            Encoder::status(&mut dst, status);
            let expected = [&[0x08, digits.len() as u8][..], digits.as_bytes()].concat();
            assert_eq!(&dst[..], &expected[..]);
        }
    }

    #[test]
    fn encodes_headers() {
        let mut dst = BytesMut::new();
        let value = HeaderValue::from_static("text/html");
        Encoder::header(&mut dst, &http::header::CONTENT_TYPE, &value);
        // Name index 31 = 15 + 16.
        assert_eq!(&dst[..], &hex("0f10 0974 6578 742f 6874 6d6c")[..]);

        let mut dst = BytesMut::new();
        let name = HeaderName::from_static("x-custom");
        Encoder::header(&mut dst, &name, &HeaderValue::from_static("v"));
        assert_eq!(&dst[..], &raw_literal(b"x-custom", b"v")[..]);

        let mut dst = BytesMut::new();
        Encoder::header(&mut dst, &http::header::AGE, &HeaderValue::from_static("0"));
        assert_eq!(&dst[..], &[0x0f, 0x06, 0x01, b'0']);

        let mut dst = BytesMut::new();
        let mut secret = HeaderValue::from_static("s");
        secret.set_sensitive(true);
        Encoder::header(&mut dst, &http::header::SET_COOKIE, &secret);
        // Never indexed, name index 55 = 15 + 40.
        assert_eq!(&dst[..], &[0x1f, 0x28, 0x01, b's']);
    }

    #[test]
    fn encoder_round_trip() {
        let mut sensitive = HeaderValue::from_static("token=abc");
        sensitive.set_sensitive(true);
        let long = HeaderValue::from_str(&"v".repeat(300)).unwrap();
        let headers = [
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                http::header::CONTENT_LENGTH,
                HeaderValue::from_static("1234"),
            ),
            (
                http::header::DATE,
                HeaderValue::from_static("Mon, 21 Oct 2013 20:13:21 GMT"),
            ),
            (http::header::SERVER, HeaderValue::from_static("coopr")),
            (http::header::SET_COOKIE, sensitive),
            (
                http::header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=1"),
            ),
            (
                HeaderName::from_static("x-request-id"),
                HeaderValue::from_static("42"),
            ),
            (HeaderName::from_static("x-long"), long),
            (http::header::VARY, HeaderValue::from_static("")),
        ];
        let mut dst = BytesMut::new();
        Encoder::status(&mut dst, 404);
        Encoder::status(&mut dst, 302);
        for (name, value) in &headers {
            Encoder::header(&mut dst, name, value);
        }
        let mut decoder = Decoder::new(4096);
        let decoded = decode_block(&mut decoder, &dst).unwrap();
        let mut expected = fields(&[(":status", "404"), (":status", "302")]);
        expected.extend(
            headers
                .iter()
                .map(|(n, v)| Field::Header(n.clone(), v.clone())),
        );
        assert_eq!(decoded, expected);
        for (field, (_, value)) in decoded[2..].iter().zip(&headers) {
            let Field::Header(_, decoded) = field else {
                panic!("not a header: {field:?}");
            };
            assert_eq!(decoded.is_sensitive(), value.is_sensitive());
        }
        assert_table(&decoder, &[], 0);
    }
}
