//! HPACK (RFC 7541) for the HTTP/2 server: the request header block decoder (integers,
//! strings, the static table, the dynamic table and its size updates), which hands out fields
//! already parsed and checked against RFC 9113 §8.2 (`Field`), and the stateless response
//! header encoder (`Encoder`). Huffman decoding lives in `super::huffman`.

use std::collections::VecDeque;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
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
        match static_name_index(name) {
            Some(index) => put_integer(dst, first, 4, index),
            None => {
                dst.put_u8(first);
                put_string(dst, name.as_bytes());
            }
        }
        put_string(dst, value.as_bytes());
    }
}

/// Writes `value` as an integer (§5.1) with a `prefix_bits` prefix below the bits `first`.
fn put_integer(dst: &mut BytesMut, first: u8, prefix_bits: u32, value: usize) {
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
fn static_name_index(name: &str) -> Option<usize> {
    let index = match name.len() {
        3 => match name {
            "age" => 21,
            "via" => 60,
            _ => return None,
        },
        4 => match name {
            "date" => 33,
            "etag" => 34,
            "from" => 37,
            "host" => 38,
            "link" => 45,
            "vary" => 59,
            _ => return None,
        },
        5 => match name {
            "allow" => 22,
            "range" => 50,
            _ => return None,
        },
        6 => match name {
            "accept" => 19,
            "cookie" => 32,
            "expect" => 35,
            "server" => 54,
            _ => return None,
        },
        7 => match name {
            "expires" => 36,
            "referer" => 51,
            "refresh" => 52,
            _ => return None,
        },
        8 => match name {
            "if-match" => 39,
            "if-range" => 42,
            "location" => 46,
            _ => return None,
        },
        10 => match name {
            "set-cookie" => 55,
            "user-agent" => 58,
            _ => return None,
        },
        11 => match name {
            "retry-after" => 53,
            _ => return None,
        },
        12 => match name {
            "content-type" => 31,
            "max-forwards" => 47,
            _ => return None,
        },
        13 => match name {
            "accept-ranges" => 18,
            "authorization" => 23,
            "cache-control" => 24,
            "content-range" => 30,
            "if-none-match" => 41,
            "last-modified" => 44,
            _ => return None,
        },
        14 => match name {
            "accept-charset" => 15,
            "content-length" => 28,
            _ => return None,
        },
        15 => match name {
            "accept-encoding" => 16,
            "accept-language" => 17,
            _ => return None,
        },
        16 => match name {
            "content-encoding" => 26,
            "content-language" => 27,
            "content-location" => 29,
            "www-authenticate" => 61,
            _ => return None,
        },
        17 => match name {
            "if-modified-since" => 40,
            "transfer-encoding" => 57,
            _ => return None,
        },
        18 => match name {
            "proxy-authenticate" => 48,
            _ => return None,
        },
        19 => match name {
            "content-disposition" => 25,
            "if-unmodified-since" => 43,
            "proxy-authorization" => 49,
            _ => return None,
        },
        25 => match name {
            "strict-transport-security" => 56,
            _ => return None,
        },
        27 => match name {
            "access-control-allow-origin" => 20,
            _ => return None,
        },
        _ => return None,
    };
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;

    /// RFC 7541 Appendix A, typed from the RFC (index = position + 1).
    const RFC_STATIC: [(&str, &str); 61] = [
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
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// Decodes one block, collecting its fields.
    fn decode_block(decoder: &mut Decoder, block: &[u8]) -> Result<Vec<Field>, HpackError> {
        let mut fields = Vec::new();
        decoder.decode(block, |field| fields.push(field))?;
        Ok(fields)
    }

    /// The field for a valid name and value, built without `Field::parse`.
    fn field(name: &str, value: &str) -> Field {
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

    fn fields(list: &[(&str, &str)]) -> Vec<Field> {
        list.iter()
            .map(|(name, value)| field(name, value))
            .collect()
    }

    fn bad(name: &str, value_len: usize) -> Field {
        Field::Bad {
            name: Bytes::copy_from_slice(name.as_bytes()),
            value_len,
        }
    }

    /// Checks the dynamic table's entries (newest first) and size.
    fn assert_table(decoder: &Decoder, entries: &[(&str, &str)], size: usize) {
        let table: Vec<Field> = decoder.table.iter().cloned().collect();
        assert_eq!(table, fields(entries));
        assert_eq!(decoder.size, size);
        assert_eq!(decoder.table.iter().map(Field::size).sum::<usize>(), size);
    }

    /// A literal without indexing with a raw literal name and value.
    fn raw_literal(name: &[u8], value: &[u8]) -> Vec<u8> {
        let mut block = vec![0x00, name.len() as u8];
        block.extend_from_slice(name);
        block.push(value.len() as u8);
        block.extend_from_slice(value);
        block
    }

    #[test]
    fn static_table_matches_rfc() {
        for (i, (name, value)) in RFC_STATIC.iter().enumerate() {
            assert_eq!(STATIC_TABLE[i], field(name, value), "entry {}", i + 1);
            assert_eq!(STATIC_TABLE[i].size(), name.len() + value.len() + 32);
        }
    }

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
            assert_eq!(static_name_index(name), expected, "{name}");
        }
        for name in ["", "x-foo", "ages", "content-typ", "content-typf", "Date"] {
            assert_eq!(static_name_index(name), None, "{name}");
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
            let (name, value) =
                expected[fields(&expected).iter().position(|f| *f == field).unwrap()];
            assert_eq!(field.size(), name.len() + value.len() + 32);
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
}
