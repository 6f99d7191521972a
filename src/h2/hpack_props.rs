//! The HPACK decoder's property tests: random header lists sent through a test-only encoder
//! that uses every representation, Huffman and size updates, over a sequence of blocks (so the
//! dynamic table fills and evicts), must decode to what was sent; arbitrary and damaged blocks
//! must give an answer, never a panic.

use super::tests::{RFC_STATIC, decode_block, field};
use super::*;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::VecDeque;

/// How the test encoder sends one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Representation {
    /// Indexed if the table has the field, else with incremental indexing.
    Indexed,
    Incremental,
    WithoutIndexing,
    NeverIndexed,
}

/// One field to send and how.
#[derive(Debug, Clone)]
struct Send {
    field: Index,
    representation: Representation,
    name_by_index: bool,
    huffman_name: bool,
    huffman_value: bool,
}

/// A test-only HPACK encoder keeping its own mirror of the dynamic table.
struct TestEncoder {
    table: VecDeque<(String, String)>,
    size: usize,
    max_size: usize,
}

impl TestEncoder {
    fn new() -> TestEncoder {
        TestEncoder {
            table: VecDeque::new(),
            size: 0,
            max_size: 4096,
        }
    }

    fn integer(dst: &mut Vec<u8>, first: u8, prefix_bits: u32, value: usize) {
        let max = (1 << prefix_bits) - 1;
        if value < max {
            dst.push(first | value as u8);
        } else {
            dst.push(first | max as u8);
            let mut rest = value - max;
            while rest >= 128 {
                dst.push(0x80 | (rest % 128) as u8);
                rest /= 128;
            }
            dst.push(rest as u8);
        }
    }

    fn string(dst: &mut Vec<u8>, s: &str, huffman: bool) {
        if huffman {
            let mut coded = Vec::new();
            super::huffman::tests::encode(s.as_bytes(), &mut coded);
            Self::integer(dst, 0x80, 7, coded.len());
            dst.extend_from_slice(&coded);
        } else {
            Self::integer(dst, 0x00, 7, s.len());
            dst.extend_from_slice(s.as_bytes());
        }
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let (name, value) = self.table.pop_back().unwrap();
            self.size -= name.len() + value.len() + 32;
        }
    }

    fn size_update(&mut self, dst: &mut Vec<u8>, size: usize) {
        Self::integer(dst, 0x20, 5, size);
        self.max_size = size;
        self.evict_to(size);
    }

    fn insert(&mut self, name: &str, value: &str) {
        let size = name.len() + value.len() + 32;
        if size > self.max_size {
            self.table.clear();
            self.size = 0;
        } else {
            self.evict_to(self.max_size - size);
            self.table.push_front((name.to_owned(), value.to_owned()));
            self.size += size;
        }
    }

    /// The 1-based index of an entry with this name (and value, if given).
    fn find(&self, name: &str, value: Option<&str>) -> Option<usize> {
        let matches = |n: &str, v: &str| n == name && value.is_none_or(|value| v == value);
        RFC_STATIC
            .iter()
            .position(|&(n, v)| matches(n, v))
            .or_else(|| {
                let i = self.table.iter().position(|(n, v)| matches(n, v))?;
                Some(i + RFC_STATIC.len())
            })
            .map(|i| i + 1)
    }

    /// Encodes one field; returns whether it went as never indexed.
    fn field(&mut self, dst: &mut Vec<u8>, name: &str, value: &str, send: &Send) -> bool {
        let mut representation = send.representation;
        if representation == Representation::Indexed {
            match self.find(name, Some(value)) {
                Some(index) => {
                    Self::integer(dst, 0x80, 7, index);
                    return false;
                }
                None => representation = Representation::Incremental,
            }
        }
        let (first, prefix_bits) = match representation {
            Representation::WithoutIndexing => (0x00, 4),
            Representation::NeverIndexed => (0x10, 4),
            _ => (0x40, 6),
        };
        let name_index = if send.name_by_index {
            self.find(name, None)
        } else {
            None
        };
        match name_index {
            Some(index) => Self::integer(dst, first, prefix_bits, index),
            None => {
                dst.push(first);
                Self::string(dst, name, send.huffman_name);
            }
        }
        Self::string(dst, value, send.huffman_value);
        if first == 0x40 {
            self.insert(name, value);
        }
        representation == Representation::NeverIndexed
    }
}

fn name_strategy() -> impl Strategy<Value = String> {
    let mut known: Vec<String> = RFC_STATIC.iter().map(|(n, _)| n.to_string()).collect();
    known.push(":protocol".to_owned());
    prop_oneof![
        proptest::sample::select(known),
        "[a-z0-9!#$%&'*+.^_`|~-]{1,16}",
    ]
}

