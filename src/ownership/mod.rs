//! Where the ownership map comes from. The static source is the config file; the live source is
//! etcd (the watcher in `crate::etcd`), with the last-known-good map on disk and the fence.
//! Whatever the source, exactly one task publishes snapshots (through the one `Publisher`).

pub mod freshness;
pub mod keyspace;
pub mod map;
pub mod misplaced;
pub mod shard_map;
pub mod state_file;

pub use freshness::Freshness;
pub use map::{MapError, RawMap, Touched};
pub use misplaced::Misplaced;
