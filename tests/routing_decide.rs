//! The pure routing decision, by table, on a three-DC map.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coopr_router::classify::{Api, Class, Classification, Kind};
use coopr_router::ids::ClusterId;
use coopr_router::routing::{
    DcEntry, Decision, Origin, Pin, Pins, Route, RoutingTable, ShardEntry, Target, decide,
    decide_global, fans_out,
};

/// dc1, dc2, dc3 with increment 3 and 6 shards; shard n's home is DC (n-1) mod 3. `owners[n]`
/// overrides the owner.
fn table(local: usize, owners: [usize; 6]) -> RoutingTable {
    let dcs = (0..3)
        .map(|i| DcEntry {
            name: format!("dc{}", i + 1),
            peer_url: format!("http://127.0.0.1:{}", 9000 + i).parse().unwrap(),
            id_start: i as u64 + 1,
            id_increment: 3,
        })
        .collect();
    let shards = owners
        .iter()
        .map(|&owner| ShardEntry {
            owner,
            replicas: vec![],
            epoch: 7,
            home: None,
            handoff: None,
        })
        .collect();
    RoutingTable::new(1, local, dcs, shards)
}

const HOME: [usize; 6] = [2, 0, 1, 2, 0, 1];

fn c(class: Class, kind: Kind, id: Option<u64>) -> Classification {
    Classification {
        class,
        kind,
        cluster: id.map(|n| ClusterId::new(n).unwrap()),
        api: Api::External,
    }
}

fn go(target: Target, shard: Option<u32>, epoch: u64) -> Decision {
    Decision::Go(Route {
        target,
        shard,
        epoch,
    })
}

#[test]
fn homes_follow_the_id_settings() {
    let t = table(0, HOME);
    let homes: Vec<_> = t.shards.iter().map(|s| s.home).collect();
    assert_eq!(homes, HOME.map(Some).to_vec());
    assert!((0..3).all(|dc| t.owns_all_home(dc)));
}

#[test]
fn decisions() {
    use Class::*;
    use Kind::*;
    use Origin::*;
    let local = Target::Local(Api::External);
    let home = table(0, HOME);
    // dc1 adopted shard 0 (home dc3): dc3 no longer owns all its home shards.
    let adopted = table(0, [0, 0, 1, 2, 0, 1]);
    // dc2 took dc1's shard 1: dc1 cannot take creates.
    let lost = table(0, [2, 1, 1, 2, 0, 1]);
    // Nobody owns all of its home shards.
    let none = table(0, [0, 1, 2, 2, 0, 1]);
    let rows: Vec<(&RoutingTable, Classification, Origin, Decision)> = vec![
        // Writes go to the owner; reads of owned clusters stay; reads elsewhere read through.
        (
            &home,
            c(Write, ClusterWrite, Some(1)),
            Client,
            go(local, Some(1), 7),
        ),
        (
            &home,
            c(Write, ClusterWrite, Some(2)),
            Client,
            go(Target::Peer(1), Some(2), 7),
        ),
        (
            &home,
            c(Write, ClusterWrite, Some(9)),
            Client,
            go(Target::Peer(2), Some(3), 7),
        ),
        (
            &home,
            c(Read, ClusterRead, Some(4)),
            Client,
            go(local, Some(4), 7),
        ),
        (
            &home,
            c(Read, ClusterRead, Some(5)),
            Client,
            go(Target::Peer(1), Some(5), 7),
        ),
        (
            &home,
            c(Write, NodeWrite, Some(8)),
            Client,
            go(Target::Peer(1), Some(2), 7),
        ),
        // From a peer: never forwarded again.
        (
            &home,
            c(Write, ClusterWrite, Some(1)),
            Peer,
            go(local, Some(1), 7),
        ),
        (
            &home,
            c(Write, ClusterWrite, Some(2)),
            Peer,
            Decision::Misdirected {
                shard: Some(2),
                owner: Some(1),
                epoch: 7,
            },
        ),
        (
            &home,
            c(Read, ClusterRead, Some(2)),
            Peer,
            Decision::Misdirected {
                shard: Some(2),
                owner: Some(1),
                epoch: 7,
            },
        ),
        // Id-less requests and the list stay local; a task finish stays local whatever its id.
        (&home, c(Local, Other, None), Client, go(local, None, 0)),
        (&home, c(Read, List, None), Client, go(local, None, 0)),
        (
            &home,
            c(Local, TaskFinish, Some(2)),
            Peer,
            go(local, Some(2), 0),
        ),
        (&home, c(Write, NodeWrite, None), Client, go(local, None, 0)),
        // Creates: local while this DC owns all its home shards, else a DC that does.
        (&home, c(Write, Create, None), Client, go(local, None, 0)),
        (&adopted, c(Write, Create, None), Client, go(local, None, 0)),
        (
            &adopted,
            c(Write, ClusterWrite, Some(0)),
            Client,
            Decision::Adopted { shard: 0, home: 2 },
        ),
        (
            &lost,
            c(Write, Create, None),
            Client,
            go(Target::Peer(1), None, 0),
        ),
        (
            &lost,
            c(Write, Create, None),
            Peer,
            Decision::Misdirected {
                shard: None,
                owner: None,
                epoch: 0,
            },
        ),
        (
            &none,
            c(Write, Create, None),
            Client,
            Decision::NoCreateTarget,
        ),
    ];
    for (i, (t, class, origin, want)) in rows.into_iter().enumerate() {
        assert_eq!(
            decide(t, &class, origin, false),
            want,
            "row {i}: {class:?} from {origin:?}"
        );
    }
}

