//! Pure: HPACK (RFC 7541) for the HTTP/2 server's requests: the header block decoder
//! (integers, strings, the static table, the dynamic table and its size updates), which hands
//! out fields already parsed and checked against RFC 9113 §8.2 (`Field`). Huffman decoding is
//! `huffman.rs`'s; answers are encoded by `encoder.rs`.

use std::collections::VecDeque;
use std::fmt;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

use super::huffman;

/// What RFC 7541 §4.1 adds to a field's name and value lengths to count its size.
const ENTRY_OVERHEAD: usize = 32;

/// The dynamic table's maximum size until the peer's encoder signals another one: the default
/// SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
const DEFAULT_TABLE_SIZE: usize = 4096;

/// Continuation bytes an integer may have (7 bits each): more would exceed 2^28, far beyond
/// any real index, length or table size, and is rejected as an overflow.
const MAX_INTEGER_CONTINUATIONS: u32 = 4;

const METHOD: &[u8] = b":method";
const SCHEME: &[u8] = b":scheme";
const AUTHORITY: &[u8] = b":authority";
const PATH: &[u8] = b":path";
const PROTOCOL: &[u8] = b":protocol";
const STATUS: &[u8] = b":status";

/// One decoded header field, parsed once: what the dynamic table stores, so a field sent again
/// by index costs a clone (Bytes / HeaderName / HeaderValue are refcounted), not a parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// `:method`
    Method(Bytes),
    /// `:scheme`
    Scheme(Bytes),
    /// `:authority`
    Authority(Bytes),
    /// `:path`
    Path(Bytes),
    /// `:protocol`
    Protocol(Bytes),
    /// `:status` (a request carrying it is malformed; the caller decides)
    Status(Bytes),
    /// A regular field. Its value is marked sensitive if it came as a never-indexed literal.
    Header(HeaderName, HeaderValue),
    /// A field a request may not carry: an unknown pseudo-header, a name with an uppercase
    /// letter or a byte not allowed in a name, an empty name, a value with NUL, CR or LF (or
    /// leading/trailing whitespace, RFC 9113 §8.2.1). Decoding goes on (the table must stay in
    /// step with the peer's); the caller answers the stream with an error.
    Bad {
        /// The raw name, kept so that a later literal naming this entry by index is parsed
        /// with its own value (the name may be fine and only this value bad).
        name: Bytes,
        /// The raw value's length, for the entry's size.
        value_len: usize,
    },
}

impl Field {
    /// Its size as RFC 7541 §4.1 counts it: name length + value length + 32 (for `Bad`, the
    /// raw name and value lengths it was decoded from).
    pub fn size(&self) -> usize {
        let (name_len, value_len) = match self {
            Field::Method(value) => (METHOD.len(), value.len()),
            Field::Scheme(value) => (SCHEME.len(), value.len()),
            Field::Authority(value) => (AUTHORITY.len(), value.len()),
            Field::Path(value) => (PATH.len(), value.len()),
            Field::Protocol(value) => (PROTOCOL.len(), value.len()),
            Field::Status(value) => (STATUS.len(), value.len()),
            Field::Header(name, value) => (name.as_str().len(), value.len()),
            Field::Bad { name, value_len } => (name.len(), *value_len),
        };
        name_len
            .saturating_add(value_len)
            .saturating_add(ENTRY_OVERHEAD)
    }

    /// Builds the field for a literal name and value, checking both (RFC 9113 §8.2).
    fn parse(name: &[u8], value: Bytes) -> Field {
        match name {
            METHOD => Field::pseudo(Field::Method, METHOD, value),
            SCHEME => Field::pseudo(Field::Scheme, SCHEME, value),
            AUTHORITY => Field::pseudo(Field::Authority, AUTHORITY, value),
            PATH => Field::pseudo(Field::Path, PATH, value),
            PROTOCOL => Field::pseudo(Field::Protocol, PROTOCOL, value),
            STATUS => Field::pseudo(Field::Status, STATUS, value),
            // Any other name, `:foo` included (a colon is not a name character).
            _ => match regular_name(name) {
                Some(name) => Field::header(name, value),
                None => Field::bad(name, value.len()),
            },
        }
    }

