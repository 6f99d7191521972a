//! Fuzz target: the upstream client's response reading (`coopr_router::wire`) on arbitrary
//! bytes, as an upstream could send them. The first byte picks the request method (a HEAD or
//! a CONNECT changes how the body is framed); the rest is what the connection brought. It
//! must return a response or an error, never panic, loop or allocate without bound.
//!
//! From the repository root, on the stable toolchain (cargo-fuzz, no sanitizer):
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run response --sanitizer none -- -max_total_time=120`.
//! `tests/wire_vs_hyper.rs` runs the same call on random bytes in `cargo test`.

#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = match m % 4 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::POST,
        _ => Method::CONNECT,
    };
    let _ = coopr_router::wire::read_response(&method, rest);
});
