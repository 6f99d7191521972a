//! What each protocol error comes to (RFC 9113), by table: connection errors, malformed
//! requests, bodies that do not match their length, reset floods; and any bytes or frames,
//! in any pieces, never panic and leave whole frames out.

use super::tests::{LIMITS, block, frame, frames, get, rst, run};
use super::*;
use proptest::prelude::*;

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
