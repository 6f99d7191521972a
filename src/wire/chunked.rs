//! The chunked response body decoder of the upstream client, pure: bytes in (the front of the
//! connection's read buffer, consumed as read), data, trailers and the end out. A port of
//! hyper 1's `proto/h1/decode.rs` `ChunkedState`, state for state and limit for limit (16 KiB
//! of chunk extensions over the whole body, 100 trailer lines in at most 16 KiB), so that it
//! accepts and refuses what hyper's client did; `tests/wire_vs_hyper.rs` checks that.

use super::head::WireError;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Chunk extensions allowed over a whole body (hyper's `CHUNKED_EXTENSIONS_LIMIT`).
const EXTENSIONS_LIMIT: u64 = 16 * 1024;
/// Bytes of trailers allowed (hyper's `TRAILER_LIMIT`).
const TRAILER_LIMIT: usize = 16 * 1024;
/// Trailer lines allowed (hyper's default header count).
const TRAILER_LINES: usize = super::head::MAX_HEADERS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Body,
    BodyCr,
    BodyLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
    End,
}

/// What one call to [`Chunked::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes (never empty).
    Data(Bytes),
    /// The trailers, once the last chunk ended (the next call says `End`).
    Trailers(HeaderMap),
    /// The body ended; the bytes after it are left in the buffer.
    End,
    /// The buffer ran out: read more (end of file now means an incomplete body).
    More,
}

/// A chunked body being decoded.
#[derive(Debug)]
pub struct Chunked {
    state: State,
    size: u64,
    extensions: u64,
    trailers: Option<BytesMut>,
    trailer_lines: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: State::Start,
            size: 0,
            extensions: 0,
            trailers: None,
            trailer_lines: 0,
        }
    }
}

fn err<T>(why: &'static str) -> Result<T, WireError> {
    Err(WireError::Chunked(why))
}

fn hex(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

impl Chunked {
    pub fn is_end(&self) -> bool {
        self.state == State::End && self.trailers.is_none()
    }

    /// Decodes from the front of `buf`, consuming what it reads.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, WireError> {
        use State::*;
        loop {
            if self.state == End {
                return match self.trailers.take() {
                    Some(t) => Ok(Step::Trailers(trailers(&t, self.trailer_lines)?)),
                    None => Ok(Step::End),
                };
            }
            if self.state == Body {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = usize::try_from(self.size)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = BodyCr;
                }
                return Ok(Step::Data(buf.split_to(n).freeze()));
            }
            let Some(&b) = buf.first() else {
                return Ok(Step::More);
            };
            let _ = buf.split_to(1);
            self.state = match (self.state, b) {
                (Start, b) => match hex(b) {
                    Some(d) => {
                        self.size = d;
                        Size
                    }
                    None => return err("missing size digit"),
                },
                (Size, b'\t' | b' ') => SizeLws,
                (Size | SizeLws, b';') => Extension,
                (Size | SizeLws, b'\r') => SizeLf,
                (Size, b) => match hex(b).and_then(|d| self.size.checked_mul(16)?.checked_add(d)) {
                    Some(n) => {
                        self.size = n;
                        Size
                    }
                    None if hex(b).is_some() => return err("size overflow"),
                    None => return err("invalid size"),
                },
                (SizeLws, b'\t' | b' ') => SizeLws,
                (SizeLws, _) => return err("invalid whitespace after the size"),
                (Extension, b'\r') => SizeLf,
                (Extension, b'\n') => return err("newline in a chunk extension"),
                (Extension, _) => {
                    self.extensions += 1;
                    if self.extensions >= EXTENSIONS_LIMIT {
                        return err("chunk extensions over the limit");
                    }
                    Extension
                }
                (SizeLf, b'\n') if self.size == 0 => EndCr,
                (SizeLf, b'\n') => Body,
                (SizeLf, _) => return err("invalid size line end"),
                (BodyCr, b'\r') => BodyLf,
                (BodyCr, _) => return err("invalid chunk end (CR)"),
                (BodyLf, b'\n') => {
                    self.size = 0;
                    Start
                }
                (BodyLf, _) => return err("invalid chunk end (LF)"),
                (Trailer, b) => {
                    self.push_trailer(b)?;
                    if b == b'\r' { TrailerLf } else { Trailer }
                }
                (TrailerLf, b'\n') => {
                    if self.trailer_lines >= TRAILER_LINES {
                        return err("too many trailers");
                    }
                    self.trailer_lines += 1;
                    self.push_trailer(b)?;
                    EndCr
                }
                (TrailerLf, _) => return err("invalid trailer line end"),
                (EndCr, b'\r') => {
                    if self.trailers.is_some() {
                        self.push_trailer(b)?;
                    }
                    EndLf
                }
                (EndCr, b) => {
                    match self.trailers.as_mut() {
                        None => {
                            let mut t = BytesMut::with_capacity(64);
                            t.put_u8(b);
                            self.trailers = Some(t);
                        }
                        Some(_) => self.push_trailer(b)?,
                    }
                    Trailer
                }
                (EndLf, b'\n') => {
                    if self.trailers.is_some() {
                        self.push_trailer(b)?;
                    }
                    End
                }
                (EndLf, _) => return err("invalid end of body"),
                (Body | End, _) => return err("unreachable state"),
            };
        }
    }

    fn push_trailer(&mut self, b: u8) -> Result<(), WireError> {
        if let Some(t) = self.trailers.as_mut() {
            t.put_u8(b);
            if t.len() >= TRAILER_LIMIT {
                return err("trailers over the limit");
            }
        }
        Ok(())
    }
}