#[test]
fn adopted_shards_go_to_a_standby_or_are_refused_naming_their_home() {
    use Class::*;
    use Kind::*;
    // dc1 (index 0) adopted shard 0, whose home is dc3 (index 2).
    let adopted = table(0, [0, 0, 1, 2, 0, 1]);
    let w = c(Write, ClusterWrite, Some(6));
    let r = c(Read, ClusterRead, Some(6));
    assert_eq!(
        decide(&adopted, &w, Origin::Client, false),
        Decision::Adopted { shard: 0, home: 2 }
    );
    assert_eq!(
        decide(&adopted, &r, Origin::Client, false),
        Decision::Adopted { shard: 0, home: 2 }
    );
    assert_eq!(
        decide(&adopted, &w, Origin::Peer, false),
        Decision::Adopted { shard: 0, home: 2 }
    );
    // With a standby server for dc3, writes go there, and so do reads (read-your-writes).
    let text = include_str!("../config/static.toml").replace(
        "[ownership]",
        "[standby.dc3]\nurl = \"http://127.0.0.1:9\"\n\n[ownership]",
    );
    let cfg = coopr_router::config::parse(&text).unwrap();
    let with = table(0, [0, 0, 1, 2, 0, 1]).with_standby(&cfg);
    assert_eq!(
        decide(&with, &w, Origin::Client, false),
        go(Target::Standby(2), Some(0), 7)
    );
    assert_eq!(
        decide(&with, &r, Origin::Client, false),
        go(Target::Standby(2), Some(0), 7)
    );
    // The fence stops writes only: a read of an adopted shard still goes to the standby.
    assert_eq!(
        decide(&with, &r, Origin::Client, true),
        go(Target::Standby(2), Some(0), 7)
    );
    assert_eq!(
        decide(&with, &w, Origin::Client, true),
        Decision::Fenced { shard: Some(0) }
    );
    // A home shard of this DC is unaffected.
    assert_eq!(
        decide(
            &with,
            &c(Write, ClusterWrite, Some(1)),
            Origin::Client,
            false
        ),
        go(Target::Local(Api::External), Some(1), 7)
    );
}

#[test]
fn a_fenced_router_refuses_owned_writes_and_sends_creates_away() {
    use Class::*;
    use Kind::*;
    let t = table(0, HOME);
    let local = Target::Local(Api::External);
    let f = |class, kind, id, origin| decide(&t, &c(class, kind, id), origin, true);
    assert_eq!(
        f(Write, ClusterWrite, Some(1), Origin::Client),
        Decision::Fenced { shard: Some(1) }
    );
    assert_eq!(
        f(Write, ClusterWrite, Some(1), Origin::Peer),
        Decision::Fenced { shard: Some(1) }
    );
    assert_eq!(
        f(Read, ClusterRead, Some(1), Origin::Client),
        go(local, Some(1), 7)
    );
    assert_eq!(
        f(Write, ClusterWrite, Some(2), Origin::Client),
        go(Target::Peer(1), Some(2), 7)
    );
    assert_eq!(
        f(Write, Create, None, Origin::Client),
        go(Target::Peer(1), None, 0)
    );
    assert_eq!(
        f(Write, Create, None, Origin::Peer),
        Decision::Misdirected {
            shard: None,
            owner: None,
            epoch: 0
        }
    );
    assert_eq!(f(Local, Other, None, Origin::Client), go(local, None, 0));
    let none = table(0, [0, 1, 2, 2, 0, 1]);
    assert_eq!(
        decide(&none, &c(Write, Create, None), Origin::Client, true),
        Decision::Fenced { shard: None }
    );
}

