//! The router's own HTTP/2 server, for h2c (prior knowledge) and TLS connections that chose
//! `h2`: frames (`frame.rs`), header compression (`hpack.rs`, `huffman.rs`), the connection's
//! state as a pure machine (`conn.rs`), and the one task that serves it (`serve.rs`). A
//! request's body reaches the proxy through `body::h2`.

pub mod conn;
mod frame;
mod hpack;
mod huffman;
mod serve;

pub use conn::Limits;
pub use serve::{Options, serve};
