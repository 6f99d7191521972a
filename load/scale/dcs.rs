//! Phase `dcs`: D DCs on loopback (D simulators + D routers in-process, static map of 4·D shards
//! at home, `[replication] enabled`, `health.interval_ms = 200`). At each D:
//! - health-check traffic: `GET /status` requests each simulator received in a 3 s window with
//!   no client traffic (its own router's probe, and every peer router's probe passed through
//!   to it), counted by a tapping relay in front of each simulator, per second and in request
//!   bytes, for the whole deployment and per router;
//! - routing cost: the pure `classify_head` + `decide` of a read owned by the last DC, ns per
//!   call (many calls), and a forwarded read through dc1 to DC D (ms, sequential requests);
//! - replication fan-out: 20 creates at dc1, then the records dc1 sent (all peers),
//!   per write, and the peers' mean lag (`coopr_router_replication_lag_seconds`, finish ->
//!   applied). The metrics registry is one per process, so these are deployment-wide deltas.

use super::common::*;
use super::support;
use coopr_router::app::{self, Listeners, RouterHandle};
use coopr_router::classify::{Head, classify_head};
use coopr_router::config;
use coopr_router::routing::{DcEntry, Origin, RoutingTable, ShardEntry, decide};
use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
use coopr_router::sim::{Sim, SimConfig};
use http::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::relay::{Options, Relay};
use tokio::net::TcpListener;

const WRITES: usize = 20;
const PROBE_WINDOW: Duration = Duration::from_secs(3);

