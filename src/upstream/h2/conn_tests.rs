//! The client connection by tables of frames: what it owes out, what each frame of the peer
//! does to a stream, and which failures say the request was never acted on.

use super::*;
use crate::h2::encoder::Encoder;
use crate::h2::frame::put_head;
use crate::h2::frame::{Head, flag};
use http::{HeaderName, HeaderValue};
use http_body_util::BodyExt;

fn limits() -> Limits {
    Limits {
        max_streams: 4,
        stream_window: 1000,
    }
}

fn frame_bytes(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_head(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out.to_vec()
}

/// An answer's header block: `:status` then the fields.
fn answer(status: u16, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = BytesMut::new();
    Encoder::status(&mut b, status);
    for (n, v) in fields {
        Encoder::header(
            &mut b,
            &HeaderName::from_bytes(n.as_bytes()).unwrap(),
            &HeaderValue::from_str(v).unwrap(),
        );
    }
    b.to_vec()
}

fn headers(stream: u32, status: u16, fields: &[(&str, &str)], end: bool) -> Vec<u8> {
    let flags = flag::END_HEADERS | if end { flag::END_STREAM } else { 0 };
    frame_bytes(kind::HEADERS, flags, stream, &answer(status, fields))
}

fn data(stream: u32, d: &[u8], end: bool) -> Vec<u8> {
    frame_bytes(
        kind::DATA,
        if end { flag::END_STREAM } else { 0 },
        stream,
        d,
    )
}

/// The frames in `out` (after the preface, if it is there): (kind, flags, stream, payload).
fn frames(out: &[u8]) -> Vec<(u8, u8, u32, Vec<u8>)> {
    let mut at = if out.starts_with(frame::PREFACE) {
        frame::PREFACE.len()
    } else {
        0
    };
    let mut v = Vec::new();
    while let Some(h) = Head::parse(&out[at..]) {
        let p = out[at + frame::HEADER_LEN..at + frame::HEADER_LEN + h.len].to_vec();
        v.push((h.kind, h.flags, h.stream, p));
        at += frame::HEADER_LEN + h.len;
    }
    assert_eq!(at, out.len(), "whole frames");
    v
}

fn feed(c: &mut Conn, bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    c.recv(&mut buf);
}

fn out(c: &mut Conn) -> Vec<(u8, u8, u32, Vec<u8>)> {
    frames(&c.take_out().0)
}

fn poll(c: &mut Conn, id: u32) -> Poll<Result<(Parts, Answer), Failure>> {
    c.poll_head(id, &mut Context::from_waker(Waker::noop()))
}

/// A connection whose peer's (empty) SETTINGS came, with what it owed out taken.
fn ready_conn() -> Conn {
    let mut c = Conn::new(limits());
    feed(&mut c, &frame_bytes(kind::SETTINGS, 0, 0, &[]));
    assert!(c.ready());
    c.take_out();
    c
}

fn opened(c: &mut Conn, body: Option<&[u8]>) -> u32 {
    let body = body.map(Bytes::copy_from_slice);
    c.open(b"\x82\x86\x84", body.as_ref()).unwrap()
}

#[test]
fn a_connection_opens_with_the_preface_settings_without_push_and_a_large_window() {
    let mut c = Conn::new(limits());
    let (bytes, _) = c.take_out();
    assert!(bytes.starts_with(frame::PREFACE));
    let f = frames(&bytes);
    assert_eq!(f[0].0, kind::SETTINGS);
    assert_eq!(f[0].3, vec![0, 2, 0, 0, 0, 0, 0, 4, 0, 0, 0x03, 0xe8]);
    assert_eq!(f[1].0, kind::WINDOW_UPDATE);
    assert_eq!(
        frame::u31(&f[1].3, 0) as i64,
        i64::from(CONN_WINDOW) - 65_535
    );
}

#[test]
fn streams_leave_only_once_the_peer_sent_its_settings() {
    let mut c = Conn::new(limits());
    let a = opened(&mut c, Some(b"{}"));
    let (bytes, below) = c.take_out();
    assert_eq!(below, 1, "no stream has left");
    assert!(
        frames(&bytes).iter().all(|f| f.2 == 0),
        "only the connection's frames"
    );
    c.written(below);
    // A relay that accepted the connection and closed it: the request never left.
    let mut relay = Conn::new(limits());
    let r = opened(&mut relay, None);
    let (_, below) = relay.take_out();
    relay.written(below);
    relay.closed("closed by the peer");
    assert!(matches!(
        poll(&mut relay, r),
        Poll::Ready(Err(Failure::Refused(_)))
    ));
    // The peer's SETTINGS: acknowledged, then the stream's frames leave.
    feed(&mut c, &frame_bytes(kind::SETTINGS, 0, 0, &[]));
    let (bytes, below) = c.take_out();
    let f = frames(&bytes);
    assert_eq!((f[0].0, f[0].1), (kind::SETTINGS, flag::ACK));
    assert_eq!((f[1].0, f[1].2), (kind::HEADERS, a));
    assert_eq!((f[2].0, f[2].2, &f[2].3[..]), (kind::DATA, a, &b"{}"[..]));
    assert_eq!(below, 3);
}

#[test]
fn a_request_leaves_whole_and_an_answer_in_one_read_comes_whole() {
    let mut c = ready_conn();
    c.take_out();
    let id = opened(&mut c, Some(b"{}"));
    assert_eq!(id, 1);
    let f = out(&mut c);
    assert_eq!(
        (f[0].0, f[0].1, f[0].2),
        (kind::HEADERS, flag::END_HEADERS, 1)
    );
    assert_eq!(
        (f[1].0, f[1].1, &f[1].3[..]),
        (kind::DATA, flag::END_STREAM, &b"{}"[..])
    );
    assert!(poll(&mut c, id).is_pending());
    let mut read = headers(1, 200, &[("content-length", "5"), ("x-a", "b")], false);
    read.extend(data(1, b"hel", false));
    read.extend(data(1, b"lo", true));
    feed(&mut c, &read);
    let Poll::Ready(Ok((parts, Answer::Whole(Some(body))))) = poll(&mut c, id) else {
        panic!("a whole answer")
    };
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-a"], "b");
    assert_eq!(body, "hello");
    assert_eq!(c.open_streams(), 0, "the stream is over");
    let no_body = opened(&mut c, None);
    assert_eq!(no_body, 3);
    let f = out(&mut c);
    assert_eq!(
        f[0].1,
        flag::END_HEADERS | flag::END_STREAM,
        "no body: the HEADERS end it"
    );
}

#[tokio::test]
async fn a_body_still_coming_streams_and_what_is_read_is_given_back_as_window() {
    let mut c = ready_conn();
    c.take_out();
    let id = opened(&mut c, None);
    c.take_out();
    feed(
        &mut c,
        &headers(1, 200, &[("content-length", "700")], false),
    );
    feed(&mut c, &data(1, &[b'a'; 600], false));
    let Poll::Ready(Ok((_, Answer::Streamed(mut body)))) = poll(&mut c, id) else {
        panic!("a streamed answer")
    };
    assert_eq!(http_body::Body::size_hint(&body).exact(), Some(700));
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first.len(), 600);
    c.release(&mut Context::from_waker(Waker::noop()));
    let f = out(&mut c);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].0, f[0].2), (kind::WINDOW_UPDATE, 1));
    assert_eq!(frame::u31(&f[0].3, 0), 600);
    feed(&mut c, &data(1, &[b'b'; 100], true));
    assert_eq!(c.open_streams(), 0);
    let rest = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(rest.len(), 100);
    assert!(body.frame().await.is_none());
}

