//! The connection's state driven by frames, as a client could send them: requests, bodies,
//! windows, answers, PING and GOAWAY. The frame helpers here serve `conn_error_tests.rs` too.

use super::*;
use http::{Method, Version};
use http_body::Body as _;

pub(super) const LIMITS: Limits = Limits {
    max_streams: 4,
    max_header_list: 1024,
    stream_window: 100,
    conn_window: 1 << 20,
};

/// Frames as (kind, flags, stream, payload).
pub(super) type Frames = Vec<(u8, u8, u32, Vec<u8>)>;

pub(super) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame::put_head(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out.to_vec()
}

/// HPACK for `GET http://a/` (static :method GET, :scheme http, :path /; :authority literal),
/// then `extra` as raw literal fields without indexing.
pub(super) fn block(method: &[u8], path: &[u8], extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    let mut lit = |name: &[u8], value: &[u8]| {
        b.push(0x00);
        b.push(name.len() as u8);
        b.extend_from_slice(name);
        b.push(value.len() as u8);
        b.extend_from_slice(value);
    };
    lit(b":method", method);
    lit(b":scheme", b"http");
    lit(b":authority", b"a");
    if !path.is_empty() {
        lit(b":path", path);
    }
    for (n, v) in extra {
        lit(n, v);
    }
    b
}

pub(super) fn get(stream: u32) -> Vec<u8> {
    frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        stream,
        &block(b"GET", b"/", &[]),
    )
}

/// The frames in `out` after the opening SETTINGS and WINDOW_UPDATE: (kind, flags, stream,
/// payload).
pub(super) fn frames(out: &[u8]) -> Frames {
    let mut at = 0;
    let mut seen = Vec::new();
    while let Some(h) = Head::parse(&out[at..]) {
        let p = out[at + frame::HEADER_LEN..at + frame::HEADER_LEN + h.len].to_vec();
        seen.push((h.kind, h.flags, h.stream, p));
        at += frame::HEADER_LEN + h.len;
    }
    assert_eq!(at, out.len(), "out ends in a whole frame");
    seen
}

/// A connection that took `input`: the result and what it wrote after its opening frames.
pub(super) fn run(input: &[u8]) -> (Conn, Result<(), ConnError>, Frames) {
    let mut c = Conn::new(LIMITS);
    c.out.clear();
    let mut buf = BytesMut::from(input);
    let r = c.recv(&mut buf);
    let f = frames(&c.out);
    (c, r, f)
}

pub(super) fn rst(stream: u32, reason: Reason) -> (u8, u8, u32, Vec<u8>) {
    (kind::RST_STREAM, 0, stream, reason.0.to_be_bytes().to_vec())
}

#[test]
fn the_server_opens_with_its_settings_and_window() {
    let c = Conn::new(LIMITS);
    let f = frames(&c.out);
    assert_eq!(f[0].0, kind::SETTINGS);
    assert_eq!(
        f[0].3,
        [0, 3, 0, 0, 0, 4, 0, 4, 0, 0, 0, 100, 0, 6, 0, 0, 4, 0]
    );
    assert_eq!(f[1].0, kind::WINDOW_UPDATE);
    assert_eq!(
        u32::from_be_bytes(f[1].3[..].try_into().unwrap()) as i64,
        (1 << 20) - frame::DEFAULT_WINDOW
    );
}

#[test]
fn a_get_is_a_request_with_no_body() {
    let (mut c, r, out) = run(&get(1));
    assert_eq!(r, Ok(()));
    assert!(out.is_empty(), "{out:?}");
    let Some(Event::Request { stream, head, body }) = c.events.pop_front() else {
        panic!("no request");
    };
    assert_eq!(stream, 1);
    assert_eq!(head.method(), Method::GET);
    assert_eq!(head.uri(), "http://a/");
    assert_eq!(head.version(), Version::HTTP_2);
    assert!(matches!(body, Body::Whole(None)));
    assert_eq!(c.open_streams(), 1);
}

