//! Pure (no IO, no clock): one HTTP/2 client connection to a peer router (RFC 9113). The shell
//! (`link.rs`) opens streams on it (a request's header block and its whole body, sent at once
//! or not at all), hands it the bytes the peer sent, and takes the frames owed out; each
//! stream's answer is waited for with [`Conn::poll_head`]. A request goes on this connection
//! only when it can leave whole: a body must fit the peer's windows (a bigger one, or one still
//! streaming from its client, goes over HTTP/1.1), so a stream never waits to send.
//!
//! What may be sent again is kept apart from what may have been acted on ([`Failure`]): a
//! stream the peer refused (RST_STREAM `REFUSED_STREAM`, or beyond a GOAWAY's last stream), or
//! one whose HEADERS never left this side, was not processed. A stream's frames wait until the
//! peer's SETTINGS came: an accepted TCP connection may be a relay or a balancer with no
//! router behind it yet, and a request written into it could not be told from one that
//! arrived.

use crate::body::h2::{Inbox, RecvBody, RecvError};
use crate::h2::frame::{self, PeerSettings, Reason, kind};
use crate::h2::hpack::Decoder;
use bytes::{Bytes, BytesMut};
use http::response::Parts;
use std::task::{Context, Poll, Waker};

/// The connection's receive window, raised to this at the start. DATA is given back to it as
/// it arrives: what bounds a body in the router is its stream's window.
const CONN_WINDOW: u32 = 1 << 30;
/// The most bytes of one header block (HEADERS and its CONTINUATIONs).
const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// The highest stream id a client may open.
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// What this side holds itself to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Streams open at once (fewer if the peer says so).
    pub max_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: how much of an answer's body the peer may send ahead of
    /// the proxy reading it.
    pub stream_window: u32,
}

/// Why a stream got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The peer did not act on the request and will not: sending it again is safe.
    Refused(String),
    /// The request may have been acted on.
    Broken(String),
}

/// An answer's body as the proxy gets it: whole (it came with its head), or still coming.
#[derive(Debug)]
pub enum Answer {
    Whole(Option<Bytes>),
    Streamed(RecvBody),
}

/// The connection cannot take this request now (full, going away, or its body does not fit
/// the windows): another connection, or HTTP/1.1, may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

#[derive(Debug)]
struct Stream {
    id: u32,
    /// The final answer's head, until the waiter takes it.
    head: Option<Parts>,
    /// The waiter took the head.
    taken: bool,
    /// The body that came before the head was taken.
    data: BytesMut,
    /// The body from the moment the head was taken, when it had not ended by then.
    inbox: Option<Inbox>,
    /// END_STREAM came.
    ended: bool,
    failed: Option<Failure>,
    waiter: Option<Waker>,
    /// How much more body the peer may send.
    recv_window: i64,
    /// Its HEADERS left in a write the socket took.
    written: bool,
    /// The answer's `content-length`, and the body bytes seen.
    expect: Option<u64>,
    got: u64,
}

/// A header block still taking CONTINUATION frames.
#[derive(Debug)]
struct Partial {
    stream: u32,
    end_stream: bool,
    block: BytesMut,
}

/// One client connection's state.
pub struct Conn {
    limits: Limits,
    /// Frames owed to the peer.
    out: BytesMut,
    /// Streams' frames opened before the peer's SETTINGS came (then moved to `out`).
    pending: BytesMut,
    /// The peer's SETTINGS came: it speaks HTTP/2.
    ready: bool,
    decoder: Decoder,
    peer: PeerSettings,
    /// The peer's SETTINGS_MAX_CONCURRENT_STREAMS.
    peer_max_streams: u32,
    /// The connection's send window.
    send_window: i64,
    /// The connection's receive window, and what came of it not yet given back.
    recv_window: i64,
    recv_unacked: u32,
    next_id: u32,
    /// Open streams, by id (ids only grow, so pushed in order).
    streams: Vec<Stream>,
    partial: Option<Partial>,
    /// The peer's GOAWAY: the last stream it may act on.
    goaway: Option<u32>,
    /// No new streams (a response timeout made this connection suspect).
    retired: bool,
    /// The connection is over, and why.
    dead: Option<String>,
}

