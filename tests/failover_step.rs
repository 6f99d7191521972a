//! The failover decision, by table and by seeded random event sequences: DCs dying and
//! returning, probes flapping, leases expiring, DCs cut off from etcd's raft while etcd keeps
//! their leases (their heartbeats stop), moves lost to a racing controller, move transactions
//! that go unanswered (applied or not). Two controllers (as in two DCs) propose moves against a
//! model of etcd that applies them by compare-and-swap; after every step the invariants are
//! checked: never two owners of a shard, no move committed while the owner's routers may still
//! write (lease present and a heartbeat within the window), never a move to a DC that was dead before
//! the step, never two moves of a shard within `min_interval`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coopr_router::failover::{Action, Controller, Event, Params, RETRY_MS, ShardView};
use proptest::prelude::*;

const DCS: usize = 3;
const SHARDS: usize = 6;
const P: Params = Params {
    automatic: true,
    grace_ms: 2_000,
    min_interval_ms: 60_000,
    stale_after_ms: 7_000,
};

fn home_map() -> Vec<ShardView> {
    (0..SHARDS)
        .map(|n| {
            let owner = (n + DCS - 1) % DCS;
            ShardView {
                owner,
                replicas: (1..DCS).map(|k| (owner + k) % DCS).collect(),
                epoch: 1,
            }
        })
        .collect()
}

/// A move whose transaction got no answer (the etcd member the client used was cut off) is
/// proposed again after `RETRY_MS`, not after `min_interval` (60 s): nothing is known to have
/// moved. (Found by the netns `partition` scenario: one of the dead DC's shards stayed with it
/// for the whole partition.)
#[test]
fn a_failed_move_is_proposed_again_soon() {
    let mut c = Controller::new(P, DCS, home_map());
    c.step(
        Event::Alive {
            dc: 0,
            present: false,
        },
        0,
    );
    c.step(Event::Probe { dc: 0, ok: false }, 0);
    let first = c.step(Event::Tick, 2_000);
    assert_eq!(first.len(), 2, "{first:?}");
    // Shard 1's transaction failed; shard 4's was lost to another controller.
    assert!(c.step(Event::MoveFailed { shard: 1 }, 2_100).is_empty());
    assert!(
        c.step(
            Event::MoveDone {
                shard: 4,
                won: false
            },
            2_100
        )
        .is_empty()
    );
    assert!(
        c.step(Event::Tick, 2_100 + RETRY_MS - 1).is_empty(),
        "not before RETRY_MS"
    );
    assert_eq!(
        c.step(Event::Tick, 2_100 + RETRY_MS),
        vec![Action::Move {
            shard: 1,
            from: 0,
            to: 1,
            epoch: 1,
            members: None
        }],
        "the failed move again; the lost one waits for min_interval"
    );
    // A failure does not reset min_interval of a shard that moved before.
    assert!(c.step(Event::MoveFailed { shard: 1 }, 2_700).is_empty());
    assert!(c.step(Event::Tick, 2_700 + RETRY_MS).len() == 1);
}

#[test]
fn a_dead_dc_moves_after_grace_only_when_probes_agree() {
    let mut c = Controller::new(P, DCS, home_map());
    // dc index 0 owns shards 1 and 4.
    assert!(
        c.step(
            Event::Alive {
                dc: 0,
                present: false
            },
            1_000
        )
        .is_empty(),
        "no move before grace"
    );
    assert!(
        c.step(Event::Tick, 3_000).is_empty(),
        "probes still succeed: not dead"
    );
    assert!(
        c.step(Event::Probe { dc: 0, ok: false }, 2_500).is_empty(),
        "grace not over at 2.5 s"
    );
    let moves = c.step(Event::Tick, 3_001);
    assert_eq!(
        moves,
        vec![
            Action::Move {
                shard: 1,
                from: 0,
                to: 1,
                epoch: 1,
                members: None
            },
            Action::Move {
                shard: 4,
                from: 0,
                to: 1,
                epoch: 1,
                members: None
            }
        ]
    );
    assert!(
        c.step(Event::Tick, 3_002).is_empty(),
        "in flight: not proposed twice"
    );
    // Lost the race (another controller won): no new proposal within min_interval.
    assert!(
        c.step(
            Event::MoveDone {
                shard: 1,
                won: false
            },
            3_100
        )
        .is_empty()
    );
    // The DC's lease came back: nothing moves.
    let mut c = Controller::new(P, DCS, home_map());
    c.step(
        Event::Alive {
            dc: 0,
            present: false,
        },
        0,
    );
    c.step(Event::Probe { dc: 0, ok: false }, 0);
    c.step(
        Event::Alive {
            dc: 0,
            present: true,
        },
        1_000,
    );
    assert!(c.step(Event::Tick, 10_000).is_empty());
    // The first replica is dead too: the next live one takes it.
    let mut c = Controller::new(P, DCS, home_map());
    c.step(
        Event::Alive {
            dc: 1,
            present: false,
        },
        0,
    );
    c.step(
        Event::Alive {
            dc: 0,
            present: false,
        },
        0,
    );
    c.step(Event::Probe { dc: 0, ok: false }, 0);
    let moves = c.step(Event::Tick, 2_000);
    assert!(
        moves.contains(&Action::Move {
            shard: 1,
            from: 0,
            to: 2,
            epoch: 1,
            members: None
        }),
        "{moves:?}"
    );
    // Manual mode never moves.
    let mut c = Controller::new(
        Params {
            automatic: false,
            ..P
        },
        DCS,
        home_map(),
    );
    c.step(
        Event::Alive {
            dc: 0,
            present: false,
        },
        0,
    );
    c.step(Event::Probe { dc: 0, ok: false }, 0);
    assert!(c.step(Event::Tick, 100_000).is_empty());
}

