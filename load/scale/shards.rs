//! Phase `shards`: the ownership map's size. At each shard count (a multiple of the 3 DCs):
//! - the routing snapshot's memory: counted (its vectors' capacities times their element sizes,
//!   strings), and by RSS: built many times and held, the RSS growth divided by the copies
//!   (meaningful only in a fresh process: run this phase first or alone, as an allocator that
//!   already holds freed pages does not grow its RSS);
//! - building it: the pure `RoutingTable::new` (µs per build, over many builds), and the
//!   request path's use of it: `classify_head` + `decide` of a read (ns per call);
//! - one publish of the watcher after an event that moved one shard (µs, in-process, over many):
//!   "whole" is what it did before, a full `RawMap::build` and a deep copy of the raw map for the
//!   state-file writer; "incremental" what it does now, `RawMap::rebuild` from the previous
//!   table (the touched shard's entry only), the moved-owner count and the map's shared copy;
//! - a shard lookup (ns, random shards): the entries in a plain vector, as the table held them
//!   before, against `table.shard(n)` now, in the same binary;
//! - building and publishing it from a real etcd: `ownership init` of that many shards, then
//!   three routers (`[ownership] source = "etcd"`) started, until all three are fresh at the
//!   init revision (connect + list + build + publish); then dc3's router restarted (re-list);
//! - flip latency to the last of the three routers (`ops::set_owner` of shard 1, 40 times, a
//!   planned handoff between live DCs; each router's publish of the final map stamped by a
//!   waiter parked before the change): the whole flip to the last router, and the spread from
//!   the first router's publish to the last's;
//! - `GET /admin/routes` on dc1's admin port: p50/p99 and the body's bytes;
//! - `coopr-router handoff` as the CLI runs it (`handoff::plan`, `request`, `wait`): one shard,
//!   20 times (p50, ms, from the plan to the CLI seeing the move), then every shard of dc2 to
//!   dc1 at once (a third of the map; seconds, and the shards moved). Not dc3's: its router was
//!   just restarted, and a handoff from it waits for the stopped router's member key to expire
//!   with its lease (a stopped router and a crashed one look the same).

use super::common::*;
use super::support;
use coopr_router::etcd::{handoff, ops};
use coopr_router::routing::{DcEntry, RoutingTable, ShardEntry};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;

const FLIPS: usize = 40;
const CLI_HANDOFFS: usize = 20;
const WAIT: Duration = Duration::from_secs(10);

fn dcs() -> Vec<DcEntry> {
    (1..=3)
        .map(|i| DcEntry {
            name: format!("dc{i}"),
            peer_url: format!("http://127.0.0.1:{i}").parse().unwrap(),
            id_start: i,
            id_increment: 3,
        })
        .collect()
}

fn build(n: u32) -> RoutingTable {
    let shards = (0..n as usize)
        .map(|s| ShardEntry {
            owner: (s + 2) % 3,
            replicas: vec![(s + 3) % 3, (s + 4) % 3],
            epoch: 17 + s as u64,
            home: None,
            handoff: None,
        })
        .collect();
    RoutingTable::new(5, 0, dcs(), shards)
}

/// ns per `classify_head` + `decide` of a read in shard 1.
fn decide_ns(n: u32) -> f64 {
    use coopr_router::classify::{Head, classify_head};
    use coopr_router::routing::{Origin, decide};
    let t = build(n);
    let path = "/v2/clusters/00000001/status";
    let iters = 1_000_000u32;
    let t0 = Instant::now();
    for _ in 0..iters {
        let Ok(Head::Done(c)) = classify_head(&http::Method::GET, std::hint::black_box(path), None)
        else {
            panic!("classify {path}");
        };
        std::hint::black_box(decide(&t, &c, Origin::Client, false));
    }
    t0.elapsed().as_nanos() as f64 / f64::from(iters)
}

