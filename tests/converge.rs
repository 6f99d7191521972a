//! Replicas converge by themselves: three DCs in-process (real simulators, static map unless
//! said otherwise). The owner's anti-entropy sweep (`replication.sweep_ms`) replicates what
//! changed on its Coopr without the router (Coopr's lease janitor, a lease extended straight on
//! Coopr), with no credential in what it sends, and repeats nothing once replicas agree; a
//! replica whose store was wiped asks its owners and gets everything back; an owner whose store
//! was wiped while a replica was down brings that replica to the latest state once both are
//! back; and (real etcd) a write accepted through a standby server is replicated like any other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::{handoff, ops};
use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
use coopr_router::sim::{API_PASSWORD, SSH_PASSWORD, Sim, SimConfig};
use http::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::etcd::EtcdServer;
use support::*;

const OP: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "converge-test-admin-token";
const SWEEP_MS: u64 = 300;

/// Replication on with the admin token, the owner's sweep every `sweep_ms` (0: off).
fn extra(dir: &Path, sweep_ms: u64) -> impl Fn(usize) -> String + use<> {
    repl::extra(dir, Some(TOKEN), &format!("sweep_ms = {sweep_ms}\n"))
}

/// Waits until `dc` answers a read of `id` from its replica store and `want` holds of it.
async fn replica_until(dc: &Dc, id: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let url = dc.url(&format!("/v2/clusters/{id}"));
    eventually(WAIT, what, || async {
        let r = get(&url).await;
        (r.status == StatusCode::OK
            && r.header("x-coopr-router-route") == "replica"
            && want(&r.json()))
        .then(|| r.json())
    })
    .await
}