/// A DC cut off together with etcd's leader keeps its lease for seconds (the new leader extends
/// every lease) but its heartbeats stop: its shards move once its member keys have stayed
/// unchanged for the heartbeat window, whatever its `alive/` key says, and the move names the
/// revision it rests on.
#[test]
fn a_dc_whose_heartbeats_stopped_moves_after_the_window() {
    let members = |rev| Event::Members { dc: 0, rev };
    let mut c = Controller::new(P, DCS, home_map());
    c.step(members(Some(10)), 0);
    c.step(Event::Probe { dc: 0, ok: false }, 100);
    assert!(
        c.step(members(Some(10)), 6_999).is_empty(),
        "window not over"
    );
    // A heartbeat: the window starts again from when it was seen.
    assert!(c.step(members(Some(12)), 5_000).is_empty());
    assert!(c.step(Event::Tick, 11_999).is_empty());
    let moves = c.step(members(Some(12)), 12_000);
    assert_eq!(
        moves,
        vec![
            Action::Move {
                shard: 1,
                from: 0,
                to: 1,
                epoch: 1,
                members: Some(12)
            },
            Action::Move {
                shard: 4,
                from: 0,
                to: 1,
                epoch: 1,
                members: Some(12)
            }
        ]
    );
    // Probes passing: not dead, however old the heartbeat.
    let mut c = Controller::new(P, DCS, home_map());
    c.step(members(Some(10)), 0);
    assert!(c.step(Event::Tick, 60_000).is_empty());
    // A window of 0 turns the rule off.
    let mut c = Controller::new(
        Params {
            stale_after_ms: 0,
            ..P
        },
        DCS,
        home_map(),
    );
    c.step(members(Some(10)), 0);
    c.step(Event::Probe { dc: 0, ok: false }, 0);
    assert!(c.step(Event::Tick, 60_000).is_empty());
    // No member key at all: only the alive/ rule applies.
    let mut c = Controller::new(P, DCS, home_map());
    c.step(members(None), 0);
    c.step(Event::Probe { dc: 0, ok: false }, 0);
    assert!(c.step(Event::Tick, 60_000).is_empty());
}

/// What the world does next.
#[derive(Debug, Clone)]
enum Op {
    Kill(usize),
    Revive(usize),
    LeaseOnly(usize, bool),
    /// The DC is cut off from etcd's raft (its heartbeats stop) while etcd keeps its lease.
    Cut(usize),
    Heal(usize),
    Probe(usize, usize, bool),
    Advance(u64),
    /// From now on move transactions go unanswered (applied or not), or are answered again.
    Flaky(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..DCS).prop_map(Op::Kill),
        (0..DCS).prop_map(Op::Revive),
        ((0..DCS), any::<bool>()).prop_map(|(d, p)| Op::LeaseOnly(d, p)),
        (0..DCS).prop_map(Op::Cut),
        (0..DCS).prop_map(Op::Heal),
        ((0..2usize), (0..DCS), any::<bool>()).prop_map(|(c, d, ok)| Op::Probe(c, d, ok)),
        (1u64..90_000).prop_map(Op::Advance),
        any::<bool>().prop_map(Op::Flaky),
    ]
}

/// A model of etcd and of each DC's routers: the map, the alive keys, the leases, the member
/// keys' heartbeats, and compare-and-swap moves.
struct World {
    map: Vec<ShardView>,
    /// `alive/{dc}` exists.
    alive: [bool; DCS],
    /// The DC's routers hold a lease etcd still has.
    lease: [bool; DCS],
    /// The DC's heartbeats commit (it reaches etcd's raft).
    beating: [bool; DCS],
    /// Newest revision among the DC's member keys, if any.
    member_rev: [Option<u64>; DCS],
    /// When the DC's last heartbeat committed (its routers sent it no later).
    last_beat: [u64; DCS],
    revision: u64,
    moves: Vec<(usize, u64)>,
    flaky: bool,
}

impl World {
    /// Whether the DC's routers may still be writing: their lease and a heartbeat within the
    /// window (the fence, without its margin).
    fn may_write(&self, dc: usize, now: u64) -> bool {
        self.lease[dc]
            && self.member_rev[dc].is_some()
            && now < self.last_beat[dc] + P.stale_after_ms
    }

