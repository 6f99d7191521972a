//! `/metrics` after traffic holds the documented series (docs/METRICS.md) with the right labels:
//! requests by route kind, class, status class and DC; latency histograms; router-made errors by
//! kind; backend and peer health; and, with etcd, the map revision and age, ownership flips and
//! the fence. The recorder is process-wide, so tests run one at a time and assert presence or
//! deltas, never absolute counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::ops;
use http::StatusCode;
use std::time::Duration;
use support::etcd::EtcdServer;
use support::*;

const FAST: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(15);

/// The tests share one recorder (and its process-wide gauges): one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn scrape(dc: &Dc) -> String {
    let r = get(&dc.admin_url("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    r.text()
}

/// The values of the series of `name` that carry every label in `labels`.
fn values(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

/// The one series of `name` with `labels`; panics (showing the scrape) if it is missing.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    match values(text, name, labels)[..] {
        [v] => v,
        ref vs => panic!(
            "want exactly one {name} {labels:?}, found {}:\n{text}",
            vs.len()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_shows_up_with_route_class_status_and_dc() {
    let _serial = SERIAL.lock().await;
    let mut d = start_with(FAST, |_| {
        "[health]\ninterval_ms = 50\ntimeout_ms = 500\nrise = 1\nfall = 1\n".to_string()
    })
    .await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    let before = scrape(dc1).await;
    let count = |text: &str, labels: &[(&str, &str)]| {
        values(text, "coopr_router_requests_total", labels)
            .iter()
            .sum::<f64>()
    };
    let local_read = [
        ("route", "local"),
        ("class", "read"),
        ("status", "2xx"),
        ("dc", "dc1"),
    ];
    let forwarded_write = [
        ("route", "forwarded"),
        ("class", "write"),
        ("status", "2xx"),
        ("dc", "dc1"),
    ];
    let bad_request = [
        ("route", "error"),
        ("class", "none"),
        ("status", "4xx"),
        ("dc", "dc1"),
    ];
    let dead_peer = [
        ("route", "forwarded"),
        ("class", "write"),
        ("status", "5xx"),
        ("dc", "dc3"),
    ];

    // A local read (dc1 owns its own clusters), a write forwarded from dc2 to dc1, a 400.
    let id = create_active(dc1, "metrics").await;
    let r = get(&dc1.url(&format!("/v2/clusters/{id}"))).await;
    assert_eq!(r.header("x-coopr-router-route"), "local");
    let r = post(&dc2.url(&format!("/v2/clusters/{id}/services/restart")), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-route"), "forwarded");
    let r = get(&dc1.url("/v2/clusters/not-an-id")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A write for a dc3 cluster while dc3's router is down.
    d.dcs[2].stop_router().await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    let r = post(&dc1.url("/v2/clusters/00000003/services/restart"), "").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-error"), "peer_unreachable");

    let m = scrape(dc1).await;
    for labels in [&local_read, &forwarded_write, &bad_request, &dead_peer] {
        assert!(
            count(&m, labels) > count(&before, labels),
            "requests_total {labels:?} did not grow:\n{m}"
        );
    }
    // Every request series carries exactly the four labels.
    for line in m
        .lines()
        .filter(|l| l.starts_with("coopr_router_requests_total{"))
    {
        assert_eq!(line.matches("=\"").count(), 4, "{line}");
    }

    // Open connections, per listener (the scrape itself holds one on the admin listener).
    assert!(
        value(
            &m,
            "coopr_router_open_connections",
            &[("listener", "admin")]
        ) >= 1.0,
        "{m}"
    );
    value(
        &m,
        "coopr_router_open_connections",
        &[("listener", "client")],
    );
    // Every serving thread of the two running routers (one per CPU each) runs at least its
    // client and peer accept loops; dc3's stopped threads read 0.
    let cpus = std::thread::available_parallelism().unwrap().get();
    let serving = values(&m, "coopr_router_serving_thread_tasks", &[]);
    let running = serving.iter().filter(|&&v| v >= 2.0).count();
    assert!(running >= 2 * cpus, "{serving:?}\n{m}");
    assert!(serving.contains(&0.0), "dc3's threads stopped: {serving:?}");
    // The static map is published at revision 0.
    value(&m, "coopr_router_map_revision", &[]);

    // Latency: a true histogram (buckets from 0.5 ms to 10 s), by route and class.
    let h = "coopr_router_request_duration_seconds";
    let fw = [("route", "forwarded"), ("class", "write")];
    assert!(value(&m, &format!("{h}_count"), &fw) >= 2.0, "{m}");
    assert!(value(&m, &format!("{h}_sum"), &fw) > 0.0, "{m}");
    for le in ["0.0005", "0.005", "0.1", "1", "10", "+Inf"] {
        let with_le = [fw[0], fw[1], ("le", le)];
        value(&m, &format!("{h}_bucket"), &with_le);
    }
    let inf = [fw[0], fw[1], ("le", "+Inf")];
    assert_eq!(
        value(&m, &format!("{h}_bucket"), &inf),
        value(&m, &format!("{h}_count"), &fw)
    );
    value(
        &m,
        &format!("{h}_count"),
        &[("route", "local"), ("class", "read")],
    );
    value(
        &m,
        &format!("{h}_count"),
        &[("route", "error"), ("class", "none")],
    );

    // Router-made errors by kind.
    for kind in ["bad_request", "peer_unreachable"] {
        assert!(
            value(&m, "coopr_router_upstream_errors_total", &[("kind", kind)]) >= 1.0,
            "{m}"
        );
    }

    // Health: the backends answer; dc3's router is gone.
    let backend = format!("http://{}/", dc1.sim_addr);
    assert_eq!(
        value(&m, "coopr_router_backend_up", &[("backend", &backend)]),
        1.0
    );
    eventually(WAIT, "peer_up{dc=dc3} 0", || async {
        let m = scrape(dc2).await;
        (value(&m, "coopr_router_peer_up", &[("dc", "dc3")]) == 0.0).then_some(())
    })
    .await;
    let m = scrape(dc2).await;
    assert_eq!(value(&m, "coopr_router_peer_up", &[("dc", "dc1")]), 1.0);

    // Present from the start, whatever the source: flips, fence, reloads by result.
    value(&m, "coopr_router_ownership_flips_total", &[]);
    value(&m, "coopr_router_fenced", &[]);
    value(&m, "coopr_router_reloads_total", &[("result", "ok")]);
    value(&m, "coopr_router_reloads_total", &[("result", "failed")]);
    // HELP and TYPE lines name the types.
    for (name, kind) in [
        ("coopr_router_requests_total", "counter"),
        ("coopr_router_request_duration_seconds", "histogram"),
        ("coopr_router_fenced", "gauge"),
    ] {
        assert!(m.contains(&format!("# TYPE {name} {kind}")), "{m}");
        assert!(m.contains(&format!("# HELP {name} ")), "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_map_revision_age_flips_and_fence() {
    let _serial = SERIAL.lock().await;
    let mut etcd = EtcdServer::start().await;
    let prefix = "/metrics-test/";
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&etcd.settings(prefix), &dcs, 12, false)
        .await
        .expect("init");
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(FAST, |i| {
        format!(
            "[ownership]\nsource = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\nfence_after_ms = 600\nstate_file = \"{}\"\n",
            etcd.url(),
            dir.path().join(format!("dc{}.json", i + 1)).display()
        )
    })
    .await;
    let dc1 = &d.dcs[0];
    for dc in &d.dcs {
        eventually(WAIT, "router fresh", || async {
            let r = call(http::Method::GET, &dc.admin_url("/admin/routes"), &[], "")
                .await
                .json();
            (r["stale"] == false && r["fenced"] == false).then_some(())
        })
        .await;
    }
    let m = scrape(dc1).await;
    let revision = value(&m, "coopr_router_map_revision", &[]);
    assert!(revision > 0.0, "{m}");
    let age = value(&m, "coopr_router_map_age_seconds", &[]);
    assert!((0.0..60.0).contains(&age), "{m}");
    assert_eq!(value(&m, "coopr_router_fenced", &[]), 0.0, "{m}");
    let flips = value(&m, "coopr_router_ownership_flips_total", &[]);

    // Shard 4 (dc1's home) moves to dc2: every router publishes a map with one flip.
    ops::set_owner(&etcd.settings(prefix), 4, "dc2", "test", "metrics")
        .await
        .expect("set owner");
    eventually(WAIT, "the flip counted", || async {
        let m = scrape(dc1).await;
        (value(&m, "coopr_router_ownership_flips_total", &[]) > flips
            && value(&m, "coopr_router_map_revision", &[]) > revision)
            .then_some(())
    })
    .await;

    // etcd gone: the map is stale, the fence engages.
    etcd.kill();
    eventually(WAIT, "fenced 1", || async {
        let m = scrape(dc1).await;
        (value(&m, "coopr_router_fenced", &[]) == 1.0).then_some(())
    })
    .await;
}
