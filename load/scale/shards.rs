//! Phase `shards`: the ownership map's size. At each shard count (a multiple of the 3 DCs):
//! - the routing snapshot's memory: `RoutingTable::new` built `copies` times and held, the RSS
//!   growth divided by the copies (allocator-independent; pages, so only large counts are exact);
//! - building it: the pure `RoutingTable::new` (µs per build, over many builds);
//! - building and publishing it from a real etcd: `ownership init` of that many shards, then
//!   three routers (`[ownership] source = "etcd"`) started, until all three are fresh at the
//!   init revision (connect + list + build + publish); then dc3's router restarted (re-list);
//! - flip latency to the last of the three routers (`ops::set_owner` of shard 1, `--flips`
//!   times, each router's publish stamped by a waiter parked before the change);
//! - `GET /admin/routes` on dc1's admin port: p50/p99 and the body's bytes.

use super::common::*;
use super::support;
use coopr_router::etcd::ops;
use coopr_router::routing::{DcEntry, RoutingTable, ShardEntry};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;

const FLIPS: usize = 40;
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

/// Flip shard 1 `n` times; the last router's publish, from `set_owner`'s return (ms).
async fn flips(d: &support::Deployment, s: &coopr_router::etcd::Settings, n: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for i in 0..n {
        let to = if i % 2 == 0 { "dc2" } else { "dc1" };
        let prev = d
            .dcs
            .iter()
            .map(|dc| router(dc).routes.load().revision)
            .max()
            .unwrap_or(0);
        let waiters: Vec<_> = d
            .dcs
            .iter()
            .map(|dc| {
                let routes = router(dc).routes.clone();
                tokio::spawn(async move {
                    let t = routes.wait_for_revision(prev + 1, WAIT).await;
                    (Instant::now(), t.revision)
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let (_, rev) = ops::set_owner(s, 1, to, "bench", "scale")
            .await
            .unwrap_or_else(|e| panic!("flip {i}: {e}"));
        let t1 = Instant::now();
        let mut last = t1;
        for w in waiters {
            let (at, r) = w.await.expect("waiter");
            assert!(
                r >= rev as u64,
                "a router missed revision {rev} for {WAIT:?}"
            );
            last = last.max(at);
        }
        out.push(ms(last - t1));
    }
    out
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
        assert!(n % 3 == 0, "--shards: a multiple of the 3 DCs ({n})");
        let (bytes, build_us) = snapshot_cost(n);
        mem_rows.push(vec![
            n.to_string(),
            format!("{:.0}", bytes),
            format!("{:.1}", bytes / n as f64),
            f2(build_us),
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
        let flip = summary(flips(&d, &settings, FLIPS).await);
        let (adm, adm_bytes) = admin_routes(&d, budget).await;
        let adm = summary(adm);
        let state_bytes = std::fs::metadata(dir.path().join("dc1.json")).map_or(0, |m| m.len());
        let load = loadavg();
        rows.push(vec![
            n.to_string(),
            f2(init_ms),
            f2(start_ms),
            f2(restart_ms),
            f2(flip["p50"].as_f64().unwrap_or(f64::NAN)),
            f2(flip["p99"].as_f64().unwrap_or(f64::NAN)),
            f2(adm["p50"].as_f64().unwrap_or(f64::NAN)),
            f2(adm["p99"].as_f64().unwrap_or(f64::NAN)),
            adm_bytes.to_string(),
            state_bytes.to_string(),
            format!("{load:.1}"),
        ]);
        out.push(json!({
            "shards": n, "snapshot_bytes_rss": bytes, "build_us": build_us,
            "etcd_init_ms": init_ms, "start_to_all_fresh_ms": start_ms,
            "restart_to_fresh_ms": restart_ms, "flip_last_router_ms": flip,
            "admin_routes_ms": adm, "admin_routes_bytes": adm_bytes,
            "state_file_bytes": state_bytes, "loadavg_1m": load,
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
                "snapshot bytes",
                "bytes/shard",
                "build µs",
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
                "/admin/routes p50",
                "p99",
                "bytes",
                "state file bytes",
                "load 1m",
            ],
            &rows
        )
    );
    (json!(out), md)
}
