//! Ownership-flip benchmark: how fast an etcd ownership change reaches three routers, and what
//! flipping a shard every 100 ms costs a loaded deployment.
//!
//! `cargo run --release --example flips -- [--flips 200] [--load-secs 10] [--clients 32]
//! [--flip-every-ms 100] [--read-every 5] [--out load/results]`
//!
//! Everything runs on loopback: a real `etcd` (Debian's, data under /dev/shm, killed on drop),
//! three in-process `coopr_router::sim::Sim`s and three routers started by `app::start` with
//! `[ownership] source = "etcd"` (default `fence_after_ms`), on ephemeral ports.
//!
//! 1. Flip latency: shard 1 is moved dc1 -> dc2 -> dc1 ... `--flips` times, one at a time. Before
//!    each `ops::set_owner` a waiter per router is parked on `Routes::wait_for_revision(prev + 1)`
//!    and stamps the instant that router publishes the new snapshot. Two bounds per flip, for the
//!    LAST of the three routers:
//!    - lower: from `set_owner` returning (after the commit; misses the client's RTT, and is 0 if
//!      the router published before the reply reached us),
//!    - upper: from just before `set_owner` was called (includes connecting to etcd, the read of
//!      the shard and the DC list, and the transaction).
//! 2. Load: `--clients` tasks (own keep-alive hyper client each, spread over the three routers'
//!    client ports) send node writes for cluster 00000001 (shard 1), and every `--read-every`th
//!    request a read routed by the same shard (`POST /v2/getNodeProperties`, which the simulator
//!    answers 200 for any cluster, so a read's status depends only on routing), for
//!    `--load-secs`; first without flips, then with a flip of shard 1 every `--flip-every-ms`.
//!    Every non-2xx and every transport error is a failure. Afterwards the simulators' logs are
//!    checked: every 2xx write applied exactly once, none applied twice, and how many were
//!    applied by a DC at an epoch that had already been superseded.
//!
//! Results go to stdout and `load/results/flips-<UTC timestamp>.json`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use bytes::Bytes;
use coopr_router::etcd::ops;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::etcd::EtcdServer;

