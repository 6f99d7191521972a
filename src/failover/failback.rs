//! The failback decision, pure: given the map, each away-from-home shard's last history record,
//! how long each DC has been up (its `alive/` key present and its health checks passing without
//! a break) and the time, which one shard to hand back to its home DC now, and why every other
//! candidate waits. No I/O, no clock; tested by tables below. The driver that feeds it and
//! requests the planned handoff is `etcd::failback` (src/etcd/failback.rs).
//!
//! Only a shard whose last move was made by automatic failover (`by = "failover"`) returns by
//! itself: one an operator moved afterwards (handoff, `ownership set`) stays where it was put.
//! At most one failback is under way at a time (none while any handoff is pending), at most one
//! move of a shard per `min_interval`, and a DC that has not stayed up for `after` (a flapping
//! one) gets nothing back. That the replication queue towards the home DC is drained is not
//! checked here: the planned handoff itself waits for the home DC to acknowledge every record
//! queued for it before it commits (`etcd::handoff_driver`), and withdraws otherwise.

use serde::Serialize;

/// Tuning, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailbackParams {
    pub automatic: bool,
    pub after_ms: u64,
    pub min_interval_ms: u64,
}

/// A shard's last recorded move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastMove {
    /// Who made it (`failover`, `handoff`, `failback`, `cli`, ...).
    pub by: String,
    /// Wall-clock time of the move, ms since the Unix epoch.
    pub at_ms: u64,
}

/// One shard as the failback decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub shard: u32,
    pub owner: usize,
    pub home: Option<usize>,
    pub epoch: u64,
    /// A handoff (of any kind) is pending for this shard.
    pub handoff_pending: bool,
    /// Its last history record, if read.
    pub last: Option<LastMove>,
}

/// Why a shard that is away from home is not handed back now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Wait {
    /// `failover.failback = "manual"`.
    Manual,
    /// Its last move was not an automatic failover (an operator put it there).
    NotFailover { by: String },
    /// Its history record could not be read.
    NoHistory,
    /// The home DC is not up (no `alive/` key, or its health checks fail).
    HomeDown,
    /// The home DC has been up for less than `failback_after_ms`.
    NotAliveLongEnough { remaining_ms: u64 },
    /// The current owner is not up, so it cannot execute a handoff.
    OwnerDown,
    /// The shard moved less than `min_interval_ms` ago.
    MinInterval { remaining_ms: u64 },
    /// This shard's handoff is under way.
    InProgress,
    /// Another shard's handoff is under way (one at a time).
    OneAtATime,
}

/// The decision: at most one shard to hand back, and why the others wait.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// (shard, from owner, to home, epoch).
    pub hand_back: Option<(u32, usize, usize, u64)>,
    pub waiting: Vec<(u32, Wait)>,
}

/// When `dc` has been up since, after one more observation: `up` is its `alive/` key present
/// and its health checks passing; any break starts the count again.
pub fn up_since(prev: Option<u64>, up: bool, now_ms: u64) -> Option<u64> {
    match up {
        true => Some(prev.unwrap_or(now_ms)),
        false => None,
    }
}

/// Decides. `up_since[dc]` is when `dc` came up (the driver's clock, as `now_ms`); `wall_ms` is
/// wall-clock time, compared with the history records' times.
pub fn decide(
    p: FailbackParams,
    shards: &[Candidate],
    up_since: &[Option<u64>],
    now_ms: u64,
    wall_ms: u64,
) -> Decision {
    let mut d = Decision::default();
    let busy = shards.iter().any(|s| s.handoff_pending);
    for s in shards {
        let Some(home) = s.home else { continue };
        if s.owner == home {
            continue;
        }
        let wait = match &s.last {
            _ if !p.automatic => Some(Wait::Manual),
            None => Some(Wait::NoHistory),
            Some(l) if l.by != "failover" => Some(Wait::NotFailover { by: l.by.clone() }),
            Some(l) => why_wait(p, s, l, up_since, now_ms, wall_ms),
        };
        let wait = match wait {
            None if busy && !s.handoff_pending => Some(Wait::OneAtATime),
            None if d.hand_back.is_some() => Some(Wait::OneAtATime),
            w => w,
        };
        match wait {
            Some(w) => d.waiting.push((s.shard, w)),
            None => d.hand_back = Some((s.shard, s.owner, home, s.epoch)),
        }
    }
    d
}

