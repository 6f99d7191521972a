//! Fuzz target: the HTTP/2 link's client connection state
//! (`coopr_router::upstream::h2::conn::Conn`) taking arbitrary bytes as a peer router could
//! send them, with three streams open, in pieces whose sizes the first byte picks. After each
//! piece it gives back windows and every stream's waiter asks for its answer. It must never
//! panic, and what it writes must be whole frames.
//!
//! From the repository root, on the stable toolchain (cargo-fuzz, no sanitizer):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run h2_client --sanitizer none -- -max_total_time=120`.
//! `src/upstream/h2/conn_tests.rs` runs the same on random frames in `cargo test`.

#![no_main]

use bytes::{Bytes, BytesMut};
use coopr_router::upstream::h2::conn::{Conn, Limits};
use libfuzzer_sys::fuzz_target;
use std::task::{Context, Waker};

fuzz_target!(|data: &[u8]| {
    let [piece, rest @ ..] = data else {
        return;
    };
    let piece = usize::from(*piece).max(1);
    let mut c = Conn::new(Limits {
        max_streams: 8,
        stream_window: 1000,
    });
    let body = Bytes::from_static(b"{}");
    let ids: Vec<u32> = (0..3)
        .filter_map(|_| c.open(b"\x82\x86\x84", Some(&body)).ok())
        .collect();
    let (_, below) = c.take_out();
    c.written(below);
    let mut cx = Context::from_waker(Waker::noop());
    let mut buf = BytesMut::new();
    let mut bodies = Vec::new();
    for chunk in rest.chunks(piece) {
        buf.extend_from_slice(chunk);
        c.recv(&mut buf);
        for &id in &ids {
            if let std::task::Poll::Ready(Ok((_, answer))) = c.poll_head(id, &mut cx) {
                bodies.push(answer);
            }
        }
        c.release(&mut cx);
        whole_frames(&c.take_out().0);
    }
    c.closed("end");
    whole_frames(&c.take_out().0);
});

/// Panics unless `out` is whole frames.
fn whole_frames(out: &[u8]) {
    let mut at = 0;
    while at < out.len() {
        assert!(out.len() - at >= 9, "a partial frame header");
        let len = usize::from(out[at]) << 16 | usize::from(out[at + 1]) << 8 | usize::from(out[at + 2]);
        at += 9 + len;
        assert!(at <= out.len(), "a partial frame");
    }
}