    /// The field with this one's name and a new `value` (a literal naming an entry by index).
    fn with_value(&self, value: Bytes) -> Field {
        match self {
            Field::Method(_) => Field::pseudo(Field::Method, METHOD, value),
            Field::Scheme(_) => Field::pseudo(Field::Scheme, SCHEME, value),
            Field::Authority(_) => Field::pseudo(Field::Authority, AUTHORITY, value),
            Field::Path(_) => Field::pseudo(Field::Path, PATH, value),
            Field::Protocol(_) => Field::pseudo(Field::Protocol, PROTOCOL, value),
            Field::Status(_) => Field::pseudo(Field::Status, STATUS, value),
            Field::Header(name, _) => Field::header(name.clone(), value),
            Field::Bad { name, .. } => Field::parse(name, value),
        }
    }

    /// A pseudo-header built by `variant` if `value` is allowed, else `Bad`.
    fn pseudo(variant: fn(Bytes) -> Field, name: &'static [u8], value: Bytes) -> Field {
        if value_is_valid(&value) {
            variant(value)
        } else {
            Field::Bad {
                name: Bytes::from_static(name),
                value_len: value.len(),
            }
        }
    }

    /// A regular field if `value` is allowed, else `Bad`.
    fn header(name: HeaderName, value: Bytes) -> Field {
        let value_len = value.len();
        // `HeaderValue` rejects NUL, CR and LF (and the other controls but tab); the edges are
        // ours to check.
        let value = Some(value)
            .filter(|value| value_edges_are_valid(value))
            .and_then(|value| HeaderValue::from_maybe_shared(value).ok());
        match value {
            Some(value) => Field::Header(name, value),
            None => Field::bad(name.as_str().as_bytes(), value_len),
        }
    }

    /// A `Bad` field, copying its name.
    fn bad(name: &[u8], value_len: usize) -> Field {
        Field::Bad {
            name: Bytes::copy_from_slice(name),
            value_len,
        }
    }

    /// The field as received in a never-indexed literal (RFC 7541 §6.2.3): a regular value is
    /// marked sensitive, so that a re-encoder keeps it out of its table too.
    fn into_sensitive(self) -> Field {
        match self {
            Field::Header(name, mut value) => {
                value.set_sensitive(true);
                Field::Header(name, value)
            }
            other => other,
        }
    }
}

/// The name as a `HeaderName` if it is a valid regular name: non-empty, lowercase token
/// characters only (RFC 9110 §5.1, RFC 9113 §8.2.1).
fn regular_name(name: &[u8]) -> Option<HeaderName> {
    if name.iter().all(|&byte| is_lowercase_token_char(byte)) {
        // Rejects the empty name (and an over-long one).
        HeaderName::from_lowercase(name).ok()
    } else {
        None
    }
}