#[test]
fn failures_say_whether_the_peer_may_have_acted_on_the_request() {
    // (what happens, whether the request left first, refused?)
    type Step = fn(&mut Conn, u32);
    let cases: [(&str, Step, bool, bool); 6] = [
        (
            "RST_STREAM REFUSED_STREAM",
            |c, id| {
                feed(
                    c,
                    &frame_bytes(kind::RST_STREAM, 0, id, &7u32.to_be_bytes()),
                )
            },
            true,
            true,
        ),
        (
            "RST_STREAM CANCEL",
            |c, id| {
                feed(
                    c,
                    &frame_bytes(kind::RST_STREAM, 0, id, &8u32.to_be_bytes()),
                )
            },
            true,
            false,
        ),
        (
            "GOAWAY below it",
            |c, _| {
                feed(
                    c,
                    &frame_bytes(kind::GOAWAY, 0, 0, &[0, 0, 0, 0, 0, 0, 0, 0]),
                )
            },
            true,
            true,
        ),
        (
            "closed before it left",
            |c, _| c.closed("reset"),
            false,
            true,
        ),
        (
            "closed after it left",
            |c, _| c.closed("reset"),
            true,
            false,
        ),
        (
            "a protocol error",
            |c, _| feed(c, &data(9, b"x", false)),
            true,
            false,
        ),
    ];
    for (name, step, written, refused) in cases {
        let mut c = ready_conn();
        let id = opened(&mut c, None);
        if written {
            let (_, below) = c.take_out();
            c.written(below);
        }
        step(&mut c, id);
        match poll(&mut c, id) {
            Poll::Ready(Err(Failure::Refused(_))) => assert!(refused, "{name}: refused"),
            Poll::Ready(Err(Failure::Broken(_))) => assert!(!refused, "{name}: broken"),
            other => panic!("{name}: {:?}", other.map(|r| r.map(|_| ()))),
        }
        assert_eq!(c.open_streams(), 0, "{name}");
    }
}