/// ns per shard lookup, random shards: (a plain vector of the entries, as the table held them
/// before; `table.shard(n)` now), in this binary, so the two compare.
fn lookup_ns(n: u32) -> (f64, f64) {
    let t = build(n);
    let plain: Vec<ShardEntry> = t.shards.iter().cloned().collect();
    let idx: Vec<u32> = (0..1u64 << 16)
        .map(|i| ((i * 2_654_435_761) % u64::from(n)) as u32)
        .collect();
    let time = |f: &dyn Fn(u32) -> Option<(usize, u64)>| {
        let t0 = Instant::now();
        let mut sum = 0u64;
        for _ in 0..64 {
            for &i in &idx {
                if let Some((o, e)) = f(std::hint::black_box(i)) {
                    sum = sum.wrapping_add(o as u64 + e);
                }
            }
        }
        std::hint::black_box(sum);
        t0.elapsed().as_nanos() as f64 / (64.0 * idx.len() as f64)
    };
    let mut best = (f64::MAX, f64::MAX);
    for _ in 0..3 {
        let v = time(&|i| plain.get(i as usize).map(|e| (e.owner, e.epoch)));
        let s = time(&|i| t.shard(i).map(|e| (e.owner, e.epoch)));
        best = (best.0.min(v), best.1.min(s));
    }
    best
}

/// The snapshot's bytes, counted: the struct, the shard entries, their replica lists and the
/// DC entries (their names and URLs); its private per-DC vectors are a few words per DC.
fn counted_bytes(t: &RoutingTable) -> usize {
    use std::mem::size_of;
    // The entries in chunks of 64 behind `Arc` (the last one padded; two counters and a
    // pointer per chunk).
    size_of::<RoutingTable>()
        + t.shards.chunk_count()
            * (coopr_router::routing::shards::CHUNK * size_of::<ShardEntry>()
                + 3 * size_of::<usize>())
        + t.shards
            .iter()
            .map(|s| s.replicas.capacity() * size_of::<usize>())
            .sum::<usize>()
        + t.dcs.capacity() * size_of::<DcEntry>()
        + t.dcs
            .iter()
            .map(|d| d.name.capacity() + d.peer_url.to_string().len())
            .sum::<usize>()
}

/// (bytes per snapshot by RSS, µs per pure build).
fn snapshot_cost(n: u32) -> (f64, f64) {
    // Enough copies for ~64 MiB, so page granularity does not matter.
    let copies = ((64 << 20) / (n as usize * 96 + 512)).clamp(8, 200_000);
    let before = rss_kib();
    let held: Vec<RoutingTable> = (0..copies).map(|_| build(n)).collect();
    let after = rss_kib();
    let per = (after.saturating_sub(before) as f64 * 1024.0) / copies as f64;
    drop(held);
    let t0 = Instant::now();
    let mut builds = 0u64;
    while builds < 10 || (t0.elapsed() < Duration::from_millis(300) && builds < 100_000) {
        std::hint::black_box(build(n));
        builds += 1;
    }
    (per, t0.elapsed().as_secs_f64() * 1e6 / builds as f64)
}

