//! Pins outside `adopt`: `[[ownership.pins]]` in the static config route pre-existing clusters
//! through every router; a misplaced create with the static map is pinned in this router's
//! snapshot (kept across a reload); the binary logs it at ERROR with the fix; the etcd pin
//! operations (`ownership pin / unpin`) are guarded and recorded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::pins::{self, PinWrite};
use coopr_router::etcd::{EtcdError, ops};
use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
use coopr_router::sim::{Sim, SimConfig};
use http::StatusCode;
use std::path::Path;
use std::time::Duration;
use support::etcd::EtcdServer;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// A simulator that ran before the router with Coopr's default id settings: `n` clusters,
/// ids 1..=n, saved in `data`.
async fn seed(data: &Path, n: usize) {
    let sim = Sim::new(SimConfig {
        op_delay: Duration::from_millis(10),
        data: Some(data.to_path_buf()),
        ..SimConfig::default()
    })
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, wait) = ShutdownTrigger::new();
    let task = tokio::spawn(sim.serve(l, Shutdown::wait(wait)));
    for k in 1..=n {
        let r = post(
            &format!("http://{addr}/v2/clusters"),
            &format!("{{\"name\":\"old{k}\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}"),
        )
        .await;
        assert_eq!(r.json()["id"], format!("{k:08}"), "{}", r.text());
    }
    eventually(WAIT, "seeded clusters on disk", || async {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(data).ok()?).ok()?;
        (v["clusters"].as_object()?.len() == n).then_some(())
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pins_route_old_clusters_and_a_misplaced_create_is_pinned_in_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    seed(&dir.path().join("dc1.json"), 4).await;
    let d = start_with_data(Duration::from_millis(10), Some(dir.path()), |_| {
        "[[ownership.pins]]\nlo = 1\nhi = 4\ndc = \"dc1\"\n".to_string()
    })
    .await;
    // Ids 2 and 3 fall in dc2's and dc3's shards; pinned, every router finds them at dc1.
    for k in 1..=4u64 {
        for dc in &d.dcs {
            let r = get(&dc.url(&format!("/v2/clusters/{k}"))).await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "{k} via {}: {}",
                dc.name,
                r.text()
            );
            assert_eq!(r.json()["name"], format!("old{k}"));
        }
    }
    assert_eq!(routes(&d.dcs[1]).await["pins"][0]["dc"], "dc1");
    // `coopr-router adopt --dry-run` as an operator runs it: the config's pins already hold
    // every cluster; nothing to add; the counters put new ids above 4 in each partition.
    let cfg_path = dir.path().join("dc1.toml");
    std::fs::write(&cfg_path, &d.dcs[0].config_text).unwrap();
    let coopr = d
        .dcs
        .iter()
        .map(|dc| format!("{}=http://{}", dc.name, dc.sim_addr))
        .collect::<Vec<_>>()
        .join(",");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_coopr-router"))
            .args(["adopt", "--config"])
            .arg(&cfg_path)
            .args(["--coopr", &coopr, "--dry-run"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("clusters already pinned where they live: 4"),
        "{text}"
    );
    assert!(text.contains("new pins (0)"), "{text}");
    assert!(
        text.contains("dc1: server.ids.start.num = 1, server.ids.increment.by = 3, counter = 7"),
        "{text}"
    );
    // dc1's Coopr still counts by one: its next id, 5, is in shard 5 (dc2's).
    let r = post(
        &d.dcs[0].url("/v2/clusters"),
        "{\"name\":\"new5\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.json()["id"], "00000005", "{}", r.text());
    eventually(WAIT, "pinned in dc1's snapshot", || async {
        let pins = routes(&d.dcs[0]).await["pins"].clone();
        (pins.as_array()?.len() == 2 && pins[1]["lo"] == 5 && pins[1]["dc"] == "dc1").then_some(())
    })
    .await;
    let again = get(&d.dcs[0].url("/v2/clusters/00000005")).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.header("x-coopr-router-route"), "local");
    let ready = get(&d.dcs[0].admin_url("/ready")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.text().contains("ids_placed"), "{}", ready.text());
    // dc1's partition (start 1, increment 3) above 5: 7.
    assert!(
        ready.text().contains("set its id counter to 7"),
        "{}",
        ready.text()
    );
    let listed = get(&d.dcs[0].admin_url("/admin/misplaced")).await.json();
    assert_eq!(listed["misplaced"][0]["home"], "dc2", "{listed}");
    assert_eq!(listed["misplaced"][0]["counter"], 7);
    // The other routers' readiness is theirs: nothing was created there.
    assert_eq!(
        get(&d.dcs[1].admin_url("/ready")).await.status,
        StatusCode::OK
    );
    // Counted (the metrics are per process, and other tests here make misplaced creates too).
    let metrics = get(&d.dcs[0].admin_url("/metrics")).await.text();
    let count: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("coopr_router_misplaced_ids_total "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert!(count >= 1.0, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_writes_are_guarded_idempotent_and_recorded() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings("/pins/");
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 12, false).await.unwrap();
    let w = pins::pin(&s, (1, 100), "dc1", "cli", "t").await.unwrap();
    assert!(matches!(w, PinWrite::Written(_)));
    assert_eq!(
        pins::pin(&s, (1, 100), "dc1", "cli", "t").await.unwrap(),
        PinWrite::Unchanged
    );
    // Overlapping another pin: refused, nothing written.
    let overlap = pins::pin(&s, (100, 200), "dc2", "cli", "t").await;
    assert!(matches!(overlap, Err(EtcdError::Refused(_))), "{overlap:?}");
    let unknown = pins::pin(&s, (300, 300), "dc9", "cli", "t").await;
    assert!(matches!(unknown, Err(EtcdError::Refused(_))), "{unknown:?}");
    let backwards = pins::pin(&s, (9, 8), "dc1", "cli", "t").await;
    assert!(
        matches!(backwards, Err(EtcdError::Refused(_))),
        "{backwards:?}"
    );
    // The same lo, a new range: replaced (compare-and-swap on its epoch), recorded.
    pins::pin(&s, (1, 150), "dc2", "cli", "grow").await.unwrap();
    pins::pin(&s, (151, 151), "dc3", "cli", "one")
        .await
        .unwrap();
    let rows = pins::list(&s).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.lo, r.hi, r.dc.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, 150, "dc2"), (151, 151, "dc3")]
    );
    assert_eq!(pins::history_count(&s, 1).await.unwrap(), 2);
    assert!(pins::unpin(&s, 1, "cli", "gone").await.unwrap());
    assert!(!pins::unpin(&s, 1, "cli", "gone").await.unwrap());
    assert_eq!(pins::history_count(&s, 1).await.unwrap(), 3);
    assert_eq!(pins::list(&s).await.unwrap().len(), 1);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A two-DC config (dc1: ids 1, 3, 5...; dc2: 2, 4, ...) for a router in front of `sim`.