/// How many replication records for cluster `id` the bytes hold.
fn records_for(bytes: &[u8], id: &str) -> usize {
    let needle = format!("\"cluster\":\"{id}\"");
    bytes
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_replicates_what_changed_on_coopr_without_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_relayed(OP, extra(dir.path(), SWEEP_MS), repl::tap_dc1_to_dc2).await;
    repl::asks_settled(&d, TOKEN).await;
    let expired = create_active(&d.dcs[0], "lease").await;
    let extended = create_active(&d.dcs[0], "longer").await;
    for id in [&expired, &extended] {
        for dc in &d.dcs[1..] {
            replica_until(dc, id, "replicated active", |v| v["status"] == "active").await;
        }
    }
    // Coopr's lease janitor expires one (straight on dc1's Coopr: the router sees nothing).
    let r = call(
        Method::POST,
        &d.dcs[0].sim_url(&format!("/sim/expire/{expired}")),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Someone extends the other's lease on dc1's Coopr directly.
    let r = call(
        Method::POST,
        &d.dcs[0].sim_url(&format!("/v2/clusters/{extended}")),
        &ADMIN,
        "{\"expireTime\": 4102444800000}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for dc in &d.dcs[1..] {
        replica_until(
            dc,
            &expired,
            "the janitor's delete reached the replica",
            |v| v["status"] == "terminated",
        )
        .await;
        replica_until(dc, &extended, "the new lease reached the replica", |v| {
            v["expireTime"] == 4102444800000u64
        })
        .await;
    }
    // Lists agree too.
    let list = get(&d.dcs[2].url("/v2/clusters?status=terminated"))
        .await
        .json();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == expired.as_str()),
        "{list}"
    );
    // Secrets stay home: nothing the sweep sent carries Coopr's planted credentials.
    let sent = d.relay(0, 1).tapped();
    assert!(records_for(&sent, &expired) >= 3, "intent, finish, swept");
    for secret in [API_PASSWORD, SSH_PASSWORD] {
        assert!(!contains(&sent, secret), "{secret} left dc1");
    }
    // Once the replicas agree, later sweeps send nothing more for these clusters.
    let before = (records_for(&sent, &expired), records_for(&sent, &extended));
    tokio::time::sleep(Duration::from_millis(SWEEP_MS * 5)).await;
    let after = d.relay(0, 1).tapped();
    assert_eq!(
        (
            records_for(&after, &expired),
            records_for(&after, &extended)
        ),
        before,
        "a sweep repeats nothing the replicas have"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_store_was_wiped_asks_and_converges() {
    let dir = tempfile::tempdir().unwrap();
    // The sweep's comparison is off: only the replica's request brings the state back.
    let mut d = start_with(OP, extra(dir.path(), 0)).await;
    repl::asks_settled(&d, TOKEN).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(create_active(&d.dcs[0], &format!("w{i}")).await);
    }
    let deleted = ids[2].clone();
    let r = call(
        Method::DELETE,
        &d.dcs[0].url(&format!("/v2/clusters/{deleted}")),
        &ADMIN,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    replica_until(&d.dcs[1], &deleted, "dc2 sees the delete", |v| {
        v["status"] == "terminated"
    })
    .await;
    d.dcs[1].stop_router().await;
    std::fs::remove_file(dir.path().join("dc2.redb")).unwrap();
    d.dcs[1].restart_router().await;
    for id in &ids[..2] {
        replica_until(&d.dcs[1], id, "dc2 got it back", |v| {
            v["status"] == "active"
        })
        .await;
    }
    replica_until(&d.dcs[1], &deleted, "dc2 got the delete back", |v| {
        v["status"] == "terminated"
    })
    .await;
    repl::asks_settled(&d, TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_store_wiped_while_a_replica_was_down_converges_once_both_are_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start_with(OP, extra(dir.path(), SWEEP_MS)).await;
    repl::asks_settled(&d, TOKEN).await;
    let kept = create_active(&d.dcs[0], "kept").await;
    let doomed = create_active(&d.dcs[0], "doomed").await;
    for id in [&kept, &doomed] {
        replica_until(&d.dcs[1], id, "dc2 has it", |v| v["status"] == "active").await;
    }
    // dc2 goes down; dc1 deletes one and makes another; then dc1's store is lost.
    d.dcs[1].stop_router().await;
    let r = call(
        Method::DELETE,
        &d.dcs[0].url(&format!("/v2/clusters/{doomed}")),
        &ADMIN,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let born = create_active(&d.dcs[0], "born").await;
    replica_until(&d.dcs[2], &doomed, "dc3 sees the delete", |v| {
        v["status"] == "terminated"
    })
    .await;
    d.dcs[0].stop_router().await;
    std::fs::remove_file(dir.path().join("dc1.redb")).unwrap();
    d.dcs[0].restart_router().await;
    d.dcs[1].restart_router().await;
    replica_until(&d.dcs[1], &doomed, "dc2 sees the delete it missed", |v| {
        v["status"] == "terminated"
    })
    .await;
    replica_until(&d.dcs[1], &born, "dc2 sees the cluster it missed", |v| {
        v["status"] == "active"
    })
    .await;
    replica_until(&d.dcs[1], &kept, "dc2 still has the other", |v| {
        v["status"] == "active"
    })
    .await;
    // And a change after the wipe still reaches every replica (the new store's records are
    // newer than the old store's).
    let r = call(
        Method::DELETE,
        &d.dcs[0].url(&format!("/v2/clusters/{kept}")),
        &ADMIN,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for dc in &d.dcs[1..] {
        replica_until(dc, &kept, "a later delete", |v| v["status"] == "terminated").await;
    }
}

/// A simulator standing in for dc2's Coopr database replica in dc1 (ids like dc2's: 2, 5, ...).
async fn standby_sim() -> (Sim, std::net::SocketAddr, ShutdownTrigger) {
    let sim = Sim::new(SimConfig {
        id_start: 2,
        id_increment: 3,
        op_delay: OP,
        name: "dc1-standby-for-dc2".into(),
        ..SimConfig::default()
    })
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, wait) = ShutdownTrigger::new();
    tokio::spawn(sim.clone().serve(l, Shutdown::wait(wait)));
    (sim, addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_a_standby_server_is_replicated() {
    const PREFIX: &str = "/converge-standby/";
    let etcd = EtcdServer::start().await;
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    let s = etcd.settings(PREFIX);
    ops::init(&s, &dcs, 12, false).await.expect("init");
    let (standby, standby_addr, _stop) = standby_sim().await;
    // The cluster lives in dc2's database, which dc1's standby server replicates.
    let r = call(
        Method::POST,
        &format!("http://{standby_addr}/v2/clusters"),
        &ADMIN,
        "{\"name\":\"adopted\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(id, "00000002", "shard 2, home dc2");
    let dir = tempfile::tempdir().unwrap();
    let url = etcd.url();
    let repl = extra(dir.path(), 0);
    let d = start_with(OP, |i| {
        let standby = if i == 0 {
            format!("[standby.dc2]\nurl = \"http://{standby_addr}\"\n\n")
        } else {
            String::new()
        };
        format!(
            "{standby}[ownership]\nsource = \"etcd\"\nendpoints = [\"{url}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = 1000\nstate_file = \"{}\"\n\n\
             [failover]\nmode = \"manual\"\nlease_ttl_ms = 2000\ngrace_ms = 500\n\n{}",
            dir.path().join(format!("dc{}.json", i + 1)).display(),
            repl(i)
        )
    })
    .await;
    for dc in &d.dcs {
        eventually(WAIT, "router fresh", || async {
            let r = routes(dc).await;
            (r["stale"] == false && r["fenced"] == false).then_some(())
        })
        .await;
    }
    // dc2 hands shard 2 to dc1 (planned): dc1 owns it, away from its home.
    let plans = handoff::plan(&s, Some(2), None, "dc1").await.unwrap();
    handoff::request(&s, &plans, "test").await.unwrap();
    let out = handoff::wait(&s, &plans, WAIT).await.unwrap();
    assert!(matches!(out[0], handoff::Outcome::Moved { .. }), "{out:?}");
    for dc in &d.dcs {
        eventually(WAIT, "every router sees dc1 own shard 2", || async {
            (routes(dc).await["shards"][2]["owner"] == "dc1").then_some(())
        })
        .await;
    }
    let status = format!("http://{standby_addr}/v2/clusters/{id}/status");
    eventually(WAIT, "the standby's cluster is active", || async {
        (get(&status).await.json()["status"] == "active").then_some(())
    })
    .await;
    // A write through dc3 goes to dc1, which sends it to its standby server for dc2.
    let r = call(
        Method::POST,
        &d.dcs[2].url(&format!("/v2/clusters/{id}")),
        &ADMIN,
        "{\"expireTime\": 4102444800000}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        standby
            .log()
            .iter()
            .any(|e| e.method == "POST" && e.path.ends_with(&format!("/clusters/{id}"))),
        "the standby server took the write"
    );
    // The operation was opened and followed on the standby server: its finished state reaches
    // the other DCs' replica stores.
    for dc in [&d.dcs[1], &d.dcs[2]] {
        replica_until(dc, &id, "the new lease reached the replica", |v| {
            v["expireTime"] == 4102444800000u64
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_down_longer_than_its_outbox_held_gets_the_full_state() {
    let dir = tempfile::tempdir().unwrap();
    // Room for two records per peer; the comparison runs every ten minutes: only the owed full
    // state, paid as soon as dc2's queue has room, helps.
    let base = extra(dir.path(), 600_000);
    let mut d = start_with(OP, move |i| format!("{}outbox_max_records = 2\n", base(i))).await;
    repl::asks_settled(&d, TOKEN).await;
    d.dcs[1].stop_router().await;
    // Three creates: six records for dc2, four of them dropped.
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(create_active(&d.dcs[0], &format!("o{i}")).await);
    }
    for id in &ids {
        replica_until(&d.dcs[2], id, "dc3 has it", |v| v["status"] == "active").await;
    }
    let auth = format!("Bearer {TOKEN}");
    let status = call(
        Method::GET,
        &d.dcs[0].admin_url("/admin/status.json"),
        &[("authorization", auth.as_str())],
        "",
    )
    .await
    .json();
    let dc2 = status["replication"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == "dc2")
        .cloned()
        .unwrap();
    assert_eq!(dc2["owed"], true, "a drop makes dc2 owed: {dc2}");
    d.dcs[1].restart_router().await;
    for id in &ids {
        replica_until(&d.dcs[1], id, "dc2 got the full state", |v| {
            v["status"] == "active"
        })
        .await;
    }
    repl::asks_settled(&d, TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debt_found_in_the_store_at_start_is_paid_without_waiting_for_a_sweep() {
    let dir = tempfile::tempdir().unwrap();
    // The comparison runs every ten minutes: only paying at start meets the deadline.
    let mut d = start_with(OP, extra(dir.path(), 600_000)).await;
    repl::asks_settled(&d, TOKEN).await;
    let id = create_active(&d.dcs[0], "owed").await;
    replica_until(&d.dcs[1], &id, "dc2 has it", |v| v["status"] == "active").await;
    // dc2 asked dc1 for its full state just before dc1 stopped: the debt is in dc1's store.
    d.dcs[0].stop_router().await;
    let store = coopr_router::replication::Store::open(&dir.path().join("dc1.redb")).unwrap();
    store.want_resync("dc2").unwrap();
    assert_eq!(store.owed().unwrap(), vec!["dc2".to_string()]);
    drop(store);
    d.dcs[0].restart_router().await;
    repl::asks_settled(&d, TOKEN).await;
    replica_until(&d.dcs[1], &id, "dc2 still has it", |v| {
        v["status"] == "active"
    })
    .await;
}