impl Conn {
    /// A new connection: the preface, this side's SETTINGS and the connection window owed out.
    pub fn new(limits: Limits) -> Conn {
        let mut out = BytesMut::with_capacity(4096);
        out.extend_from_slice(frame::PREFACE);
        // ENABLE_PUSH 0, INITIAL_WINDOW_SIZE.
        frame::put_head(&mut out, 12, kind::SETTINGS, 0, 0);
        for (id, v) in [(0x2u16, 0u32), (0x4, limits.stream_window)] {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&v.to_be_bytes());
        }
        let extra = i64::from(CONN_WINDOW) - frame::DEFAULT_WINDOW;
        frame::put_window_update(&mut out, 0, extra as u32);
        Conn {
            limits,
            out,
            pending: BytesMut::new(),
            ready: false,
            decoder: Decoder::new(4096),
            peer: PeerSettings::default(),
            peer_max_streams: u32::MAX,
            send_window: frame::DEFAULT_WINDOW,
            recv_window: i64::from(CONN_WINDOW),
            recv_unacked: 0,
            next_id: 1,
            streams: Vec::new(),
            partial: None,
            goaway: None,
            retired: false,
            dead: None,
        }
    }

    /// Opens a stream for a request: its header block, then its body (if any) with
    /// END_STREAM, all owed out at once. [`Busy`] when the connection takes no new stream, is
    /// at its streams' limit, or the body does not fit the peer's windows.
    pub fn open(&mut self, block: &[u8], body: Option<&Bytes>) -> Result<u32, Busy> {
        if !self.usable() || self.streams.len() >= self.max_streams() {
            return Err(Busy);
        }
        let len = body.map_or(0, Bytes::len);
        let fits = i64::try_from(len)
            .is_ok_and(|n| n <= self.peer.initial_window && n <= self.send_window);
        if !fits {
            return Err(Busy);
        }
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(2);
        let out = if self.ready {
            &mut self.out
        } else {
            &mut self.pending
        };
        frame::put_headers(out, id, block, len == 0, self.peer.max_frame);
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            let max = self.peer.max_frame as usize;
            let mut chunks = body.chunks(max).peekable();
            while let Some(c) = chunks.next() {
                frame::put_data(out, id, c, chunks.peek().is_none());
            }
            self.send_window -= len as i64;
        }
        self.streams.push(Stream {
            id,
            head: None,
            taken: false,
            data: BytesMut::new(),
            inbox: None,
            ended: false,
            failed: None,
            waiter: None,
            recv_window: i64::from(self.limits.stream_window),
            written: false,
            expect: None,
            got: 0,
        });
        Ok(id)
    }

    /// Whether the peer's SETTINGS came (streams' frames leave only from then on).
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Whether the connection takes new streams at all.
    pub fn usable(&self) -> bool {
        self.dead.is_none()
            && self.goaway.is_none()
            && !self.retired
            && self.next_id <= MAX_STREAM_ID
    }

    /// The most a body sent on a new stream may be (the peer's stream window).
    pub fn max_body(&self) -> i64 {
        self.peer.initial_window.min(self.send_window)
    }

    fn max_streams(&self) -> usize {
        self.limits.max_streams.min(self.peer_max_streams) as usize
    }

    /// No new streams from now on; the open ones go on.
    pub fn retire(&mut self) {
        self.retired = true;
    }

    /// A PING owed out (any answer proves the peer is there).
    pub fn ping(&mut self) {
        if self.dead.is_none() {
            frame::put_ping(&mut self.out, false, b"coopr-rt");
        }
    }

    /// Over: dead, or not taking streams and none left.
    pub fn finished(&self) -> bool {
        self.dead.is_some() || (!self.usable() && self.streams.is_empty())
    }

    /// The frames owed out, and the first stream id not in them (1: none, before the peer's
    /// SETTINGS).
    pub fn take_out(&mut self) -> (Bytes, u32) {
        let below = if self.ready { self.next_id } else { 1 };
        (self.out.split().freeze(), below)
    }

    /// The socket took every byte owed out before streams `below`: their requests have left.
    pub fn written(&mut self, below: u32) {
        for s in self.streams.iter_mut().take_while(|s| s.id < below) {
            s.written = true;
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.binary_search_by_key(&id, |s| s.id).ok()
    }

    /// The answer's head and body once it came, or why there is none. Ready once only.
    pub fn poll_head(
        &mut self,
        id: u32,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(Parts, Answer), Failure>> {
        let Some(i) = self.find(id) else {
            return Poll::Ready(Err(Failure::Broken("the stream is gone".into())));
        };
        let s = &mut self.streams[i];
        if let Some(head) = s.head.take() {
            s.taken = true;
            let data = std::mem::take(&mut s.data).freeze();
            if s.ended {
                self.streams.remove(i);
                let body = (!data.is_empty()).then_some(data);
                return Poll::Ready(Ok((head, Answer::Whole(body))));
            }
            let (inbox, body) = Inbox::with_length(self.limits.stream_window, s.expect);
            if !data.is_empty() {
                inbox.push(data, false);
            }
            if s.failed.is_some() {
                inbox.fail(RecvError::Reset);
                self.streams.remove(i);
            } else {
                s.inbox = Some(inbox);
            }
            return Poll::Ready(Ok((head, Answer::Streamed(body))));
        }
        if let Some(f) = s.failed.take() {
            self.streams.remove(i);
            return Poll::Ready(Err(f));
        }
        match &s.waiter {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waiter = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The waiter gave up before taking the head (a timeout, or its client left): the stream is
    /// reset if the peer is still on it. (Before the peer's SETTINGS its frames are still to
    /// leave, and a reset of a stream not yet opened would be the peer's protocol error: it
    /// goes as any request whose client left.)
    pub fn cancel(&mut self, id: u32) {
        if let Some(i) = self.find(id) {
            let s = self.streams.remove(i);
            if !s.ended && s.failed.is_none() && self.dead.is_none() && self.ready {
                frame::put_rst(&mut self.out, id, Reason::CANCEL);
            }
        }
    }

    /// Gives back as window what the proxy read of the bodies streaming, and resets the
    /// streams whose body nobody reads any more. `cx`: the shell's, woken when a body was read
    /// far enough to owe a WINDOW_UPDATE.
    pub fn release(&mut self, cx: &mut Context<'_>) {
        let dead = self.dead.is_some();
        let out = &mut self.out;
        self.streams.retain_mut(|s| {
            let Some(inbox) = &s.inbox else { return true };
            if inbox.abandoned() {
                if !dead {
                    frame::put_rst(out, s.id, Reason::CANCEL);
                }
                return false;
            }
            let n = inbox.take_released(cx);
            if n > 0 && !dead {
                s.recv_window += i64::from(n);
                frame::put_window_update(out, s.id, n);
            }
            true
        });
    }

    /// The socket closed or failed: every stream fails, as refused if its request never left.
    pub fn closed(&mut self, why: &str) {
        if self.dead.is_none() {
            self.dead = Some(why.to_string());
        }
        self.streams.retain_mut(|s| {
            if s.failed.is_some() || s.ended {
                return !s.taken;
            }
            let failure = if s.written {
                Failure::Broken(format!("the connection to the peer closed: {why}"))
            } else {
                Failure::Refused(format!(
                    "the connection to the peer closed before the request was sent: {why}"
                ))
            };
            !fail_stream(s, failure, RecvError::Closed)
        });
    }

    /// Streams open.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }
}

/// Stream `s` fails: a waiter that took its head hears it from the body (`body`), which ends
/// the stream (true: remove it); else the waiter hears `failure` when it next asks (a head
/// that came is still handed over, its body broken off).
fn fail_stream(s: &mut Stream, failure: Failure, body: RecvError) -> bool {
    if s.taken {
        if let Some(inbox) = &s.inbox
            && !s.ended
        {
            inbox.fail(body);
        }
        return true;
    }
    s.failed = Some(failure);
    if let Some(w) = s.waiter.take() {
        w.wake();
    }
    false
}

#[path = "recv.rs"]
mod recv;

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
