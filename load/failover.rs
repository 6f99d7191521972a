//! Failover and handoff figures (issue #5), on loopback with a real etcd.
//!
//! `cargo run --release --example failover -- [--runs 20] [--handoffs 20] [--writers 8]
//! [--shards 12] [--out load/results]`
//!
//! 1. **Kill to first write.** `--runs` times, with the default `[failover]` and `[health]`
//!    settings (lease TTL 5 s, grace 2 s): three DCs (in-process simulators and routers, etcd
//!    source, a fresh key prefix per run); dc1's router is stopped without revoking its lease
//!    (what etcd sees of a `kill -9`), and its simulator with it; from that instant a client writes to one of dc1's clusters
//!    through dc2 every 10 ms. The figure is the time to the first write answered 201 via dc2's
//!    standby server (`x-coopr-router-route: standby`). Goal: p99 < TTL + grace + 1 s = 8 s.
//!    Beside it, the time until both surviving routers' tables show every one of dc1's shards
//!    moved (a third of `--shards`: how the automatic failover grows with the map).
//! 2. **Handoff under load.** `--writers` clients write to shard 1 through all three routers,
//!    honouring `Retry-After`; shard 1 is handed dc1 -> dc2 -> dc1 ... `--handoffs` times. Per
//!    handoff, the unavailability is the slowest write that overlapped it (request to commit).
//!    Goal: p99 < 1 s, and no write failed.
//!
//! Results go to stdout and `load/results/failover-<UTC timestamp>.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use coopr_router::etcd::{handoff, ops};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;
use support::*;

const DCS: [&str; 3] = ["dc1", "dc2", "dc3"];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(f64::NAN)
}

async fn deployment(etcd: &EtcdServer, prefix: &str, state: &std::path::Path) -> Deployment {
    let dcs: Vec<String> = DCS.map(String::from).to_vec();
    let shards = arg("--shards", 12);
    ops::init(&etcd.settings(prefix), &dcs, shards as u32, false)
        .await
        .expect("init");
    let url = etcd.url();
    let d = start_full(
        Duration::from_millis(100),
        None,
        |i| {
            format!(
                "[ownership]\nsource = \"etcd\"\nendpoints = [\"{url}\"]\nprefix = \"{prefix}\"\nstate_file = \"{}\"\n",
                state.join(format!("{}{}.json", prefix.trim_matches('/'), i)).display()
            )
        },
        |_, t| t.replace("shard_count = 12", &format!("shard_count = {shards}")),
        |_, _| None,
    )
    .await;
    let s = etcd.settings(prefix);
    eventually(
        Duration::from_secs(30),
        "three DCs fresh and alive",
        || async {
            let fresh = d.dcs.iter().all(|dc| {
                dc.router
                    .as_ref()
                    .is_some_and(|r| !r.freshness.is_fenced() && r.routes.load().revision > 0)
            });
            let mut c = s.connect().await.ok()?;
            let alive = coopr_router::etcd::liveness::alive_dcs(&s, &mut c)
                .await
                .ok()?;
            (fresh && alive.len() == 3).then_some(())
        },
    )
    .await;
    d
}

async fn write(url: &str, rid: &str) -> Reply {
    call(
        http::Method::POST,
        url,
        &[ADMIN[0], ADMIN[1], ("x-request-id", rid)],
        &format!("{{\"id\":\"{rid}\",\"clusterId\":\"00000001\"}}"),
    )
    .await
}