fn value_strategy() -> impl Strategy<Value = String> {
    let known: Vec<String> = RFC_STATIC.iter().map(|(_, v)| v.to_string()).collect();
    prop_oneof![proptest::sample::select(known), "[!-~]([ -~]{0,40}[!-~])?",]
}

fn send_strategy() -> impl Strategy<Value = Send> {
    let representation = prop_oneof![
        Just(Representation::Indexed),
        Just(Representation::Incremental),
        Just(Representation::WithoutIndexing),
        Just(Representation::NeverIndexed),
    ];
    (
        any::<Index>(),
        representation,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(field, representation, name_by_index, huffman_name, huffman_value)| Send {
                field,
                representation,
                name_by_index,
                huffman_name,
                huffman_value,
            },
        )
}

/// Distinct (name, value) pairs that the blocks pick their fields from.
type Pool = Vec<(String, String)>;
/// Blocks to send: an optional size update, then fields from the pool.
type Blocks = Vec<(Option<usize>, Vec<Send>)>;

/// A pool and blocks over it; small size updates make eviction happen.
fn blocks_strategy() -> impl Strategy<Value = (Pool, Blocks)> {
    let pool = proptest::collection::vec((name_strategy(), value_strategy()), 1..10);
    let block = (
        proptest::option::weighted(0.3, 0usize..=400),
        proptest::collection::vec(send_strategy(), 0..12),
    );
    (pool, proptest::collection::vec(block, 1..8))
}

/// One block from the test encoder, with what decoding it must give.
struct Encoded {
    block: Vec<u8>,
    /// The fields, each with whether it went as never indexed.
    fields: Vec<(Field, bool)>,
    /// The encoder's dynamic table after the block, newest first, and its size.
    table: Vec<Field>,
    table_size: usize,
}

/// Encodes the blocks in sequence with one test encoder.
fn encode_blocks(pool: &[(String, String)], blocks: &Blocks) -> Vec<Encoded> {
    let mut encoder = TestEncoder::new();
    let mut out = Vec::new();
    for (update, sends) in blocks {
        let mut block = Vec::new();
        let mut fields = Vec::new();
        if let Some(size) = update {
            encoder.size_update(&mut block, *size);
        }
        for send in sends {
            let (name, value) = send.field.get(pool);
            let never = encoder.field(&mut block, name, value, send);
            fields.push((field(name, value), never));
        }
        out.push(Encoded {
            block,
            fields,
            table: encoder.table.iter().map(|(n, v)| field(n, v)).collect(),
            table_size: encoder.size,
        });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trips_through_test_encoder((pool, blocks) in blocks_strategy()) {
        let mut decoder = Decoder::new(4096);
        for encoded in encode_blocks(&pool, &blocks) {
            let decoded = decode_block(&mut decoder, &encoded.block);
            let expected: Vec<Field> = encoded.fields.iter().map(|(f, _)| f.clone()).collect();
            prop_assert_eq!(decoded.as_ref(), Ok(&expected));
            for (field, (_, never)) in decoded.unwrap().iter().zip(&encoded.fields) {
                if let Field::Header(_, value) = field {
                    prop_assert_eq!(value.is_sensitive(), *never);
                }
            }
            let table: Vec<Field> = decoder.table.iter().cloned().collect();
            prop_assert_eq!(table, encoded.table);
            prop_assert_eq!(decoder.size, encoded.table_size);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..4),
        max in 0usize..5000,
    ) {
        let mut decoder = Decoder::new(max);
        for block in &blocks {
            let mut count = 0;
            let _ = decoder.decode(block, |_| count += 1);
            prop_assert!(count <= block.len());
            prop_assert_eq!(decoder.size, decoder.table.iter().map(Field::size).sum::<usize>());
            prop_assert!(decoder.size <= decoder.max_size);
        }
    }

    #[test]
    fn mutated_blocks_never_panic(
        (pool, blocks) in blocks_strategy(),
        mutations in proptest::collection::vec((any::<Index>(), any::<u8>()), 1..4),
        cut in any::<Index>(),
    ) {
        let mut decoder = Decoder::new(4096);
        for Encoded { mut block, .. } in encode_blocks(&pool, &blocks) {
            if block.is_empty() {
                continue;
            }
            for (at, byte) in &mutations {
                let i = at.index(block.len());
                block[i] = *byte;
            }
            block.truncate(cut.index(block.len() + 1));
            let _ = decoder.decode(&block, |_| {});
            prop_assert_eq!(decoder.size, decoder.table.iter().map(Field::size).sum::<usize>());
            prop_assert!(decoder.size <= decoder.max_size);
        }
    }
}