fn pinned(t: RoutingTable, pins: &[(u64, u64, usize)]) -> RoutingTable {
    t.with_pins(Pins::new(
        pins.iter()
            .map(|&(lo, hi, dc)| Pin {
                lo,
                hi,
                dc,
                epoch: 3,
            })
            .collect(),
    ))
}

#[test]
fn pins_win_over_the_shard_map() {
    use Class::*;
    use Kind::*;
    // dc1 (index 0) is local. Ids 1..=100 live in dc1, 101..=200 in dc2, 250 in dc3.
    // dc1's first home shard is 1, dc2's 2, dc3's 0.
    let pins = [(1, 100, 0), (101, 200, 1), (250, 250, 2)];
    let t = pinned(table(0, HOME), &pins);
    let local = Target::Local(Api::External);
    let rows: &[(Class, Kind, u64, Origin, Decision)] = &[
        // id 2's own shard is dc2's, but it is pinned to dc1: served here, by dc1's shard 1.
        (
            Write,
            ClusterWrite,
            2,
            Origin::Client,
            go(local, Some(1), 7),
        ),
        (Read, ClusterRead, 2, Origin::Client, go(local, Some(1), 7)),
        (Write, ClusterWrite, 2, Origin::Peer, go(local, Some(1), 7)),
        (
            Write,
            ClusterWrite,
            100,
            Origin::Client,
            go(local, Some(1), 7),
        ),
        // id 101's own shard (5) is dc2's anyway; id 103's (1) is dc1's, pinned to dc2.
        (
            Write,
            ClusterWrite,
            103,
            Origin::Client,
            go(Target::Peer(1), Some(2), 7),
        ),
        (
            Read,
            ClusterRead,
            103,
            Origin::Client,
            go(Target::Peer(1), Some(2), 7),
        ),
        (
            Write,
            ClusterWrite,
            103,
            Origin::Peer,
            Decision::Misdirected {
                shard: Some(2),
                owner: Some(1),
                epoch: 7,
            },
        ),
        // A single-id pin.
        (
            Write,
            ClusterWrite,
            250,
            Origin::Client,
            go(Target::Peer(2), Some(0), 7),
        ),
        // Unpinned ids keep their shard: 201 -> shard 3 (dc3), 202 -> shard 4 (dc1).
        (
            Write,
            ClusterWrite,
            201,
            Origin::Client,
            go(Target::Peer(2), Some(3), 7),
        ),
        (
            Write,
            ClusterWrite,
            202,
            Origin::Client,
            go(local, Some(4), 7),
        ),
        (
            Write,
            ClusterWrite,
            251,
            Origin::Client,
            go(Target::Peer(1), Some(5), 7),
        ),
    ];
    for (i, (class, kind, id, origin, want)) in rows.iter().enumerate() {
        assert_eq!(
            decide(&t, &c(*class, *kind, Some(*id)), *origin, false),
            *want,
            "row {i}: id {id}"
        );
    }
    assert_eq!(t.shard_of(ClusterId::new(103).unwrap()), 2);
    assert_eq!(t.id_shard(ClusterId::new(103).unwrap()), 1);
    assert_eq!(t.pin_of(ClusterId::new(150).unwrap()).unwrap().dc, 1);
    assert!(t.pin_of(ClusterId::new(201).unwrap()).is_none());
}

