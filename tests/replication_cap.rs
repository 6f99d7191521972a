//! The outbox cap: with a peer down and its queue full, new records for it are dropped, and
//! that is counted (`coopr_router_replication_dropped_total`) and visible in the queue gauge,
//! never silent; the peers with room get everything. One test in its own process, so the
//! process-wide metrics are this test's alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::StatusCode;
use std::time::Duration;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_drops_loudly_and_other_peers_get_everything() {
    let dir = tempfile::tempdir().unwrap();
    let extra = repl::extra(dir.path(), None, "outbox_max_records = 2\n");
    let mut d = start_with(Duration::from_millis(200), extra).await;
    d.dcs[1].stop_router().await;
    // One at a time, each replicated to dc3 before the next: dc3's queue never holds more than
    // the cap, dc2's (down) fills with the first intent and finish.
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = format!("{{\"name\":\"c{i}\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}");
        let r = post(&d.dcs[0].url("/v2/clusters"), &body).await;
        assert_eq!(r.status, StatusCode::OK);
        let id = r.json()["id"].as_str().unwrap().to_string();
        let url = d.dcs[2].url(&format!("/v2/clusters/{id}"));
        eventually(WAIT, "dc3 has it", || async {
            let r = get(&url).await;
            (r.header("x-coopr-router-route") == "replica" && r.json()["status"] == "active")
                .then_some(())
        })
        .await;
        ids.push(id);
    }
    // dc2's queue holds 2 records; the other 4 were dropped, and counted.
    let metrics_url = d.dcs[0].admin_url("/metrics");
    let text = eventually(WAIT, "dropped and queued counted", || async {
        let text = get(&metrics_url).await.text();
        (metric(
            &text,
            "coopr_router_replication_dropped_total{peer=\"dc2\"}",
        ) == Some(4.0)
            && metric(&text, "coopr_router_replication_queued{peer=\"dc2\"}") == Some(2.0))
        .then_some(text)
    })
    .await;
    assert!(
        metric(
            &text,
            "coopr_router_replication_retries_total{peer=\"dc2\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "coopr_router_replication_dropped_total{peer=\"dc3\"}"
        ),
        None
    );
    // dc2 back: it gets what was kept (the first cluster's intent and finish; dc3 applied all
    // 6), and the queue drains.
    d.dcs[1].restart_router().await;
    eventually(WAIT, "queue drained into dc2", || async {
        let text = get(&metrics_url).await.text();
        (metric(&text, "coopr_router_replication_queued{peer=\"dc2\"}") == Some(0.0)
            && metric(
                &text,
                "coopr_router_replication_applied_total{result=\"applied\"}",
            ) == Some(8.0))
        .then_some(())
    })
    .await;
    let first = get(&d.dcs[1].url(&format!("/v2/clusters/{}", ids[0]))).await;
    assert_eq!(first.header("x-coopr-router-route"), "replica");
    let dropped = get(&d.dcs[1].url(&format!("/v2/clusters/{}", ids[2]))).await;
    assert_eq!(
        dropped.header("x-coopr-router-route"),
        "forwarded",
        "a dropped record: read through to the owner"
    );
    let text = get(&metrics_url).await.text();
    assert!(
        text.contains("coopr_router_replication_lag_seconds_bucket"),
        "lag histogram at the replicas"
    );
}
