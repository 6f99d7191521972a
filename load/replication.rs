//! Replication benchmark: lag from an operation's finish at the owner to readable at a peer,
//! and the outbox's throughput (records/s acknowledged by a peer).
//!
//! `cargo run --release --example replication -- [--ops 160] [--workers 8] [--op-delay-ms 300]
//! [--delay-ms 25] [--records 5000]`
//!
//! Everything runs in-process on loopback: three `coopr_router::sim::Sim`s and three routers
//! (`app::start`, static map, `[replication] enabled`), each pair of routers' peer ports joined
//! by the test support's delaying TCP relay (`--delay-ms` each way; this kernel has no netem).
//!
//! 1. Lag. `--workers` tasks create clusters at dc1 (`--ops` in all); for each, the worker polls
//!    dc1's `/status` every 5 ms until it is no longer `pending` (t_finish: Coopr's finish, as a
//!    client at the owner sees it), then polls dc2 and dc3 every 2 ms until each answers from its
//!    replica store with the final status (t_seen). Lag = t_seen - t_finish, per peer. Three runs:
//!    - `poll`: the router learns of the finish by polling only (default 250 ms -> 5 s, and
//!      250 ms -> 500 ms);
//!    - `callback`: at t_finish the worker POSTs what Coopr's success callback would to dc1's
//!      `/replication/v1/coopr-callback` (standing in for `server.callback.http.success.url`);
//!    - `callback, no delay`: the same with the relays passing bytes at once (the peer in the
//!      same run the 25 ms figure is compared with).
//! 2. Throughput. Before a deployment starts, dc1's store is filled with `--records` finished
//!    records for dc2 (a ~1.5 KB captured state each, one commit per record: that rate is the
//!    durable enqueue rate); then the routers start and the time until dc2 acknowledged them all
//!    (`coopr_router_replication_sent_total{peer="dc2"}`) gives records/s, with and without the
//!    relay delay.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use coopr_router::replication::Store;
use coopr_router::replication::record::{Finished, Outcome};
use http::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use support::relay::Options;
use support::*;

struct Args {
    ops: usize,
    workers: usize,
    op_delay: Duration,
    delay: Duration,
    records: usize,
}