#[test]
fn pins_move_with_their_dcs_home_shards() {
    use Class::*;
    use Kind::*;
    let pins = [(1, 100, 0)];
    let w = c(Write, ClusterWrite, Some(2));
    // dc1's home shards (1, 4) failed over to dc2: dc2's router serves dc1's pinned ids on its
    // standby server for dc1, and dc3's router forwards them to dc2.
    let after = [2, 1, 1, 2, 1, 1];
    let text = include_str!("../config/static.toml")
        .replace("dc = \"dc1\"", "dc = \"dc2\"")
        .replace(
            "[ownership]",
            "[standby.dc1]\nurl = \"http://127.0.0.1:9\"\n\n[ownership]",
        );
    let cfg = coopr_router::config::parse(&text).unwrap();
    let at_dc2 = pinned(table(1, after).with_standby(&cfg), &pins);
    assert_eq!(
        decide(&at_dc2, &w, Origin::Client, false),
        go(Target::Standby(0), Some(1), 7)
    );
    assert_eq!(
        decide(&at_dc2, &w, Origin::Peer, false),
        go(Target::Standby(0), Some(1), 7)
    );
    let at_dc3 = pinned(table(2, after), &pins);
    assert_eq!(
        decide(&at_dc3, &w, Origin::Client, false),
        go(Target::Peer(1), Some(1), 7)
    );
    // Without a standby for dc1, dc2 refuses dc1's pinned clusters' writes, naming their home.
    let bare = pinned(table(1, after), &pins);
    assert_eq!(
        decide(&bare, &w, Origin::Client, false),
        Decision::Adopted { shard: 1, home: 0 }
    );
}

#[test]
fn a_created_id_is_misplaced_outside_this_dcs_home_shards_unless_pinned_here() {
    let t = pinned(table(0, HOME), &[(2, 2, 0), (4, 4, 1)]);
    let m = |id| t.misplaced(ClusterId::new(id).unwrap());
    // dc1's home shards are 1 and 4 (ids 1, 7, 4, 10, ...).
    assert!(!m(1) && !m(7) && !m(10));
    assert!(m(3) && m(5) && m(6));
    // Pinned here: not misplaced; pinned to another DC (a duplicate id): misplaced.
    assert!(!m(2));
    assert!(m(4));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A pinned id is routed exactly like an unpinned id of its pin's DC's first home shard;
        /// an id outside every pin is routed by its own shard, as if there were no pins.
        #[test]
        fn pins_route_like_their_dcs_home_shard(
            owners in proptest::array::uniform6(0usize..3), local in 0usize..3,
            lo in 0u64..1000, len in 0u64..50, dc in 0usize..3, id in 0u64..1100,
            write in any::<bool>(), peer in any::<bool>(), fenced in any::<bool>()
        ) {
            let plain = table(local, owners);
            let t = pinned(plain.clone(), &[(lo, lo + len, dc)]);
            let (class, kind) = if write { (Class::Write, Kind::ClusterWrite) } else { (Class::Read, Kind::ClusterRead) };
            let origin = if peer { Origin::Peer } else { Origin::Client };
            let got = decide(&t, &c(class, kind, Some(id)), origin, fenced);
            let want = if (lo..=lo + len).contains(&id) {
                // The first home shard of DC `dc` is (dc + 1) mod 3; its ids include dc + 1.
                let shard = (dc as u64 + 1) % 3;
                prop_assert_eq!(t.shard_of(ClusterId::new(id).unwrap()), shard as u32);
                decide(&plain, &c(class, kind, Some(shard)), origin, fenced)
            } else {
                decide(&plain, &c(class, kind, Some(id)), origin, fenced)
            };
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        /// A request from a peer is served here or refused, never sent on; a write always goes to
        /// its shard's owner.
        #[test]
        fn peer_requests_never_travel_and_writes_reach_owners(
            owners in proptest::array::uniform6(0usize..3), local in 0usize..3, id in 0u64..1_000_000, write in any::<bool>()
        ) {
            let t = table(local, owners);
            let (class, kind) = if write { (Class::Write, Kind::ClusterWrite) } else { (Class::Read, Kind::ClusterRead) };
            let cl = c(class, kind, Some(id));
            let owner = owners[(id % 6) as usize];
            let home = ((id % 6) as usize + 2) % 3;
            match decide(&t, &cl, Origin::Peer, false) {
                Decision::Go(r) => { prop_assert_eq!(r.target, Target::Local(Api::External)); prop_assert_eq!(owner, local); }
                Decision::Misdirected { owner: o, .. } => { prop_assert_eq!(o, Some(owner)); prop_assert!(owner != local); }
                // Owned here, but adopted from another home DC, with no standby: refused.
                Decision::Adopted { home: h, .. } => { prop_assert_eq!(owner, local); prop_assert_eq!(h, home); prop_assert!(home != local); }
                Decision::NoCreateTarget | Decision::Fenced { .. } => prop_assert!(false),
            }
            match decide(&t, &cl, Origin::Client, false) {
                Decision::Adopted { .. } => prop_assert!(owner == local && home != local),
                Decision::Go(r) if owner == local => prop_assert_eq!(r.target, Target::Local(Api::External)),
                Decision::Go(r) => prop_assert_eq!(r.target, Target::Peer(owner)),
                _ => prop_assert!(false),
            }
        }
    }
}

