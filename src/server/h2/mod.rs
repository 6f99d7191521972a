//! The router's own HTTP/2 server, for h2c (prior knowledge) and TLS connections that chose
//! `h2`: the connection's state as a pure machine (`conn.rs`), a request's head from its fields
//! (`request.rs`), and the one task that serves it (`serve.rs`); frames and header compression
//! are `crate::h2`'s. A request's body reaches the proxy through `body::h2`.

pub mod conn;
mod request;
mod serve;

pub use conn::Limits;
pub use serve::{Options, serve};
