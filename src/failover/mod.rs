//! Failover: the pure decision of when a dead DC's shards move and where (`step`), and of when
//! a DC that came back gets them home (`failback`). The drivers that feed them etcd's `alive/`
//! keys, probes and the map, and run their moves as etcd transactions, are `etcd::failover` and
//! `etcd::failback`; docs/ownership.md's "Failover (etcd source)" and "Failback" describe them.

pub mod failback;
pub mod step;

pub use step::{Action, Controller, Event, Params, RETRY_MS, ShardView};
