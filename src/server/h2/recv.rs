//! Pure: the frames a client sends, each by its rules (RFC 9113 §6): DATA within the windows
//! and the announced length, HEADERS and their CONTINUATIONs decoded into a new stream or
//! trailers, PRIORITY, RST_STREAM, SETTINGS, PING and WINDOW_UPDATE. A part of `conn.rs`.

use super::*;

impl Conn {
    pub(super) fn data(&mut self, head: Head, payload: BytesMut) -> Result<(), ConnError> {
        // The whole frame counts against the windows, padding too. The connection's window is
        // given back as the proxy takes the data (or at once for data nobody will read), so a
        // client has at most that window of bodies in the router.
        let len = payload.len();
        let Some(range) = frame::unpad(&head, &payload) else {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        };
        let Some(i) = self.find(head.stream) else {
            self.unacked(len);
            if self.not_open(head.stream)? {
                self.reset(head.stream, Reason::STREAM_CLOSED);
            }
            return Ok(());
        };
        let s = &mut self.streams[i];
        s.recv_window -= len as i64;
        let end = head.has(flag::END_STREAM);
        let data_len = range.len();
        let broken = if !s.recv_open {
            Some(Reason::STREAM_CLOSED)
        } else if s.recv_window < 0 {
            Some(Reason::FLOW_CONTROL_ERROR)
        } else {
            s.received += data_len as u64;
            s.content_length
                .is_some_and(|n| s.received > n || (end && s.received != n))
                .then_some(Reason::PROTOCOL_ERROR)
        };
        if let Some(reason) = broken {
            self.unacked(len);
            self.reset_at(i, reason);
            return Ok(());
        }
        let mut payload = payload;
        let data = payload.split_off(range.start).split_to(data_len).freeze();
        // Padding and data nobody reads are given back at once.
        let mut back = len - data_len;
        if end {
            s.recv_open = false;
        }
        match &mut s.body {
            In::Held(b) => b.extend_from_slice(&data),
            In::Streaming(inbox) => inbox.push(data, end),
            In::Dropped => back = len,
        }
        if back > 0 {
            let s = &mut self.streams[i];
            if s.recv_open {
                s.recv_window += back as i64;
                frame::put_window_update(&mut self.out, s.id, back as u32);
            }
            self.unacked(back);
        }
        if end {
            self.end_if_done(i);
        }
        Ok(())
    }

