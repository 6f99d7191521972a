//! The failover decision, by table and by seeded random event sequences: DCs dying and
//! returning, probes flapping, leases expiring, moves lost to a racing controller, move
//! transactions that go unanswered (applied or not). Two
//! controllers (as in two DCs) propose moves against a model of etcd that applies them by
//! compare-and-swap; after every step the invariants are checked: never two owners of a shard,
//! never a move while the owner is alive, never a move to a dead DC, never two moves of a shard
//! within `min_interval`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coopr_router::failover::{Action, Controller, Event, Params, RETRY_MS, ShardView};
use proptest::prelude::*;

const DCS: usize = 3;
const SHARDS: usize = 6;
const P: Params = Params {
    automatic: true,
    grace_ms: 2_000,
    min_interval_ms: 60_000,
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
            epoch: 1
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
                epoch: 1
            },
            Action::Move {
                shard: 4,
                from: 0,
                to: 1,
                epoch: 1
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
            epoch: 1
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

/// What the world does next.
#[derive(Debug, Clone)]
enum Op {
    Kill(usize),
    Revive(usize),
    LeaseOnly(usize, bool),
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
        ((0..2usize), (0..DCS), any::<bool>()).prop_map(|(c, d, ok)| Op::Probe(c, d, ok)),
        (1u64..90_000).prop_map(Op::Advance),
        any::<bool>().prop_map(Op::Flaky),
    ]
}

/// A model of etcd: the map, the alive keys, and compare-and-swap moves.
struct World {
    map: Vec<ShardView>,
    alive: [bool; DCS],
    revision: u64,
    moves: Vec<(usize, u64)>,
    flaky: bool,
}

impl World {
    /// Applies a proposed move the way the etcd transaction would.
    fn apply(&mut self, a: &Action, now: u64) -> bool {
        let Action::Move {
            shard,
            from,
            to,
            epoch,
        } = *a;
        let s = &mut self.map[shard];
        if s.epoch != epoch || self.alive[from] || s.owner != from {
            return false;
        }
        self.revision += 1;
        let mut replicas = vec![from];
        replicas.extend(s.replicas.iter().copied().filter(|&r| r != to && r != from));
        *s = ShardView {
            owner: to,
            replicas,
            epoch: self.revision,
        };
        self.moves.push((shard, now));
        true
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn invariants_hold_under_random_events(ops in prop::collection::vec(op(), 1..120)) {
        let mut world = World { map: home_map(), alive: [true; DCS], revision: 1, moves: vec![], flaky: false };
        let mut ctl = [Controller::new(P, DCS, home_map()), Controller::new(P, DCS, home_map())];
        let mut now = 0u64;
        for op in ops {
            let mut events: Vec<(Option<usize>, Event)> = Vec::new();
            match op {
                Op::Kill(d) => {
                    world.alive[d] = false;
                    events.push((None, Event::Alive { dc: d, present: false }));
                    events.push((None, Event::Probe { dc: d, ok: false }));
                }
                Op::Revive(d) => {
                    world.alive[d] = true;
                    events.push((None, Event::Alive { dc: d, present: true }));
                    events.push((None, Event::Probe { dc: d, ok: true }));
                }
                Op::LeaseOnly(d, p) => {
                    world.alive[d] = p;
                    events.push((None, Event::Alive { dc: d, present: p }));
                }
                Op::Probe(c, d, ok) => events.push((Some(c), Event::Probe { dc: d, ok })),
                Op::Advance(ms) => {
                    now += ms;
                    events.push((None, Event::Tick));
                }
                Op::Flaky(f) => world.flaky = f,
            }
            while let Some((only, ev)) = events.pop() {
                for (i, c) in ctl.iter_mut().enumerate() {
                    if only.is_some_and(|o| o != i) {
                        continue;
                    }
                    for a in c.step(ev.clone(), now) {
                        let Action::Move { shard, from, to, .. } = a;
                        prop_assert!(!world.alive[from], "move of shard {shard} while its owner dc{from} is alive");
                        prop_assert!(world.alive[to], "move of shard {shard} to dead dc{to}");
                        let won = world.apply(&a, now);
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