/// Catalog writes (issue 24): applied first at the catalog's home DC, whose answer is the
/// client's; the home alone delivers them to the others; a delivery is applied where it lands.
#[test]
fn global_writes_go_to_the_catalog_home_first() {
    use Origin::{Client, Peer};
    let local = go(Target::Local(Api::External), None, 0);
    // (this DC, home, origin, delivery) -> decision, fans out
    type Row = (usize, Option<usize>, Origin, bool, Decision, bool);
    let rows: &[Row] = &[
        // No home: local, as before, delivered nowhere.
        (1, None, Client, false, local, false),
        (1, None, Peer, false, local, false),
        // At the home: applied here, then delivered.
        (0, Some(0), Client, false, local, true),
        (0, Some(0), Peer, false, local, true),
        (0, Some(0), Origin::Provisioner, false, local, true),
        // Elsewhere: the client's write goes to the home DC's router.
        (
            1,
            Some(0),
            Client,
            false,
            go(Target::Peer(0), None, 0),
            false,
        ),
        (
            2,
            Some(0),
            Client,
            false,
            go(Target::Peer(0), None, 0),
            false,
        ),
        // A client cannot claim a delivery (the header is stripped; and the origin decides).
        (
            1,
            Some(0),
            Client,
            true,
            go(Target::Peer(0), None, 0),
            false,
        ),
        // A delivery from the home: applied here, delivered nowhere else.
        (1, Some(0), Peer, true, local, false),
        (0, Some(0), Peer, true, local, false),
        // A peer's write that is not a delivery, at a router that is not the home: 421.
        (
            2,
            Some(0),
            Peer,
            false,
            Decision::Misdirected {
                shard: None,
                owner: Some(0),
                epoch: 0,
            },
            false,
        ),
    ];
    for &(here, home, origin, delivery, want, fan) in rows {
        let t = table(here, HOME);
        assert_eq!(
            decide_global(&t, home, origin, delivery),
            want,
            "dc{} home {home:?} {origin:?} delivery {delivery}",
            here + 1
        );
        assert_eq!(fans_out(&t, home, origin, delivery), fan);
    }
    // `decide` alone (no home known) keeps a global write local, on every map.
    for here in 0..3 {
        assert_eq!(
            decide(
                &table(here, HOME),
                &c(Class::Global, Kind::Catalog, None),
                Origin::Client,
                true
            ),
            local
        );
    }
}

#[test]
fn the_catalog_home_from_the_ownership_source_wins_over_the_config() {
    /// (the source's home and epoch, `catalog.home`, the home in force)
    type Case = (Option<(usize, u64)>, Option<&'static str>, Option<usize>);
    let cases: &[Case] = &[
        (None, None, None),
        (None, Some("dc2"), Some(1)),
        (None, Some("dc9"), None),
        (Some((2, 40)), None, Some(2)),
        (Some((2, 40)), Some("dc1"), Some(2)),
        (Some((0, 41)), Some("dc3"), Some(0)),
    ];
    for &(source, configured, want) in cases {
        let t = table(1, HOME).with_catalog_home(source);
        assert_eq!(
            t.catalog_home(configured),
            want,
            "{source:?} {configured:?}"
        );
        assert_eq!(t.catalog_home_entry(), source);
        // Where a global write received by dc2 from a client goes follows that home.
        let d = decide_global(&t, t.catalog_home(configured), Origin::Client, false);
        let want_target = match want {
            Some(h) if h != 1 => Target::Peer(h),
            _ => Target::Local(Api::External),
        };
        assert_eq!(d, go(want_target, None, 0), "{source:?} {configured:?}");
    }
}
