//! Fuzz target: the router's own HTTP/1.1 server reading a request head
//! (`coopr_router::server::head::parse`) on arbitrary bytes, as a client could send them. The
//! first two bytes pick the limits (the head's size in steps of 64 bytes, up to 16,320, and
//! the most header lines, up to 127); the rest is what the connection brought. It must say
//! request, more or hyper, never panic.
//!
//! From the repository root, on the stable toolchain (cargo-fuzz, no sanitizer):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run request --sanitizer none -- -max_total_time=120`.
//! `tests/server_vs_hyper.rs` runs the same call on random bytes in `cargo test`.

#![no_main]

use coopr_router::server::head::{self, HeadLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let limits = HeadLimits {
        max_head: usize::from(*a) * 64,
        max_headers: usize::from(*b % 128),
    };
    if let head::Head::Request(p) = head::parse(rest, limits) {
        assert!(p.len <= rest.len());
    }
});
