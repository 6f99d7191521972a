//! etcd's history is compacted by the routers (`ownership.compact_every_ms`), always to a
//! revision read one interval earlier, against a real etcd: the heartbeats' revisions do not pile
//! up, and the routers stay fresh through it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::{Settings, compact, ops};
use coopr_router::shutdown::ShutdownTrigger;
use std::sync::Arc;
use std::time::Duration;
use support::etcd::EtcdServer;
use support::*;

const PREFIX: &str = "/test/";
const WAIT: Duration = Duration::from_secs(20);

/// Whether etcd still serves a read of `key` at `rev` (false: compacted away).
async fn readable_at(s: &Settings, key: &str, rev: i64) -> bool {
    let mut c = s.connect().await.unwrap();
    match c
        .get(key, Some(etcd_client::GetOptions::new().with_revision(rev)))
        .await
    {
        Ok(_) => true,
        Err(e) if e.to_string().contains("compacted") => false,
        Err(e) => panic!("read at revision {rev}: {e}"),
    }
}

/// Writes `key` and returns the revision of the write.
async fn put(s: &Settings, key: &str) -> i64 {
    let mut c = s.connect().await.unwrap();
    c.put(key, "v", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_compaction_keeps_one_interval_of_history() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let every = Duration::from_millis(2000);
    let (trigger, shutdown) = ShutdownTrigger::new();
    let task = tokio::spawn(compact::run(
        s.clone(),
        Arc::new(move || every.as_millis() as u64),
        shutdown,
    ));
    let first = put(&s, "/test/k").await;
    put(&s, "/test/k").await;
    // Compacted past the first write within a few intervals ...
    eventually(
        WAIT,
        "history before the second write compacted",
        || async { (!readable_at(&s, "/test/k", first).await).then_some(()) },
    )
    .await;
    // ... but a revision is compacted away only an interval after a newer one was read: for a
    // quarter of an interval after two writes, the first of them stays readable (compacting to
    // the revision just read would take it at the next tick, within the interval).
    for _ in 0..4 {
        let w1 = put(&s, "/test/k").await;
        let w2 = tokio::time::Instant::now();
        put(&s, "/test/k").await;
        while w2.elapsed() < every / 4 {
            assert!(readable_at(&s, "/test/k", w1).await, "revision {w1}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    trigger.trigger();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_compact_their_heartbeats_away_and_stay_fresh() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 12, false).await.expect("init");
    let dir = tempfile::tempdir().unwrap();
    let url = etcd.url();
    let d = start_with(Duration::from_millis(100), |i| {
        format!(
            "[ownership]\nsource = \"etcd\"\nendpoints = [\"{url}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = 1000\ncompact_every_ms = 1000\nstate_file = \"{}\"\n",
            dir.path().join(format!("dc{}.json", i + 1)).display()
        )
    })
    .await;
    let start = put(&s, "/test/marker").await;
    // The routers' heartbeats move the revision on; their compactions follow it.
    eventually(WAIT, "the routers compacted etcd's history", || async {
        (!readable_at(&s, "/test/marker", start).await).then_some(())
    })
    .await;
    let m = get(&d.dcs[0].admin_url("/metrics")).await.text();
    let compacted: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("coopr_router_etcd_compacted_revision "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0);
    assert!(compacted > 0.0, "{m}");
    for dc in &d.dcs {
        let r = routes(dc).await;
        assert!(
            r["stale"] == false && r["fenced"] == false,
            "{}: {r}",
            dc.name
        );
    }
}
