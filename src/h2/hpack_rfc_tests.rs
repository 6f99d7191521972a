//! RFC 7541's examples, Appendix C, decoded: integers (C.1), each literal representation
//! (C.2), three requests without and with Huffman on one decoder (C.3, C.4) and three responses
//! with a 256-byte table (C.5, C.6), checking the fields and the dynamic table after each; and
//! the static table against Appendix A.

use super::tests::{RFC_STATIC, assert_table, decode_block, field, fields, hex};
use super::*;
use crate::h2::encoder::put_integer;
use bytes::BytesMut;

#[test]
fn static_table_matches_rfc() {
    for (i, (name, value)) in RFC_STATIC.iter().enumerate() {
        assert_eq!(STATIC_TABLE[i], field(name, value), "entry {}", i + 1);
        assert_eq!(STATIC_TABLE[i].size(), name.len() + value.len() + 32);
    }
}

#[test]
fn rfc_c1_integers() {
    // C.1.1 (with the 3 bits above the prefix set), C.1.2, C.1.3.
    let cases: [(&[u8], u32, usize); 3] = [
        (&[0xea], 5, 10),
        (&[0x1f, 0x9a, 0x0a], 5, 1337),
        (&[0x2a], 8, 42),
    ];
    for (bytes, prefix, value) in cases {
        let mut reader = Reader { rest: bytes };
        assert_eq!(reader.integer(prefix), Ok(value));
        assert!(reader.rest.is_empty());
        let mut out = BytesMut::new();
        put_integer(
            &mut out,
            bytes[0] & (0xff_u16 << prefix) as u8,
            prefix,
            value,
        );
        assert_eq!(&out[..], bytes);
    }
}

#[test]
fn rfc_c2_1_literal_with_indexing() {
    let mut decoder = Decoder::new(4096);
    let block = hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");
    let expected = [("custom-key", "custom-header")];
    assert_eq!(decode_block(&mut decoder, &block), Ok(fields(&expected)));
    assert_table(&decoder, &expected, 55);
}

#[test]
fn rfc_c2_2_literal_without_indexing() {
    let mut decoder = Decoder::new(4096);
    let block = hex("040c 2f73 616d 706c 652f 7061 7468");
    let decoded = decode_block(&mut decoder, &block);
    assert_eq!(decoded, Ok(fields(&[(":path", "/sample/path")])));
    assert_table(&decoder, &[], 0);
}

#[test]
fn rfc_c2_3_literal_never_indexed() {
    let mut decoder = Decoder::new(4096);
    let block = hex("1008 7061 7373 776f 7264 0673 6563 7265 74");
    let decoded = decode_block(&mut decoder, &block).unwrap();
    assert_eq!(decoded, fields(&[("password", "secret")]));
    assert!(matches!(&decoded[0], Field::Header(_, value) if value.is_sensitive()));
    assert_table(&decoder, &[], 0);
}

#[test]
fn rfc_c2_4_indexed() {
    let mut decoder = Decoder::new(4096);
    let decoded = decode_block(&mut decoder, &[0x82]);
    assert_eq!(decoded, Ok(fields(&[(":method", "GET")])));
    assert_table(&decoder, &[], 0);
}

/// Decodes the three requests of C.3 / C.4 with one decoder, checking the table after each.
fn check_rfc_requests(blocks: [&str; 3]) {
    let mut decoder = Decoder::new(4096);
    let authority = (":authority", "www.example.com");
    let no_cache = ("cache-control", "no-cache");
    let custom = ("custom-key", "custom-value");

    let first = [
        (":method", "GET"),
        (":scheme", "http"),
        (":path", "/"),
        authority,
    ];
    let decoded = decode_block(&mut decoder, &hex(blocks[0]));
    assert_eq!(decoded, Ok(fields(&first)));
    assert_table(&decoder, &[authority], 57);

    let second = [first[0], first[1], first[2], authority, no_cache];
    let decoded = decode_block(&mut decoder, &hex(blocks[1]));
    assert_eq!(decoded, Ok(fields(&second)));
    assert_table(&decoder, &[no_cache, authority], 110);

    let third = [
        (":method", "GET"),
        (":scheme", "https"),
        (":path", "/index.html"),
        authority,
        custom,
    ];
    let decoded = decode_block(&mut decoder, &hex(blocks[2]));
    assert_eq!(decoded, Ok(fields(&third)));
    assert_table(&decoder, &[custom, no_cache, authority], 164);
}

#[test]
fn rfc_c3_requests_without_huffman() {
    check_rfc_requests([
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]);
}

#[test]
fn rfc_c4_requests_with_huffman() {
    check_rfc_requests([
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]);
}

/// Decodes the three responses of C.5 / C.6 with one decoder whose table max is 256.
fn check_rfc_responses(blocks: [&str; 3]) {
    let mut decoder = Decoder::new(256);
    // A block holding only a size update to 256 (31 + 97 + 1 * 128).
    assert_eq!(decode_block(&mut decoder, &[0x3f, 0xe1, 0x01]), Ok(vec![]));
    assert_eq!(decoder.max_size, 256);

    let private = ("cache-control", "private");
    let date_21 = ("date", "Mon, 21 Oct 2013 20:13:21 GMT");
    let date_22 = ("date", "Mon, 21 Oct 2013 20:13:22 GMT");
    let location = ("location", "https://www.example.com");
    let gzip = ("content-encoding", "gzip");
    let cookie = (
        "set-cookie",
        "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1",
    );

    let decoded = decode_block(&mut decoder, &hex(blocks[0]));
    let first = [(":status", "302"), private, date_21, location];
    assert_eq!(decoded, Ok(fields(&first)));
    assert_table(
        &decoder,
        &[location, date_21, private, (":status", "302")],
        222,
    );

    let decoded = decode_block(&mut decoder, &hex(blocks[1]));
    let second = [(":status", "307"), private, date_21, location];
    assert_eq!(decoded, Ok(fields(&second)));
    assert_table(
        &decoder,
        &[(":status", "307"), location, date_21, private],
        222,
    );

    let decoded = decode_block(&mut decoder, &hex(blocks[2]));
    let third = [(":status", "200"), private, date_22, location, gzip, cookie];
    assert_eq!(decoded, Ok(fields(&third)));
    assert_table(&decoder, &[cookie, gzip, date_22], 215);
}

#[test]
fn rfc_c5_responses_without_huffman() {
    check_rfc_responses([
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31",
    ]);
}

#[test]
fn rfc_c6_responses_with_huffman() {
    check_rfc_responses([
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]);
}