/// µs per publish of a one-shard move at `n` shards: (whole, as before: full build + deep copy
/// of the raw map; incremental, now: rebuild of the touched shard + shared copy).
fn publish_us(n: u32) -> (f64, f64) {
    use coopr_router::ownership::{RawMap, Touched, keyspace::Key};
    use std::collections::BTreeMap;
    use std::sync::Arc;
    let text = include_str!("../../config/static.toml")
        .replace("shard_count = 12", &format!("shard_count = {n}"));
    let cfg = coopr_router::config::parse(&text).expect("config");
    let mut map = RawMap::default();
    let mut rev = 1;
    let put = |map: &mut RawMap, shard: u32, owner: &str, rev: i64| {
        let key = format!("/p/shards/{shard}");
        let value = format!(r#"{{"owner":"{owner}","replicas":["dc3"]}}"#);
        map.put("/p/", key.as_bytes(), value.as_bytes(), rev)
            .expect("put");
        map.revision = rev;
    };
    for s in 0..n {
        put(&mut map, s, ["dc1", "dc2", "dc3"][s as usize % 3], rev);
    }
    let mut prev = Arc::new(map.build(&cfg).expect("build"));
    let mut time = |incremental: bool| {
        let t0 = Instant::now();
        let mut publishes = 0u64;
        while publishes < 10 || (t0.elapsed() < Duration::from_millis(300) && publishes < 100_000) {
            rev += 1;
            put(&mut map, 1, ["dc1", "dc2"][rev as usize % 2], rev);
            let table = if incremental {
                let mut touched = Touched::default();
                touched.note(&Key::Shard(1));
                let t = map.rebuild(&cfg, &prev, &touched).expect("rebuild");
                std::hint::black_box(prev.shards.owners_moved(&t.shards));
                std::hint::black_box(Arc::new(map.clone()));
                t
            } else {
                let t = map.build(&cfg).expect("build");
                let deep: BTreeMap<u32, _> =
                    map.shards.iter().map(|(k, v)| (*k, v.clone())).collect();
                std::hint::black_box((Arc::new(deep), map.dcs.clone(), map.handoffs.clone()));
                t
            };
            prev = Arc::new(table);
            publishes += 1;
        }
        t0.elapsed().as_secs_f64() * 1e6 / publishes as f64
    };
    let whole = time(false);
    let incremental = time(true);
    (whole, incremental)
}

fn router(dc: &support::Dc) -> &coopr_router::app::RouterHandle {
    dc.router.as_ref().expect("router running")
}

async fn all_fresh(d: &support::Deployment, revision: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = d.dcs.iter().all(|dc| {
            dc.router.as_ref().is_some_and(|r| {
                !r.freshness.is_fenced()
                    && !r.freshness.is_stale()
                    && r.routes.load().revision >= revision
            })
        });
        if ok {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Flips shard 1 `n` times (a planned handoff: dc1 and dc2 are live). Per flip, for the final
/// map (owner moved, no handoff pending): ms from the first router's publish to the last's
/// (the commit's propagation spread), and from before `set_owner` to the last router's
/// publish (the whole flip: handoff request, the owner's drain and commit, `set_owner`'s
/// 50 ms polls of etcd).
async fn flips(
    d: &support::Deployment,
    s: &coopr_router::etcd::Settings,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (mut spread, mut whole) = (Vec::new(), Vec::new());
    for i in 0..n {
        let to = if i % 2 == 0 { 1 } else { 0 };
        let waiters: Vec<_> = d
            .dcs
            .iter()
            .map(|dc| {
                let routes = router(dc).routes.clone();
                tokio::spawn(async move {
                    let done =
                        |t: &RoutingTable| t.shards[1].owner == to && t.shards[1].handoff.is_none();
                    let t = routes.wait_until(done, WAIT).await;
                    (Instant::now(), done(&t))
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let t0 = Instant::now();
        ops::set_owner(s, 1, ["dc1", "dc2"][to], "bench", "scale")
            .await
            .unwrap_or_else(|e| panic!("flip {i}: {e}"));
        let mut first: Option<Instant> = None;
        let mut last = t0;
        for (k, w) in waiters.into_iter().enumerate() {
            let (at, ok) = w.await.expect("waiter");
            assert!(
                ok,
                "flip {i}: dc{} did not publish it within {WAIT:?}",
                k + 1
            );
            last = last.max(at);
            first = Some(first.map_or(at, |f| f.min(at)));
        }
        spread.push(ms(last - first.unwrap_or(last)));
        whole.push(ms(last - t0));
    }
    (spread, whole)
}

/// `coopr-router handoff` as the CLI runs it: `n` handoffs of shard 2 back and forth between
/// its owner and another DC (ms each, from the plan to `wait` seeing the move), then every shard
/// dc2 owns to dc1 at once (seconds, shards moved).
async fn cli_handoffs(s: &coopr_router::etcd::Settings, n: usize) -> (Vec<f64>, f64, usize) {
    let home = ops::show(s).await.expect("show")[2].owner.clone();
    let other = if home == "dc1" { "dc2" } else { "dc1" };
    let mut one = Vec::new();
    for i in 0..n {
        let to = if i % 2 == 0 { other } else { home.as_str() };
        let t = Instant::now();
        let plans = handoff::plan(s, Some(2), None, to).await.expect("plan");
        handoff::request(s, &plans, "scale").await.expect("request");
        let done = handoff::wait(s, &plans, WAIT).await.expect("wait");
        assert!(
            matches!(done[..], [handoff::Outcome::Moved { .. }]),
            "handoff {i}: {done:?}"
        );
        one.push(ms(t.elapsed()));
    }
    let t = Instant::now();
    let plans = handoff::plan(s, None, Some("dc2"), "dc1")
        .await
        .expect("plan dc2");
    handoff::request(s, &plans, "scale")
        .await
        .expect("request dc2");
    let done = handoff::wait(s, &plans, Duration::from_secs(120))
        .await
        .expect("wait dc2");
    let moved = done
        .iter()
        .filter(|o| matches!(o, handoff::Outcome::Moved { .. }))
        .count();
    assert_eq!(moved, plans.len(), "every shard of dc2 moved");
    (one, t.elapsed().as_secs_f64(), moved)
}

async fn admin_routes(d: &support::Deployment, budget: Duration) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    let t0 = Instant::now();
    while times.len() < 5 || (times.len() < 200 && t0.elapsed() < budget) {
        let t = Instant::now();
        let r = support::call(
            http::Method::GET,
            &d.dcs[0].admin_url("/admin/routes"),
            &[],
            "",
        )
        .await;
        times.push(ms(t.elapsed()));
        assert_eq!(r.status, 200, "/admin/routes");
        bytes = r.body.len();
    }
    (times, bytes)
}

pub async fn run(sizes: &[u32], budget: Duration) -> (Value, String) {
    let etcd = EtcdServer::start().await;
    let mut rows = Vec::new();
    let mut mem_rows = Vec::new();
    let mut out = Vec::new();
    for &n in sizes {
        assert!(
            n.is_multiple_of(3),
            "--shards: a multiple of the 3 DCs ({n})"
        );
        let (bytes, build_us) = snapshot_cost(n);
        let ns = decide_ns(n);
        let (publish_whole_us, publish_incremental_us) = publish_us(n);
        let (lookup_vec_ns, lookup_ns) = lookup_ns(n);
        let counted = counted_bytes(&build(n));
        mem_rows.push(vec![
            n.to_string(),
            counted.to_string(),
            format!("{:.1}", counted as f64 / n as f64),
            format!("{:.0}", bytes),
            format!("{:.1}", bytes / n as f64),
            f2(build_us),
            f2(publish_whole_us),
            f2(publish_incremental_us),
            f2(ns),
            f2(lookup_vec_ns),
            f2(lookup_ns),
            format!("{:.1}", loadavg()),
        ]);
        let prefix = format!("/scale{n}/");
        let settings = etcd.settings(&prefix);
        let names: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
        let t_init = Instant::now();
        let init_rev = ops::init(&settings, &names, n, false)
            .await
            .expect("ownership init") as u64;
        let init_ms = ms(t_init.elapsed());
        let dir = tempfile::tempdir().expect("state dir");
        let url = etcd.url();
        let t_start = Instant::now();
        let mut d = support::start_full(
            Duration::from_millis(10),
            None,
            |i| {
                format!(
                    "[ownership]\nsource = \"etcd\"\nendpoints = [\"{url}\"]\nprefix = \"{prefix}\"\nstate_file = \"{}\"\n",
                    dir.path().join(format!("dc{}.json", i + 1)).display()
                )
            },
            |_, t| t.replace("shard_count = 12", &format!("shard_count = {n}")),
            |_, _| None,
        )
        .await;
        assert!(all_fresh(&d, init_rev).await, "routers fresh at {n} shards");
        let start_ms = ms(t_start.elapsed());
        // dc3 restarted: connect, list, build, publish.
        d.dcs[2].stop_router().await;
        let t_re = Instant::now();
        d.dcs[2].restart_router().await;
        assert!(all_fresh(&d, init_rev).await, "dc3 fresh after restart");
        let restart_ms = ms(t_re.elapsed());
        let (spread, whole) = flips(&d, &settings, FLIPS).await;
        let (flip, flip_whole) = (summary(spread), summary(whole));
        let (adm, adm_bytes) = admin_routes(&d, budget).await;
        let adm = summary(adm);
        let (one, bulk_s, bulk_moved) = cli_handoffs(&settings, CLI_HANDOFFS).await;
        let one = summary(one);
        let state_bytes = std::fs::metadata(dir.path().join("dc1.json")).map_or(0, |m| m.len());
        let load = loadavg();
        rows.push(vec![
            n.to_string(),
            f2(init_ms),
            f2(start_ms),
            f2(restart_ms),
            f2(flip_whole["p50"].as_f64().unwrap_or(f64::NAN)),
            f2(flip_whole["p99"].as_f64().unwrap_or(f64::NAN)),
            f2(flip["p50"].as_f64().unwrap_or(f64::NAN)),
            f2(flip["p99"].as_f64().unwrap_or(f64::NAN)),
            f2(adm["p50"].as_f64().unwrap_or(f64::NAN)),
            f2(adm["p99"].as_f64().unwrap_or(f64::NAN)),
            adm_bytes.to_string(),
            state_bytes.to_string(),
            f2(one["p50"].as_f64().unwrap_or(f64::NAN)),
            format!("{bulk_s:.2} ({bulk_moved})"),
            format!("{load:.1}"),
        ]);
        out.push(json!({
            "shards": n, "snapshot_bytes_counted": counted, "snapshot_bytes_rss": bytes, "build_us": build_us, "decide_ns": ns,
            "publish_whole_us": publish_whole_us, "publish_incremental_us": publish_incremental_us,
            "lookup_vec_ns": lookup_vec_ns, "lookup_ns": lookup_ns,
            "etcd_init_ms": init_ms, "start_to_all_fresh_ms": start_ms,
            "restart_to_fresh_ms": restart_ms, "flip_first_to_last_router_ms": flip, "flip_whole_ms": flip_whole,
            "admin_routes_ms": adm, "admin_routes_bytes": adm_bytes,
            "state_file_bytes": state_bytes, "cli_handoff_one_shard_ms": one,
            "cli_handoff_dc2_s": bulk_s, "cli_handoff_dc2_shards": bulk_moved, "loadavg_1m": load,
        }));
        for dc in &mut d.dcs {
            tokio::time::timeout(WAIT, dc.stop_router()).await.ok();
        }
        drop(d);
        eprintln!("scale: shards {n} done");
    }
    drop(etcd);
    let md = format!(
        "### Routing snapshot by shard count (in-process)\n\n{}\n### etcd to routers by shard count (3 routers, real etcd; ms)\n\n{}",
        table(
            &[
                "shards",
                "counted bytes",
                "per shard",
                "RSS bytes",
                "RSS per shard",
                "build µs",
                "publish µs: whole build + deep copy (before)",
                "incremental build µs + shared copy (now)",
                "classify+decide ns",
                "lookup ns: Vec (before)",
                "lookup ns: table.shard (now)",
                "load 1m"
            ],
            &mem_rows
        ),
        table(
            &[
                "shards",
                "init ms",
                "3 routers start->fresh",
                "restart->fresh",
                "flip p50",
                "flip p99",
                "first->last router p50",
                "p99",
                "/admin/routes p50",
                "p99",
                "bytes",
                "state file bytes",
                "CLI handoff, 1 shard, p50",
                "CLI handoff of dc2's shards, s (shards)",
                "load 1m",
            ],
            &rows
        )
    );
    (json!(out), md)
}
