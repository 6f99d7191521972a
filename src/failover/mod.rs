//! Failover: the pure decision of when a dead DC's shards move and where (`step`). The driver
//! that feeds it etcd's `alive/` keys, probes and the map, and runs its moves as etcd
//! transactions, is `etcd::failover` (src/etcd/failover.rs); docs/ownership.md's "Failover (etcd
//! source)" describes both.

pub mod step;

pub use step::{Action, Controller, Event, Params, ShardView};