fn why_wait(
    p: FailbackParams,
    s: &Candidate,
    last: &LastMove,
    up_since: &[Option<u64>],
    now_ms: u64,
    wall_ms: u64,
) -> Option<Wait> {
    let home = s.home?;
    if s.handoff_pending {
        return Some(Wait::InProgress);
    }
    let Some(since) = up_since.get(home).copied().flatten() else {
        return Some(Wait::HomeDown);
    };
    let up_for = now_ms.saturating_sub(since);
    if up_for < p.after_ms {
        return Some(Wait::NotAliveLongEnough {
            remaining_ms: p.after_ms - up_for,
        });
    }
    if up_since.get(s.owner).copied().flatten().is_none() {
        return Some(Wait::OwnerDown);
    }
    let ago = wall_ms.saturating_sub(last.at_ms);
    if ago < p.min_interval_ms {
        return Some(Wait::MinInterval {
            remaining_ms: p.min_interval_ms - ago,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: FailbackParams = FailbackParams {
        automatic: true,
        after_ms: 1_000,
        min_interval_ms: 5_000,
    };

    fn shard(n: u32, owner: usize, home: usize, by: &str, at_ms: u64) -> Candidate {
        Candidate {
            shard: n,
            owner,
            home: Some(home),
            epoch: 10 + n as u64,
            handoff_pending: false,
            last: Some(LastMove {
                by: by.into(),
                at_ms,
            }),
        }
    }

    #[test]
    fn up_since_restarts_on_any_break() {
        assert_eq!(up_since(None, true, 5), Some(5));
        assert_eq!(up_since(Some(5), true, 9), Some(5));
        assert_eq!(up_since(Some(5), false, 9), None);
        assert_eq!(up_since(None, true, 12), Some(12));
    }

    #[test]
    fn table() {
        // DC 0 is home of shards 1 and 4, now owned by DC 1 after a failover at wall 1_000.
        let up_all = [Some(0), Some(0), Some(0)];
        let (now, wall) = (10_000, 10_000);
        struct Row {
            name: &'static str,
            params: FailbackParams,
            shards: Vec<Candidate>,
            up: [Option<u64>; 3],
            now: u64,
            wall: u64,
            back: Option<u32>,
            waits: Vec<(u32, Wait)>,
        }
        let rows = vec![
            Row {
                name: "one shard at a time, lowest first",
                params: P,
                shards: vec![
                    shard(1, 1, 0, "failover", 1_000),
                    shard(4, 1, 0, "failover", 1_000),
                ],
                up: up_all,
                now,
                wall,
                back: Some(1),
                waits: vec![(4, Wait::OneAtATime)],
            },
            Row {
                name: "a shard at home is no candidate",
                params: P,
                shards: vec![
                    shard(1, 0, 0, "failback", 1_000),
                    shard(4, 1, 0, "failover", 1_000),
                ],
                up: up_all,
                now,
                wall,
                back: Some(4),
                waits: vec![],
            },
            Row {
                name: "manual mode leaves everything",
                params: FailbackParams {
                    automatic: false,
                    ..P
                },
                shards: vec![shard(1, 1, 0, "failover", 1_000)],
                up: up_all,
                now,
                wall,
                back: None,
                waits: vec![(1, Wait::Manual)],
            },
            Row {
                name: "an operator's move stays",
                params: P,
                shards: vec![
                    shard(1, 2, 0, "handoff", 1_000),
                    shard(4, 1, 0, "cli", 1_000),
                ],
                up: up_all,
                now,
                wall,
                back: None,
                waits: vec![
                    (
                        1,
                        Wait::NotFailover {
                            by: "handoff".into(),
                        },
                    ),
                    (4, Wait::NotFailover { by: "cli".into() }),
                ],
            },
            Row {
                name: "no history read: waits",
                params: P,
                shards: vec![Candidate {
                    last: None,
                    ..shard(1, 1, 0, "failover", 0)
                }],
                up: up_all,
                now,
                wall,
                back: None,
                waits: vec![(1, Wait::NoHistory)],
            },
            Row {
                name: "home DC down",
                params: P,
                shards: vec![shard(1, 1, 0, "failover", 1_000)],
                up: [None, Some(0), Some(0)],
                now,
                wall,
                back: None,
                waits: vec![(1, Wait::HomeDown)],
            },
            Row {
                name: "a flapping DC (up 400 ms) gets nothing",
                params: P,
                shards: vec![shard(1, 1, 0, "failover", 1_000)],
                up: [Some(9_600), Some(0), Some(0)],
                now,
                wall,
                back: None,
                waits: vec![(1, Wait::NotAliveLongEnough { remaining_ms: 600 })],
            },
            Row {
                name: "up exactly `after`: goes",
                params: P,
                shards: vec![shard(1, 1, 0, "failover", 1_000)],
                up: [Some(9_000), Some(0), Some(0)],
                now,
                wall,
                back: Some(1),
                waits: vec![],
            },
            Row {
                name: "the owner is down: it cannot hand off",
                params: P,
                shards: vec![shard(1, 1, 0, "failover", 1_000)],
                up: [Some(0), None, Some(0)],
                now,
                wall,
                back: None,
                waits: vec![(1, Wait::OwnerDown)],
            },
            Row {
                name: "moved too recently",
                params: P,
                shards: vec![shard(1, 1, 0, "failover", 7_000)],
                up: up_all,
                now,
                wall,
                back: None,
                waits: vec![(
                    1,
                    Wait::MinInterval {
                        remaining_ms: 2_000,
                    },
                )],
            },
            Row {
                name: "a pending handoff blocks every other failback",
                params: P,
                shards: vec![
                    Candidate {
                        handoff_pending: true,
                        ..shard(1, 1, 0, "failover", 1_000)
                    },
                    shard(4, 1, 0, "failover", 1_000),
                    shard(5, 0, 2, "handoff", 1_000),
                ],
                up: up_all,
                now,
                wall,
                back: None,
                waits: vec![
                    (1, Wait::InProgress),
                    (4, Wait::OneAtATime),
                    (
                        5,
                        Wait::NotFailover {
                            by: "handoff".into(),
                        },
                    ),
                ],
            },
            Row {
                name: "a failover chain (dc1 -> dc2 -> dc3) returns home too",
                params: P,
                shards: vec![shard(1, 2, 0, "failover", 1_000)],
                up: up_all,
                now,
                wall,
                back: Some(1),
                waits: vec![],
            },
        ];
        for r in rows {
            let d = decide(r.params, &r.shards, &r.up, r.now, r.wall);
            assert_eq!(d.hand_back.map(|(n, ..)| n), r.back, "{}", r.name);
            assert_eq!(d.waiting, r.waits, "{}", r.name);
            if let Some((n, from, to, epoch)) = d.hand_back {
                let s = r.shards.iter().find(|s| s.shard == n).unwrap();
                assert_eq!(
                    (from, Some(to), epoch),
                    (s.owner, s.home, s.epoch),
                    "{}",
                    r.name
                );
            }
        }
    }
}