    /// The DC's routers rewrite their member keys (or, theirs having been deleted by a move,
    /// give up the lease and come back on a new one with new keys).
    fn beat(&mut self, dc: usize, now: u64) {
        self.revision += 1;
        self.member_rev[dc] = Some(self.revision);
        self.last_beat[dc] = now;
        self.lease[dc] = true;
        self.alive[dc] = true;
    }

    /// Applies a proposed move the way the etcd transaction would.
    fn apply(&mut self, a: &Action, now: u64) -> bool {
        let Action::Move {
            shard,
            from,
            to,
            epoch,
            members,
        } = *a;
        let s = &mut self.map[shard];
        if s.epoch != epoch || s.owner != from {
            return false;
        }
        match members {
            None if self.alive[from] || self.member_rev[from].is_some() => return false,
            Some(rev) if self.member_rev[from].is_some_and(|r| r > rev) => return false,
            _ => {}
        }
        self.revision += 1;
        let mut replicas = vec![from];
        replicas.extend(s.replicas.iter().copied().filter(|&r| r != to && r != from));
        *s = ShardView {
            owner: to,
            replicas,
            epoch: self.revision,
        };
        if members.is_some() {
            self.member_rev[from] = None;
            self.alive[from] = false;
        }
        self.moves.push((shard, now));
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn invariants_hold_under_random_events(ops in prop::collection::vec(op(), 1..120)) {
        let mut world = World {
            map: home_map(), alive: [true; DCS], lease: [true; DCS], beating: [true; DCS],
            member_rev: [Some(1); DCS], last_beat: [0; DCS], revision: 1, moves: vec![], flaky: false,
        };
        let mut ctl = [Controller::new(P, DCS, home_map()), Controller::new(P, DCS, home_map())];
        let mut now = 0u64;
        for op in ops {
            let mut events: Vec<(Option<usize>, Event)> = Vec::new();
            let lease_before = world.lease;
            match op {
                Op::Kill(d) => {
                    // Its lease expired: the keys on it are gone.
                    world.alive[d] = false;
                    world.lease[d] = false;
                    world.beating[d] = false;
                    world.member_rev[d] = None;
                    events.push((None, Event::Probe { dc: d, ok: false }));
                }
                Op::Revive(d) => {
                    world.beating[d] = true;
                    world.beat(d, now);
                    events.push((None, Event::Probe { dc: d, ok: true }));
                }
                Op::LeaseOnly(d, p) => {
                    if p {
                        world.beat(d, now);
                    } else {
                        world.alive[d] = false;
                        world.lease[d] = false;
                        world.member_rev[d] = None;
                    }
                }
                Op::Cut(d) => {
                    world.beating[d] = false;
                    events.push((None, Event::Probe { dc: d, ok: false }));
                }
                Op::Heal(d) => {
                    world.beating[d] = true;
                    events.push((None, Event::Probe { dc: d, ok: true }));
                }
                Op::Probe(c, d, ok) => events.push((Some(c), Event::Probe { dc: d, ok })),
                Op::Advance(ms) => {
                    now += ms;
                    events.push((None, Event::Tick));
                }
                Op::Flaky(f) => world.flaky = f,
            }
            // The DCs that reach etcd beat; then every controller reads the keys (popped first).
            events.push((None, Event::Tick));
            for d in 0..DCS {
                if world.beating[d] && (world.lease[d] || world.member_rev[d].is_none()) {
                    world.beat(d, now);
                }
                events.push((None, Event::Alive { dc: d, present: world.alive[d] }));
                events.push((None, Event::Members { dc: d, rev: world.member_rev[d] }));
            }
            while let Some((only, ev)) = events.pop() {
                for (i, c) in ctl.iter_mut().enumerate() {
                    if only.is_some_and(|o| o != i) {
                        continue;
                    }
                    for a in c.step(ev.clone(), now) {
                        let Action::Move { shard, from, to, .. } = a;
                        let could_write = world.may_write(from, now);
                        let won = world.apply(&a, now);
                        prop_assert!(!(won && could_write), "shard {shard} moved while dc{from}'s routers may write: {a:?}");
                        // Controllers read the keys one by one, as the driver does: a target may
                        // have died during this step's reads, not before.
                        prop_assert!(!won || lease_before[to] || world.lease[to], "shard {shard} moved to dc{to}, dead before and after this step");
                        // A flaky etcd may have applied the move and still not answered.
                        let done = if world.flaky { Event::MoveFailed { shard } } else { Event::MoveDone { shard, won } };
                        events.push((Some(i), done));
                        if won {
                            events.push((None, Event::Map(world.map.clone())));
                        }
                    }
                }
            }
            // One owner per shard, and it is the map's (the CAS admits one winner per epoch).
            for s in &world.map {
                prop_assert!(!s.replicas.contains(&s.owner));
            }
            // Never two moves of a shard within min_interval.
            for shard in 0..SHARDS {
                let times: Vec<u64> = world.moves.iter().filter(|(s, _)| *s == shard).map(|(_, t)| *t).collect();
                for w in times.windows(2) {
                    prop_assert!(w[1] - w[0] >= P.min_interval_ms, "shard {shard} moved at {} and {}", w[0], w[1]);
                }
            }
        }
    }
}
