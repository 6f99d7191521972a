//! Failover: the pure decision of when a dead DC's shards move and where (`step`). The driver
//! that feeds it etcd's `alive/` keys, probes and the map, and runs its moves as etcd
//! transactions, is the next step (see the README's status section).

pub mod step;

pub use step::{Action, Controller, Event, Params, ShardView};
