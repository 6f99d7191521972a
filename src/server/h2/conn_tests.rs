//! The connection's state driven by frames, as a client could send them: requests, bodies,
//! windows, and what each protocol error comes to (RFC 9113), by table.

use super::*;
use http_body::Body as _;
use proptest::prelude::*;

const LIMITS: Limits = Limits {
    max_streams: 4,
    max_header_list: 1024,
    stream_window: 100,
    conn_window: 1 << 20,
};

/// Frames as (kind, flags, stream, payload).
type Frames = Vec<(u8, u8, u32, Vec<u8>)>;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    frame::put_head(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out.to_vec()
}

/// HPACK for `GET http://a/` (static :method GET, :scheme http, :path /; :authority literal),
/// then `extra` as raw literal fields without indexing.
fn block(method: &[u8], path: &[u8], extra: &[(&[u8], &[u8])]) -> Vec<u8> {
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

fn get(stream: u32) -> Vec<u8> {
    frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        stream,
        &block(b"GET", b"/", &[]),
    )
}

/// The frames in `out` after the opening SETTINGS and WINDOW_UPDATE: (kind, flags, stream,
/// payload).
fn frames(out: &[u8]) -> Frames {
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
fn run(input: &[u8]) -> (Conn, Result<(), ConnError>, Frames) {
    let mut c = Conn::new(LIMITS);
    c.out.clear();
    let mut buf = BytesMut::from(input);
    let r = c.recv(&mut buf);
    let f = frames(&c.out);
    (c, r, f)
}

fn rst(stream: u32, reason: Reason) -> (u8, u8, u32, Vec<u8>) {
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
fn protocol_errors_by_table() {
    let conn = |r: Reason| Err(ConnError(r));
    let mut long_block = frame(kind::HEADERS, 0, 1, &block(b"GET", b"/", &[])[..4]);
    long_block.extend(frame(kind::PING, 0, 0, &[0; 8]));
    let cases: Vec<(&str, Vec<u8>, Result<(), ConnError>)> = vec![
        (
            "DATA on an idle stream",
            frame(kind::DATA, 0, 1, b"x"),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "HEADERS on stream 0",
            frame(
                kind::HEADERS,
                flag::END_HEADERS,
                0,
                &block(b"GET", b"/", &[]),
            ),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "HEADERS on an even stream",
            frame(
                kind::HEADERS,
                flag::END_HEADERS,
                2,
                &block(b"GET", b"/", &[]),
            ),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "a lower stream than the last",
            [get(5), get(3)].concat(),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "HEADERS on a stream that ended",
            [get(1), frame(kind::RST_STREAM, 0, 1, &[0, 0, 0, 8]), get(1)].concat(),
            conn(Reason::STREAM_CLOSED),
        ),
        (
            "a frame over 16,384 octets",
            frame(kind::DATA, 0, 1, &[0; 16_385]),
            conn(Reason::FRAME_SIZE_ERROR),
        ),
        (
            "PING of 7 octets",
            frame(kind::PING, 0, 0, &[0; 7]),
            conn(Reason::FRAME_SIZE_ERROR),
        ),
        (
            "PING on a stream",
            frame(kind::PING, 0, 1, &[0; 8]),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "SETTINGS ACK with a payload",
            frame(kind::SETTINGS, flag::ACK, 0, &[0; 6]),
            conn(Reason::FRAME_SIZE_ERROR),
        ),
        (
            "SETTINGS on a stream",
            frame(kind::SETTINGS, 0, 1, &[]),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "SETTINGS of 5 octets",
            frame(kind::SETTINGS, 0, 0, &[0; 5]),
            conn(Reason::FRAME_SIZE_ERROR),
        ),
        (
            "WINDOW_UPDATE of 0 on the connection",
            frame(kind::WINDOW_UPDATE, 0, 0, &[0; 4]),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "a connection window past 2^31-1",
            frame(kind::WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes()),
            conn(Reason::FLOW_CONTROL_ERROR),
        ),
        (
            "WINDOW_UPDATE on an idle stream",
            frame(kind::WINDOW_UPDATE, 0, 7, &[0, 0, 0, 1]),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "RST_STREAM on an idle stream",
            frame(kind::RST_STREAM, 0, 1, &[0; 4]),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "RST_STREAM of 3 octets",
            [get(1), frame(kind::RST_STREAM, 0, 1, &[0; 3])].concat(),
            conn(Reason::FRAME_SIZE_ERROR),
        ),
        (
            "another frame inside a header block",
            long_block,
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "CONTINUATION with no header block",
            frame(kind::CONTINUATION, flag::END_HEADERS, 1, &[0x82]),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "PUSH_PROMISE from a client",
            frame(kind::PUSH_PROMISE, 0, 1, &[0; 4]),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "GOAWAY on a stream",
            frame(kind::GOAWAY, 0, 1, &[0; 8]),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "a broken header block",
            frame(kind::HEADERS, flag::END_HEADERS, 1, &[0x80]),
            conn(Reason::COMPRESSION_ERROR),
        ),
        (
            "padding as long as the frame",
            frame(
                kind::HEADERS,
                flag::END_HEADERS | flag::PADDED,
                1,
                &[4, 0x82, 0, 0],
            ),
            conn(Reason::PROTOCOL_ERROR),
        ),
        (
            "an unknown frame type",
            frame(0xfa, 0, 0, b"whatever"),
            Ok(()),
        ),
        (
            "an unknown setting",
            frame(kind::SETTINGS, 0, 0, &[0, 0x99, 0, 0, 0, 1]),
            Ok(()),
        ),
    ];
    for (what, input, want) in cases {
        let (_, got, out) = run(&input);
        assert_eq!(got, want, "{what}: {out:?}");
    }
}

#[test]
fn malformed_requests_are_reset_by_table() {
    let one = |extra: &[(&[u8], &[u8])], method: &[u8], path: &[u8]| {
        frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            1,
            &block(method, path, extra),
        )
    };
    let cases: Vec<(&str, Vec<u8>, Option<Reason>)> = vec![
        ("fine", one(&[(b"x-a", b"b")], b"GET", b"/"), None),
        (
            "te: trailers",
            one(&[(b"te", b"trailers")], b"GET", b"/"),
            None,
        ),
        (
            "an uppercase name",
            one(&[(b"X-A", b"b")], b"GET", b"/"),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            "a connection header",
            one(&[(b"connection", b"close")], b"GET", b"/"),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            "te: gzip",
            one(&[(b"te", b"gzip")], b"GET", b"/"),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            "no :path",
            one(&[], b"GET", b""),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            "a pseudo-header after a field",
            one(&[(b"x-a", b"b"), (b":path", b"/")], b"GET", b"/"),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            "a pseudo-header twice",
            one(&[(b":path", b"/")], b"GET", b"/"),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            "an unknown pseudo-header",
            one(&[(b":foo", b"x")], b"GET", b"/"),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            ":status in a request",
            one(&[(b":status", b"200")], b"GET", b"/"),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            "content-length with no body",
            one(&[(b"content-length", b"3")], b"POST", b"/"),
            Some(Reason::PROTOCOL_ERROR),
        ),
        (
            "two content-lengths that differ",
            one(
                &[(b"content-length", b"0"), (b"content-length", b"1")],
                b"POST",
                b"/",
            ),
            Some(Reason::PROTOCOL_ERROR),
        ),
    ];
    for (what, input, want) in cases {
        let (mut c, r, out) = run(&input);
        assert_eq!(r, Ok(()), "{what}");
        match want {
            None => {
                assert!(out.is_empty(), "{what}: {out:?}");
                assert!(
                    matches!(c.events.pop_front(), Some(Event::Request { .. })),
                    "{what}"
                );
            }
            Some(reason) => {
                assert_eq!(out, vec![rst(1, reason)], "{what}");
                assert!(c.events.is_empty(), "{what}");
                assert_eq!(c.open_streams(), 0, "{what}");
            }
        }
    }
}

#[test]
fn a_body_longer_or_shorter_than_its_content_length_is_reset() {
    for (body, end) in [(&b"abcd"[..], true), (b"ab", true), (b"abcd", false)] {
        let mut input = frame(
            kind::HEADERS,
            flag::END_HEADERS,
            1,
            &block(b"POST", b"/", &[(b"content-length", b"3")]),
        );
        input.extend(frame(
            kind::DATA,
            if end { flag::END_STREAM } else { 0 },
            1,
            body,
        ));
        let (c, r, out) = run(&input);
        assert_eq!(r, Ok(()));
        assert_eq!(out, vec![rst(1, Reason::PROTOCOL_ERROR)], "{body:?}");
        assert_eq!(c.open_streams(), 0);
    }
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever arrives, in whatever pieces: no panic, whole frames out, and after a
    /// connection error nothing more is taken.
    #[test]
    fn any_bytes_in_any_pieces(
        input in proptest::collection::vec(any::<u8>(), 0..2048),
        cuts in proptest::collection::vec(1usize..300, 1..20),
        answer in any::<bool>(),
    ) {
        let mut c = Conn::new(LIMITS);
        let mut buf = BytesMut::new();
        let mut at = 0;
        for cut in cuts.iter().cycle() {
            if at >= input.len() {
                break;
            }
            let end = (at + cut).min(input.len());
            buf.extend_from_slice(&input[at..end]);
            at = end;
            if c.recv(&mut buf).is_err() {
                break;
            }
            while let Some(ev) = c.events.pop_front() {
                if let Event::Request { stream, .. } = ev && answer {
                    c.respond(stream, StatusCode::OK, &HeaderMap::new(), false);
                    let n = c.send_capacity(stream).min(5);
                    c.send_data(stream, &b"hello"[..n], n == 5);
                }
            }
        }
        frames(&c.out);
    }

    /// The same over a valid opening: a request, then arbitrary frames (each a valid header
    /// with an arbitrary type, flags, stream and payload).
    #[test]
    fn any_frames_after_a_request(
        fs in proptest::collection::vec(
            (0u8..12, any::<u8>(), 0u32..8, proptest::collection::vec(any::<u8>(), 0..40)),
            0..30,
        ),
    ) {
        let mut input = get(1);
        for (k, f, s, p) in &fs {
            input.extend(frame(*k, *f, *s, p));
        }
        let mut c = Conn::new(LIMITS);
        let mut buf = BytesMut::from(&input[..]);
        let _ = c.recv(&mut buf);
        frames(&c.out);
    }
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
fn reset_floods_end_the_connection() {
    // Rapid reset: requests reset by the client before they were answered.
    let mut input = Vec::new();
    for i in 0..=RESET_BURST {
        let id = 2 * i + 1;
        input.extend(get(id));
        input.extend(frame(kind::RST_STREAM, 0, id, &[0, 0, 0, 8]));
    }
    let (_, r, _) = run(&input);
    assert_eq!(r, Err(ConnError(Reason::ENHANCE_YOUR_CALM)));
    // One fewer is fine, and each answer gives one back.
    let mut c = Conn::new(LIMITS);
    let mut id = 1;
    for round in 0..3 {
        let mut input = Vec::new();
        let n = if round == 0 { RESET_BURST } else { 1 };
        for _ in 0..n {
            input.extend(get(id));
            input.extend(frame(kind::RST_STREAM, 0, id, &[0, 0, 0, 8]));
            id += 2;
        }
        input.extend(get(id));
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(c.recv(&mut buf), Ok(()), "round {round}");
        c.respond(id, StatusCode::OK, &HeaderMap::new(), true);
        id += 2;
    }
    // Streams reset for the client's own errors: past the limit, GOAWAY.
    let mut input = Vec::new();
    for i in 0..=MAX_ERROR_RESETS {
        input.extend(frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            2 * i + 1,
            &block(b"GET", b"", &[]),
        ));
    }
    let (_, r, _) = run(&input);
    assert_eq!(r, Err(ConnError(Reason::ENHANCE_YOUR_CALM)));
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