    pub(super) fn headers(&mut self, head: Head, mut payload: BytesMut) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        let Some(range) = frame::unpad(&head, &payload) else {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        };
        let mut fragment = payload.split_off(range.start);
        fragment.truncate(range.len());
        if head.has(flag::PRIORITY) {
            if fragment.len() < 5 {
                return Err(ConnError(Reason::FRAME_SIZE_ERROR));
            }
            let depends_on = frame::u31(&fragment, 0);
            let _ = fragment.split_to(5);
            if depends_on == head.stream {
                // Decoded all the same (the table must stay in step), then reset.
                self.block = Some(Block {
                    stream: head.stream,
                    end_stream: head.has(flag::END_STREAM),
                    bytes: fragment,
                });
                return self.after_fragment(head.has(flag::END_HEADERS), true);
            }
        }
        self.block = Some(Block {
            stream: head.stream,
            end_stream: head.has(flag::END_STREAM),
            bytes: fragment,
        });
        self.after_fragment(head.has(flag::END_HEADERS), false)
    }

    pub(super) fn continuation(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        let Some(b) = &mut self.block else {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        };
        b.bytes.extend_from_slice(payload);
        if b.bytes.len() > self.limits.max_header_list as usize + BLOCK_SLACK {
            return Err(ConnError(Reason::ENHANCE_YOUR_CALM));
        }
        self.after_fragment(head.has(flag::END_HEADERS), false)
    }

    /// A fragment of a header block arrived; once the block ends, it is decoded and acted on.
    pub(super) fn after_fragment(
        &mut self,
        end_headers: bool,
        self_dependent: bool,
    ) -> Result<(), ConnError> {
        if !end_headers {
            return Ok(());
        }
        let Some(block) = self.block.take() else {
            return Ok(());
        };
        let mut fields = Vec::with_capacity(16);
        self.decoder
            .decode(&block.bytes, |f| fields.push(f))
            .map_err(|_| ConnError(Reason::COMPRESSION_ERROR))?;
        let id = block.stream;
        if let Some(i) = self.find(id) {
            return self.trailers(i, block.end_stream, &fields);
        }
        if id <= self.last_id {
            if self.reset_here.contains(&id) {
                return Ok(());
            }
            let reason = if self.closed.contains(&id) {
                Reason::STREAM_CLOSED
            } else {
                Reason::PROTOCOL_ERROR
            };
            return Err(ConnError(reason));
        }
        if id % 2 == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        self.last_id = id;
        if self_dependent {
            self.reset(id, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        if self.going_away.is_some() || self.streams.len() >= self.limits.max_streams as usize {
            self.reset(id, Reason::REFUSED_STREAM);
            return Ok(());
        }
        let list: usize = fields.iter().map(Field::size).sum();
        let mut stream = Stream {
            id,
            recv_open: !block.end_stream,
            send_done: false,
            responded: false,
            send_window: self.peer.initial_window,
            recv_window: i64::from(self.limits.stream_window),
            content_length: None,
            received: 0,
            body: In::Held(BytesMut::new()),
            pending: None,
        };
        if list > self.limits.max_header_list as usize {
            // As h2 does: 431, and the body (if any) is not wanted.
            let mut block = BytesMut::with_capacity(8);
            Encoder::status(&mut block, 431);
            frame::put_headers(&mut self.out, id, &block, true, self.peer.max_frame);
            stream.body = In::Dropped;
            stream.responded = true;
            stream.send_done = true;
            self.streams.push(stream);
            let i = self.streams.len() - 1;
            self.end_if_done(i);
            return Ok(());
        }
        match request(fields) {
            Some((head, content_length)) => {
                if block.end_stream && content_length.is_some_and(|n| n != 0) {
                    self.reset(id, Reason::PROTOCOL_ERROR);
                    return Ok(());
                }
                stream.content_length = content_length;
                stream.pending = Some(head);
                self.streams.push(stream);
            }
            None => self.reset(id, Reason::PROTOCOL_ERROR),
        }
        Ok(())
    }

    /// A second header block on an open stream: trailers, which must end the stream and carry
    /// no pseudo-header. They end the body; the fields themselves are not passed on.
    pub(super) fn trailers(
        &mut self,
        i: usize,
        end_stream: bool,
        fields: &[Field],
    ) -> Result<(), ConnError> {
        let s = &mut self.streams[i];
        if !s.recv_open {
            self.reset_at(i, Reason::STREAM_CLOSED);
            return Ok(());
        }
        let pseudo = fields.iter().any(|f| !matches!(f, Field::Header(..)));
        if !end_stream || pseudo {
            self.reset_at(i, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        if s.content_length.is_some_and(|n| n != s.received) {
            self.reset_at(i, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        tracing::debug!(stream = s.id, "HTTP/2 request trailers dropped");
        s.recv_open = false;
        if let In::Streaming(inbox) = &s.body {
            inbox.push(Bytes::new(), true);
        }
        self.end_if_done(i);
        Ok(())
    }

    pub(super) fn priority(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream == 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        if payload.len() != 5 {
            self.reset(head.stream, Reason::FRAME_SIZE_ERROR);
            return Ok(());
        }
        if frame::u31(payload, 0) == head.stream {
            match self.find(head.stream) {
                Some(i) => self.reset_at(i, Reason::PROTOCOL_ERROR),
                None => self.reset(head.stream, Reason::PROTOCOL_ERROR),
            }
        }
        Ok(())
    }

    pub(super) fn rst(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if payload.len() != 4 {
            return Err(ConnError(Reason::FRAME_SIZE_ERROR));
        }
        if head.stream == 0 || head.stream > self.last_id {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        if let Some(i) = self.find(head.stream) {
            let s = self.streams.swap_remove(i);
            remember(&mut self.closed, s.id);
            let in_progress = !s.send_done;
            self.gone(s, RecvError::Reset);
            if in_progress {
                if self.reset_budget == 0 {
                    return Err(ConnError(Reason::ENHANCE_YOUR_CALM));
                }
                self.reset_budget -= 1;
            }
        }
        Ok(())
    }

    pub(super) fn settings(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        if head.has(flag::ACK) {
            return if payload.is_empty() {
                Ok(())
            } else {
                Err(ConnError(Reason::FRAME_SIZE_ERROR))
            };
        }
        let before = self.peer.initial_window;
        self.peer = frame::apply_settings(self.peer, payload).map_err(ConnError)?;
        let delta = self.peer.initial_window - before;
        for s in &mut self.streams {
            s.send_window += delta;
            if s.send_window > MAX_WINDOW {
                return Err(ConnError(Reason::FLOW_CONTROL_ERROR));
            }
        }
        frame::put_settings_ack(&mut self.out);
        Ok(())
    }

    pub(super) fn ping_frame(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if head.stream != 0 {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        let Ok(data) = <&[u8; 8]>::try_from(payload) else {
            return Err(ConnError(Reason::FRAME_SIZE_ERROR));
        };
        if !head.has(flag::ACK) {
            frame::put_ping(&mut self.out, true, data);
        }
        Ok(())
    }

    pub(super) fn window_update(&mut self, head: Head, payload: &[u8]) -> Result<(), ConnError> {
        if payload.len() != 4 {
            return Err(ConnError(Reason::FRAME_SIZE_ERROR));
        }
        let inc = i64::from(frame::u31(payload, 0));
        if head.stream == 0 {
            if inc == 0 {
                return Err(ConnError(Reason::PROTOCOL_ERROR));
            }
            self.send_window += inc;
            if self.send_window > MAX_WINDOW {
                return Err(ConnError(Reason::FLOW_CONTROL_ERROR));
            }
            return Ok(());
        }
        let Some(i) = self.find(head.stream) else {
            if head.stream > self.last_id {
                return Err(ConnError(Reason::PROTOCOL_ERROR));
            }
            return Ok(());
        };
        if inc == 0 {
            self.reset_at(i, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        let s = &mut self.streams[i];
        s.send_window += inc;
        if s.send_window > MAX_WINDOW {
            self.reset_at(i, Reason::FLOW_CONTROL_ERROR);
        }
        Ok(())
    }
}