#[test]
fn a_goaway_refuses_only_the_streams_above_its_last_and_no_new_one_opens() {
    let mut c = ready_conn();
    let (a, b) = (opened(&mut c, None), opened(&mut c, None));
    c.take_out();
    feed(
        &mut c,
        &frame_bytes(kind::GOAWAY, 0, 0, &[0, 0, 0, 1, 0, 0, 0, 0]),
    );
    assert!(matches!(
        poll(&mut c, b),
        Poll::Ready(Err(Failure::Refused(_)))
    ));
    assert!(poll(&mut c, a).is_pending(), "stream 1 goes on");
    assert_eq!(c.open(b"\x82", None), Err(Busy));
    assert!(!c.finished());
    feed(&mut c, &headers(1, 204, &[], true));
    assert!(matches!(poll(&mut c, a), Poll::Ready(Ok(_))));
    assert!(c.finished(), "going away with no stream left");
}

#[test]
fn a_connection_is_busy_at_its_streams_limit_the_peers_or_past_its_windows() {
    let mut c = ready_conn();
    for _ in 0..4 {
        opened(&mut c, None);
    }
    assert_eq!(c.open(b"\x82", None), Err(Busy), "this side's limit");
    let mut c = ready_conn();
    feed(
        &mut c,
        &frame_bytes(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 1]),
    );
    let f = out(&mut c);
    assert!(
        f.iter().any(|f| f.0 == kind::SETTINGS && f.1 == flag::ACK),
        "SETTINGS acknowledged"
    );
    opened(&mut c, None);
    assert_eq!(c.open(b"\x82", None), Err(Busy), "the peer's limit");
    let mut c = ready_conn();
    let big = Bytes::from(vec![0; 65_536]);
    assert_eq!(
        c.open(b"\x82", Some(&big)),
        Err(Busy),
        "past the default window"
    );
    let fits = Bytes::from(vec![0; 65_535]);
    assert!(c.open(b"\x82", Some(&fits)).is_ok());
    let f = out(&mut c);
    let sizes: Vec<usize> = f
        .iter()
        .filter(|f| f.0 == kind::DATA)
        .map(|f| f.3.len())
        .collect();
    assert_eq!(
        sizes,
        vec![16_384, 16_384, 16_384, 16_383],
        "DATA split at the frame size"
    );
    assert_eq!(
        c.open(b"\x82", Some(&Bytes::from_static(b"x"))),
        Err(Busy),
        "the connection window is spent"
    );
    feed(
        &mut c,
        &frame_bytes(kind::WINDOW_UPDATE, 0, 0, &100u32.to_be_bytes()),
    );
    assert!(c.open(b"\x82", Some(&Bytes::from_static(b"x"))).is_ok());
    c.retire();
    assert_eq!(c.open(b"\x82", None), Err(Busy), "retired");
}

