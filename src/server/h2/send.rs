//! Pure: what the shell sends on a stream (an answer's head, its body within the windows,
//! trailers, a reset), framed into the connection's output. A part of `conn.rs`.

use super::*;

impl Conn {
    /// Sends an answer's head; `end`: it has no body. Connection-specific fields are dropped
    /// (RFC 9113 §8.2.2), as hyper does.
    pub fn respond(&mut self, id: u32, status: StatusCode, headers: &HeaderMap, end: bool) {
        let Some(i) = self.find(id) else {
            return;
        };
        let mut block = BytesMut::with_capacity(256);
        Encoder::status(&mut block, status.as_u16());
        for (name, value) in headers {
            if !connection_specific(name) {
                Encoder::header(&mut block, name, value);
            }
        }
        frame::put_headers(&mut self.out, id, &block, end, self.peer.max_frame);
        let s = &mut self.streams[i];
        s.responded = true;
        if end {
            s.send_done = true;
            self.end_if_done(i);
        }
    }

    /// Whether stream `id` is still open (not reset, not ended).
    pub fn is_open(&self, id: u32) -> bool {
        self.streams.iter().any(|s| s.id == id)
    }

    /// How many bytes of an answer's body stream `id` may send now (0: wait for window).
    pub fn send_capacity(&self, id: u32) -> usize {
        let Some(s) = self.streams.iter().find(|s| s.id == id) else {
            return 0;
        };
        let w = s.send_window.min(self.send_window).max(0);
        usize::try_from(w).unwrap_or(0)
    }

    /// Frames `data` (which the caller kept within [`Conn::send_capacity`]) as DATA frames
    /// of at most the client's frame size.
    pub fn send_data(&mut self, id: u32, data: &[u8], end: bool) {
        let Some(i) = self.find(id) else {
            return;
        };
        let max = (self.peer.max_frame as usize).max(1);
        let mut chunks = data.chunks(max).peekable();
        if data.is_empty() {
            frame::put_data(&mut self.out, id, &[], end);
        }
        while let Some(c) = chunks.next() {
            frame::put_data(&mut self.out, id, c, end && chunks.peek().is_none());
        }
        let n = data.len() as i64;
        self.send_window -= n;
        let s = &mut self.streams[i];
        s.send_window -= n;
        if end {
            s.send_done = true;
            self.end_if_done(i);
        }
    }

    /// Sends trailers, which end the answer.
    pub fn send_trailers(&mut self, id: u32, trailers: &HeaderMap) {
        let Some(i) = self.find(id) else {
            return;
        };
        let mut block = BytesMut::with_capacity(64);
        for (name, value) in trailers {
            if !connection_specific(name) {
                Encoder::header(&mut block, name, value);
            }
        }
        frame::put_headers(&mut self.out, id, &block, true, self.peer.max_frame);
        self.streams[i].send_done = true;
        self.end_if_done(i);
    }

    /// The shell gives up on a stream (its answer failed): RST_STREAM with `reason`.
    pub fn abort(&mut self, id: u32, reason: Reason) {
        if let Some(i) = self.find(id) {
            self.reset_at(i, reason);
        }
    }
}
