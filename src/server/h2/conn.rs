//! Pure (no IO, no clock): one HTTP/2 server connection's state (RFC 9113). It takes the
//! bytes a client sent, frame by frame, and turns them into requests for the shell
//! (`serve.rs`) and into the frames it owes the client (SETTINGS and PING acknowledgements,
//! WINDOW_UPDATEs, RST_STREAMs, GOAWAY), appended to `out`; the shell hands it answers and
//! body data, which it frames within the client's windows. Stream states (§5.1), flow
//! control (§5.2, §6.9), header blocks and their CONTINUATIONs (§6.10), and what makes a
//! request malformed (§8.1.1, §8.2, §8.3) are all here, so that a fuzzer and a table of
//! frames can drive the whole protocol without a socket.

use super::request::{connection_specific, request};
use crate::body::h2::{Inbox, RecvBody, RecvError};
use crate::h2::encoder::Encoder;
use crate::h2::frame::{
    self, DEFAULT_MAX_FRAME, Head, MAX_WINDOW, PeerSettings, Reason, flag, kind,
};
use crate::h2::hpack::{Decoder, Field};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use std::collections::VecDeque;

#[path = "recv.rs"]
mod recv;
#[path = "send.rs"]
mod send;

/// What the connection holds a client to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub max_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE; a bigger request is answered 431.
    pub max_header_list: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: how much of a body a client may send ahead.
    pub stream_window: u32,
    /// The connection's receive window (raised to this at the start).
    pub conn_window: u32,
}

/// A request's body as the shell gets it: whole (it came with its head), or still coming.
#[derive(Debug)]
pub enum Body {
    Whole(Option<Bytes>),
    Streamed(RecvBody),
}

/// What the shell is to do.
#[derive(Debug)]
// Requests are the common event and go straight on; boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A new request: run it and answer with [`Conn::respond`].
    Request {
        stream: u32,
        head: Request<()>,
        body: Body,
    },
    /// The stream is gone (reset by the client, or for a protocol error): stop its handler
    /// and drop its answer.
    Cancel(u32),
}

/// A connection error: GOAWAY with this reason, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnError(pub Reason);

#[derive(Debug)]
enum In {
    /// The request's body, held until the end of the read it came in (then whole, or
    /// streamed from here on).
    Held(BytesMut),
    Streaming(Inbox),
    /// No one reads it (answered already, or a request that was refused): dropped as it comes.
    Dropped,
}

#[derive(Debug)]
struct Stream {
    id: u32,
    /// The client has not ended its side (END_STREAM).
    recv_open: bool,
    /// The answer's END_STREAM is sent.
    send_done: bool,
    /// The answer's head is sent.
    responded: bool,
    send_window: i64,
    /// How much more of the body the client may send before a WINDOW_UPDATE.
    recv_window: i64,
    content_length: Option<u64>,
    received: u64,
    body: In,
    /// Parsed, not yet handed to the shell (that happens once the read is done).
    pending: Option<Request<()>>,
}

/// A header block being gathered from HEADERS and its CONTINUATIONs.
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    bytes: BytesMut,
}

/// One connection's state.
pub struct Conn {
    limits: Limits,
    peer: PeerSettings,
    decoder: Decoder,
    streams: Vec<Stream>,
    /// The highest stream the client opened.
    last_id: u32,
    /// Streams this side reset recently: frames still in flight on them are ignored.
    reset_here: VecDeque<u32>,
    /// Streams that ended recently (both sides, or reset by the client): a new HEADERS on one
    /// is STREAM_CLOSED, where on a stream id never used it is PROTOCOL_ERROR.
    closed: VecDeque<u32>,
    block: Option<Block>,
    send_window: i64,
    /// Received on the connection and not given back as window yet.
    conn_unacked: u32,
    /// GOAWAY was sent: no new streams past this one.
    going_away: Option<u32>,
    /// The client sent GOAWAY.
    peer_gone: bool,
    /// Resets of requests still being served the client may make beyond the answers it got
    /// (rapid reset, CVE-2023-44487): each answer gives one back, up to [`RESET_BURST`].
    reset_budget: u32,
    /// Streams this side reset for the client's errors; past [`MAX_ERROR_RESETS`], GOAWAY.
    error_resets: u32,
    pub events: VecDeque<Event>,
    /// Frames to write.
    pub out: BytesMut,
}

/// A closed stream's id is remembered this long (in resets), for frames already in flight.
const RESET_MEMORY: usize = 64;
/// The largest announced body held back with its request until it has all come.
const HOLD_MAX: u64 = 64 * 1024;
/// Resets of requests in progress a client may make ahead of the answers it got.
const RESET_BURST: u32 = 64;
/// Streams reset for a client's errors before the connection is ended (hyper's
/// `max_local_error_reset_streams`).
const MAX_ERROR_RESETS: u32 = 256;
/// A header block (HEADERS and CONTINUATIONs) may not grow past the header list limit by more
/// than this: a client that keeps sending CONTINUATION is cut off.
const BLOCK_SLACK: usize = 16 * 1024;

