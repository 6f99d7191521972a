//! The HPACK decoder's tests: each error, size updates and eviction, RFC 9113's field rules;
//! and the helpers the other HPACK tests share (RFC 7541's static table as typed from the RFC,
//! hex blocks, expected fields). RFC 7541's own examples are in `hpack_rfc_tests.rs`.

use super::*;
use crate::h2::encoder::put_integer;
use bytes::BytesMut;

/// RFC 7541 Appendix A, typed from the RFC (index = position + 1).
pub(crate) const RFC_STATIC: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Bytes from hex digits, whitespace ignored.
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Decodes one block, collecting its fields.
pub(crate) fn decode_block(decoder: &mut Decoder, block: &[u8]) -> Result<Vec<Field>, HpackError> {
    let mut fields = Vec::new();
    decoder.decode(block, |field| fields.push(field))?;
    Ok(fields)
}

/// The field for a valid name and value, built without `Field::parse`.
pub(crate) fn field(name: &str, value: &str) -> Field {
    let bytes = Bytes::copy_from_slice(value.as_bytes());
    match name {
        ":method" => Field::Method(bytes),
        ":scheme" => Field::Scheme(bytes),
        ":authority" => Field::Authority(bytes),
        ":path" => Field::Path(bytes),
        ":protocol" => Field::Protocol(bytes),
        ":status" => Field::Status(bytes),
        _ => Field::Header(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value.as_bytes()).unwrap(),
        ),
    }
}

pub(crate) fn fields(list: &[(&str, &str)]) -> Vec<Field> {
    list.iter()
        .map(|(name, value)| field(name, value))
        .collect()
}

pub(crate) fn bad(name: &str, value_len: usize) -> Field {
    Field::Bad {
        name: Bytes::copy_from_slice(name.as_bytes()),
        value_len,
    }
}

/// Checks the dynamic table's entries (newest first) and size.
pub(crate) fn assert_table(decoder: &Decoder, entries: &[(&str, &str)], size: usize) {
    let table: Vec<Field> = decoder.table.iter().cloned().collect();
    assert_eq!(table, fields(entries));
    assert_eq!(decoder.size, size);
    assert_eq!(decoder.table.iter().map(Field::size).sum::<usize>(), size);
}

/// A literal without indexing with a raw literal name and value.
pub(crate) fn raw_literal(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut block = vec![0x00, name.len() as u8];
    block.extend_from_slice(name);
    block.push(value.len() as u8);
    block.extend_from_slice(value);
    block
}

#[test]
fn integer_limits() {
    // 127 + (2^28 - 1): four continuation bytes is the most accepted.
    let mut reader = Reader {
        rest: &[0xff, 0xff, 0xff, 0xff, 0x7f],
    };
    assert_eq!(reader.integer(7), Ok(127 + (1 << 28) - 1));
    let mut reader = Reader {
        rest: &[0xff, 0x80, 0x80, 0x80, 0x80, 0x00],
    };
    assert_eq!(reader.integer(7), Err(HpackError::IntegerOverflow));
    let mut out = BytesMut::new();
    put_integer(&mut out, 0x80, 7, 127 + (1 << 28) - 1);
    assert_eq!(&out[..], &[0xff, 0xff, 0xff, 0xff, 0x7f]);
}

#[test]
fn initial_table_max_is_4096_whatever_the_limit() {
    let decoder = Decoder::new(65536);
    assert_eq!(decoder.max_size, 4096);
    let mut decoder = Decoder::new(256);
    assert_eq!(decoder.max_size, 4096);
    assert_eq!(
        decode_block(&mut decoder, &[0x3f, 0xe2, 0x01]),
        Err(HpackError::TableSizeTooLarge(257))
    );
}

#[test]
fn rejects_index_zero() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode_block(&mut decoder, &[0x80]),
        Err(HpackError::BadIndex(0))
    );
}

#[test]
fn rejects_index_past_the_tables() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode_block(&mut decoder, &[0xbd]),
        Ok(fields(&[("www-authenticate", "")]))
    );
    assert_eq!(
        decode_block(&mut decoder, &[0xbe]),
        Err(HpackError::BadIndex(62))
    );
    // A literal naming entry 63 with one dynamic entry.
    let mut decoder = Decoder::new(4096);
    decode_block(&mut decoder, &hex("4001 6101 62")).unwrap();
    assert_eq!(
        decode_block(&mut decoder, &[0xbe]),
        Ok(fields(&[("a", "b")]))
    );
    assert_eq!(
        decode_block(&mut decoder, &[0x7f, 0x00, 0x00]),
        Err(HpackError::BadIndex(63))
    );
}