fn args() -> Args {
    let mut a = Args {
        ops: 160,
        workers: 8,
        op_delay: Duration::from_millis(300),
        delay: Duration::from_millis(25),
        records: 5000,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for pair in v.chunks(2) {
        let n: u64 = pair
            .get(1)
            .and_then(|s| s.parse().ok())
            .expect("a number after each flag");
        match pair[0].as_str() {
            "--ops" => a.ops = n as usize,
            "--workers" => a.workers = n as usize,
            "--op-delay-ms" => a.op_delay = Duration::from_millis(n),
            "--delay-ms" => a.delay = Duration::from_millis(n),
            "--records" => a.records = n as usize,
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn extra(dir: std::path::PathBuf, poll: &'static str) -> impl Fn(usize) -> String {
    move |i| {
        format!(
            "[replication]\nenabled = true\npath = \"{}/dc{}.redb\"\n{poll}",
            dir.display(),
            i + 1
        )
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One lag run; returns sorted lags in ms (both peers' samples).
async fn lag_run(a: &Args, delay: Duration, callback: bool, poll: &'static str) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options { delay, tap: false };
    let d = std::sync::Arc::new(
        start_relayed(a.op_delay, extra(dir.path().to_path_buf(), poll), |_, _| {
            Some(opts)
        })
        .await,
    );
    let per = a.ops / a.workers;
    let mut tasks = Vec::new();
    for w in 0..a.workers {
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let mut lags = Vec::new();
            for i in 0..per {
                let body = format!("{{\"name\":\"w{w}-{i}\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}");
                let r = post(&d.dcs[0].url("/v2/clusters"), &body).await;
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
                let id = r.json()["id"].as_str().unwrap().to_string();
                let status = d.dcs[0].url(&format!("/v2/clusters/{id}/status"));
                loop {
                    if get(&status).await.json()["status"] != "pending" {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let t_finish = Instant::now();
                if callback {
                    let cb = format!("{{\"cluster\":{{\"id\":\"{id}\",\"status\":\"ACTIVE\"}},\"job\":{{}},\"nodes\":[]}}");
                    call(Method::POST, &d.dcs[0].peer_url("/replication/v1/coopr-callback"), &[], &cb).await;
                }
                for peer in [1, 2] {
                    let url = d.dcs[peer].url(&format!("/v2/clusters/{id}/status"));
                    loop {
                        let r = get(&url).await;
                        if r.header("x-coopr-router-route") == "replica" && r.json()["status"] == "active" {
                            lags.push(t_finish.elapsed().as_secs_f64() * 1000.0);
                            break;
                        }
                        assert!(t_finish.elapsed() < Duration::from_secs(60), "{id} never reached dc{}", peer + 1);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
            lags
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_by(f64::total_cmp);
    all
}

fn sent_to_dc2() -> f64 {
    coopr_router::metrics::render()
        .lines()
        .find(|l| l.starts_with("coopr_router_replication_sent_total{peer=\"dc2\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// One throughput run: (enqueue records/s, acknowledged records/s).
async fn throughput_run(a: &Args, delay: Duration) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dc1.redb");
    let n = a.records;
    let filled = tokio::task::spawn_blocking(move || {
        let store = Store::open(&path).unwrap();
        let details = json!({"id": "x", "name": "bench", "description": "d".repeat(200), "account": {"userId": "admin", "tenantId": "superadmin"},
            "status": "active", "nodes": [{"id": "n1", "properties": {"hostname": "h".repeat(300)}}], "config": {"k": "v".repeat(400)},
            "services": ["a", "b", "c"], "latestJobId": "x-001", "progress": {"action": "cluster_create", "actionstatus": "complete"}});
        let peers = vec!["dc2".to_string()];
        let t = Instant::now();
        for i in 0..n {
            let id = format!("{:08}", 3 * i + 1);
            let f = Finished {
                op: i as u64 + 1,
                origin: "dc1".into(),
                cluster: id.clone(),
                shard: ((3 * i + 1) % 12) as u32,
                epoch: 0,
                tenant: "superadmin".into(),
                owner: "admin".into(),
                action: "cluster_create".into(),
                outcome: Outcome::Success,
                captured_ms: 0,
                details: details.clone(),
                status: json!({"clusterid": id, "status": "active"}),
                config: json!({"k": "v"}),
                services: json!(["a", "b", "c"]),
                plan: None,
            };
            store.finish(f, &peers, u64::MAX).unwrap();
        }
        n as f64 / t.elapsed().as_secs_f64()
    })
    .await
    .unwrap();
    let before = sent_to_dc2();
    let opts = Options { delay, tap: false };
    let t = Instant::now();
    let _d = start_relayed(a.op_delay, extra(dir.path().to_path_buf(), ""), |_, _| {
        Some(opts)
    })
    .await;
    loop {
        if sent_to_dc2() - before >= n as f64 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "outbox never drained"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (filled, n as f64 / t.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let a = args();
    coopr_router::metrics::install();
    println!(
        "replication benchmark: {} ops by {} workers, op_delay {:?}, relay delay {:?} each way, {} records",
        a.ops, a.workers, a.op_delay, a.delay, a.records
    );
    println!("| run | samples | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (name, delay, cb, poll) in [
        (
            "poll 250 ms -> 5 s (default), relay delay",
            a.delay,
            false,
            "",
        ),
        (
            "poll 250 ms -> 500 ms, relay delay",
            a.delay,
            false,
            "poll_max_ms = 500\n",
        ),
        ("callback, relay delay", a.delay, true, ""),
        ("callback, no delay", Duration::ZERO, true, ""),
    ] {
        let l = lag_run(&a, delay, cb, poll).await;
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            l.len(),
            pct(&l, 0.5),
            pct(&l, 0.9),
            pct(&l, 0.99),
            l.last().copied().unwrap_or(f64::NAN)
        );
    }
    println!();
    println!("| outbox run | durable enqueue records/s | acknowledged records/s |");
    println!("|---|---|---|");
    for (name, delay) in [("relay delay", a.delay), ("no delay", Duration::ZERO)] {
        let (enq, ack) = throughput_run(&a, delay).await;
        println!("| {name} | {enq:.0} | {ack:.0} |");
    }
}