impl Conn {
    /// A connection whose preface was read: the server's SETTINGS and connection window are
    /// already in `out`.
    pub fn new(limits: Limits) -> Conn {
        let mut out = BytesMut::with_capacity(4096);
        frame::put_settings(
            &mut out,
            limits.max_streams,
            limits.stream_window,
            limits.max_header_list,
        );
        let extra = i64::from(limits.conn_window) - frame::DEFAULT_WINDOW;
        if let Ok(extra @ 1..) = u32::try_from(extra) {
            frame::put_window_update(&mut out, 0, extra);
        }
        Conn {
            limits,
            peer: PeerSettings::default(),
            decoder: Decoder::new(4096),
            streams: Vec::new(),
            last_id: 0,
            reset_here: VecDeque::new(),
            closed: VecDeque::new(),
            block: None,
            send_window: frame::DEFAULT_WINDOW,
            conn_unacked: 0,
            going_away: None,
            peer_gone: false,
            reset_budget: RESET_BURST,
            error_resets: 0,
            events: VecDeque::new(),
            out,
        }
    }

    /// Streams open (a request being read, run or answered).
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The client sent GOAWAY, or this side did: no new streams will come.
    pub fn closing(&self) -> bool {
        self.peer_gone || self.going_away.is_some()
    }

    /// Sends GOAWAY (NO_ERROR) once: the streams opened so far are served, no new one is.
    pub fn go_away(&mut self) {
        if self.going_away.is_none() {
            self.going_away = Some(self.last_id);
            frame::put_goaway(&mut self.out, self.last_id, Reason::NO_ERROR);
        }
    }

    /// A connection error: GOAWAY with `reason`; every stream is gone.
    pub fn fail(&mut self, reason: Reason) {
        frame::put_goaway(&mut self.out, self.last_id, reason);
        self.going_away = Some(self.last_id);
        for s in self.streams.drain(..) {
            if let In::Streaming(inbox) = &s.body {
                inbox.fail(RecvError::Closed);
            }
        }
    }

    /// Sends a PING (the shell's keep-alive).
    pub fn ping(&mut self) {
        frame::put_ping(&mut self.out, false, &[0; 8]);
    }

    /// Takes every whole frame at the start of `buf`, leaving a partial one there. Requests
    /// whose head came in `buf` are handed to the shell at the end (`events`), with their body
    /// whole when it ended in `buf` too.
    pub fn recv(&mut self, buf: &mut BytesMut) -> Result<(), ConnError> {
        let r = self.frames(buf);
        self.start_pending(false);
        self.give_back_conn_window();
        r
    }

    fn frames(&mut self, buf: &mut BytesMut) -> Result<(), ConnError> {
        while let Some(head) = Head::parse(buf) {
            if head.len > DEFAULT_MAX_FRAME as usize {
                return Err(ConnError(Reason::FRAME_SIZE_ERROR));
            }
            if buf.len() < frame::HEADER_LEN + head.len {
                buf.reserve(frame::HEADER_LEN + head.len - buf.len());
                return Ok(());
            }
            let _ = buf.split_to(frame::HEADER_LEN);
            let payload = buf.split_to(head.len);
            self.frame(head, payload)?;
            if self.error_resets > MAX_ERROR_RESETS {
                return Err(ConnError(Reason::ENHANCE_YOUR_CALM));
            }
        }
        Ok(())
    }

