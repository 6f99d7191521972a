//! Pure: each frame a peer router sends, by its rules (a part of `conn.rs`): DATA within the
//! windows and an answer's announced length, HEADERS and CONTINUATION into an answer's head or
//! trailers, RST_STREAM, SETTINGS (the first one lets the streams' frames leave), PING,
//! GOAWAY, WINDOW_UPDATE; and the errors they are.

use super::super::head::response;
use super::{CONN_WINDOW, Conn, Failure, MAX_HEADER_BLOCK, Partial, fail_stream};
use crate::body::h2::RecvError;
use crate::h2::frame::{self, DEFAULT_MAX_FRAME, Head, MAX_WINDOW, Reason, flag, kind};
use bytes::{Bytes, BytesMut};

impl Conn {
    /// Takes the frames at the start of `buf` (those whole), answering what they ask.
    pub fn recv(&mut self, buf: &mut BytesMut) {
        if self.dead.is_some() {
            buf.clear();
            return;
        }
        while let Some(head) = Head::parse(buf) {
            if head.len > DEFAULT_MAX_FRAME as usize {
                return self.fail(Reason::FRAME_SIZE_ERROR, "a frame larger than allowed");
            }
            if buf.len() < frame::HEADER_LEN + head.len {
                buf.reserve(frame::HEADER_LEN + head.len - buf.len());
                return;
            }
            let _ = buf.split_to(frame::HEADER_LEN);
            let payload = buf.split_to(head.len).freeze();
            if let Err((reason, why)) = self.frame(head, payload) {
                return self.fail(reason, why);
            }
        }
    }

    /// A connection error: GOAWAY, and every stream fails.
    fn fail(&mut self, reason: Reason, why: &str) {
        frame::put_goaway(&mut self.out, 0, reason);
        let why = format!("HTTP/2 protocol error from the peer: {why}");
        self.dead = Some(why.clone());
        self.streams.retain_mut(|s| {
            if s.failed.is_some() || s.ended {
                return !s.taken;
            }
            !fail_stream(s, Failure::Broken(why.clone()), RecvError::Closed)
        });
    }