#[test]
fn a_body_that_ends_in_the_same_read_is_whole_else_streamed() {
    let mut input = frame(
        kind::HEADERS,
        flag::END_HEADERS,
        1,
        &block(b"POST", b"/v2/clusters", &[]),
    );
    input.extend(frame(kind::DATA, 0, 1, b"ab"));
    input.extend(frame(kind::DATA, flag::END_STREAM, 1, b"cd"));
    let (mut c, r, _) = run(&input);
    assert_eq!(r, Ok(()));
    match c.events.pop_front() {
        Some(Event::Request {
            body: Body::Whole(Some(b)),
            ..
        }) => assert_eq!(b, "abcd"),
        other => panic!("{other:?}"),
    }

    let input = frame(
        kind::HEADERS,
        flag::END_HEADERS,
        1,
        &block(b"POST", b"/", &[]),
    );
    let (mut c, _, _) = run(&input);
    let Some(Event::Request {
        body: Body::Streamed(mut body),
        ..
    }) = c.events.pop_front()
    else {
        panic!("not streamed");
    };
    let mut buf = BytesMut::from(&frame(kind::DATA, flag::END_STREAM, 1, b"xyz")[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let got = std::pin::Pin::new(&mut body).poll_frame(&mut cx);
    match got {
        std::task::Poll::Ready(Some(Ok(f))) => assert_eq!(f.into_data().unwrap(), "xyz"),
        other => panic!("{other:?}"),
    }
    // What the proxy read is given back to the client as stream window (the stream's own
    // side is closed, so only while it is open; here it ended).
    c.out.clear();
    c.release(&mut cx);
    assert!(frames(&c.out).is_empty());
}

#[test]
fn streams_past_the_limit_are_refused_and_headers_too_large_get_431() {
    let input: Vec<u8> = (0..5u32).flat_map(|i| get(2 * i + 1)).collect();
    let (c, r, out) = run(&input);
    assert_eq!(r, Ok(()));
    assert_eq!(out, vec![rst(9, Reason::REFUSED_STREAM)]);
    assert_eq!(c.open_streams(), 4);

    let big = vec![b'v'; 1100];
    let input = frame(kind::HEADERS, flag::END_HEADERS | flag::END_STREAM, 1, &{
        let mut b = block(b"GET", b"/", &[]);
        b.extend([0x00, 0x01, b'x', 0x7f]);
        b.extend(hpack_len(1100 - 127));
        b.extend(&big);
        b
    });
    let (c, r, out) = run(&input);
    assert_eq!(r, Ok(()));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0].0, out[0].1),
        (kind::HEADERS, flag::END_HEADERS | flag::END_STREAM)
    );
    // :status 431 as a literal with the static name :status (index 8).
    assert_eq!(out[0].3, [0x08, 3, b'4', b'3', b'1']);
    assert_eq!(c.open_streams(), 0);
}

/// The continuation octets of an HPACK integer past a 7-bit prefix.
fn hpack_len(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
    out
}

#[test]
fn answers_are_framed_within_the_windows() {
    // The client's streams may be sent 3 octets at first.
    let mut input = frame(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 3]);
    input.extend(get(1));
    let (mut c, r, out) = run(&input);
    assert_eq!(r, Ok(()));
    assert_eq!(out, vec![(kind::SETTINGS, flag::ACK, 0, vec![])]);
    c.out.clear();
    c.respond(1, StatusCode::OK, &HeaderMap::new(), false);
    assert_eq!(c.send_capacity(1), 3);
    c.send_data(1, b"abc", false);
    assert_eq!(c.send_capacity(1), 0);
    let mut buf = BytesMut::from(&frame(kind::WINDOW_UPDATE, 0, 1, &[0, 0, 0, 2])[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    assert_eq!(c.send_capacity(1), 2);
    c.send_data(1, b"de", true);
    let out = frames(&c.out);
    assert_eq!(out[0].0, kind::HEADERS);
    assert_eq!(out[0].3, [0x88]);
    assert_eq!(out[1], (kind::DATA, 0, 1, b"abc".to_vec()));
    assert_eq!(out[2], (kind::DATA, flag::END_STREAM, 1, b"de".to_vec()));
    assert_eq!(c.open_streams(), 0, "both sides ended");
    // A SETTINGS change moves the open streams' windows, down past zero too.
    let mut input = get(1);
    input.extend(frame(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]));
    let (c, _, _) = run(&input);
    assert_eq!(c.send_capacity(1), 0);
}