    fn frame(&mut self, head: Head, payload: BytesMut) -> Result<(), ConnError> {
        if let Some(b) = &self.block
            && (head.kind != kind::CONTINUATION || head.stream != b.stream)
        {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        match head.kind {
            kind::DATA => self.data(head, payload),
            kind::HEADERS => self.headers(head, payload),
            kind::CONTINUATION => self.continuation(head, &payload),
            kind::PRIORITY => self.priority(head, &payload),
            kind::RST_STREAM => self.rst(head, &payload),
            kind::SETTINGS => self.settings(head, &payload),
            kind::PING => self.ping_frame(head, &payload),
            kind::GOAWAY => {
                if head.stream != 0 {
                    return Err(ConnError(Reason::PROTOCOL_ERROR));
                }
                self.peer_gone = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(head, &payload),
            // A client may not push.
            kind::PUSH_PROMISE => Err(ConnError(Reason::PROTOCOL_ERROR)),
            // Unknown frame types are ignored (§5.5).
            _ => Ok(()),
        }
    }

    fn find(&mut self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// A frame on a stream that is not open: idle (never opened: a connection error) or
    /// closed. `Ok(true)`: answer STREAM_CLOSED; `Ok(false)`: ignore it (a stream this side
    /// reset, whose frames may still be in flight).
    fn not_open(&self, id: u32) -> Result<bool, ConnError> {
        if id == 0 || id > self.last_id {
            return Err(ConnError(Reason::PROTOCOL_ERROR));
        }
        Ok(!self.reset_here.contains(&id))
    }

    /// Counts received bytes no one holds any more, to give back as connection window.
    fn unacked(&mut self, n: usize) {
        self.conn_unacked = self
            .conn_unacked
            .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
    }

    /// Hands the requests whose body is held for good to the shell: their body goes on
    /// streamed (the shell's idle tick: a client that takes this long to send a small body is
    /// left to the proxy's body deadlines).
    pub fn start_held(&mut self) {
        self.start_pending(true);
    }

    /// Hands the requests parsed so far to the shell, each body whole if it ended. A request
    /// that announced a small body (`content-length` up to [`HOLD_MAX`]) waits for all of it
    /// (unless `all`), so the proxy gets it whole and a body that does not match its length
    /// is refused before the request is acted on, however its frames were split.
    fn start_pending(&mut self, all: bool) {
        let window = self.limits.stream_window;
        for s in &mut self.streams {
            let small = s.content_length.is_some_and(|n| n <= HOLD_MAX);
            if s.pending.is_none() || (s.recv_open && small && !all) {
                continue;
            }
            let Some(head) = s.pending.take() else {
                continue;
            };
            let held = match std::mem::replace(&mut s.body, In::Dropped) {
                In::Held(b) => b,
                other => {
                    s.body = other;
                    BytesMut::new()
                }
            };
            let body = if !s.recv_open {
                // Whole: the handler holds it from here.
                self.conn_unacked = self
                    .conn_unacked
                    .saturating_add(u32::try_from(held.len()).unwrap_or(u32::MAX));
                Body::Whole((!held.is_empty()).then(|| held.freeze()))
            } else {
                let (inbox, body) = Inbox::new(window);
                if !held.is_empty() {
                    inbox.push(held.freeze(), false);
                }
                s.body = In::Streaming(inbox);
                Body::Streamed(body)
            };
            self.events.push_back(Event::Request {
                stream: s.id,
                head,
                body,
            });
        }
    }

    /// Gives back connection window for what was received, once half of it is used.
    fn give_back_conn_window(&mut self) {
        if self.conn_unacked >= self.limits.conn_window / 2 {
            frame::put_window_update(&mut self.out, 0, self.conn_unacked);
            self.conn_unacked = 0;
        }
    }

    /// Gives back window for what the proxy read of the streamed bodies (the stream's while
    /// the client may still send, and the connection's); drops the bodies nobody reads any
    /// more.
    pub fn release(&mut self, cx: &mut std::task::Context<'_>) {
        let mut back = 0u32;
        for s in &mut self.streams {
            let In::Streaming(inbox) = &s.body else {
                continue;
            };
            let mut n = inbox.take_released(cx);
            if inbox.abandoned() {
                n = n.saturating_add(inbox.drain());
                s.body = In::Dropped;
            }
            if n > 0 && s.recv_open {
                s.recv_window += i64::from(n);
                frame::put_window_update(&mut self.out, s.id, n);
            }
            back = back.saturating_add(n);
        }
        self.conn_unacked = self.conn_unacked.saturating_add(back);
        self.give_back_conn_window();
    }

    /// Removes a stream once both sides ended; an answer that ended before the request did
    /// tells the client to stop sending (RST_STREAM NO_ERROR, RFC 9113 §8.1).
    fn end_if_done(&mut self, i: usize) {
        let s = &self.streams[i];
        if !s.send_done {
            return;
        }
        if s.recv_open {
            self.reset_at(i, Reason::NO_ERROR);
            return;
        }
        let s = self.streams.swap_remove(i);
        remember(&mut self.closed, s.id);
        self.reset_budget = (self.reset_budget + 1).min(RESET_BURST);
        if let In::Streaming(inbox) = &s.body {
            inbox.push(Bytes::new(), true);
            let n = inbox.drain();
            self.conn_unacked = self.conn_unacked.saturating_add(n);
        }
    }

    /// Resets an open stream: its handler (if it was started) is cancelled.
    fn reset_at(&mut self, i: usize, reason: Reason) {
        let s = self.streams.swap_remove(i);
        self.reset(s.id, reason);
        self.gone(s, RecvError::Reset);
    }

    fn gone(&mut self, s: Stream, why: RecvError) {
        match &s.body {
            In::Streaming(inbox) => {
                inbox.fail(why);
                let n = inbox.drain();
                self.conn_unacked = self.conn_unacked.saturating_add(n);
            }
            In::Held(b) => self.unacked(b.len()),
            In::Dropped => {}
        }
        if s.pending.is_none() && !(s.responded && s.send_done) {
            self.events.push_back(Event::Cancel(s.id));
        }
    }

    /// RST_STREAM on a stream that is not open (any more); its late frames are ignored.
    fn reset(&mut self, id: u32, reason: Reason) {
        if reason != Reason::NO_ERROR && reason != Reason::REFUSED_STREAM {
            self.error_resets += 1;
        }
        frame::put_rst(&mut self.out, id, reason);
        remember(&mut self.reset_here, id);
    }
}

/// Keeps the last [`RESET_MEMORY`] stream ids.
fn remember(ids: &mut VecDeque<u32>, id: u32) {
    if ids.len() == RESET_MEMORY {
        ids.pop_front();
    }
    ids.push_back(id);
}

#[cfg(test)]
#[path = "conn_error_tests.rs"]
mod error_tests;
#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
