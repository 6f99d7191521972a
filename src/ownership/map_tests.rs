//! Tests of `ownership/map.rs` (kept in their own file; the module is `tests` of it): the
//! handoff rules of a build, and the incremental build against the full one (tables for the
//! fallbacks and errors, a property test over random maps and random event sequences).
use super::*;

fn map_owned_by_dc1(handoff: &[u8]) -> RawMap {
    let mut m = RawMap::default();
    for n in 0..12u32 {
        let key = format!("/p/shards/{n}");
        m.put("/p/", key.as_bytes(), br#"{"owner":"dc1"}"#, 10)
            .unwrap();
    }
    m.put("/p/", b"/p/handoff/4", handoff, 11).unwrap();
    m
}

#[test]
fn a_handoff_holds_its_shard_only_at_its_epoch_and_to_a_known_dc() {
    let cfg = crate::config::parse(include_str!("../../config/static.toml")).unwrap();
    let at = |epoch: i64, to: &str| {
        format!(r#"{{"to":"{to}","epoch":{epoch},"by":"cli","reason":"t","at_ms":1}}"#)
    };
    // At the shard's epoch, to another DC: held (dc1 is this router's DC and the owner).
    let t = map_owned_by_dc1(at(10, "dc2").as_bytes())
        .build(&cfg)
        .unwrap();
    assert_eq!(t.shard(4).unwrap().handoff, Some(1));
    assert!(t.holding(4));
    assert!(!t.holding(5));
    // Requested at an older epoch (the shard moved since), to the owner itself, or to an
    // unknown DC: ignored.
    for bad in [at(9, "dc2"), at(10, "dc1"), at(10, "dc9")] {
        let t = map_owned_by_dc1(bad.as_bytes()).build(&cfg).unwrap();
        assert!(!t.holding(4), "{bad}");
    }
    // Deleting the key (commit or withdrawal) releases it.
    let mut m = map_owned_by_dc1(at(10, "dc2").as_bytes());
    m.delete("/p/", b"/p/handoff/4");
    assert!(!m.build(&cfg).unwrap().holding(4));
    // A malformed value is refused like any other key's.
    let mut m = RawMap::default();
    assert!(m.put("/p/", b"/p/handoff/4", b"{}", 3).is_err());
}

// ---- The incremental build against the full one ----

use crate::config::Config;
use proptest::prelude::*;

/// Shards in the property test's maps: three chunks of the table (64, 64, 22).
const N: u32 = 150;
const P: &str = "/p/";
const DCS: [&str; 4] = ["dc1", "dc2", "dc3", "dc9"]; // dc9 is in no config

fn cfg(shards: u32) -> Config {
    let text = include_str!("../../config/static.toml")
        .replace("shard_count = 12", &format!("shard_count = {shards}"));
    crate::config::parse(&text).unwrap()
}

/// One change, as a watch event would bring it.
#[derive(Debug, Clone)]
enum Op {
    /// `shards/{n}` = owner, replicas (bit i: DCS[i]).
    Shard(u32, usize, u8),
    DelShard(u32),
    /// `handoff/{n}` to a DC, at the shard's current epoch or a stale one.
    Handoff(u32, usize, bool),
    DelHandoff(u32),
    /// A value that does not parse (refused; the old value stays).
    BadShard(u32),
    Pin(u64, usize),
    DelPin(u64),
    Meta(u32),
    Dc(usize),
    CatalogHome(usize),
    DelCatalogHome,
    /// Keys that do not shape the map.
    Noise,
}

/// Applies `op` at revision `rev` as the watcher does, noting what it touched.
fn apply(m: &mut RawMap, touched: &mut Touched, op: &Op, rev: i64) {
    let (key, value): (String, Option<String>) = match op {
        Op::Shard(n, o, r) => {
            let replicas: Vec<&str> = (0..4)
                .filter(|i| r & (1 << i) != 0)
                .map(|i| DCS[i])
                .collect();
            let v = serde_json::json!({"owner": DCS[*o], "replicas": replicas});
            (format!("{P}shards/{n}"), Some(v.to_string()))
        }
        Op::DelShard(n) => (format!("{P}shards/{n}"), None),
        Op::Handoff(n, to, current) => {
            let epoch = m.shards.get(n).map_or(1, |(_, e)| *e) - i64::from(!current);
            let v = format!(
                r#"{{"to":"{}","epoch":{epoch},"by":"t","reason":"t","at_ms":1}}"#,
                DCS[*to]
            );
            (format!("{P}handoff/{n}"), Some(v))
        }
        Op::DelHandoff(n) => (format!("{P}handoff/{n}"), None),
        Op::BadShard(n) => (format!("{P}shards/{n}"), Some("{\"own\":1}".into())),
        Op::Pin(lo, dc) => (
            format!("{P}pins/{lo:020}"),
            Some(format!(r#"{{"hi":{},"dc":"{}"}}"#, lo + 9, DCS[*dc])),
        ),
        Op::DelPin(lo) => (format!("{P}pins/{lo:020}"), None),
        Op::Meta(count) => (
            format!("{P}meta"),
            Some(format!(r#"{{"shard_count":{count}}}"#)),
        ),
        Op::Dc(dc) => (
            format!("{P}dcs/{}", DCS[*dc]),
            Some(format!(r#"{{"peer_url":"http://10.9.0.{dc}:1"}}"#)),
        ),
        Op::CatalogHome(dc) => (
            format!("{P}catalog/home"),
            Some(format!(r#"{{"dc":"{}"}}"#, DCS[*dc])),
        ),
        Op::DelCatalogHome => (format!("{P}catalog/home"), None),
        Op::Noise => (format!("{P}alive/dc2"), Some("x".into())),
    };
    touched.note(&parse_key(P, key.as_bytes()));
    match value {
        Some(v) => {
            let _ = m.put(P, key.as_bytes(), v.as_bytes(), rev);
        }
        None => m.delete(P, key.as_bytes()),
    }
    m.revision = rev;
}

/// A map of `count` shards, shard n owned by `owners[n]`, listed at revision 10.
fn listed(owners: &[usize]) -> RawMap {
    let mut m = RawMap::default();
    let mut t = Touched::default();
    for (n, &o) in owners.iter().enumerate() {
        apply(&mut m, &mut t, &Op::Shard(n as u32, o, 0b0110), 10);
    }
    m
}

fn shard_no() -> impl Strategy<Value = u32> {
    prop_oneof![30 => 0..N, 1 => N..N + 5]
}

fn op() -> impl Strategy<Value = Op> {
    let dc = prop_oneof![12 => 0..3usize, 1 => Just(3usize)];
    prop_oneof![
        30 => (shard_no(), dc.clone(), 0..16u8).prop_map(|(n, o, r)| Op::Shard(n, o, r)),
        10 => (shard_no(), dc.clone(), any::<bool>()).prop_map(|(n, to, c)| Op::Handoff(n, to, c)),
        8 => shard_no().prop_map(Op::DelHandoff),
        1 => shard_no().prop_map(Op::DelShard),
        1 => shard_no().prop_map(Op::BadShard),
        1 => ((0..5u64).prop_map(|k| k * 100 + 1), dc.clone()).prop_map(|(lo, d)| Op::Pin(lo, d)),
        1 => (0..5u64).prop_map(|k| Op::DelPin(k * 100 + 1)),
        1 => prop_oneof![4 => Just(N), 1 => Just(12u32)].prop_map(Op::Meta),
        1 => dc.clone().prop_map(Op::Dc),
        1 => dc.prop_map(Op::CatalogHome),
        1 => Just(Op::DelCatalogHome),
        2 => Just(Op::Noise),
    ]
}

/// What `owns_all_home` must say, from the shards themselves.
fn owns_home_by_scan(t: &RoutingTable, dc: usize) -> bool {
    t.shards.iter().all(|s| s.home != Some(dc) || s.owner == dc)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The watcher's path (a rebuild from the last published table after a batch of events
    /// that built; a whole build after one that did not) gives, batch after batch, exactly the
    /// table a whole build of the same map gives, or the same error; unchanged chunks are
    /// shared with the previous table.
    #[test]
    fn a_rebuild_is_the_whole_build(
        owners in prop::collection::vec(0..3usize, N as usize),
        batches in prop::collection::vec(prop::collection::vec(op(), 1..5), 1..40),
    ) {
        let cfg = cfg(N);
        let mut m = listed(&owners);
        let mut prev = Some(m.build(&cfg).unwrap());
        let mut rev = 10;
        for batch in &batches {
            let mut touched = Touched::default();
            for op in batch {
                rev += 1;
                apply(&mut m, &mut touched, op, rev);
            }
            if !touched.any() {
                continue;
            }
            let whole = m.build(&cfg);
            let got = match &prev {
                Some(p) => m.rebuild(&cfg, p, &touched),
                None => m.build(&cfg),
            };
            prop_assert_eq!(&got, &whole, "after {:?}", batch);
            if let (Ok(t), Some(p), Some(shards)) = (&got, &prev, touched.shards_only()) {
                for (k, (first, _)) in t.shards.chunks().enumerate() {
                    let end = ((first + crate::routing::shards::CHUNK) as u32).min(N);
                    let hit = shards.range(first as u32..end).next().is_some();
                    prop_assert_eq!(t.shards.same_chunk(&p.shards, k), !hit, "chunk {} shared unless touched", k);
                }
            }
            if let Ok(t) = &got {
                for dc in 0..3 {
                    prop_assert_eq!(t.owns_all_home(dc), owns_home_by_scan(t, dc));
                }
            }
            prev = got.ok();
        }
    }
}

/// A shard and its handoff, in the fallback and error cases: a rebuild from `prev` after `ops`
/// gives what a whole build gives.
#[test]
fn the_rebuild_agrees_with_the_whole_build_in_each_case() {
    let cfg = cfg(N);
    let owners: Vec<usize> = (0..N as usize).map(|n| n % 3).collect();
    let cases: Vec<(&str, Vec<Op>, Result<(), MapError>)> = vec![
        (
            "a shard naming an unknown DC",
            vec![Op::Shard(70, 3, 0)],
            Err(MapError::UnknownDc {
                shard: 70,
                dc: "dc9".into(),
            }),
        ),
        (
            "a replica naming an unknown DC",
            vec![Op::Shard(5, 1, 0b1000)],
            Err(MapError::UnknownDc {
                shard: 5,
                dc: "dc9".into(),
            }),
        ),
        (
            "the first failing shard is the one reported",
            vec![Op::Shard(140, 3, 0), Op::DelShard(9), Op::Shard(3, 0, 0)],
            Err(MapError::MissingShard(9)),
        ),
        (
            "a deleted shard",
            vec![Op::DelShard(149)],
            Err(MapError::MissingShard(149)),
        ),
        // Shard 4 is dc2's.
        (
            "a handoff at the shard's epoch",
            vec![Op::Handoff(4, 2, true)],
            Ok(()),
        ),
        ("a stale handoff", vec![Op::Handoff(4, 2, false)], Ok(())),
        (
            "a handoff to the owner",
            vec![Op::Handoff(4, 1, true)],
            Ok(()),
        ),
        (
            "a handoff to an unknown DC",
            vec![Op::Handoff(4, 3, true)],
            Ok(()),
        ),
        (
            "a shard moved under its handoff",
            vec![Op::Handoff(4, 2, true), Op::Shard(4, 2, 1)],
            Ok(()),
        ),
        (
            "a shard beyond the count",
            vec![Op::Shard(N + 2, 3, 0)],
            Ok(()),
        ),
        (
            "a bad value (refused, the old one stays)",
            vec![Op::BadShard(7)],
            Ok(()),
        ),
        (
            "a home shard lost, then one won back",
            vec![Op::Shard(1, 1, 0), Op::Shard(1, 0, 0)],
            Ok(()),
        ),
        (
            "meta: the wrong count",
            vec![Op::Meta(12)],
            Err(MapError::ShardCount {
                etcd: 12,
                config: N,
            }),
        ),
        (
            "a pin to an unknown DC",
            vec![Op::Pin(101, 3)],
            Err(MapError::PinDc {
                lo: 101,
                dc: "dc9".into(),
            }),
        ),
        (
            "a pin with a shard",
            vec![Op::Pin(101, 1), Op::Shard(2, 0, 0)],
            Ok(()),
        ),
        ("a DC's peer URL", vec![Op::Dc(2)], Ok(())),
        ("the catalog home", vec![Op::CatalogHome(1)], Ok(())),
        (
            "the catalog home at an unknown DC",
            vec![Op::CatalogHome(3)],
            Err(MapError::CatalogHomeDc("dc9".into())),
        ),
        ("nothing that shapes the map", vec![Op::Noise], Ok(())),
    ];
    for (what, ops, want) in cases {
        let mut m = listed(&owners);
        let prev = m.build(&cfg).unwrap();
        let mut touched = Touched::default();
        for (i, op) in ops.iter().enumerate() {
            apply(&mut m, &mut touched, op, 20 + i as i64);
        }
        let got = m.rebuild(&cfg, &prev, &touched);
        assert_eq!(got, m.build(&cfg), "{what}");
        assert_eq!(got.map(|_| ()), want, "{what}");
    }
    // A previous table of another shard count (not this map's): built whole.
    let m = listed(&owners);
    let mut touched = Touched::default();
    touched.note(&Key::Shard(1));
    let other = listed(&owners[..12])
        .build(&crate::config::parse(include_str!("../../config/static.toml")).unwrap())
        .unwrap();
    assert_eq!(m.rebuild(&cfg, &other, &touched), m.build(&cfg));
}

/// The held flag and the moved-owner counts read the rebuilt table like a whole one.
#[test]
fn a_rebuilt_table_holds_and_owns_as_a_whole_one() {
    let cfg = cfg(N);
    let owners: Vec<usize> = (0..N as usize).map(|n| (n + 2) % 3).collect();
    let mut m = listed(&owners);
    // Shard 0 (dc3's home: id_start 3 mod 3) is owned by dc3; shard 1 (dc1's) by dc1.
    let prev = m.build(&cfg).unwrap();
    assert!((0..3).all(|dc| prev.owns_all_home(dc)));
    let mut touched = Touched::default();
    apply(&mut m, &mut touched, &Op::Handoff(1, 1, true), 30);
    let held = m.rebuild(&cfg, &prev, &touched).unwrap();
    assert!(held.holding(1) && !prev.holding(1));
    let mut touched = Touched::default();
    apply(&mut m, &mut touched, &Op::Shard(1, 1, 1), 31);
    let moved = m.rebuild(&cfg, &held, &touched).unwrap();
    assert!(!moved.holding(1), "the handoff's epoch is the old one");
    assert!(!moved.owns_all_home(0) && moved.owns_all_home(1));
    assert_eq!(moved, m.build(&cfg).unwrap());
}