/// Whether `byte` is a `tchar` (RFC 9110 §5.6.2) other than an uppercase letter.
fn is_lowercase_token_char(byte: u8) -> bool {
    matches!(byte,
        b'a'..=b'z' | b'0'..=b'9'
        | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// Whether a field value is allowed by RFC 9113 §8.2.1: no NUL, CR or LF, and no whitespace
/// at either end.
fn value_is_valid(value: &[u8]) -> bool {
    value_edges_are_valid(value) && !value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'))
}

/// Whether a field value neither starts nor ends with a space or a tab (RFC 9113 §8.2.1).
fn value_edges_are_valid(value: &[u8]) -> bool {
    let is_space = |byte: Option<&u8>| matches!(byte, Some(b' ' | b'\t'));
    !is_space(value.first()) && !is_space(value.last())
}

/// The static table (RFC 7541 Appendix A), entry `i` at `STATIC_TABLE[i - 1]`, pre-parsed.
static STATIC_TABLE: [Field; 61] = [
    Field::Authority(Bytes::new()),
    Field::Method(Bytes::from_static(b"GET")),
    Field::Method(Bytes::from_static(b"POST")),
    Field::Path(Bytes::from_static(b"/")),
    Field::Path(Bytes::from_static(b"/index.html")),
    Field::Scheme(Bytes::from_static(b"http")),
    Field::Scheme(Bytes::from_static(b"https")),
    Field::Status(Bytes::from_static(b"200")),
    Field::Status(Bytes::from_static(b"204")),
    Field::Status(Bytes::from_static(b"206")),
    Field::Status(Bytes::from_static(b"304")),
    Field::Status(Bytes::from_static(b"400")),
    Field::Status(Bytes::from_static(b"404")),
    Field::Status(Bytes::from_static(b"500")),
    static_header("accept-charset", ""),
    static_header("accept-encoding", "gzip, deflate"),
    static_header("accept-language", ""),
    static_header("accept-ranges", ""),
    static_header("accept", ""),
    static_header("access-control-allow-origin", ""),
    static_header("age", ""),
    static_header("allow", ""),
    static_header("authorization", ""),
    static_header("cache-control", ""),
    static_header("content-disposition", ""),
    static_header("content-encoding", ""),
    static_header("content-language", ""),
    static_header("content-length", ""),
    static_header("content-location", ""),
    static_header("content-range", ""),
    static_header("content-type", ""),
    static_header("cookie", ""),
    static_header("date", ""),
    static_header("etag", ""),
    static_header("expect", ""),
    static_header("expires", ""),
    static_header("from", ""),
    static_header("host", ""),
    static_header("if-match", ""),
    static_header("if-modified-since", ""),
    static_header("if-none-match", ""),
    static_header("if-range", ""),
    static_header("if-unmodified-since", ""),
    static_header("last-modified", ""),
    static_header("link", ""),
    static_header("location", ""),
    static_header("max-forwards", ""),
    static_header("proxy-authenticate", ""),
    static_header("proxy-authorization", ""),
    static_header("range", ""),
    static_header("referer", ""),
    static_header("refresh", ""),
    static_header("retry-after", ""),
    static_header("server", ""),
    static_header("set-cookie", ""),
    static_header("strict-transport-security", ""),
    static_header("transfer-encoding", ""),
    static_header("user-agent", ""),
    static_header("vary", ""),
    static_header("via", ""),
    static_header("www-authenticate", ""),
];

/// A regular static table entry, built at compile time (the names and values are constants).
const fn static_header(name: &'static str, value: &'static str) -> Field {
    Field::Header(
        HeaderName::from_static(name),
        HeaderValue::from_static(value),
    )
}

/// A decoding error. Any of them is a connection error COMPRESSION_ERROR (RFC 9113 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HpackError {
    /// The block ended inside an integer or a string.
    Truncated,
    /// An integer too large to be meaningful (more than 2^28).
    IntegerOverflow,
    /// An index of 0, or past the end of the static and dynamic tables.
    BadIndex(usize),
    /// A Huffman-coded string with EOS or bad padding.
    Huffman,
    /// A dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE.
    TableSizeTooLarge(usize),
    /// A dynamic table size update after the first field of a block (RFC 7541 §4.2).
    TableSizeUpdateNotFirst,
}

impl fmt::Display for HpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HpackError::Truncated => f.write_str("header block truncated"),
            HpackError::IntegerOverflow => f.write_str("integer overflow in header block"),
            HpackError::BadIndex(index) => write!(f, "invalid header table index {index}"),
            HpackError::Huffman => f.write_str("invalid Huffman-coded string"),
            HpackError::TableSizeTooLarge(size) => {
                write!(f, "dynamic table size update to {size} exceeds the limit")
            }
            HpackError::TableSizeUpdateNotFirst => {
                f.write_str("dynamic table size update after a header field")
            }
        }
    }
}

impl std::error::Error for HpackError {}