const PREFIX: &str = "/bench/";
const SHARD: u32 = 1;
const CLUSTER: &str = "00000001";
const DCS: [&str; 3] = ["dc1", "dc2", "dc3"];
/// How long any single wait may take before the benchmark gives up on it.
const WAIT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    flips: usize,
    load_secs: u64,
    clients: usize,
    flip_every_ms: u64,
    read_every: u64,
    out: String,
    /// Where the routers keep their last-known-good map (`ownership.state_file`); a temporary
    /// directory under it. Default: the system temp dir (a disk here; /dev/shm to compare).
    state_dir: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        flips: 200,
        load_secs: 10,
        clients: 32,
        flip_every_ms: 100,
        read_every: 5,
        out: "load/results".into(),
        state_dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || {
            it.next()
                .unwrap_or_else(|| panic!("{k} needs a value"))
                .to_string()
        };
        let num = |s: String| -> u64 { s.parse().unwrap_or_else(|e| panic!("{k} {s}: {e}")) };
        match k.as_str() {
            "--flips" => a.flips = num(v()) as usize,
            "--load-secs" => a.load_secs = num(v()),
            "--clients" => a.clients = num(v()).max(1) as usize,
            "--flip-every-ms" => a.flip_every_ms = num(v()).max(1),
            "--read-every" => a.read_every = num(v()),
            "--out" => a.out = v(),
            "--state-dir" => a.state_dir = Some(v()),
            "-h" | "--help" => {
                println!(
                    "flips [--flips 200] [--load-secs 10] [--clients 32] [--flip-every-ms 100] [--read-every 5] [--out load/results] [--state-dir DIR]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (try --help)"),
        }
    }
    a
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.total_cmp(b));
    json!({
        "n": v.len(),
        "p50": pct(&v, 0.50),
        "p90": pct(&v, 0.90),
        "p99": pct(&v, 0.99),
        "max": v.last().copied().unwrap_or(f64::NAN),
        "mean": if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 },
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The 1-minute load average (other work on a shared machine skews req/s).
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn ownership_toml(endpoint: &str, state: &std::path::Path) -> String {
    format!(
        "[ownership]\nsource = \"etcd\"\nendpoints = [\"{endpoint}\"]\nprefix = \"{PREFIX}\"\nstate_file = \"{}\"\n",
        state.display()
    )
}

fn router(dc: &support::Dc) -> &coopr_router::app::RouterHandle {
    dc.router.as_ref().expect("router running")
}

/// Waits until every router has a fresh, unfenced map at `revision` or later.
async fn wait_all_fresh(d: &support::Deployment, revision: u64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = d.dcs.iter().all(|dc| {
            let r = router(dc);
            !r.freshness.is_fenced()
                && !r.freshness.is_stale()
                && r.routes.load().revision >= revision
        });
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "routers not fresh: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn owner_name(dc: &support::Dc) -> String {
    let t = router(dc).routes.load();
    t.dc_name(t.shards[SHARD as usize].owner).to_string()
}

// ---------------------------------------------------------------------------------------------
// Phase 1: flip latency.

struct FlipSample {
    /// From `set_owner` returning to the last router publishing (clamped at 0).
    after_ms: f64,
    /// From just before `set_owner` was called to the last router publishing.
    before_ms: f64,
    /// `set_owner`'s own duration.
    call_ms: f64,
    /// Per router (dc1..dc3), from `set_owner` returning (negative: published before the reply).
    per_router_ms: [f64; 3],
}

async fn flip_latency(
    d: &support::Deployment,
    settings: &coopr_router::etcd::Settings,
    n: usize,
) -> (Vec<FlipSample>, usize) {
    let mut out = Vec::with_capacity(n);
    let mut timeouts = 0;
    for i in 0..n {
        let to = if owner_name(&d.dcs[0]) == "dc1" {
            "dc2"
        } else {
            "dc1"
        };
        let prev = d
            .dcs
            .iter()
            .map(|dc| router(dc).routes.load().revision)
            .max()
            .unwrap_or(0);
        // Park one waiter per router before the change, so each stamps its router's publish.
        let waiters: Vec<_> = d
            .dcs
            .iter()
            .map(|dc| {
                let routes = router(dc).routes.clone();
                tokio::spawn(async move {
                    let t = routes.wait_for_revision(prev + 1, WAIT).await;
                    (Instant::now(), t)
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let t0 = Instant::now();
        let (_, new) = ops::set_owner(settings, SHARD, to, "bench", "flip")
            .await
            .unwrap_or_else(|e| panic!("flip {i}: {e}"));
        let t1 = Instant::now();
        let new = new as u64;
        let mut at = [t1; 3];
        let mut timed_out = false;
        for (k, w) in waiters.into_iter().enumerate() {
            let (when, table) = w.await.expect("waiter");
            at[k] = when;
            if table.revision < new {
                timed_out = true;
                // Still behind: wait for it properly, so the next flip starts clean.
                let t = router(&d.dcs[k])
                    .routes
                    .wait_for_revision(new, Duration::from_secs(30))
                    .await;
                assert!(t.revision >= new, "dc{} never saw revision {new}", k + 1);
                at[k] = Instant::now();
                continue;
            }
            assert_eq!(
                table.dc_name(table.shards[SHARD as usize].owner),
                to,
                "dc{} at revision {} routes shard {SHARD} elsewhere",
                k + 1,
                table.revision
            );
        }
        if timed_out {
            timeouts += 1;
        }
        let last = at.iter().copied().max().unwrap_or(t1);
        let signed = |x: Instant| {
            if x >= t1 { ms(x - t1) } else { -ms(t1 - x) }
        };
        out.push(FlipSample {
            after_ms: ms(last.saturating_duration_since(t1)),
            before_ms: ms(last.saturating_duration_since(t0)),
            call_ms: ms(t1 - t0),
            per_router_ms: at.map(signed),
        });
    }
    (out, timeouts)
}

// ---------------------------------------------------------------------------------------------
// Phase 2: load, with and without flips.

#[derive(Default)]
struct TaskStats {
    writes: u64,
    reads: u64,
    /// (kind, status or "transport"/"timeout", route header, error kind header) -> count
    outcomes: BTreeMap<(String, String, String, String), u64>,
    latencies_us: Vec<u32>,
    failures_at_ms: Vec<u64>,
    samples: Vec<String>,
    ok_write_ids: Vec<String>,
}

async fn client_task(
    task: usize,
    phase: &'static str,
    target: SocketAddr,
    stop: Arc<AtomicBool>,
    read_every: u64,
    started_ms: u64,
) -> TaskStats {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(HttpConnector::new());
    let mut s = TaskStats::default();
    let mut k: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        let is_read = read_every > 0 && k.is_multiple_of(read_every);
        let rid = format!("{phase}-{task}-{k}");
        let (path, body) = if is_read {
            (
                "/v2/getNodeProperties",
                format!("{{\"clusterId\":\"{CLUSTER}\"}}"),
            )
        } else {
            (
                "/v2/nodes",
                format!("{{\"id\":\"{rid}\",\"clusterId\":\"{CLUSTER}\"}}"),
            )
        };
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{target}{path}"))
            .header("Coopr-UserID", "admin")
            .header("Coopr-TenantID", "superadmin")
            .header("content-type", "application/json")
            .header("x-request-id", rid.as_str())
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let t = Instant::now();
        let res = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("body: {e:?}"))?
                .to_bytes();
            Ok::<_, String>((parts, body))
        })
        .await;
        let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
        s.latencies_us.push(us);
        let kind = if is_read { "read" } else { "write" };
        if is_read {
            s.reads += 1;
        } else {
            s.writes += 1;
        }
        let h = |parts: &http::response::Parts, name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let (status, route, err, ok, detail) = match res {
            Ok(Ok((parts, body))) => {
                let ok = parts.status.is_success();
                (
                    parts.status.as_u16().to_string(),
                    h(&parts, "x-coopr-router-route"),
                    h(&parts, "x-coopr-router-error"),
                    ok,
                    format!(
                        "{} via {} dc={} epoch={}: {}",
                        parts.status,
                        target,
                        h(&parts, "x-coopr-router-dc"),
                        h(&parts, "x-coopr-router-epoch"),
                        String::from_utf8_lossy(&body)
                    ),
                )
            }
            Ok(Err(e)) => (
                "transport".into(),
                String::new(),
                String::new(),
                false,
                e.clone(),
            ),
            Err(_) => (
                "timeout".into(),
                String::new(),
                String::new(),
                false,
                "no answer in time".into(),
            ),
        };
        if ok && !is_read {
            s.ok_write_ids.push(rid);
        }
        if !ok {
            s.failures_at_ms.push(now_ms().saturating_sub(started_ms));
            if s.samples.len() < 3 {
                s.samples.push(format!("{kind} {detail}"));
            }
        }
        *s.outcomes
            .entry((kind.into(), status, route, err))
            .or_default() += 1;
    }
    s
}

/// One flip of the flipper: its new epoch, the owner from then on, and when the commit was
/// acknowledged (wall clock ms, to compare with the simulators' log times).
#[derive(Clone)]
struct Flip {
    epoch: u64,
    owner: String,
    acked_ms: u64,
}

async fn load_phase(
    d: &support::Deployment,
    settings: &coopr_router::etcd::Settings,
    a: &Args,
    phase: &'static str,
    flip: bool,
) -> Value {
    let start_rev = d
        .dcs
        .iter()
        .map(|dc| router(dc).routes.load().revision)
        .max()
        .unwrap_or(0);
    wait_all_fresh(d, start_rev, "before a load phase").await;
    let initial_owner = owner_name(&d.dcs[0]);
    let initial_epoch = router(&d.dcs[0]).routes.load().shards[SHARD as usize].epoch;
    let load_before = loadavg();
    let stop = Arc::new(AtomicBool::new(false));
    let started_ms = now_ms();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..a.clients {
        let target = d.dcs[i % 3].client;
        tasks.push(tokio::spawn(client_task(
            i,
            phase,
            target,
            stop.clone(),
            a.read_every,
            started_ms,
        )));
    }
    let flipper = if flip {
        let settings = settings.clone();
        let stop = stop.clone();
        let every = Duration::from_millis(a.flip_every_ms);
        let mut owner = initial_owner.clone();
        Some(tokio::spawn(async move {
            let mut flips: Vec<Flip> = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            let mut call_ms = Vec::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let to = if owner == "dc1" { "dc2" } else { "dc1" };
                let t = Instant::now();
                match ops::set_owner(&settings, SHARD, to, "bench", "flip under load").await {
                    Ok((_, new)) => {
                        call_ms.push(ms(t.elapsed()));
                        owner = to.to_string();
                        flips.push(Flip {
                            epoch: new as u64,
                            owner: owner.clone(),
                            acked_ms: now_ms(),
                        });
                    }
                    Err(e) => errors.push(e.to_string()),
                }
            }
            (flips, errors, call_ms)
        }))
    } else {
        None
    };
    tokio::time::sleep(Duration::from_secs(a.load_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = TaskStats::default();
    for t in tasks {
        let s = tokio::time::timeout(REQUEST_TIMEOUT + WAIT, t)
            .await
            .expect("client task ends")
            .expect("client task");
        all.writes += s.writes;
        all.reads += s.reads;
        for (k, v) in s.outcomes {
            *all.outcomes.entry(k).or_default() += v;
        }
        all.latencies_us.extend(s.latencies_us);
        all.failures_at_ms.extend(s.failures_at_ms);
        for x in s.samples {
            if all.samples.len() < 12 {
                all.samples.push(x);
            }
        }
        all.ok_write_ids.extend(s.ok_write_ids);
    }
    let elapsed = t0.elapsed();
    let (flips, flip_errors, flip_call_ms) = match flipper {
        Some(f) => f.await.expect("flipper"),
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    // Let every router reach the last flip before the next phase.
    let end_rev = flips.last().map(|f| f.epoch).unwrap_or(start_rev);
    wait_all_fresh(d, end_rev, "after a load phase").await;

    // The simulators' view: which DC applied which write, at which epoch, when.
    let prefix = format!("{phase}-");
    let mut applied: HashMap<String, Vec<(usize, Option<u64>, u64)>> = HashMap::new();
    for (k, dc) in d.dcs.iter().enumerate() {
        for e in dc.log() {
            if e.path != "/v2/nodes" {
                continue;
            }
            if let Some(rid) = e.request_id.as_deref()
                && rid.starts_with(&prefix)
            {
                applied.entry(rid.to_string()).or_default().push((
                    k,
                    e.epoch.as_deref().and_then(|s| s.parse().ok()),
                    e.time_ms,
                ));
            }
        }
    }
    let mut by_dc = [0u64; 3];
    for v in applied.values() {
        for (k, _, _) in v {
            by_dc[*k] += 1;
        }
    }
    let double_applied = applied.values().filter(|v| v.len() > 1).count();
    let ok_not_applied = all
        .ok_write_ids
        .iter()
        .filter(|r| !applied.contains_key(*r))
        .count();
    let applied_not_ok =
        applied.len() as i64 - all.ok_write_ids.len() as i64 + ok_not_applied as i64;
    // Applied at an epoch that a later, already acknowledged flip had superseded (with 2 ms of
    // slack for the millisecond clocks): the router that applied it was behind.
    let mut timeline = vec![Flip {
        epoch: initial_epoch,
        owner: initial_owner.clone(),
        acked_ms: 0,
    }];
    timeline.extend(flips.iter().cloned());
    // When each flip's new owner first applied a write at that flip's epoch.
    let mut first_new: HashMap<u64, u64> = HashMap::new();
    for v in applied.values() {
        for (k, epoch, at) in v {
            if let Some(e) = epoch
                && let Some(f) = timeline.iter().find(|f| f.epoch == *e)
                && f.owner == DCS[*k]
            {
                let x = first_new.entry(*e).or_insert(u64::MAX);
                *x = (*x).min(*at);
            }
        }
    }
    let mut stale_epoch_applies = 0u64;
    let mut overlapping_applies = 0u64;
    let mut wrong_owner_applies = 0u64;
    for v in applied.values() {
        for (k, epoch, at) in v {
            let Some(epoch) = epoch else { continue };
            // The owner in force at `epoch` (the last flip at or before it).
            if let Some(f) = timeline.iter().rev().find(|f| f.epoch <= *epoch)
                && f.owner != DCS[*k]
            {
                wrong_owner_applies += 1;
            }
            if let Some(next) = timeline.iter().find(|f| f.epoch > *epoch) {
                if *at > next.acked_ms + 2 {
                    stale_epoch_applies += 1;
                }
                // Strictly later (ms clocks) than a write the next owner applied at its epoch:
                // both DCs applied writes for the shard at the same time.
                if first_new.get(&next.epoch).is_some_and(|t| *at > *t) {
                    overlapping_applies += 1;
                }
            }
        }
    }

    let total = all.writes + all.reads;
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = 0u64;
    let mut failed_421 = 0u64;
    let mut failed_503 = 0u64;
    let mut router_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut outcomes = Vec::new();
    for ((kind, status, route, err), n) in &all.outcomes {
        *statuses.entry(status.clone()).or_default() += n;
        let ok = status.starts_with('2') && status.len() == 3;
        if !ok {
            failed += n;
            if status == "421" {
                failed_421 += n;
            }
            if status == "503" {
                failed_503 += n;
            }
            if route == "error" {
                *router_errors
                    .entry(if err.is_empty() {
                        status.clone()
                    } else {
                        err.clone()
                    })
                    .or_default() += n;
            }
        }
        outcomes.push(
            json!({"kind": kind, "status": status, "route": route, "error": err, "count": n}),
        );
    }
    let lat: Vec<f64> = all
        .latencies_us
        .iter()
        .map(|u| *u as f64 / 1000.0)
        .collect();
    let secs = elapsed.as_secs_f64();
    json!({
        "phase": phase,
        "flipping": flip,
        "flip_every_ms": if flip { Some(a.flip_every_ms) } else { None },
        "clients": a.clients,
        "loadavg_1m_before_after": [load_before, loadavg()],
        "seconds": secs,
        "requests": total,
        "writes": all.writes,
        "reads": all.reads,
        "requests_per_sec": total as f64 / secs,
        "latency_ms": summary(lat),
        "statuses": statuses,
        "failed": failed,
        "failed_421": failed_421,
        "failed_503": failed_503,
        "router_errors": router_errors,
        "failures_at_ms": all.failures_at_ms,
        "failure_samples": all.samples,
        "outcomes": outcomes,
        "flips": flips.len(),
        "flip_errors": flip_errors,
        "flip_call_ms": summary(flip_call_ms),
        "applied": {
            "writes_2xx": all.ok_write_ids.len(),
            "applied_by_dc": by_dc,
            "double_applied": double_applied,
            "ok_but_not_applied": ok_not_applied,
            "applied_but_not_ok": applied_not_ok,
            "applied_by_a_dc_not_owner_at_its_epoch": wrong_owner_applies,
            "applied_at_an_already_superseded_epoch": stale_epoch_applies,
            "applied_by_old_owner_after_new_owner_applied": overlapping_applies,
        },
    })
}

// ---------------------------------------------------------------------------------------------

fn f(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.2}"),
        None => "-".into(),
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    let hard_limit = Duration::from_secs(120 + a.flips as u64 + 3 * a.load_secs);
    // Everything is bounded: the whole run, and each wait inside it.
    match tokio::time::timeout(hard_limit, run(a)).await {
        Ok(()) => {}
        Err(_) => {
            eprintln!("flips: gave up after {hard_limit:?}");
            std::process::exit(2);
        }
    }
}

async fn run(a: Args) {
    println!("flips: starting etcd and three DCs (3 sims + 3 routers in-process)");
    let etcd = EtcdServer::start().await;
    let settings = etcd.settings(PREFIX);
    let dcs: Vec<String> = DCS.map(String::from).to_vec();
    let init_rev = ops::init(&settings, &dcs, 12, false)
        .await
        .expect("ownership init") as u64;
    let dir = match &a.state_dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("state dir");
    let d = support::start_with(Duration::from_millis(10), |i| {
        ownership_toml(&etcd.url(), &dir.path().join(format!("dc{}.json", i + 1)))
    })
    .await;
    wait_all_fresh(&d, init_rev, "after start").await;
    for dc in &d.dcs {
        assert_eq!(owner_name(dc), "dc1", "shard 1 starts at its home, dc1");
    }
    let fence_after_ms = router(&d.dcs[0]).freshness.fence_after_ms();
    println!(
        "flips: etcd {} ready, routers fresh at revision {init_rev} (fence_after_ms {fence_after_ms})",
        etcd.url()
    );

    // Phase 1.
    println!("flips: {} flips of shard {SHARD}, one at a time", a.flips);
    let (samples, timeouts) = flip_latency(&d, &settings, a.flips).await;
    let after = summary(samples.iter().map(|s| s.after_ms).collect());
    let before = summary(samples.iter().map(|s| s.before_ms).collect());
    let call = summary(samples.iter().map(|s| s.call_ms).collect());
    let per_router: Vec<Value> = (0..3)
        .map(|k| {
            json!({
                "dc": DCS[k],
                "from_reply_ms": summary(samples.iter().map(|s| s.per_router_ms[k]).collect()),
            })
        })
        .collect();
    let published_before_reply = samples
        .iter()
        .filter(|s| s.per_router_ms.iter().all(|p| *p <= 0.0))
        .count();
    println!(
        "\nflip latency, last of 3 routers, {} flips (ms)   p50     p90     p99     max",
        samples.len()
    );
    for (name, s) in [
        ("lower bound (from set_owner's reply)", &after),
        ("upper bound (from before set_owner) ", &before),
        ("set_owner call itself               ", &call),
    ] {
        println!(
            "  {name}  {:>7} {:>7} {:>7} {:>7}",
            f(&s["p50"]),
            f(&s["p90"]),
            f(&s["p99"]),
            f(&s["max"])
        );
    }
    println!(
        "  flips where all three routers had published before set_owner returned: {published_before_reply}; waits that timed out ({WAIT:?}): {timeouts}"
    );

    // Phase 2.
    println!(
        "\nflips: load, {} clients for {} s without flips, then with a flip every {} ms",
        a.clients, a.load_secs, a.flip_every_ms
    );
    let base = load_phase(&d, &settings, &a, "steady", false).await;
    let flipping = load_phase(&d, &settings, &a, "flipping", true).await;
    println!(
        "\n  {:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6} {:>7} {:>5} {:>5} {:>11}  statuses",
        "run",
        "requests",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "flips",
        "failed",
        "421",
        "503",
        "loadavg"
    );
    for r in [&base, &flipping] {
        println!(
            "  {:<9} {:>9} {:>9.0} {:>8} {:>8} {:>8} {:>6} {:>7} {:>5} {:>5} {:>11}  {}",
            r["phase"].as_str().unwrap_or(""),
            r["requests"].as_u64().unwrap_or(0),
            r["requests_per_sec"].as_f64().unwrap_or(0.0),
            f(&r["latency_ms"]["p50"]),
            f(&r["latency_ms"]["p99"]),
            f(&r["latency_ms"]["max"]),
            r["flips"].as_u64().unwrap_or(0),
            r["failed"].as_u64().unwrap_or(0),
            r["failed_421"].as_u64().unwrap_or(0),
            r["failed_503"].as_u64().unwrap_or(0),
            format!(
                "{:.1}->{:.1}",
                r["loadavg_1m_before_after"][0].as_f64().unwrap_or(f64::NAN),
                r["loadavg_1m_before_after"][1].as_f64().unwrap_or(f64::NAN)
            ),
            r["statuses"]
        );
    }
    for r in [&base, &flipping] {
        println!(
            "  {}: router errors {}; writes applied {}",
            r["phase"].as_str().unwrap_or(""),
            r["router_errors"],
            r["applied"]
        );
        if let Some(s) = r["failure_samples"].as_array()
            && !s.is_empty()
        {
            println!("  {} failure samples:", r["phase"].as_str().unwrap_or(""));
            for x in s {
                println!("    {}", x.as_str().unwrap_or(""));
            }
        }
        if let Some(e) = r["flip_errors"].as_array()
            && !e.is_empty()
        {
            println!("  flip errors: {e:?}");
        }
    }

    let report = json!({
        "benchmark": "flips",
        "date_utc": stamp(),
        "machine": {
            "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        },
        "setup": {
            "etcd": "Debian etcd-server on loopback, data under /dev/shm",
            "dcs": 3, "shards": 12, "shard": SHARD, "cluster": CLUSTER,
            "fence_after_ms": fence_after_ms,
            "state_dir": dir.path().display().to_string(),
        },
        "args": {
            "flips": a.flips, "load_secs": a.load_secs, "clients": a.clients,
            "flip_every_ms": a.flip_every_ms, "read_every": a.read_every,
        },
        "flip_latency_ms": {
            "flips": samples.len(),
            "lower_bound_from_reply": after,
            "upper_bound_from_before_call": before,
            "set_owner_call": call,
            "per_router": per_router,
            "all_published_before_reply": published_before_reply,
            "wait_timeouts": timeouts,
            "goal_p99_under_ms": 50,
        },
        "load": [base, flipping],
    });
    std::fs::create_dir_all(&a.out).expect("results dir");
    let path = format!("{}/flips-{}.json", a.out, stamp());
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("json") + "\n",
    )
    .expect("write results");
    println!("\nflips: wrote {path}");

    // Stop routers and sims, then etcd (EtcdServer kills it on drop).
    let mut d = d;
    for dc in &mut d.dcs {
        tokio::time::timeout(WAIT, dc.stop_router()).await.ok();
    }
    drop(d);
    drop(etcd);
}