#[test]
fn malformed_answers_reset_their_stream_and_fail_it() {
    let cases: [(&str, Vec<u8>); 5] = [
        ("DATA before the head", data(1, b"x", true)),
        (
            "a connection-specific field",
            headers(1, 200, &[("connection", "close")], true),
        ),
        (
            "too much body",
            [
                headers(1, 200, &[("content-length", "1")], false),
                data(1, b"xy", true),
            ]
            .concat(),
        ),
        (
            "too little body",
            [
                headers(1, 200, &[("content-length", "3")], false),
                data(1, b"xy", true),
            ]
            .concat(),
        ),
        (
            "trailers without END_STREAM",
            [headers(1, 200, &[], false), headers(1, 200, &[], false)].concat(),
        ),
    ];
    for (name, read) in cases {
        let mut c = ready_conn();
        let id = opened(&mut c, None);
        c.take_out();
        feed(&mut c, &read);
        let f = out(&mut c);
        assert!(
            f.iter()
                .any(|f| f.0 == kind::RST_STREAM && f.2 == 1 && f.3 == [0, 0, 0, 1]),
            "{name}: RST_STREAM PROTOCOL_ERROR"
        );
        match poll(&mut c, id) {
            Poll::Ready(Err(Failure::Broken(_))) => {}
            Poll::Ready(Ok((_, Answer::Streamed(_)))) => {}
            other => panic!("{name}: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }
}

#[test]
fn connection_errors_send_goaway_and_fail_every_stream() {
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "PUSH_PROMISE",
            frame_bytes(kind::PUSH_PROMISE, flag::END_HEADERS, 1, &[0, 0, 0, 2]),
        ),
        ("DATA on a stream never opened", data(3, b"x", false)),
        (
            "a frame too large",
            frame_bytes(kind::DATA, 0, 1, &vec![0; 16_385]),
        ),
        (
            "CONTINUATION alone",
            frame_bytes(kind::CONTINUATION, flag::END_HEADERS, 1, &[0x88]),
        ),
        (
            "a bad HPACK block",
            frame_bytes(
                kind::HEADERS,
                flag::END_HEADERS,
                1,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ),
        (
            "a PING of the wrong size",
            frame_bytes(kind::PING, 0, 0, &[0; 7]),
        ),
    ];
    for (name, read) in cases {
        let mut c = ready_conn();
        let id = opened(&mut c, None);
        let (_, below) = c.take_out();
        c.written(below);
        feed(&mut c, &read);
        let f = out(&mut c);
        assert!(f.iter().any(|f| f.0 == kind::GOAWAY), "{name}: GOAWAY");
        assert!(c.finished(), "{name}");
        assert!(
            matches!(poll(&mut c, id), Poll::Ready(Err(Failure::Broken(_)))),
            "{name}"
        );
    }
}

#[test]
fn pings_interim_answers_trailers_and_headers_in_continuations() {
    let mut c = ready_conn();
    let id = opened(&mut c, None);
    c.take_out();
    feed(&mut c, &frame_bytes(kind::PING, 0, 0, b"12345678"));
    let f = out(&mut c);
    assert_eq!(
        (f[0].0, f[0].1, &f[0].3[..]),
        (kind::PING, flag::ACK, &b"12345678"[..])
    );
    feed(&mut c, &headers(1, 100, &[], false));
    assert!(poll(&mut c, id).is_pending(), "a 100 is not the answer");
    let block = answer(200, &[("x-long", &"v".repeat(40))]);
    let (a, b) = block.split_at(10);
    let mut read = frame_bytes(kind::HEADERS, 0, 1, a);
    read.extend(frame_bytes(kind::CONTINUATION, flag::END_HEADERS, 1, b));
    read.extend(data(1, b"ok", false));
    read.extend(headers(1, 200, &[("x-trailer", "t")], true));
    feed(&mut c, &read);
    let Poll::Ready(Ok((parts, Answer::Whole(Some(body))))) = poll(&mut c, id) else {
        panic!("a whole answer")
    };
    assert_eq!(parts.headers["x-long"].len(), 40);
    assert!(
        parts.headers.get("x-trailer").is_none(),
        "trailers are not handed on"
    );
    assert_eq!(body, "ok");
}

#[test]
fn a_waiter_that_gives_up_or_a_body_nobody_reads_resets_the_stream() {
    let mut c = ready_conn();
    let id = opened(&mut c, None);
    c.take_out();
    c.cancel(id);
    let f = out(&mut c);
    assert_eq!(
        (f[0].0, f[0].2, &f[0].3[..]),
        (kind::RST_STREAM, 1, &[0, 0, 0, 8][..])
    );
    assert_eq!(c.open_streams(), 0);
    // A late answer to it is dropped, not an error.
    feed(&mut c, &headers(1, 200, &[], true));
    assert!(!c.finished());

    let id = opened(&mut c, None);
    c.take_out();
    feed(&mut c, &headers(id, 200, &[], false));
    let Poll::Ready(Ok((_, Answer::Streamed(body)))) = poll(&mut c, id) else {
        panic!("streamed")
    };
    drop(body);
    c.release(&mut Context::from_waker(Waker::noop()));
    let f = out(&mut c);
    assert_eq!((f[0].0, f[0].2), (kind::RST_STREAM, id));
    assert_eq!(c.open_streams(), 0);
}

#[test]
fn a_peer_past_its_window_is_a_connection_error() {
    let mut c = ready_conn();
    let id = opened(&mut c, None);
    c.take_out();
    feed(&mut c, &headers(id, 200, &[], false));
    feed(&mut c, &data(id, &[0; 1001], false));
    assert!(
        out(&mut c)
            .iter()
            .any(|f| f.0 == kind::GOAWAY && f.3[4..] == [0, 0, 0, 3]),
        "FLOW_CONTROL_ERROR"
    );
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a peer sends, in whatever pieces: no panic, the frames owed out stay
        /// whole, and each stream's waiter hears an answer, a failure, or nothing yet.
        #[test]
        fn any_bytes_in_any_pieces(
            streams in 1usize..4,
            frames_in in proptest::collection::vec(
                (0u8..10, any::<u8>(), 0u32..8, proptest::collection::vec(any::<u8>(), 0..40)),
                0..12,
            ),
            raw in proptest::collection::vec(any::<u8>(), 0..64),
            cut in 1usize..50,
        ) {
            let mut c = ready_conn();
            let ids: Vec<u32> = (0..streams).map(|_| opened(&mut c, Some(b"x"))).collect();
            let (_, below) = c.take_out();
            c.written(below);
            let mut bytes = Vec::new();
            for (kind, flags, stream, payload) in &frames_in {
                bytes.extend(frame_bytes(*kind, *flags, *stream, payload));
            }
            bytes.extend(&raw);
            let mut buf = BytesMut::new();
            for piece in bytes.chunks(cut) {
                buf.extend_from_slice(piece);
                c.recv(&mut buf);
                c.release(&mut Context::from_waker(Waker::noop()));
                frames(&c.take_out().0);
            }
            for id in ids {
                let _ = poll(&mut c, id);
            }
            c.closed("end");
            frames(&c.take_out().0);
        }
    }
}
