//! Fuzz target: the router's own HTTP/2 server's connection state
//! (`coopr_router::server::h2::conn::Conn`) taking arbitrary bytes after the preface, as a
//! client could send them, in pieces whose sizes the first byte picks. Each request it hands
//! out is answered (a head and as much of a five-byte body as the windows allow). It must
//! never panic, and what it writes must be whole frames.
//!
//! From the repository root, on the stable toolchain (cargo-fuzz, no sanitizer):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run h2 --sanitizer none -- -max_total_time=120`.
//! `src/server/h2/conn_tests.rs` runs the same on random bytes in `cargo test`.

#![no_main]

use bytes::BytesMut;
use coopr_router::server::h2::conn::{Conn, Event, Limits};
use http::{HeaderMap, StatusCode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [piece, rest @ ..] = data else {
        return;
    };
    let piece = usize::from(*piece).max(1);
    let mut c = Conn::new(Limits {
        max_streams: 8,
        max_header_list: 4096,
        stream_window: 1000,
        conn_window: 1 << 16,
    });
    let mut buf = BytesMut::new();
    for chunk in rest.chunks(piece) {
        buf.extend_from_slice(chunk);
        if c.recv(&mut buf).is_err() {
            break;
        }
        while let Some(ev) = c.events.pop_front() {
            if let Event::Request { stream, .. } = ev {
                c.respond(stream, StatusCode::OK, &HeaderMap::new(), false);
                let n = c.send_capacity(stream).min(5);
                c.send_data(stream, &b"hello"[..n], n == 5);
            }
        }
    }
    // Whole frames: each header's length is there.
    let mut at = 0;
    while at + 9 <= c.out.len() {
        let len = usize::from(c.out[at]) << 16 | usize::from(c.out[at + 1]) << 8 | usize::from(c.out[at + 2]);
        at += 9 + len;
    }
    assert_eq!(at, c.out.len());
});