struct Dc {
    /// In front of the simulator (the router's backend): it keeps the bytes sent to it, where
    /// the health checks are counted (the simulator logs no reads).
    tap: Relay,
    client: SocketAddr,
    admin: SocketAddr,
    router: RouterHandle,
    _sim_stop: ShutdownTrigger,
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

async fn start(d: usize, dir: &std::path::Path) -> Vec<Dc> {
    let mut pre = Vec::new();
    for i in 0..d {
        let sim = Sim::new(SimConfig {
            id_start: i as u64 + 1,
            id_increment: d as u64,
            op_delay: Duration::from_millis(50),
            name: format!("dc{}", i + 1),
            ..SimConfig::default()
        })
        .expect("simulator");
        let sl = bind().await;
        let target = sl.local_addr().unwrap();
        let (stop, shutdown) = ShutdownTrigger::new();
        tokio::spawn(sim.serve(sl, Shutdown::wait(shutdown)));
        let tap = Relay::start_with(
            target,
            Options {
                tap: true,
                ..Options::default()
            },
        )
        .await;
        let sim_addr = tap.addr;
        let (c, p, a) = (bind().await, bind().await, bind().await);
        pre.push((tap, sim_addr, stop, c, p, a));
    }
    let peers: Vec<SocketAddr> = pre.iter().map(|x| x.4.local_addr().unwrap()).collect();
    let mut out = Vec::new();
    for (i, (tap, sim_addr, stop, c, p, a)) in pre.into_iter().enumerate() {
        let mut t = format!(
            "dc = \"dc{}\"\nshard_count = {}\n\n[listen]\nclient = \"{}\"\npeer = \"{}\"\nadmin = \"{}\"\n\n[[backends]]\nurl = \"http://{sim_addr}\"\n\n",
            i + 1,
            4 * d,
            c.local_addr().unwrap(),
            p.local_addr().unwrap(),
            a.local_addr().unwrap()
        );
        for (k, peer) in peers.iter().enumerate() {
            t.push_str(&format!(
                "[dcs.dc{}]\npeer_url = \"http://{peer}\"\nid_start = {}\nid_increment = {d}\n\n",
                k + 1,
                k + 1
            ));
        }
        t.push_str("[timeouts]\nconnect_ms = 500\nresponse_ms = 10000\nshutdown_grace_ms = 2000\n\n[health]\ninterval_ms = 200\n\n");
        t.push_str(&format!(
            "[replication]\nenabled = true\npath = \"{}\"\npoll_min_ms = 50\npoll_max_ms = 200\n",
            dir.join(format!("dc{}.redb", i + 1)).display()
        ));
        let cfg = config::parse(&t).unwrap_or_else(|e| panic!("config dc{}: {e}\n{t}", i + 1));
        let admin = a.local_addr().unwrap();
        let client = c.local_addr().unwrap();
        let router = app::start(
            cfg,
            Listeners {
                client: c,
                peer: p,
                admin: a,
                provisioner: None,
            },
        )
        .expect("router starts");
        out.push(Dc {
            tap,
            client,
            admin,
            router,
            _sim_stop: stop,
        });
    }
    out
}

/// The sum of every sample of `name` whose labels contain `label` in a router's `/metrics`.
/// The metrics registry is the process's: every router of this phase counts into the same one,
/// so these are deployment-wide sums (a delta is taken around what is measured).
async fn metric(admin: SocketAddr, name: &str, label: &str) -> f64 {
    let r = support::get(&format!("http://{admin}/metrics")).await;
    r.text()
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && l.contains(label)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// (`GET /status` requests, bytes) sent to this DC's simulator so far.
fn status_probes(dc: &Dc) -> (usize, usize) {
    let b = dc.tap.tapped();
    let n = b
        .windows(b"GET /status ".len())
        .filter(|w| w == b"GET /status ")
        .count();
    (n, b.len())
}

/// ns per classify + decide of a read of a cluster in a shard owned by the last DC.
fn decide_ns(d: usize) -> f64 {
    let dcs = (0..d)
        .map(|i| DcEntry {
            name: format!("dc{}", i + 1),
            peer_url: "http://127.0.0.1:9".parse().unwrap(),
            id_start: i as u64 + 1,
            id_increment: d as u64,
        })
        .collect();
    let shards = (0..4 * d)
        .map(|n| ShardEntry {
            owner: (n + d - 1) % d,
            replicas: vec![],
            epoch: 3,
            home: None,
            handoff: None,
        })
        .collect();
    let t = RoutingTable::new(1, 0, dcs, shards);
    let path = format!("/v2/clusters/{:08}/status", d);
    let n = 1_000_000u32;
    let t0 = Instant::now();
    for _ in 0..n {
        let Ok(Head::Done(c)) = classify_head(&Method::GET, std::hint::black_box(&path), None)
        else {
            panic!("classify {path}");
        };
        std::hint::black_box(decide(&t, &c, Origin::Client, false));
    }
    t0.elapsed().as_nanos() as f64 / f64::from(n)
}

pub async fn run(sizes: &[usize], budget: Duration) -> (Value, String) {
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for &d in sizes {
        let dir = tempfile::tempdir().expect("store dir");
        let dcs = start(d, dir.path()).await;
        // Let every prober run a few rounds, then count a window.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let before: Vec<(usize, usize)> = dcs.iter().map(status_probes).collect();
        let t0 = Instant::now();
        tokio::time::sleep(PROBE_WINDOW).await;
        let secs = t0.elapsed().as_secs_f64();
        let after: Vec<(usize, usize)> = dcs.iter().map(status_probes).collect();
        let probes: usize = after.iter().zip(&before).map(|(a, b)| a.0 - b.0).sum();
        let bytes: usize = after.iter().zip(&before).map(|(a, b)| a.1 - b.1).sum();
        let per_s = probes as f64 / secs;
        let bytes_s = bytes as f64 / secs;
        let ns = tokio::task::spawn_blocking(move || decide_ns(d))
            .await
            .expect("decide");
        // A read at dc1 of a cluster in a shard owned by DC d (its id start), forwarded.
        let url = format!("http://{}/v2/clusters/{:08}/status", dcs[0].client, d);
        let mut fwd = Vec::new();
        let t1 = Instant::now();
        while fwd.len() < 20 || (fwd.len() < 500 && t1.elapsed() < budget) {
            let t = Instant::now();
            let r = support::get(&url).await;
            fwd.push(ms(t.elapsed()));
            assert_eq!(
                r.header("x-coopr-router-route"),
                "forwarded",
                "forwarded: {r:?}"
            );
        }
        let fwd = summary(fwd);
        // Replication fan-out.
        let a = dcs[0].admin;
        let sent0 = metric(a, "coopr_router_replication_sent_total", "").await;
        let applied0 = metric(
            a,
            "coopr_router_replication_applied_total",
            "result=\"applied\"",
        )
        .await;
        let lag_sum0 = metric(a, "coopr_router_replication_lag_seconds_sum", "").await;
        let lag_n0 = metric(a, "coopr_router_replication_lag_seconds_count", "").await;
        for w in 0..WRITES {
            let r = support::post(
                &format!("http://{}/v2/clusters", dcs[0].client),
                &format!("{{\"name\":\"s{w}\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}"),
            )
            .await;
            assert_eq!(r.status, 200, "create: {}", r.text());
        }
        // Every peer applied an intent and a finish per write: 2 x writes x peers in all.
        let want = (2 * WRITES * (d - 1)) as f64;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let applied = metric(
                a,
                "coopr_router_replication_applied_total",
                "result=\"applied\"",
            )
            .await
                - applied0;
            if applied >= want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "peers applied {applied} of {want} records"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = metric(a, "coopr_router_replication_sent_total", "").await - sent0;
        let lag_n = metric(a, "coopr_router_replication_lag_seconds_count", "").await - lag_n0;
        let lag_mean = (metric(a, "coopr_router_replication_lag_seconds_sum", "").await - lag_sum0)
            / lag_n.max(1.0)
            * 1000.0;
        let load = loadavg();
        rows.push(vec![
            d.to_string(),
            format!("{per_s:.1}"),
            format!("{:.1}", per_s / d as f64),
            format!("{:.0}", bytes_s),
            f2(ns),
            f2(fwd["p50"].as_f64().unwrap_or(f64::NAN)),
            f2(fwd["p99"].as_f64().unwrap_or(f64::NAN)),
            format!("{:.1}", sent / WRITES as f64),
            format!("{:.2}", sent / WRITES as f64 / (d - 1) as f64),
            f2(lag_mean),
            format!("{load:.1}"),
        ]);
        out.push(json!({
            "dcs": d, "status_probes_per_s": per_s, "bytes_to_servers_per_s": bytes_s, "probe_window_s": secs,
            "decide_ns": ns, "forwarded_read_ms": fwd, "writes": WRITES,
            "records_sent": sent, "peer_mean_lag_ms": lag_mean,
            "loadavg_1m": load,
        }));
        for dc in &dcs {
            dc.router.shutdown();
        }
        for dc in dcs {
            tokio::time::timeout(Duration::from_secs(10), dc.router.wait())
                .await
                .ok();
        }
        eprintln!("scale: dcs {d} done");
    }
    let md = format!(
        "### DCs on loopback (health.interval_ms = 200; {WRITES} creates at dc1)\n\n{}",
        table(
            &[
                "DCs",
                "/status probes/s (all)",
                "per router",
                "request bytes/s to servers",
                "classify+decide ns",
                "fwd read p50 ms",
                "p99 ms",
                "records sent/write",
                "per peer",
                "mean lag ms (finish -> applied)",
                "load 1m",
            ],
            &rows
        )
    );
    (json!(out), md)
}
