//! A write held because its owner DC's router could not be reached (nothing sent) goes to that
//! owner once it passes its health checks again, when no new owner was named meanwhile (a
//! router restart shorter than a failover): it lands once, marked `x-coopr-router-held-ms`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::StatusCode;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_held_while_its_owner_restarts_lands_there_once() {
    let mut d = start_with(Duration::from_millis(10), |_| {
        "[health]\ninterval_ms = 100\ntimeout_ms = 200\nrise = 1\nfall = 1\n".to_string()
    })
    .await;
    // Cluster 1 is in shard 1, dc1's (static map).
    let dc2_url = d.dcs[1].url("/v2/nodes");
    d.dcs[0].stop_router().await;
    let write = tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let r = call(
            http::Method::POST,
            &dc2_url,
            &[ADMIN[0], ADMIN[1], ("x-request-id", "held-owner-back")],
            "{\"id\":\"held-owner-back\",\"clusterId\":\"00000001\"}",
        )
        .await;
        (r, started.elapsed())
    });
    eventually(Duration::from_secs(10), "dc2 holds the write", || async {
        (routes(&d.dcs[1]).await["held"]["requests"] == 1).then_some(())
    })
    .await;
    d.dcs[0].restart_router().await;
    let (r, took) = write.await.unwrap();
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    let held_ms: u64 = r.header("x-coopr-router-held-ms").parse().unwrap();
    assert!(
        held_ms > 0 && held_ms <= took.as_millis() as u64,
        "{held_ms} vs {took:?}"
    );
    let applied = d.dcs[0]
        .log()
        .iter()
        .filter(|e| e.request_id.as_deref() == Some("held-owner-back"))
        .count();
    assert_eq!(applied, 1, "applied once, at dc1");
    let held = &routes(&d.dcs[1]).await["held"];
    assert_eq!(held["requests"], 0, "{held}");
    assert!(held["returned"].as_u64().unwrap() >= 1, "{held}");
}