/// Kill dc1, then (ms to the first write via dc2's standby, ms until dc2's and dc3's routers
/// both show every shard of dc1's moved).
async fn kill_to_first_write(etcd: &EtcdServer, run: usize, state: &std::path::Path) -> (f64, f64) {
    let prefix = format!("/fob{run}/");
    let mut d = deployment(etcd, &prefix, state).await;
    let url = d.dcs[1].url("/v2/nodes");
    let survivors: Vec<_> = d.dcs[1..]
        .iter()
        .map(|dc| dc.router.as_ref().expect("router").routes.clone())
        .collect();
    let killed = Instant::now();
    let all_moved = tokio::spawn(async move {
        loop {
            let moved = survivors.iter().all(|routes| {
                let t = routes.load();
                (0..t.shard_count()).all(|n| t.shard(n).is_some_and(|e| e.owner != 0))
            });
            if moved {
                return killed.elapsed();
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "shards not moved"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    d.dcs[0].stop_router().await;
    d.dcs[0].stop_sim();
    let mut i = 0;
    let took = loop {
        i += 1;
        let r = write(&url, &format!("kill{run}-{i}")).await;
        if r.status == http::StatusCode::CREATED && r.header("x-coopr-router-route") == "standby" {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "no failover");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let moved = all_moved.await.expect("all moved");
    for dc in &mut d.dcs {
        dc.stop_router().await;
    }
    (took.as_secs_f64() * 1000.0, moved.as_secs_f64() * 1000.0)
}

/// (started, took, ok) per write.
async fn writer(url: String, tag: String, stop: Arc<AtomicBool>) -> Vec<(Instant, Duration, bool)> {
    let mut out = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let rid = format!("{tag}-{i}");
        let started = Instant::now();
        let ok = loop {
            let r = write(&url, &rid).await;
            if r.status == http::StatusCode::SERVICE_UNAVAILABLE
                && !r.header("retry-after").is_empty()
                && started.elapsed() < Duration::from_secs(30)
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            break r.status.is_success();
        };
        out.push((started, started.elapsed(), ok));
    }
    out
}

#[tokio::main]
async fn main() {
    let (runs, handoffs, writers) = (
        arg("--runs", 20),
        arg("--handoffs", 20),
        arg("--writers", 8),
    );
    let out_dir = std::env::args()
        .skip_while(|a| a != "--out")
        .nth(1)
        .unwrap_or_else(|| "load/results".into());
    let etcd = EtcdServer::start().await;
    let state = tempfile::tempdir_in("/dev/shm").expect("tempdir");

    println!("failover: {runs} runs of kill -> first write via the new owner's standby");
    let shards = arg("--shards", 12);
    let (mut kills, mut moves) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let (ms, moved) = kill_to_first_write(&etcd, run, state.path()).await;
        println!("  run {run:>2}: {ms:.0} ms; every shard of dc1 moved in {moved:.0} ms");
        kills.push(ms);
        moves.push(moved);
    }
    let (k50, k99) = (pct(&mut kills, 0.5), pct(&mut kills, 0.99));
    let (m50, m99) = (pct(&mut moves, 0.5), pct(&mut moves, 0.99));
    println!("kill -> first write: p50 {k50:.0} ms, p99 {k99:.0} ms (goal p99 < 8000 ms)");
    println!(
        "kill -> all {} of dc1's shards moved (of {shards}): p50 {m50:.0} ms, p99 {m99:.0} ms",
        shards.div_ceil(3)
    );

    println!("handoff: {handoffs} handoffs of shard 1 under {writers} writers");
    let prefix = "/hob/";
    let mut d = deployment(&etcd, prefix, state.path()).await;
    let s = etcd.settings(prefix);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let url = d.dcs[w % 3].url("/v2/nodes");
            tokio::spawn(writer(url, format!("ho{w}"), stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut windows = Vec::new();
    for h in 0..handoffs {
        let to = if h % 2 == 0 { "dc2" } else { "dc1" };
        let plans = handoff::plan(&s, Some(1), None, to).await.expect("plan");
        let asked = Instant::now();
        handoff::request(&s, &plans, "bench")
            .await
            .expect("request");
        let outcome = handoff::wait(&s, &plans, Duration::from_secs(15))
            .await
            .expect("wait");
        let committed = Instant::now();
        assert!(
            matches!(outcome[0], handoff::Outcome::Moved { .. }),
            "handoff {h}: {outcome:?}"
        );
        windows.push((asked, committed));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("writer"));
    }
    for dc in &mut d.dcs {
        dc.stop_router().await;
    }
    let failed = all.iter().filter(|w| !w.2).count();
    let mut unavailable: Vec<f64> = windows
        .iter()
        .map(|&(a, c)| {
            all.iter()
                .filter(|(s, t, _)| *s <= c && *s + *t >= a)
                .map(|(_, t, _)| t.as_secs_f64() * 1000.0)
                .fold(0.0, f64::max)
        })
        .collect();
    let mut commit: Vec<f64> = windows
        .iter()
        .map(|(a, c)| (*c - *a).as_secs_f64() * 1000.0)
        .collect();
    let mut lat: Vec<f64> = all.iter().map(|w| w.1.as_secs_f64() * 1000.0).collect();
    let (u50, u99) = (pct(&mut unavailable, 0.5), pct(&mut unavailable, 0.99));
    let (c50, c99) = (pct(&mut commit, 0.5), pct(&mut commit, 0.99));
    let (l50, l99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));
    println!(
        "handoff: {} writes, {failed} failed; per-handoff unavailability p50 {u50:.1} ms, p99 {u99:.1} ms (goal p99 < 1000 ms)",
        all.len()
    );
    println!(
        "handoff: request -> moved p50 {c50:.1} ms, p99 {c99:.1} ms; all writes p50 {l50:.1} ms, p99 {l99:.1} ms"
    );
    let stamp = std::process::Command::new("date")
        .args(["-u", "+%Y%m%d-%H%M%S"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let report = json!({
        "benchmark": "failover",
        "date_utc": stamp,
        "shards": shards,
        "kill_to_first_write_ms": {"runs": kills.len(), "p50": k50, "p99": k99, "all": kills},
        "kill_to_all_moved_ms": {"runs": moves.len(), "p50": m50, "p99": m99, "all": moves},
        "handoff": {
            "handoffs": windows.len(), "writers": writers, "writes": all.len(), "failed": failed,
            "unavailability_ms": {"p50": u50, "p99": u99},
            "request_to_moved_ms": {"p50": c50, "p99": c99},
            "write_latency_ms": {"p50": l50, "p99": l99},
        },
    });
    let _ = std::fs::create_dir_all(&out_dir);
    let path = format!("{out_dir}/failover-{stamp}.json");
    match std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    ) {
        Ok(()) => println!("failover: wrote {path}"),
        Err(e) => println!("failover: cannot write {path}: {e}"),
    }
}