/// The trailer lines, parsed as hyper parses them.
fn trailers(buf: &[u8], lines: usize) -> Result<HeaderMap, WireError> {
    let mut parsed = vec![httparse::EMPTY_HEADER; lines];
    match httparse::parse_headers(buf, &mut parsed) {
        Ok(httparse::Status::Complete((_, found))) => {
            let mut map = HeaderMap::with_capacity(found.len());
            for h in found {
                let name = HeaderName::from_bytes(h.name.as_bytes());
                let value = HeaderValue::from_bytes(h.value);
                match (name, value) {
                    (Ok(n), Ok(v)) => {
                        map.append(n, v);
                    }
                    _ => return err("invalid trailer"),
                }
            }
            Ok(map)
        }
        Ok(httparse::Status::Partial) => err("partial trailers"),
        Err(_) => err("invalid trailers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed `step` bytes at a time: the data, whether it ended, the trailers.
    /// The data, whether it ended, the trailers, what was left after the end.
    type Run = (Vec<u8>, bool, Option<HeaderMap>, Vec<u8>);

    fn run(input: &[u8], step: usize) -> Result<Run, WireError> {
        let mut d = Chunked::default();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut trailers = None;
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Step::Data(b) => data.extend_from_slice(&b),
                Step::Trailers(t) => trailers = Some(t),
                Step::End => return Ok((data, true, trailers, buf.to_vec())),
                Step::More if fed >= input.len() => return Ok((data, false, trailers, Vec::new())),
                Step::More => {
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_by_table() {
        let ok: &[(&str, &str)] = &[
            ("0\r\n\r\n", ""),
            ("3\r\nabc\r\n0\r\n\r\n", "abc"),
            ("3;ext=1\r\nabc\r\n2 \r\nde\r\n0\r\n\r\n", "abcde"),
            ("A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
            ("00003\r\nabc\r\n0\r\n\r\n", "abc"),
        ];
        let bad: &[&str] = &[
            "x\r\n",
            "3\nabc\r\n0\r\n\r\n",
            "3\r\nabcd\r\n0\r\n\r\n",
            "3 4\r\nabc\r\n",
            "1;a\nb\r\nx\r\n",
            "10000000000000000\r\n",
            "0\r\n\r\x00",
        ];
        for step in [1, 2, 3, 7, 100] {
            for (input, want) in ok {
                let (data, ended, _, rest) = run(input.as_bytes(), step).unwrap();
                assert_eq!(
                    (data.as_slice(), ended),
                    (want.as_bytes(), true),
                    "{input:?} by {step}"
                );
                assert!(rest.is_empty());
            }
            for input in bad {
                assert!(run(input.as_bytes(), step).is_err(), "{input:?} by {step}");
            }
        }
    }

    #[test]
    fn trailers_and_what_follows_the_body() {
        let (data, ended, trailers, rest) =
            run(b"2\r\nhi\r\n0\r\nx-sum: 7\r\nx-b: 8\r\n\r\nHTTP/1.1", 100).unwrap();
        assert_eq!((data.as_slice(), ended), (&b"hi"[..], true));
        let t = trailers.unwrap();
        assert_eq!(
            (t["x-sum"].as_bytes(), t["x-b"].as_bytes()),
            (&b"7"[..], &b"8"[..])
        );
        assert_eq!(rest, b"HTTP/1.1");
    }

    #[test]
    fn an_unfinished_body_is_not_an_end() {
        let (data, ended, _, _) = run(b"5\r\nab", 1).unwrap();
        assert_eq!((data.as_slice(), ended), (&b"ab"[..], false));
    }
}