#[test]
fn an_answer_before_the_request_ended_resets_it_and_its_late_frames_are_ignored() {
    let input = frame(
        kind::HEADERS,
        flag::END_HEADERS,
        1,
        &block(b"POST", b"/", &[]),
    );
    let (mut c, _, _) = run(&input);
    c.respond(1, StatusCode::OK, &HeaderMap::new(), true);
    let out = frames(&c.out);
    assert_eq!(out.last(), Some(&rst(1, Reason::NO_ERROR)));
    c.out.clear();
    let mut buf = BytesMut::from(&frame(kind::DATA, flag::END_STREAM, 1, b"late")[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    assert!(frames(&c.out).is_empty(), "late DATA is ignored");
    // A client's reset, then DATA: STREAM_CLOSED.
    let mut input = frame(
        kind::HEADERS,
        flag::END_HEADERS,
        3,
        &block(b"POST", b"/", &[]),
    );
    input.extend(frame(kind::RST_STREAM, 0, 3, &[0, 0, 0, 8]));
    input.extend(frame(kind::DATA, 0, 3, b"x"));
    let (c, r, out) = run(&input);
    assert_eq!(r, Ok(()));
    assert_eq!(out, vec![rst(3, Reason::STREAM_CLOSED)]);
    assert!(c.events.is_empty(), "never handed out: nothing to cancel");
}

#[test]
fn a_ping_is_answered_and_goaway_ends_new_streams() {
    let (mut c, r, out) = run(&frame(kind::PING, 0, 0, b"12345678"));
    assert_eq!(r, Ok(()));
    assert_eq!(out, vec![(kind::PING, flag::ACK, 0, b"12345678".to_vec())]);
    c.out.clear();
    c.go_away();
    let mut buf = BytesMut::from(&get(1)[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    let out = frames(&c.out);
    assert_eq!(out[0].0, kind::GOAWAY);
    assert_eq!(out[1], rst(1, Reason::REFUSED_STREAM));
    assert!(c.closing());
}

#[test]
fn the_connection_window_comes_back_as_bodies_are_read_or_dropped() {
    let limits = Limits {
        conn_window: 1000,
        stream_window: 10_000,
        ..LIMITS
    };
    let mut c = Conn::new(limits);
    c.out.clear();
    let post = |id| {
        frame(
            kind::HEADERS,
            flag::END_HEADERS,
            id,
            &block(b"POST", b"/", &[]),
        )
    };
    let mut input = post(1);
    input.extend(frame(kind::DATA, 0, 1, &[7; 600]));
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    let Some(Event::Request {
        body: Body::Streamed(mut body),
        ..
    }) = c.events.pop_front()
    else {
        panic!("not streamed");
    };
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    c.release(&mut cx);
    assert!(
        frames(&c.out).is_empty(),
        "nothing read, nothing given back"
    );
    assert!(std::pin::Pin::new(&mut body).poll_frame(&mut cx).is_ready());
    c.release(&mut cx);
    let update = |stream: u32, n: u32| (kind::WINDOW_UPDATE, 0, stream, n.to_be_bytes().to_vec());
    assert_eq!(frames(&c.out), vec![update(1, 600), update(0, 600)]);
    c.out.clear();

    // Unread, then the client resets the stream: the data is dropped and its window comes back.
    let mut input = post(3);
    input.extend(frame(kind::DATA, 0, 3, &[7; 300]));
    input.extend(frame(kind::DATA, 0, 3, &[7; 300]));
    input.extend(frame(kind::RST_STREAM, 0, 3, &[0, 0, 0, 8]));
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    assert_eq!(frames(&c.out), vec![update(0, 600)]);
    // A padded frame's padding comes back at once.
    c.out.clear();
    let mut input = post(5);
    let mut padded = vec![10u8];
    padded.extend([1; 5]);
    padded.extend([0; 10]);
    input.extend(frame(kind::DATA, flag::PADDED, 5, &padded));
    let mut buf = BytesMut::from(&input[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    assert_eq!(frames(&c.out), vec![update(5, 11)]);
    drop(body);
}

#[test]
fn a_small_announced_body_is_waited_for_across_reads() {
    let head = frame(
        kind::HEADERS,
        flag::END_HEADERS,
        1,
        &block(b"POST", b"/", &[(b"content-length", b"6")]),
    );
    let (mut c, r, _) = run(&head);
    assert_eq!(r, Ok(()));
    assert!(c.events.is_empty(), "held for its body");
    let mut buf = BytesMut::from(&frame(kind::DATA, 0, 1, b"abc")[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    assert!(c.events.is_empty(), "still held");
    let mut buf = BytesMut::from(&frame(kind::DATA, flag::END_STREAM, 1, b"def")[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    match c.events.pop_front() {
        Some(Event::Request {
            body: Body::Whole(Some(b)),
            ..
        }) => assert_eq!(b, "abcdef"),
        other => panic!("{other:?}"),
    }
    // h2spec 8.1.2.6/2: more than announced, in a later read: refused before it is acted on.
    let (mut c, _, _) = run(&frame(
        kind::HEADERS,
        flag::END_HEADERS,
        1,
        &block(b"POST", b"/", &[(b"content-length", b"1")]),
    ));
    c.out.clear();
    let mut buf = BytesMut::from(&frame(kind::DATA, 0, 1, b"test")[..]);
    assert_eq!(c.recv(&mut buf), Ok(()));
    assert_eq!(frames(&c.out), vec![rst(1, Reason::PROTOCOL_ERROR)]);
    assert!(c.events.is_empty());
    // A slow one goes on streamed at the shell's tick, with what came so far.
    let (mut c, _, _) = run(&[head, frame(kind::DATA, 0, 1, b"ab")].concat());
    c.start_held();
    let Some(Event::Request {
        body: Body::Streamed(mut body),
        ..
    }) = c.events.pop_front()
    else {
        panic!("not started");
    };
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(&mut body).poll_frame(&mut cx) {
        std::task::Poll::Ready(Some(Ok(f))) => assert_eq!(f.into_data().unwrap(), "ab"),
        other => panic!("{other:?}"),
    }
}
