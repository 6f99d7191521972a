//! The one upstream layer, used by the proxy and by replication alike: the connection pool,
//! sending with a response timeout and the one mapping from a send failure to the router's
//! error kinds, building upstream requests, the local Coopr servers (round robin, cool-down)
//! and the health of every upstream.
//!
//! Module map: `pool` (idle HTTP/1.1 connections per upstream and `lane` (serving thread), each a
//! `wire::Conn` driven in its request's task) <- `send` (timeouts, failure kinds, buffered replies) ; `request` (the upstream request) ; `health` (rise/fall state) <-
//! `backend` (the local servers); `h2` (HTTP/2 links to peer routers, beside the pool).

pub mod backend;
pub mod h2;
pub mod health;
pub mod lane;
pub mod pool;
pub mod request;
pub mod send;

pub use backend::{Backend, Backends};
pub use health::{PeerHealth, TargetHealth};
pub use request::{Outbound, RouterHeaders, upstream_request, upstream_request_to};
pub use send::{Hop, Reply, SendError, Upstream};
