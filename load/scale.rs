//! Scale benchmark (issue 22, "Scale"): how the router's costs grow with the deployment, as
//! curves, one Markdown table per curve (load/SCALE.md quotes them with this command).
//!
//! `cargo run --release --example scale -- [--only clusters,shards,dcs,downloads]
//! [--clusters 1000,10000,100000] [--shards 12,255,4095] [--dcs 3,5,9] [--downloads 10000]
//! [--budget-ms 1500] [--out load/results]`
//!
//! - `clusters` (`scale/clusters.rs`): the merged `GET /v2/clusters` against the replica store's
//!   size, the list index against the scan it replaced (same run), store size and reopen time.
//! - `shards` (`scale/shards.rs`): the routing snapshot's memory, building it from a real etcd,
//!   flip latency to the last of three routers, `/admin/routes`, at each shard count.
//! - `dcs` (`scale/dcs.rs`): routers on loopback, 3 -> 9 DCs: health-check requests, the cost
//!   of one routing decision, replication records and batches per write.
//! - `list`: only lists of a kept store (`--keep-store DIR --path scan|index --caller
//!   user@tenant --iters N`), for callgrind counts (load/SCALE.md has the commands).
//! - `downloads` (`scale/downloads.rs`): one router, many concurrent slow downloads: memory per
//!   stream.
//!
//! Every phase is bounded (counts, and a hard time limit for the whole run) and stops what it
//! started (etcd is killed on drop, routers and simulators are shut down). Figures are noisy:
//! the machine is shared; every table carries the 1-minute load average, and counts (bytes,
//! items, requests, records) are given where they exist.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "scale/clusters.rs"]
mod clusters;
#[path = "scale/common.rs"]
mod common;
#[path = "scale/dcs.rs"]
mod dcs;
#[path = "scale/downloads.rs"]
mod downloads;
#[path = "scale/shards.rs"]
mod shards;

use serde_json::json;
use std::time::Duration;

/// The router's allocator (`main.rs`), so allocation-heavy figures are the router's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    only: Vec<String>,
    clusters: Vec<u64>,
    shards: Vec<u32>,
    dcs: Vec<usize>,
    downloads: usize,
    budget: Duration,
    out: String,
    /// `clusters`: keep the store in this directory; `list`: the store to list.
    keep_store: Option<String>,
    list_path: String,
    caller: String,
    iters: u64,
}

fn list<T: std::str::FromStr>(k: &str, s: &str) -> Vec<T> {
    s.split(',')
        .map(|x| {
            x.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{k}: {x} is not a number"))
        })
        .collect()
}

fn args() -> Args {
    let mut a = Args {
        only: vec![
            "clusters".into(),
            "shards".into(),
            "dcs".into(),
            "downloads".into(),
        ],
        clusters: vec![1000, 3000, 10_000, 30_000, 100_000],
        shards: vec![12, 255, 4095],
        dcs: vec![3, 5, 7, 9],
        downloads: 10_000,
        budget: Duration::from_millis(1500),
        out: "load/results".into(),
        keep_store: None,
        list_path: "index".into(),
        caller: "admin@acme".into(),
        iters: 10,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--only" => a.only = list(&k, &v()),
            "--clusters" => a.clusters = list(&k, &v()),
            "--shards" => a.shards = list(&k, &v()),
            "--dcs" => a.dcs = list(&k, &v()),
            "--downloads" => a.downloads = list::<usize>(&k, &v())[0],
            "--budget-ms" => a.budget = Duration::from_millis(list::<u64>(&k, &v())[0]),
            "--out" => a.out = v(),
            "--keep-store" => a.keep_store = Some(v()),
            "--path" => a.list_path = v(),
            "--caller" => a.caller = v(),
            "--iters" => a.iters = list::<u64>(&k, &v())[0],
            "-h" | "--help" => {
                println!(
                    "scale [--only clusters,shards,dcs,downloads,list] [--clusters 1000,...] [--shards 12,255,4095] [--dcs 3,5,7,9] [--downloads 10000] [--budget-ms 1500] [--out load/results] [--keep-store DIR] [--path scan|index] [--caller user@tenant] [--iters N]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other} (try --help)"),
        }
    }
    for p in &a.only {
        assert!(
            ["clusters", "shards", "dcs", "downloads", "list"].contains(&p.as_str()),
            "unknown phase {p}"
        );
    }
    assert!(
        a.clusters.iter().all(|&n| (1..=200_000).contains(&n)),
        "--clusters: 1 to 200000"
    );
    assert!(
        a.shards.iter().all(|&n| (3..=16_384).contains(&n)),
        "--shards: 3 to 16384"
    );
    assert!(
        a.dcs.iter().all(|&n| (2..=12).contains(&n)),
        "--dcs: 2 to 12"
    );
    assert!(a.downloads <= 20_000, "--downloads: at most 20000");
    a
}

fn main() {
    let a = args();
    // The whole run is bounded; each phase bounds its own waits too.
    let limit = Duration::from_secs(1800);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let done = runtime.block_on(async { tokio::time::timeout(limit, run(a)).await });
    if done.is_err() {
        eprintln!("scale: gave up after {limit:?}");
        std::process::exit(2);
    }
}

async fn run(a: Args) {
    let started = common::stamp();
    let mut report = json!({
        "benchmark": "scale",
        "date_utc": started,
        "machine": {
            "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        },
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
    });
    let mut md = String::new();
    for phase in &a.only {
        eprintln!("scale: phase {phase} (load {:.1})", common::loadavg());
        let (v, text) = match phase.as_str() {
            "clusters" => {
                let (sizes, budget) = (a.clusters.clone(), a.budget);
                let keep = a.keep_store.clone().map(std::path::PathBuf::from);
                tokio::task::spawn_blocking(move || clusters::run(&sizes, budget, keep.as_deref()))
                    .await
                    .expect("clusters phase")
            }
            "list" => {
                let dir = a
                    .keep_store
                    .clone()
                    .expect("--only list needs --keep-store DIR");
                let store = std::path::Path::new(&dir).join("replica.redb");
                clusters::list_only(&store, &a.list_path, &a.caller, a.iters)
            }
            "shards" => shards::run(&a.shards, a.budget).await,
            "dcs" => dcs::run(&a.dcs, a.budget).await,
            _ => downloads::run(a.downloads).await,
        };
        report[phase.as_str()] = v;
        println!("{text}");
        md.push_str(&text);
        md.push('\n');
    }
    std::fs::create_dir_all(&a.out).expect("results dir");
    let path = format!("{}/scale-{started}.json", a.out);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("json") + "\n",
    )
    .expect("write results");
    std::fs::write(format!("{}/scale-{started}.md", a.out), md).expect("write tables");
    eprintln!("scale: wrote {path}");
}
