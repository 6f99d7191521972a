//! The Huffman code's tests: the code is complete and canonical, RFC 7541's examples decode,
//! every byte round-trips, and bad padding or EOS is refused; and the test-only encoder the
//! HPACK tests use.

use super::*;

/// Test-only Huffman encoder (RFC 7541 §5.2): codes MSB first, padded with the high bits
/// of EOS (1s).
pub(crate) fn encode(src: &[u8], dst: &mut Vec<u8>) {
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for &byte in src {
        let (code, len) = CODES[usize::from(byte)];
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            dst.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        dst.push(((acc << (8 - bits)) | (0xff >> bits)) as u8);
    }
}

fn decoded(src: &[u8]) -> Result<Vec<u8>, InvalidHuffman> {
    let mut out = Vec::new();
    decode(src, &mut out).map(|()| out)
}

#[test]
fn code_is_complete_and_canonical() {
    // Kraft sum is exactly 1: sum of 2^(30 - len) == 2^30.
    let kraft: u64 = CODES.iter().map(|&(_, len)| 1u64 << (30 - len)).sum();
    assert_eq!(kraft, 1 << 30);
    // Canonical: sorted by (length, symbol), each code is the previous + 1, shifted.
    let mut order: Vec<usize> = (0..257).collect();
    order.sort_by_key(|&s| (CODES[s].1, s));
    let mut expected = 0u32;
    let mut prev_len = CODES[order[0]].1;
    for (k, &s) in order.iter().enumerate() {
        let (code, len) = CODES[s];
        if k > 0 {
            expected = (expected + 1) << (len - prev_len);
        }
        assert_eq!(code, expected, "symbol {s}");
        prev_len = len;
    }
    assert_eq!(CODES[EOS], (0x3fff_ffff, 30));
    assert_eq!(CODES[usize::from(b'a')], (0x3, 5));
    assert_eq!(CODES[usize::from(b' ')], (0x14, 6));
}

#[test]
fn tree_has_256_full_internal_nodes() {
    let tree = CodeTree::new();
    assert_eq!(tree.nodes.len(), 256);
    for node in &tree.nodes {
        assert!(!node.children.contains(&Child::Empty));
    }
}

#[test]
fn decodes_rfc_examples() {
    let cases: [(&[u8], &[u8]); 6] = [
        (
            &[
                0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
            ],
            b"www.example.com",
        ),
        (&[0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf], b"no-cache"),
        (
            &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xa9, 0x7d, 0x7f],
            b"custom-key",
        ),
        (
            &[0x25, 0xa8, 0x49, 0xe9, 0x5b, 0xb8, 0xe8, 0xb4, 0xbf],
            b"custom-value",
        ),
        (&[0x64, 0x02], b"302"),
        (&[0xae, 0xc3, 0x77, 0x1a, 0x4b], b"private"),
    ];
    for (src, want) in cases {
        assert_eq!(decoded(src).as_deref(), Ok(want));
    }
}

#[test]
fn round_trips_every_byte() {
    let all: Vec<u8> = (0..=255).collect();
    let mut enc = Vec::new();
    encode(&all, &mut enc);
    assert_eq!(decoded(&enc), Ok(all));
    for byte in 0..=255u8 {
        let mut enc = Vec::new();
        encode(&[byte], &mut enc);
        assert_eq!(decoded(&enc), Ok(vec![byte]), "byte {byte}");
    }
}

#[test]
fn empty_string_is_empty() {
    assert_eq!(decoded(&[]), Ok(Vec::new()));
}

#[test]
fn rejects_eos_in_string() {
    // 'a' (00011) + EOS (30 ones) + 5 bits of padding: 35 + 5 = 40 bits.
    assert_eq!(
        decoded(&[0x1f, 0xff, 0xff, 0xff, 0xff]),
        Err(InvalidHuffman)
    );
    // EOS alone, padded with two 1s.
    assert_eq!(decoded(&[0xff, 0xff, 0xff, 0xff]), Err(InvalidHuffman));
}

#[test]
fn rejects_padding_of_8_bits_or_more() {
    assert_eq!(decoded(&[0x1f]), Ok(b"a".to_vec()));
    assert_eq!(decoded(&[0x1f, 0xff]), Err(InvalidHuffman));
    assert_eq!(decoded(&[0xff]), Err(InvalidHuffman));
    // "aa" + 6 bits of 1s is fine; the same plus a full 0xff byte is not.
    assert_eq!(decoded(&[0x18, 0xff]), Ok(b"aa".to_vec()));
    assert_eq!(decoded(&[0x18, 0xff, 0xff]), Err(InvalidHuffman));
}

#[test]
fn rejects_padding_that_is_not_ones() {
    // 'a' (00011) then padding 110 / 000.
    assert_eq!(decoded(&[0x1e]), Err(InvalidHuffman));
    assert_eq!(decoded(&[0x18]), Err(InvalidHuffman));
}
