//! The owner router killed (SIGKILL, the real binary) with records in its outbox and an
//! operation still open, then restarted: the peer that was down meanwhile receives every record
//! exactly once, in order per shard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::child::KillOnDrop;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

/// The router, killed when the test ends, however it ends.
fn spawn(path: &std::path::Path) -> KillOnDrop {
    KillOnDrop::new(
        Command::new(env!("CARGO_BIN_EXE_coopr-router"))
            .arg("run")
            .arg("--config")
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start coopr-router"),
    )
}

async fn ready(dc: &Dc) {
    let url = dc.admin_url("/ready");
    eventually(WAIT, "router ready", || async {
        let up = tokio::net::TcpStream::connect(dc.admin).await.is_ok();
        (up && call(Method::GET, &url, &[], "").await.status == StatusCode::OK).then_some(())
    })
    .await;
}

async fn create(dc: &Dc, name: &str) -> String {
    let body = format!("{{\"name\":\"{name}\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}");
    let r = post(&dc.url("/v2/clusters"), &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

async fn replicated(dc: &Dc, id: &str) {
    let url = dc.url(&format!("/v2/clusters/{id}"));
    eventually(WAIT, "replicated and active", || async {
        let r = get(&url).await;
        (r.status == StatusCode::OK
            && r.header("x-coopr-router-route") == "replica"
            && r.json()["status"] == "active")
            .then_some(())
    })
    .await;
}

fn records(bytes: &[u8]) -> Vec<(u64, u64, String)> {
    let needle = b"{\"seq\":";
    (0..bytes.len())
        .filter(|&i| bytes[i..].starts_with(needle))
        .filter_map(|i| {
            let v: Value = serde_json::Deserializer::from_slice(&bytes[i..])
                .into_iter()
                .next()?
                .ok()?;
            Some((
                v["record"]["shard"].as_u64()?,
                v["seq"].as_u64()?,
                v["record"]["cluster"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_with_a_full_outbox_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let extra = repl::extra(dir.path(), None, "");
    let mut d = start_relayed(Duration::from_millis(400), extra, repl::tap_dc1_to_dc2).await;
    // dc1's router becomes the real binary, on the same ports and store.
    d.dcs[0].stop_router().await;
    let path = dir.path().join("dc1.toml");
    std::fs::write(&path, &d.dcs[0].config_text).unwrap();
    let child = spawn(&path);
    ready(&d.dcs[0]).await;
    // New replica stores ask each owner once for its full state; count records after that.
    for dc in &d.dcs {
        let url = dc.admin_url("/admin/status.json");
        eventually(Duration::from_secs(20), "new stores asked", || async {
            get(&url).await.json()["replication"]["peers"]
                .as_array()?
                .iter()
                .all(|p| p["asking"] == false && p["owed"] == false)
                .then_some(())
        })
        .await;
    }
    d.dcs[1].stop_router().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(create(&d.dcs[0], &format!("k{i}")).await);
    }
    for id in &ids {
        replicated(&d.dcs[2], id).await;
    }
    // One more, still pending when the owner is killed.
    ids.push(create(&d.dcs[0], "in-flight").await);
    // SIGKILL, and reaped.
    drop(child);
    let _child = spawn(&path);
    ready(&d.dcs[0]).await;
    d.dcs[1].restart_router().await;
    for id in &ids {
        replicated(&d.dcs[1], id).await;
    }
    let recs = records(&d.relay(0, 1).tapped());
    assert_eq!(
        recs.len(),
        8,
        "4 intents and 4 finishes, once each: {recs:?}"
    );
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for (shard, seq, cluster) in &recs {
        let prev = last.insert(*shard, *seq).unwrap_or(0);
        assert!(
            *seq > prev,
            "shard {shard}: {seq} after {prev} ({cluster}): {recs:?}"
        );
    }
    for id in &ids {
        assert_eq!(recs.iter().filter(|r| &r.2 == id).count(), 2, "{id}");
    }
}
