//! The router's own HTTP/2 server, for h2c (prior knowledge) and TLS connections that chose
//! `h2`: frames (`frame.rs`), header compression (`hpack.rs` and `huffman.rs` for requests, `encoder.rs` for answers), the connection's
//! state as a pure machine (`conn.rs`), and the one task that serves it (`serve.rs`). A
//! request's body reaches the proxy through `body::h2`.

pub mod conn;
mod encoder;
mod frame;
mod hpack;
mod huffman;
mod request;
mod serve;

pub use conn::Limits;
pub use serve::{Options, serve};