#[test]
fn rejects_truncated_integers() {
    for block in [&[0xff][..], &[0xff, 0x80], &[0x3f], &[0x0f, 0xff]] {
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decode_block(&mut decoder, block),
            Err(HpackError::Truncated),
            "{block:x?}"
        );
    }
}

#[test]
fn rejects_truncated_strings() {
    let blocks: [&[u8]; 5] = [
        &[0x40],
        &[0x40, 0x05, b'a', b'b'],
        &[0x40, 0x01, b'a'],
        &[0x40, 0x01, b'a', 0x02, b'b'],
        &[0x04, 0x7f, 0x01, b'/'],
    ];
    for block in blocks {
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decode_block(&mut decoder, block),
            Err(HpackError::Truncated),
            "{block:x?}"
        );
    }
}

#[test]
fn rejects_overflowing_integer() {
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode_block(&mut decoder, &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        Err(HpackError::IntegerOverflow)
    );
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode_block(
            &mut decoder,
            &[0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]
        ),
        Err(HpackError::IntegerOverflow)
    );
}

#[test]
fn rejects_bad_huffman() {
    let cases: [&[u8]; 4] = [
        // EOS inside the value.
        &[0x84, 0xff, 0xff, 0xff, 0xff],
        // 'a' then 8 bits of padding.
        &[0x82, 0x1f, 0xff],
        // 'a' then padding 110.
        &[0x81, 0x1e],
        // 'a' then padding 000.
        &[0x81, 0x18],
    ];
    for value in cases {
        let mut block = vec![0x00, 0x01, b'a'];
        block.extend_from_slice(value);
        let mut decoder = Decoder::new(4096);
        assert_eq!(
            decode_block(&mut decoder, &block),
            Err(HpackError::Huffman),
            "{value:x?}"
        );
    }
    // The same in a name.
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode_block(&mut decoder, &[0x00, 0x81, 0x1e, 0x00]),
        Err(HpackError::Huffman)
    );
    // And a good one: 'a' with 3 bits of 1s.
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode_block(&mut decoder, &[0x00, 0x81, 0x1f, 0x81, 0x1f]),
        Ok(fields(&[("a", "a")]))
    );
}

#[test]
fn size_update_limits() {
    let mut decoder = Decoder::new(4096);
    // 4097 = 31 + 98 + 31 * 128.
    assert_eq!(
        decode_block(&mut decoder, &[0x3f, 0xe2, 0x1f]),
        Err(HpackError::TableSizeTooLarge(4097))
    );
    let mut decoder = Decoder::new(4096);
    // Two updates (0, then 4096) before a field are fine.
    assert_eq!(
        decode_block(&mut decoder, &[0x20, 0x3f, 0xe1, 0x1f, 0x82]),
        Ok(fields(&[(":method", "GET")]))
    );
    assert_eq!(
        decode_block(&mut decoder, &[0x82, 0x20]),
        Err(HpackError::TableSizeUpdateNotFirst)
    );
    let mut decoder = Decoder::new(4096);
    assert_eq!(
        decode_block(&mut decoder, &[0x82, 0x3f, 0xe1, 0x1f, 0x82]),
        Err(HpackError::TableSizeUpdateNotFirst)
    );
}

#[test]
fn size_update_evicts() {
    let mut decoder = Decoder::new(4096);
    let first = hex("4001 6101 62 4001 6301 64");
    decode_block(&mut decoder, &first).unwrap();
    assert_table(&decoder, &[("c", "d"), ("a", "b")], 68);
    // Down to 40: only the newest stays.
    decode_block(&mut decoder, &[0x3f, 0x09]).unwrap();
    assert_table(&decoder, &[("c", "d")], 34);
    // Down to 0: empty; entry 62 is gone.
    assert_eq!(
        decode_block(&mut decoder, &[0x20, 0xbe]),
        Err(HpackError::BadIndex(62))
    );
    assert_table(&decoder, &[], 0);
}

#[test]
fn insertion_evicts_and_oversized_field_empties_the_table() {
    let mut decoder = Decoder::new(4096);
    // Max 70: two 34-byte entries fit, a third evicts the oldest.
    decode_block(&mut decoder, &hex("3f27 4001 6101 62 4001 6301 64")).unwrap();
    assert_table(&decoder, &[("c", "d"), ("a", "b")], 68);
    decode_block(&mut decoder, &hex("4001 6501 66")).unwrap();
    assert_table(&decoder, &[("e", "f"), ("c", "d")], 68);
    // A 71-byte field: emitted, table emptied, nothing inserted.
    let mut block = vec![0x40, 0x01, b'x', 0x26];
    block.extend_from_slice(&[b'y'; 38]);
    let decoded = decode_block(&mut decoder, &block).unwrap();
    assert_eq!(decoded, fields(&[("x", &"y".repeat(38))]));
    assert_table(&decoder, &[], 0);
}

