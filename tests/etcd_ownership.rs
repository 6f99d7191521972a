//! Ownership from a real etcd: the CLI's changes reach every router and writes follow; a router
//! cut off catches up after reconnecting; a compaction past it forces a clean re-list; etcd
//! killed and restarted; a router started with etcd down runs on its saved map, fenced; the
//! fence engages without progress and releases; several reads come back from one transaction at
//! one revision.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::ops;
use http::StatusCode;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use support::etcd::EtcdServer;
use support::relay::{Mode, Relay};
use support::*;

const PREFIX: &str = "/test/";
const WAIT: Duration = Duration::from_secs(15);

struct World {
    etcd: EtcdServer,
    d: Deployment,
    relays: Vec<Relay>,
    dir: tempfile::TempDir,
}

fn ownership_toml(endpoint: &str, fence_after_ms: u64, state: &std::path::Path) -> String {
    format!(
        "[ownership]\nsource = \"etcd\"\nendpoints = [\"{endpoint}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = {fence_after_ms}\nstate_file = \"{}\"\n",
        state.display()
    )
}

async fn world(fence_after_ms: u64) -> World {
    let etcd = EtcdServer::start().await;
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&etcd.settings(PREFIX), &dcs, 12, false)
        .await
        .expect("init");
    let target: SocketAddr = ([127, 0, 0, 1], etcd.client_port).into();
    let mut relays = Vec::new();
    for _ in 0..3 {
        relays.push(Relay::start(target).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(Duration::from_millis(100), |i| {
        ownership_toml(
            &relays[i].url(),
            fence_after_ms,
            &dir.path().join(format!("dc{}.json", i + 1)),
        )
    })
    .await;
    for dc in &d.dcs {
        wait_fresh(dc).await;
    }
    World {
        etcd,
        d,
        relays,
        dir,
    }
}

fn owner(v: &Value, shard: usize) -> String {
    v["shards"][shard]["owner"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn wait_fresh(dc: &Dc) {
    eventually(WAIT, "router fresh", || async {
        let r = routes(dc).await;
        (r["stale"] == false && r["fenced"] == false).then_some(())
    })
    .await;
}

async fn wait_owner(dc: &Dc, shard: usize, want: &str) {
    eventually(
        WAIT,
        &format!("{} sees shard {shard} owned by {want}", dc.name),
        || async { (owner(&routes(dc).await, shard) == want).then_some(()) },
    )
    .await;
}

/// A node write for cluster `cid` (the simulator accepts nodes of unknown clusters, and logs it).
/// A node write without router-visible tracing (no request id, default headers).
async fn node_write_plain(dc: &Dc, node: &str, cid: u64) -> Reply {
    post(
        &dc.url("/v2/nodes"),
        &format!("{{\"id\":\"{node}\",\"clusterId\":\"{cid:08}\"}}"),
    )
    .await
}

/// The simulator's log entry of a write sent with `x-request-id: node`.
fn logged(dc: &Dc, node: &str) -> Option<coopr_router::sim::LogEntry> {
    dc.log()
        .into_iter()
        .find(|e| e.path == "/v2/nodes" && e.request_id.as_deref() == Some(node))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_change_reaches_every_router_and_writes_follow_the_new_owner() {
    let w = world(3000).await;
    let (dc1, dc2, dc3) = (&w.d.dcs[0], &w.d.dcs[1], &w.d.dcs[2]);
    let map = ops::show(&w.etcd.settings(PREFIX)).await.unwrap();
    let e0 = map[1].epoch;
    assert_eq!(map[1].owner, "dc1");
    let r = support::node_write(dc3, "w-before", 1).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    assert_eq!(r.header("x-coopr-router-epoch"), e0.to_string());
    assert_eq!(logged(dc1, "w-before").unwrap().epoch, Some(e0.to_string()));
    // The operator moves shard 1 to dc2 with the CLI.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .args([
            "ownership",
            "--etcd",
            &w.etcd.url(),
            "--prefix",
            PREFIX,
            "set",
            "--shard",
            "1",
            "--owner",
            "dc2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let e1 = ops::show(&w.etcd.settings(PREFIX)).await.unwrap()[1].epoch;
    assert!(e1 > e0);
    for dc in &w.d.dcs {
        wait_owner(dc, 1, "dc2").await;
    }
    for (via, node) in [(dc3, "w-after-3"), (dc1, "w-after-1"), (dc2, "w-after-2")] {
        let r = support::node_write(via, node, 1).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        assert_eq!(r.header("x-coopr-router-dc"), "dc2", "via {}", via.name);
        let entry = logged(dc2, node).unwrap_or_else(|| panic!("{node} not at dc2"));
        assert_eq!(
            entry.epoch,
            Some(e1.to_string()),
            "applied at the new epoch"
        );
        assert!(logged(dc1, node).is_none() && logged(dc3, node).is_none());
    }
    // The history record was written in the same transaction.
    let show = std::process::Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .args([
            "ownership",
            "--etcd",
            &w.etcd.url(),
            "--prefix",
            PREFIX,
            "show",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().take(2).collect::<Vec<_>>() == ["1", "dc2"]),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_cut_off_from_etcd_catches_up_and_a_compaction_forces_a_relist() {
    let w = world(1000).await;
    let dc2 = &w.d.dcs[1];
    let s = w.etcd.settings(PREFIX);
    let before = routes(dc2).await;
    let relists = before["relists"].as_u64().unwrap();
    w.relays[1].set(Mode::Cut);
    eventually(WAIT, "dc2 notices", || async {
        (routes(dc2).await["stale"] == true).then_some(())
    })
    .await;
    // Owned writes are refused once the lease can no longer be proven (TTL - margin after the
    // last acknowledged keepalive); reads are still served.
    let r = eventually(WAIT, "dc2 fenced", || async {
        let r = node_write_plain(dc2, "while-cut", 2).await;
        (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(r)
    })
    .await;
    assert_eq!(r.header("retry-after"), "1");
    for (shard, to) in [(4, "dc3"), (5, "dc1"), (4, "dc2")] {
        ops::set_owner(&s, shard, to, "test", "while cut")
            .await
            .unwrap();
        // Shard 4 left dc2 only once dc2's lease was gone at etcd; its fence closed before.
        assert_eq!(routes(dc2).await["fenced"], true);
    }
    wait_owner(&w.d.dcs[0], 5, "dc1").await;
    assert_eq!(
        owner(&routes(dc2).await, 5),
        "dc2",
        "dc2 cannot have seen it yet"
    );
    ops::compact(&s).await.unwrap();
    w.relays[1].set(Mode::Open);
    wait_owner(dc2, 5, "dc1").await;
    wait_owner(dc2, 4, "dc2").await;
    wait_fresh(dc2).await;
    let after = routes(dc2).await;
    assert!(
        after["relists"].as_u64().unwrap() > relists,
        "compaction forced a re-list: {after}"
    );
    let r = node_write_plain(dc2, "after-heal", 2).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_while_cut_is_picked_up_by_resuming_the_watch() {
    let w = world(1000).await;
    let dc3 = &w.d.dcs[2];
    let relists = routes(dc3).await["relists"].as_u64().unwrap();
    w.relays[2].set(Mode::Cut);
    eventually(WAIT, "dc3 notices", || async {
        (routes(dc3).await["stale"] == true).then_some(())
    })
    .await;
    ops::set_owner(&w.etcd.settings(PREFIX), 7, "dc3", "test", "while cut")
        .await
        .unwrap();
    w.relays[2].set(Mode::Open);
    wait_owner(dc3, 7, "dc3").await;
    wait_fresh(dc3).await;
    assert_eq!(
        routes(dc3).await["relists"].as_u64().unwrap(),
        relists,
        "resumed at revision + 1, no re-list needed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_killed_and_restarted() {
    let mut w = world(1000).await;
    let dc1 = &w.d.dcs[0];
    w.etcd.kill();
    eventually(WAIT, "stale after etcd died", || async {
        (routes(dc1).await["stale"] == true).then_some(())
    })
    .await;
    // The lease can no longer be renewed: fenced (and so not ready) once its proof runs out.
    let ready = eventually(WAIT, "not ready", || async {
        let r = call(http::Method::GET, &dc1.admin_url("/ready"), &[], "").await;
        (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(r)
    })
    .await;
    assert!(ready.text().contains("map_fresh"), "{}", ready.text());
    let r = node_write_plain(dc1, "etcd-down", 1).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"].as_str().unwrap().contains("cannot prove"));
    let read = get(&dc1.url("/v2/clustertemplates")).await;
    assert_eq!(
        read.status,
        StatusCode::OK,
        "reads and local requests are still served"
    );
    w.etcd.restart().await;
    for dc in &w.d.dcs {
        wait_fresh(dc).await;
    }
    let ready = call(http::Method::GET, &dc1.admin_url("/ready"), &[], "").await;
    assert_eq!(
        ready.status,
        StatusCode::OK,
        "ready again: {}",
        ready.text()
    );
    ops::set_owner(&w.etcd.settings(PREFIX), 10, "dc3", "test", "after restart")
        .await
        .unwrap();
    for dc in &w.d.dcs {
        wait_owner(dc, 10, "dc3").await;
    }
    let r = node_write_plain(dc1, "etcd-back", 1).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_started_while_etcd_is_down_serves_reads_from_its_saved_map() {
    let mut w = world(1000).await;
    let dc3 = &w.d.dcs[2];
    let id = create_active(dc3, "saved").await;
    assert_eq!(id, "00000003");
    ops::set_owner(
        &w.etcd.settings(PREFIX),
        1,
        "dc3",
        "test",
        "make the saved map differ",
    )
    .await
    .unwrap();
    wait_owner(dc3, 1, "dc3").await;
    // The state file is written by its own task: wait until it holds the change.
    let saved = w.dir.path().join("dc3.json");
    eventually(WAIT, "state file saved", || async {
        let map = coopr_router::ownership::state_file::load(&saved)
            .ok()
            .flatten()?;
        (map.shards.get(&1)?.0.owner == "dc3").then_some(())
    })
    .await;
    w.etcd.kill();
    // A second dc3 router, started now, on new ports, with the same state file.
    let l = coopr_router::app::Listeners {
        client: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    };
    let cfg = coopr_router::config::parse(&dc3.config_text).unwrap();
    let router = coopr_router::app::start(cfg, l).unwrap();
    let admin = format!("http://{}", router.admin_addr);
    let client = format!("http://{}", router.client_addr);
    let v = call(http::Method::GET, &format!("{admin}/admin/routes"), &[], "")
        .await
        .json();
    assert_eq!(v["stale"], true);
    assert_eq!(owner(&v, 1), "dc3", "the saved map, not the config's: {v}");
    let r = get(&format!("{client}/v2/clusters/{id}")).await;
    assert_eq!(r.status, StatusCode::OK, "reads are served: {}", r.text());
    let body = format!("{{\"id\":\"n\",\"clusterId\":\"{id}\"}}");
    let r = post(&format!("{client}/v2/nodes"), &body).await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "owned writes are refused: {}",
        r.text()
    );
    w.etcd.restart().await;
    eventually(WAIT, "new router fresh", || async {
        let r = post(&format!("{client}/v2/nodes"), &body).await;
        (r.status == StatusCode::CREATED).then_some(())
    })
    .await;
    router.shutdown();
    router.wait().await;
    drop(w.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fence_engages_without_progress_and_releases() {
    let w = world(600).await;
    let dc1 = &w.d.dcs[0];
    let r = node_write_plain(dc1, "fresh", 1).await;
    assert_eq!(r.status, StatusCode::CREATED);
    w.relays[0].set(Mode::Blackhole);
    eventually(WAIT, "fence engaged", || async {
        let r = node_write_plain(dc1, "fenced", 1).await;
        (r.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    assert_eq!(routes(dc1).await["fenced"], true);
    let ready = call(http::Method::GET, &dc1.admin_url("/ready"), &[], "").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        ready.text().contains("not_fenced") || ready.text().contains("map_fresh"),
        "{}",
        ready.text()
    );
    let r = get(&dc1.url("/v2/clustertemplates")).await;
    assert_eq!(r.status, StatusCode::OK);
    // Writes for shards owned elsewhere still go to their owners.
    let r = node_write_plain(dc1, "elsewhere", 2).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc2");
    w.relays[0].set(Mode::Open);
    eventually(WAIT, "fence released", || async {
        let r = node_write_plain(dc1, "released", 1).await;
        (r.status == StatusCode::CREATED).then_some(())
    })
    .await;
    let ready = call(http::Method::GET, &dc1.admin_url("/ready"), &[], "").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_whose_map_is_behind_waits_then_refuses_and_nothing_is_applied() {
    let w = world(1000).await;
    let (dc2, dc3) = (&w.d.dcs[1], &w.d.dcs[2]);
    let s = w.etcd.settings(PREFIX);
    // dc2 is cut off, so it cannot learn that it now owns shard 1.
    w.relays[1].set(Mode::Cut);
    eventually(WAIT, "dc2 notices", || async {
        (routes(dc2).await["stale"] == true).then_some(())
    })
    .await;
    let (_, epoch) = ops::set_owner(&s, 1, "dc2", "test", "move while cut")
        .await
        .unwrap();
    wait_owner(dc3, 1, "dc2").await;
    // dc3 forwards with the new epoch; dc2 waits (epoch_wait_ms) for its map, which cannot come,
    // answers 421, dc3 routes once more on its (same) map and gives up.
    let r = support::node_write(dc3, "behind", 1).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-error"), "owner_moved");
    assert!(
        w.d.dcs.iter().all(|dc| logged(dc, "behind").is_none()),
        "no DC applied it"
    );
    // Healed: dc2 catches up and applies the write at the new epoch.
    w.relays[1].set(Mode::Open);
    wait_owner(dc2, 1, "dc2").await;
    let r = support::node_write(dc3, "caught-up", 1).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(
        logged(dc2, "caught-up").unwrap().epoch,
        Some(epoch.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_to_overwrite_a_map_without_force() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2"].map(String::from).to_vec();
    ops::init(&s, &dcs, 4, false).await.unwrap();
    ops::set_owner(&s, 0, "dc1", "test", "x").await.unwrap();
    let e = ops::init(&s, &dcs, 4, false).await.unwrap_err();
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(ops::show(&s).await.unwrap()[0].owner, "dc1", "untouched");
    ops::init(&s, &dcs, 4, true).await.unwrap();
    let map = ops::show(&s).await.unwrap();
    assert_eq!(
        map.iter().map(|r| r.owner.as_str()).collect::<Vec<_>>(),
        ["dc2", "dc1", "dc2", "dc1"]
    );
    let e = ops::set_owner(&s, 1, "dc9", "test", "x").await.unwrap_err();
    assert!(e.to_string().contains("unknown DC"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_reads_come_back_in_one_answer_at_one_revision() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let mut c = s.connect().await.unwrap();
    for (k, v) in [("a", "1"), ("b/x", "2"), ("b/y", "3"), ("c", "4")] {
        c.put(format!("{PREFIX}{k}"), v, None).await.unwrap();
    }
    let now = s.revision(&mut c).await.unwrap();
    let key = |k: &str| format!("{PREFIX}{k}").into_bytes();
    let prefixed = || Some(etcd_client::GetOptions::new().with_prefix());
    let [a, b, missing, c4] = s
        .read_together(
            &mut c,
            [
                (key("a"), None),
                (key("b/"), prefixed()),
                (key("nothing"), None),
                (key("c"), None),
            ],
        )
        .await
        .unwrap();
    let values = |r: &etcd_client::GetResponse| -> Vec<String> {
        r.kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            .collect()
    };
    assert_eq!(values(&a), ["1"]);
    assert_eq!(values(&b), ["2", "3"]);
    assert!(values(&missing).is_empty());
    assert_eq!(values(&c4), ["4"]);
    // One snapshot: every answer carries the revision the transaction read at.
    for r in [&a, &b, &missing, &c4] {
        assert_eq!(r.header().map(|h| h.revision()), Some(now));
    }
}