impl From<huffman::InvalidHuffman> for HpackError {
    fn from(_: huffman::InvalidHuffman) -> HpackError {
        HpackError::Huffman
    }
}

/// A string literal (RFC 7541 §5.2) as found in the block, not yet decoded.
#[derive(Debug, Clone, Copy)]
struct Literal<'a> {
    bytes: &'a [u8],
    huffman: bool,
}

/// Reads the primitives of a header block from its front.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The next byte, not consumed.
    fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next `len` bytes.
    fn take(&mut self, len: usize) -> Result<&'a [u8], HpackError> {
        if len > self.rest.len() {
            return Err(HpackError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// The next byte.
    fn byte(&mut self) -> Result<u8, HpackError> {
        let (&byte, rest) = self.rest.split_first().ok_or(HpackError::Truncated)?;
        self.rest = rest;
        Ok(byte)
    }

    /// An integer (RFC 7541 §5.1) whose first byte holds it in its low `prefix_bits` bits
    /// (1 to 8); the bits above are the caller's.
    fn integer(&mut self, prefix_bits: u32) -> Result<usize, HpackError> {
        let max_prefix = (1usize << prefix_bits) - 1;
        let mut value = usize::from(self.byte()?) & max_prefix;
        if value < max_prefix {
            return Ok(value);
        }
        for continuation in 0..MAX_INTEGER_CONTINUATIONS {
            let byte = self.byte()?;
            value += usize::from(byte & 0x7f) << (7 * continuation);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(HpackError::IntegerOverflow)
    }

    /// A string literal (RFC 7541 §5.2): H bit, 7-bit-prefix length, bytes.
    fn literal(&mut self) -> Result<Literal<'a>, HpackError> {
        let huffman = self.peek().is_some_and(|byte| byte & 0x80 != 0);
        let len = self.integer(7)?;
        let bytes = self.take(len)?;
        Ok(Literal { bytes, huffman })
    }
}

/// A literal's bytes, Huffman-decoded into `scratch` if need be.
fn decode_name<'s>(name: Literal<'s>, scratch: &'s mut Vec<u8>) -> Result<&'s [u8], HpackError> {
    if name.huffman {
        scratch.clear();
        huffman::decode(name.bytes, scratch)?;
        Ok(scratch)
    } else {
        Ok(name.bytes)
    }
}

/// A literal's bytes as a new `Bytes`, Huffman-decoded if need be.
fn decode_value(value: Literal<'_>) -> Result<Bytes, HpackError> {
    if value.huffman {
        let mut decoded = Vec::new();
        huffman::decode(value.bytes, &mut decoded)?;
        Ok(Bytes::from(decoded))
    } else {
        Ok(Bytes::copy_from_slice(value.bytes))
    }
}

/// The request header decoder: one per connection, holding the dynamic table.
pub struct Decoder {
    /// The dynamic table, newest entry at the front (index 62).
    table: VecDeque<Field>,
    /// The sum of the entries' sizes.
    size: usize,
    /// The table's maximum size, as last set by the peer (4096 until it says otherwise).
    max_size: usize,
    /// The most a size update may ask for: our SETTINGS_HEADER_TABLE_SIZE.
    allowed_max_size: usize,
    /// Where Huffman-coded names are decoded, reused across fields.
    scratch: Vec<u8>,
}

impl Decoder {
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE this side advertised (4096 by default):
    /// the most a dynamic table size update may ask for.
    ///
    /// The table starts at the protocol's default maximum, 4096, which the peer's encoder uses
    /// until it sends a size update.
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: VecDeque::new(),
            size: 0,
            max_size: DEFAULT_TABLE_SIZE,
            allowed_max_size: max_table_size,
            scratch: Vec::new(),
        }
    }

    /// Decodes one whole header block (HEADERS + CONTINUATION payloads already joined), calling
    /// `emit` for each field in order. Dynamic table size updates are allowed only before the
    /// first field of a block (RFC 7541 §4.2) and only up to `max_table_size`; anything else is
    /// an error. Stops at the first error; any error is a connection error COMPRESSION_ERROR for
    /// the caller.
    pub fn decode(&mut self, block: &[u8], mut emit: impl FnMut(Field)) -> Result<(), HpackError> {
        let mut reader = Reader { rest: block };
        let mut first_field = true;
        while let Some(first) = reader.peek() {
            if first & 0xe0 == 0x20 {
                // 001xxxxx: dynamic table size update (§6.3).
                if !first_field {
                    return Err(HpackError::TableSizeUpdateNotFirst);
                }
                let size = reader.integer(5)?;
                self.set_max_size(size)?;
            } else {
                first_field = false;
                emit(self.field(&mut reader, first)?);
            }
        }
        Ok(())
    }

    /// Decodes one field representation, starting with the byte `first`.
    fn field(&mut self, reader: &mut Reader<'_>, first: u8) -> Result<Field, HpackError> {
        if first & 0x80 != 0 {
            // 1xxxxxxx: indexed (§6.1).
            let index = reader.integer(7)?;
            self.entry(index).cloned()
        } else if first & 0x40 != 0 {
            // 01xxxxxx: literal with incremental indexing (§6.2.1).
            let field = self.literal(reader, 6)?;
            self.insert(field.clone());
            Ok(field)
        } else if first & 0x10 != 0 {
            // 0001xxxx: literal never indexed (§6.2.3).
            Ok(self.literal(reader, 4)?.into_sensitive())
        } else {
            // 0000xxxx: literal without indexing (§6.2.2).
            self.literal(reader, 4)
        }
    }

    /// Decodes a literal field whose name index has a `prefix_bits` prefix (0: a literal name).
    fn literal(&mut self, reader: &mut Reader<'_>, prefix_bits: u32) -> Result<Field, HpackError> {
        let name_index = reader.integer(prefix_bits)?;
        if name_index == 0 {
            let name = reader.literal()?;
            let value = decode_value(reader.literal()?)?;
            let name = decode_name(name, &mut self.scratch)?;
            Ok(Field::parse(name, value))
        } else {
            let entry = self.entry(name_index)?;
            let value = decode_value(reader.literal()?)?;
            Ok(entry.with_value(value))
        }
    }

    /// The entry at `index` (RFC 7541 §2.3.3): 1-61 static, then dynamic, newest first.
    fn entry(&self, index: usize) -> Result<&Field, HpackError> {
        let position = index.checked_sub(1).ok_or(HpackError::BadIndex(index))?;
        STATIC_TABLE
            .get(position)
            .or_else(|| {
                let dynamic = position.checked_sub(STATIC_TABLE.len())?;
                self.table.get(dynamic)
            })
            .ok_or(HpackError::BadIndex(index))
    }

    /// Applies a dynamic table size update (§6.3), evicting what no longer fits.
    fn set_max_size(&mut self, size: usize) -> Result<(), HpackError> {
        if size > self.allowed_max_size {
            return Err(HpackError::TableSizeTooLarge(size));
        }
        self.max_size = size;
        self.evict_to(size);
        Ok(())
    }

    /// Adds `field` at the front, evicting from the back to make room (§4.4); a field larger
    /// than the whole table empties it and is not added.
    fn insert(&mut self, field: Field) {
        let size = field.size();
        match self.max_size.checked_sub(size) {
            Some(room) => {
                self.evict_to(room);
                self.size += size;
                self.table.push_front(field);
            }
            None => {
                self.table.clear();
                self.size = 0;
            }
        }
    }

    /// Evicts the oldest entries until the table's size is at most `limit`.
    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            match self.table.pop_back() {
                Some(oldest) => self.size = self.size.saturating_sub(oldest.size()),
                None => self.size = 0,
            }
        }
    }
}

#[cfg(test)]
#[path = "hpack_props.rs"]
mod props;
#[cfg(test)]
#[path = "hpack_rfc_tests.rs"]
mod rfc_tests;
#[cfg(test)]
#[path = "hpack_tests.rs"]
pub(crate) mod tests;