fn two_dc_config(ports: (u16, u16, u16, u16), sim: std::net::SocketAddr, extra: &str) -> String {
    let (client, peer, admin, peer2) = ports;
    format!(
        "dc = \"dc1\"\nshard_count = 2\n\n[listen]\nclient = \"127.0.0.1:{client}\"\npeer = \"127.0.0.1:{peer}\"\nadmin = \"127.0.0.1:{admin}\"\n\n\
         [[backends]]\nurl = \"http://{sim}\"\n\n\
         [dcs.dc1]\npeer_url = \"http://127.0.0.1:{peer}\"\nid_start = 1\nid_increment = 2\n\n\
         [dcs.dc2]\npeer_url = \"http://127.0.0.1:{peer2}\"\nid_start = 2\nid_increment = 2\n\n{extra}"
    )
}

/// dc1's Coopr set to start 1, increment 2, with its stored counter at 2 (dc2's partition).
async fn miscounted_sim() -> (std::net::SocketAddr, ShutdownTrigger) {
    let sim = Sim::new(SimConfig {
        id_start: 1,
        id_increment: 2,
        id_counter_start: Some(2),
        op_delay: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, wait) = ShutdownTrigger::new();
    tokio::spawn(sim.serve(l, Shutdown::wait(wait)));
    (addr, stop)
}

/// With the static map, a misplaced id's pin lives in the router's snapshot: a reload of the
/// config keeps it (and adds the config's own pins).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_pins_of_misplaced_creates() {
    let (sim, _stop) = miscounted_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.toml");
    let ports = (free_port(), free_port(), free_port(), free_port());
    let admin = "[admin]\ntoken = \"pins-token-0123456789\"\nwatch_config_ms = 0\n\n";
    std::fs::write(&path, two_dc_config(ports, sim, admin)).unwrap();
    let listeners = coopr_router::app::Listeners {
        client: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    };
    let cfg = coopr_router::config::load(&path).unwrap();
    let r = coopr_router::app::start_with_file(cfg, Some(path.clone()), listeners).unwrap();
    let created = post(
        &format!("http://{}/v2/clusters", r.client_addr),
        "{\"name\":\"x\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(created.json()["id"], "00000002", "{}", created.text());
    let pins = || async {
        let v = get(&format!("http://{}/admin/routes", r.admin_addr))
            .await
            .json();
        v["pins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["lo"].as_u64().unwrap(),
                    p["dc"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    eventually(WAIT, "pinned in the snapshot", || async {
        (pins().await == vec![(2, "dc1".to_string())]).then_some(())
    })
    .await;
    std::fs::write(
        &path,
        two_dc_config(
            ports,
            sim,
            &format!("{admin}[[ownership.pins]]\nlo = 10\nhi = 20\ndc = \"dc2\"\n"),
        ),
    )
    .unwrap();
    let reload = call(
        http::Method::POST,
        &format!("http://{}/admin/reload", r.admin_addr),
        &[("Authorization", "Bearer pins-token-0123456789")],
        "",
    )
    .await;
    assert_eq!(reload.status, StatusCode::OK, "{}", reload.text());
    assert_eq!(
        pins().await,
        vec![(2, "dc1".to_string()), (10, "dc2".to_string())]
    );
    r.shutdown();
}

/// The binary as an operator runs it: a misplaced create is logged at ERROR with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misplaced_create_is_logged_at_error_with_the_counter_to_set() {
    let (sim_addr, stop) = miscounted_sim().await;
    let ports = (free_port(), free_port(), free_port(), free_port());
    let (client, _, admin, _) = ports;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.toml");
    std::fs::write(
        &path,
        two_dc_config(
            ports,
            sim_addr,
            "[admin]\nwatch_config_ms = 0\n\n[log]\nformat = \"json\"\n",
        ),
    )
    .unwrap();
    // Killed if the test fails before it is stopped below.
    let mut child = support::child::KillOnDrop::new(
        std::process::Command::new(env!("CARGO_BIN_EXE_coopr-router"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let admin_url = |p: &str| format!("http://127.0.0.1:{admin}{p}");
    eventually(WAIT, "router ready", || async {
        let up = tokio::net::TcpStream::connect(("127.0.0.1", admin))
            .await
            .is_ok();
        (up && get(&admin_url("/ready")).await.status == StatusCode::OK).then_some(())
    })
    .await;
    let r = post(
        &format!("http://127.0.0.1:{client}/v2/clusters"),
        "{\"name\":\"x\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.json()["id"], "00000002", "{}", r.text());
    eventually(WAIT, "ready fails", || async {
        (get(&admin_url("/ready")).await.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let out = child.take().wait_with_output().unwrap();
    stop.trigger();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("outside this DC's home shards") && l.contains("\"ERROR\""))
        .unwrap_or_else(|| panic!("no ERROR line for the misplaced id in:\n{text}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["fields"]["cluster"], "00000002", "{line}");
    assert_eq!(v["fields"]["home"], "dc2", "{line}");
    let fix = v["fields"]["fix"].as_str().unwrap();
    assert!(
        fix.contains("server.ids.start.num = 1")
            && fix.contains("server.ids.increment.by = 2")
            && fix.contains("/ids/clusters, an 8-byte big-endian long) to 3,"),
        "{fix}"
    );
}