#[test]
fn uppercase_name_is_bad_and_decoding_goes_on() {
    let mut decoder = Decoder::new(4096);
    let block = hex("4003 466f 6f01 78 82");
    assert_eq!(
        decode_block(&mut decoder, &block),
        Ok(vec![bad("Foo", 1), field(":method", "GET")])
    );
    // The bad field is in the table with its raw size.
    assert_eq!(decoder.table.len(), 1);
    assert_eq!(decoder.size, 36);
    assert_eq!(decode_block(&mut decoder, &[0xbe]), Ok(vec![bad("Foo", 1)]));
}

#[test]
fn name_of_bad_entry_gives_good_field_with_good_value() {
    let mut decoder = Decoder::new(4096);
    // "foo: a\r" is bad for its value, inserted; then name 62 with "b" is fine.
    let block = hex("4003 666f 6f02 610d 7e01 62");
    assert_eq!(
        decode_block(&mut decoder, &block),
        Ok(vec![bad("foo", 2), field("foo", "b")])
    );
    assert_eq!(decoder.size, 37 + 36);
}

#[test]
fn unknown_pseudo_header_is_bad() {
    let mut decoder = Decoder::new(4096);
    let block = [raw_literal(b":foo", b"x"), vec![0x84]].concat();
    assert_eq!(
        decode_block(&mut decoder, &block),
        Ok(vec![bad(":foo", 1), field(":path", "/")])
    );
}

#[test]
fn invalid_values_are_bad() {
    for value in [
        &b"a\rb"[..],
        b"a\nb",
        b"a\0b",
        b" a",
        b"a ",
        b"\ta",
        b"a\t",
        b"\x01",
    ] {
        let mut decoder = Decoder::new(4096);
        let block = raw_literal(b"x-a", value);
        assert_eq!(
            decode_block(&mut decoder, &block),
            Ok(vec![bad("x-a", value.len())]),
            "{value:x?}"
        );
        // A pseudo-header's value by name index (:path, 4).
        let block = [vec![0x04, value.len() as u8], value.to_vec()].concat();
        let decoded = decode_block(&mut decoder, &block);
        if value == b"\x01" {
            assert_eq!(decoded, Ok(vec![Field::Path(Bytes::from_static(b"\x01"))]));
        } else {
            assert_eq!(decoded, Ok(vec![bad(":path", value.len())]), "{value:x?}");
        }
    }
    // Inner whitespace and obs-text are fine.
    let mut decoder = Decoder::new(4096);
    let block = raw_literal(b"x-a", b"a \tb\xff");
    let decoded = decode_block(&mut decoder, &block).unwrap();
    assert!(matches!(&decoded[..], [Field::Header(_, v)] if v.as_bytes() == b"a \tb\xff"));
}

#[test]
fn invalid_names_are_bad() {
    for name in [
        &b""[..],
        b"a:b",
        b"a b",
        b"\"a\"",
        b"a\x7f",
        b"\xc3\xa9",
        b"a\0",
    ] {
        let mut decoder = Decoder::new(4096);
        let block = raw_literal(name, b"v");
        assert_eq!(
            decode_block(&mut decoder, &block),
            Ok(vec![Field::Bad {
                name: Bytes::copy_from_slice(name),
                value_len: 1,
            }]),
            "{name:x?}"
        );
    }
    let mut decoder = Decoder::new(4096);
    let block = raw_literal(b"x-!#$%&'*+-.^_`|~09", b"v");
    assert_eq!(
        decode_block(&mut decoder, &block),
        Ok(fields(&[("x-!#$%&'*+-.^_`|~09", "v")]))
    );
}

#[test]
fn pseudo_headers_by_literal_name() {
    let mut decoder = Decoder::new(4096);
    let block = [
        raw_literal(b":method", b"CONNECT"),
        raw_literal(b":protocol", b"websocket"),
        raw_literal(b":scheme", b"https"),
        raw_literal(b":authority", b"a.example"),
        raw_literal(b":path", b"/chat"),
        raw_literal(b":status", b"200"),
    ]
    .concat();
    let expected = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":authority", "a.example"),
        (":path", "/chat"),
        (":status", "200"),
    ];
    assert_eq!(decode_block(&mut decoder, &block), Ok(fields(&expected)));
    for field in fields(&expected) {
        let (name, value) = expected[fields(&expected).iter().position(|f| *f == field).unwrap()];
        assert_eq!(field.size(), name.len() + value.len() + 32);
    }
}
