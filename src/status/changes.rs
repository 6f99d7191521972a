//! The last ownership changes this router saw: the pure difference between two routing
//! snapshots ([`diff`]), a small ring of the newest changes ([`ChangeLog`]) and the task that
//! follows every published snapshot into it ([`follow`]). Only changes after the router started
//! are known here; etcd keeps the full history (`history/` keys).

use crate::routing::{Routes, RoutingTable};
use crate::shutdown::Shutdown;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many changes the ring keeps.
pub const KEPT: usize = 50;

/// One shard's change between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// When this router saw it (ms since the Unix epoch).
    pub at_ms: u64,
    /// The revision of the snapshot that brought it.
    pub revision: u64,
    pub shard: u32,
    /// `owner` (moved), `handoff_started`, `handoff_ended` (withdrawn: the owner stayed),
    /// `epoch` (same owner, new epoch; not the first epoch a shard gets from etcd).
    pub what: &'static str,
    pub from: String,
    pub to: String,
    pub epoch: u64,
}

/// What changed from `old` to `new`, shard by shard (pure), in the chunks of shards they do
/// not share (a snapshot rebuilt from the previous one shares the unchanged chunks).
pub fn diff(old: &RoutingTable, new: &RoutingTable, at_ms: u64) -> Vec<Change> {
    let mut out = Vec::new();
    // Chunks `new` shares with `old` (a publish that rebuilt a few shards) have no changes.
    let changed = new
        .shards
        .chunks()
        .enumerate()
        .filter(|&(k, _)| !new.shards.same_chunk(&old.shards, k))
        .flat_map(|(_, (first, chunk))| chunk.iter().enumerate().map(move |(i, s)| (first + i, s)));
    for (n, s) in changed {
        let Some(o) = old.shards.get(n) else {
            continue;
        };
        let change = |what, from: usize, to: usize| Change {
            at_ms,
            revision: new.revision,
            shard: n as u32,
            what,
            from: new.dc_name(from).to_string(),
            to: new.dc_name(to).to_string(),
            epoch: s.epoch,
        };
        if o.owner != s.owner {
            out.push(change("owner", o.owner, s.owner));
        } else if let (None, Some(to)) = (o.handoff, s.handoff) {
            out.push(change("handoff_started", s.owner, to));
        } else if let (Some(to), None) = (o.handoff, s.handoff) {
            out.push(change("handoff_ended", to, s.owner));
        } else if o.epoch != s.epoch && o.epoch != 0 {
            // (From epoch 0: the first map from etcd replacing the one the router started
            // with, not a change.)
            out.push(change("epoch", s.owner, s.owner));
        }
    }
    out
}

/// The newest [`KEPT`] changes, oldest first.
#[derive(Default)]
pub struct ChangeLog(Mutex<VecDeque<Change>>);

impl ChangeLog {
    pub fn push(&self, changes: Vec<Change>) {
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for c in changes {
            if ring.len() == KEPT {
                ring.pop_front();
            }
            ring.push_back(c);
        }
    }

    /// Newest first.
    pub fn newest_first(&self) -> Vec<Change> {
        let ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().cloned().collect()
    }
}

/// Follows every published snapshot into `log` until the router stops.
pub async fn follow(routes: Routes, log: Arc<ChangeLog>, shutdown: Shutdown) {
    let mut rx = routes.changes();
    let mut last = routes.load();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = &mut stop => return,
        }
        let now = routes.load();
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        log.push(diff(&last, &now, at_ms));
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{DcEntry, ShardEntry};

    fn table(revision: u64, shards: &[(usize, u64, Option<usize>)]) -> RoutingTable {
        let dcs = ["dc1", "dc2", "dc3"]
            .iter()
            .enumerate()
            .map(|(i, n)| DcEntry {
                name: n.to_string(),
                peer_url: format!("http://127.0.0.1:{}", 1000 + i).parse().unwrap(),
                id_start: i as u64 + 1,
                id_increment: 3,
            })
            .collect();
        let shards = shards
            .iter()
            .map(|&(owner, epoch, handoff)| ShardEntry {
                owner,
                replicas: vec![],
                epoch,
                home: None,
                handoff,
            })
            .collect();
        RoutingTable::new(revision, 0, dcs, shards)
    }

    #[test]
    fn each_kind_of_change_is_named_once() {
        let old = table(
            1,
            &[
                (0, 1, None),
                (1, 1, None),
                (2, 1, Some(0)),
                (0, 1, None),
                (1, 1, None),
            ],
        );
        let new = table(
            2,
            &[
                (1, 5, None),
                (1, 6, Some(2)),
                (2, 7, None),
                (0, 8, None),
                (1, 1, None),
            ],
        );
        let got = diff(&old, &new, 42);
        let seen: Vec<(u32, &str, &str, &str, u64)> = got
            .iter()
            .map(|c| (c.shard, c.what, c.from.as_str(), c.to.as_str(), c.epoch))
            .collect();
        assert_eq!(
            seen,
            vec![
                (0, "owner", "dc1", "dc2", 5),
                (1, "handoff_started", "dc2", "dc3", 6),
                (2, "handoff_ended", "dc1", "dc3", 7),
                (3, "epoch", "dc1", "dc1", 8),
            ]
        );
        assert!(got.iter().all(|c| c.at_ms == 42 && c.revision == 2));
        assert!(diff(&new, &new, 1).is_empty(), "no change, nothing named");
        let first = table(0, &[(0, 0, None), (1, 0, None)]);
        let loaded = table(3, &[(0, 2, None), (2, 2, None)]);
        let got: Vec<_> = diff(&first, &loaded, 1)
            .iter()
            .map(|c| (c.shard, c.what))
            .collect();
        assert_eq!(
            got,
            vec![(1, "owner")],
            "a first epoch is no change; an owner is"
        );
    }

    #[test]
    fn the_ring_keeps_the_newest() {
        let log = ChangeLog::default();
        let one = |shard| Change {
            at_ms: 0,
            revision: 0,
            shard,
            what: "owner",
            from: String::new(),
            to: String::new(),
            epoch: 0,
        };
        log.push((0..KEPT as u32 + 5).map(one).collect());
        let got = log.newest_first();
        assert_eq!(got.len(), KEPT);
        assert_eq!(got[0].shard, KEPT as u32 + 4);
        assert_eq!(got[KEPT - 1].shard, 5);
    }
}
