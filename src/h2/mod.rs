//! Pure HTTP/2 on the wire, shared by the router's own HTTP/2 server (`server/h2`) and its
//! HTTP/2 client to peer routers (`upstream/h2`): frames (`frame.rs`), header compression
//! (`hpack.rs` and `huffman.rs` to decode, `encoder.rs` to encode), and the field rules both
//! sides share (`fields.rs`). No state beyond one HPACK
//! decoder's table, no IO.

pub mod encoder;
pub mod fields;
pub mod frame;
pub mod hpack;
mod huffman;