    fn frame(&mut self, head: Head, p: Bytes) -> Result<(), (Reason, &'static str)> {
        if let Some(partial) = &mut self.partial {
            if head.kind != kind::CONTINUATION || head.stream != partial.stream {
                return Err((
                    Reason::PROTOCOL_ERROR,
                    "a header block cut by another frame",
                ));
            }
            if partial.block.len() + p.len() > MAX_HEADER_BLOCK {
                return Err((Reason::PROTOCOL_ERROR, "a header block too large"));
            }
            partial.block.extend_from_slice(&p);
            if head.has(flag::END_HEADERS) {
                let Partial {
                    stream,
                    end_stream,
                    block,
                } = self
                    .partial
                    .take()
                    .ok_or((Reason::INTERNAL_ERROR, "lost block"))?;
                return self.header_block(stream, &block, end_stream);
            }
            return Ok(());
        }
        match head.kind {
            kind::DATA => self.data(head, &p),
            kind::HEADERS => {
                if head.stream == 0 {
                    return Err((Reason::PROTOCOL_ERROR, "HEADERS on stream 0"));
                }
                let range =
                    frame::unpad(&head, &p).ok_or((Reason::PROTOCOL_ERROR, "bad padding"))?;
                let mut block = &p[range];
                if head.has(flag::PRIORITY) {
                    block = block
                        .get(5..)
                        .ok_or((Reason::FRAME_SIZE_ERROR, "short HEADERS"))?;
                }
                let end_stream = head.has(flag::END_STREAM);
                if head.has(flag::END_HEADERS) {
                    self.header_block(head.stream, block, end_stream)
                } else {
                    self.partial = Some(Partial {
                        stream: head.stream,
                        end_stream,
                        block: BytesMut::from(block),
                    });
                    Ok(())
                }
            }
            kind::PRIORITY => Ok(()),
            kind::RST_STREAM => {
                if head.stream == 0 {
                    return Err((Reason::PROTOCOL_ERROR, "RST_STREAM on stream 0"));
                }
                if p.len() != 4 {
                    return Err((Reason::FRAME_SIZE_ERROR, "RST_STREAM of the wrong size"));
                }
                let reason = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                self.check_known(head.stream)?;
                if let Some(i) = self.find(head.stream) {
                    let s = &self.streams[i];
                    if s.ended {
                        return Ok(());
                    }
                    let failure =
                        if reason == Reason::REFUSED_STREAM.0 && s.head.is_none() && !s.taken {
                            Failure::Refused("the peer refused the stream".into())
                        } else {
                            Failure::Broken(format!(
                                "the peer reset the stream (error code {reason:#x})"
                            ))
                        };
                    self.stream_failed(i, failure);
                }
                Ok(())
            }
            kind::SETTINGS => {
                if head.stream != 0 {
                    return Err((Reason::PROTOCOL_ERROR, "SETTINGS on a stream"));
                }
                if head.has(flag::ACK) {
                    return if p.is_empty() {
                        Ok(())
                    } else {
                        Err((Reason::FRAME_SIZE_ERROR, "a SETTINGS ACK with a payload"))
                    };
                }
                self.peer =
                    frame::apply_settings(self.peer, &p).map_err(|r| (r, "bad SETTINGS"))?;
                for c in p.chunks_exact(6) {
                    if u16::from_be_bytes([c[0], c[1]]) == 0x3 {
                        self.peer_max_streams = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
                    }
                }
                frame::put_settings_ack(&mut self.out);
                if !self.ready {
                    self.ready = true;
                    let pending = self.pending.split();
                    self.out.extend_from_slice(&pending);
                }
                Ok(())
            }
            kind::PUSH_PROMISE => Err((Reason::PROTOCOL_ERROR, "PUSH_PROMISE with push disabled")),
            kind::PING => {
                if head.stream != 0 {
                    return Err((Reason::PROTOCOL_ERROR, "PING on a stream"));
                }
                let data: &[u8; 8] = p[..]
                    .try_into()
                    .map_err(|_| (Reason::FRAME_SIZE_ERROR, "PING of the wrong size"))?;
                if !head.has(flag::ACK) {
                    frame::put_ping(&mut self.out, true, data);
                }
                Ok(())
            }
            kind::GOAWAY => {
                if head.stream != 0 {
                    return Err((Reason::PROTOCOL_ERROR, "GOAWAY on a stream"));
                }
                if p.len() < 8 {
                    return Err((Reason::FRAME_SIZE_ERROR, "short GOAWAY"));
                }
                let last = frame::u31(&p, 0);
                let last = self.goaway.map_or(last, |l| l.min(last));
                self.goaway = Some(last);
                self.streams.retain_mut(|s| {
                    if s.id <= last || s.ended || s.failed.is_some() {
                        return true;
                    }
                    let refused = Failure::Refused("the peer is going away (GOAWAY)".into());
                    !fail_stream(s, refused, RecvError::Closed)
                });
                Ok(())
            }
            kind::WINDOW_UPDATE => {
                if p.len() != 4 {
                    return Err((Reason::FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size"));
                }
                let inc = i64::from(frame::u31(&p, 0));
                if head.stream == 0 {
                    if inc == 0 {
                        return Err((Reason::PROTOCOL_ERROR, "a zero WINDOW_UPDATE"));
                    }
                    self.send_window += inc;
                    if self.send_window > MAX_WINDOW {
                        return Err((Reason::FLOW_CONTROL_ERROR, "the send window overflowed"));
                    }
                }
                // A stream's: its body was sent whole at its opening.
                Ok(())
            }
            kind::CONTINUATION => Err((Reason::PROTOCOL_ERROR, "CONTINUATION without HEADERS")),
            _ => Ok(()),
        }
    }

    /// A frame on stream `id` that is not open: fine if this side opened it once (it was reset
    /// or ended here), a connection error if it never existed.
    fn check_known(&self, id: u32) -> Result<(), (Reason, &'static str)> {
        if id.is_multiple_of(2) || id >= self.next_id {
            return Err((
                Reason::PROTOCOL_ERROR,
                "a frame on a stream this side never opened",
            ));
        }
        Ok(())
    }

    fn data(&mut self, head: Head, p: &Bytes) -> Result<(), (Reason, &'static str)> {
        if head.stream == 0 {
            return Err((Reason::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        let len = p.len() as i64;
        self.recv_window -= len;
        if self.recv_window < 0 {
            return Err((
                Reason::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        // The connection's window is given back at once: the streams' bound the bodies.
        self.recv_unacked = self.recv_unacked.saturating_add(p.len() as u32);
        if self.recv_unacked >= CONN_WINDOW / 2 {
            frame::put_window_update(&mut self.out, 0, self.recv_unacked);
            self.recv_window += i64::from(self.recv_unacked);
            self.recv_unacked = 0;
        }
        self.check_known(head.stream)?;
        let range = frame::unpad(&head, p).ok_or((Reason::PROTOCOL_ERROR, "bad padding"))?;
        let Some(i) = self.find(head.stream) else {
            return Ok(());
        };
        let s = &mut self.streams[i];
        s.recv_window -= len;
        if s.recv_window < 0 {
            return Err((Reason::FLOW_CONTROL_ERROR, "DATA beyond the stream window"));
        }
        if s.ended || s.failed.is_some() {
            return Ok(());
        }
        if s.head.is_none() && !s.taken {
            self.reset(i, Reason::PROTOCOL_ERROR, "DATA before the answer's head");
            return Ok(());
        }
        let data = p.slice(range);
        s.got += data.len() as u64;
        if s.expect.is_some_and(|n| s.got > n) {
            self.reset(
                i,
                Reason::PROTOCOL_ERROR,
                "more body than its content-length",
            );
            return Ok(());
        }
        let end = head.has(flag::END_STREAM);
        match &s.inbox {
            Some(inbox) => inbox.push(data, false),
            None => s.data.extend_from_slice(&data),
        }
        if end {
            self.end(i);
        }
        Ok(())
    }

    fn header_block(
        &mut self,
        id: u32,
        block: &[u8],
        end_stream: bool,
    ) -> Result<(), (Reason, &'static str)> {
        let mut fields = Vec::with_capacity(8);
        self.decoder
            .decode(block, |f| fields.push(f))
            .map_err(|_| (Reason::COMPRESSION_ERROR, "an undecodable header block"))?;
        self.check_known(id)?;
        let Some(i) = self.find(id) else {
            return Ok(());
        };
        let s = &mut self.streams[i];
        if s.ended || s.failed.is_some() {
            return Ok(());
        }
        if s.head.is_some() || s.taken {
            // Trailers: they end the body, and are not handed on (the HTTP/1.1 path drops them too).
            if !end_stream {
                self.reset(i, Reason::PROTOCOL_ERROR, "trailers without END_STREAM");
                return Ok(());
            }
            self.end(i);
            return Ok(());
        }
        let Some((parts, expect)) = response(fields) else {
            self.reset(i, Reason::PROTOCOL_ERROR, "a malformed answer head");
            return Ok(());
        };
        if parts.status.is_informational() {
            if end_stream {
                self.reset(
                    i,
                    Reason::PROTOCOL_ERROR,
                    "an interim answer ending the stream",
                );
            }
            return Ok(());
        }
        s.head = Some(parts);
        s.expect = expect;
        if end_stream {
            self.end(i);
        } else if let Some(w) = s.waiter.take() {
            w.wake();
        }
        Ok(())
    }

    /// END_STREAM came on stream `i`: its body is whole (or a content-length says otherwise).
    fn end(&mut self, i: usize) {
        let s = &mut self.streams[i];
        if s.expect.is_some_and(|n| n != s.got) {
            return self.reset(
                i,
                Reason::PROTOCOL_ERROR,
                "less body than its content-length",
            );
        }
        s.ended = true;
        if let Some(inbox) = &s.inbox {
            inbox.push(Bytes::new(), true);
        }
        if let Some(w) = s.waiter.take() {
            w.wake();
        }
        if s.taken {
            self.streams.remove(i);
        }
    }

    /// A stream error of this side: RST_STREAM, and the stream fails.
    fn reset(&mut self, i: usize, reason: Reason, why: &str) {
        frame::put_rst(&mut self.out, self.streams[i].id, reason);
        self.stream_failed(
            i,
            Failure::Broken(format!("a malformed answer from the peer: {why}")),
        );
    }

    /// Stream `i` fails: its waiter hears why, or its body breaks off; removed unless its
    /// waiter is still to hear.
    fn stream_failed(&mut self, i: usize, failure: Failure) {
        if fail_stream(&mut self.streams[i], failure, RecvError::Reset) {
            self.streams.remove(i);
        }
    }
}
