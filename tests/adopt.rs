//! Drop-in for installations that already exist, against a real etcd: simulators started with
//! clusters made under other id settings (`--data`); `adopt --dry-run` prints the plan and
//! changes nothing; `adopt` pins every cluster where it lives (a second run changes nothing); every
//! pre-existing cluster is read and written through every DC's router at the DC that holds it;
//! an id found in two DCs is reported and not pinned; a create whose id lands in another DC's
//! shard is pinned here, counted, and makes `/ready` fail until cleared; after a failover of the
//! pinned DC its pinned clusters follow its shards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::adopt::{self, Options, Outcome};
use coopr_router::config;
use coopr_router::etcd::{handoff, ops, pins};
use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
use coopr_router::sim::{Sim, SimConfig};
use http::{Method, StatusCode};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::etcd::EtcdServer;
use support::*;

const PREFIX: &str = "/adopt/";
const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "adopt-token-0123456789";

/// Runs a simulator on `data` with the given counter and increment, creates `names` through it,
/// waits until they are on disk, and stops it: an installation that ran before the router.
async fn seed(data: &Path, counter: u64, increment: u64, names: &[&str]) -> Vec<u64> {
    let sim = Sim::new(SimConfig {
        id_start: 1,
        id_increment: increment,
        id_counter_start: Some(counter),
        op_delay: Duration::from_millis(10),
        data: Some(data.to_path_buf()),
        name: "seed".into(),
        ..SimConfig::default()
    })
    .unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, wait) = ShutdownTrigger::new();
    let task = tokio::spawn(sim.serve(l, Shutdown::wait(wait)));
    let mut ids = Vec::new();
    for name in names {
        let r = post(
            &format!("http://{addr}/v2/clusters"),
            &format!("{{\"name\":\"{name}\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}"),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.json()["id"].as_str().unwrap().parse::<u64>().unwrap());
    }
    eventually(WAIT, "seeded clusters on disk", || async {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(data).ok()?).ok()?;
        (v["clusters"].as_object()?.len() == names.len()).then_some(())
    })
    .await;
    stop.trigger();
    task.await.unwrap().unwrap();
    ids
}

fn opts(d: &Deployment, dry_run: bool) -> Options {
    Options {
        coopr: d
            .dcs
            .iter()
            .map(|dc| (dc.name.clone(), format!("http://{}", dc.sim_addr)))
            .collect(),
        user: "admin".into(),
        tenants: vec![],
        dry_run,
    }
}

async fn pins_seen(dc: &Dc, n: usize) {
    eventually(WAIT, "the router sees the pins", || async {
        (routes(dc).await["pins"].as_array()?.len() == n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_clusters_are_adopted_misplaced_creates_pinned_and_pins_follow_failover() {
    let dir = tempfile::tempdir().unwrap();
    // dc1 ran alone with Coopr's defaults (ids 1..=5); dc2 alone with its counter at 3 and
    // increment 7 (ids 3, 10, 17): id 3 is in both. dc3 is new.
    let dc1_ids = seed(
        &dir.path().join("dc1.json"),
        1,
        1,
        &["a1", "a2", "a3", "a4", "a5"],
    )
    .await;
    let dc2_ids = seed(&dir.path().join("dc2.json"), 3, 7, &["b3", "b10", "b17"]).await;
    assert_eq!(
        (dc1_ids, dc2_ids.clone()),
        (vec![1, 2, 3, 4, 5], vec![3, 10, 17])
    );

    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let names: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &names, 12, false).await.unwrap();
    let url = etcd.url();
    let d = start_with_data(Duration::from_millis(10), Some(dir.path()), |i| {
        format!(
            "[ownership]\nsource = \"etcd\"\nendpoints = [\"{url}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = 1000\nstate_file = \"{}\"\n\n\
             [failover]\nmode = \"manual\"\n\n[admin]\ntoken = \"{TOKEN}\"\n\n[health]\ninterval_ms = 100\ntimeout_ms = 300\nrise = 1\nfall = 2\n",
            dir.path().join(format!("router-dc{}.json", i + 1)).display()
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
    // Before adoption, cluster 2 (shard 2, dc2's) is routed to dc2, which has never seen it.
    let before = get(&d.dcs[2].url("/v2/clusters/00000002")).await;
    assert_eq!(before.status, StatusCode::NOT_FOUND, "{}", before.text());

    let cfg = Arc::new(config::parse(&d.dcs[0].config_text).unwrap());
    // --dry-run: the plan, nothing written.
    let dry = adopt::run(cfg.clone(), &opts(&d, true)).await.unwrap();
    let want = vec![
        (1, 2, "dc1".to_string()),
        (4, 5, "dc1".to_string()),
        (10, 17, "dc2".to_string()),
    ];
    assert_eq!(dry.plan.pins, want);
    assert!(dry.outcomes.iter().all(|o| *o == Ok(Outcome::Planned)));
    let text = adopt::render(&dry);
    assert!(text.contains("ids 1..=2 -> dc1: planned"), "{text}");
    assert!(text.contains("id 00000003:"), "{text}");
    assert!(
        text.contains("name \"a3\"") && text.contains("name \"b3\""),
        "{text}"
    );
    // Above 17 in each partition (start k, increment 3): 19, 20, 18.
    assert!(
        text.contains("dc1: server.ids.start.num = 1, server.ids.increment.by = 3, counter = 19"),
        "{text}"
    );
    assert!(
        text.contains("dc2: server.ids.start.num = 2, server.ids.increment.by = 3, counter = 20")
    );
    assert!(
        text.contains("dc3: server.ids.start.num = 3, server.ids.increment.by = 3, counter = 18")
    );
    assert!(
        !dry.clean(),
        "a duplicate id leaves the adoption unfinished"
    );
    assert!(
        pins::list(&s).await.unwrap().is_empty(),
        "a dry run writes nothing"
    );

    // adopt: written; the duplicate is not pinned.
    let first = adopt::run(cfg.clone(), &opts(&d, false)).await.unwrap();
    assert!(
        first
            .outcomes
            .iter()
            .all(|o| matches!(o, Ok(Outcome::Written(_)))),
        "{:?}",
        first.outcomes
    );
    let stored: Vec<(u64, u64, String)> = pins::list(&s)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.lo, r.hi, r.dc))
        .collect();
    assert_eq!(stored, want);
    assert_eq!(pins::history_count(&s, 1).await.unwrap(), 1);
    // A second run changes nothing.
    let revision = |s: coopr_router::etcd::Settings| async move {
        let mut c = s.connect().await.unwrap();
        c.get("/", None).await.unwrap().header().unwrap().revision()
    };
    let rev = revision(s.clone()).await;
    let second = adopt::run(cfg.clone(), &opts(&d, false)).await.unwrap();
    assert!(second.plan.pins.is_empty(), "{:?}", second.plan.pins);
    assert_eq!(second.plan.kept, 6);
    assert!(adopt::render(&second).contains("new pins (0)"));
    assert_eq!(revision(s.clone()).await, rev, "etcd unchanged");
    assert_eq!(pins::history_count(&s, 1).await.unwrap(), 1);
    for dc in &d.dcs {
        pins_seen(dc, 3).await;
    }

    // Every pre-existing cluster, read and written through every DC's router, at its holder.
    let held = [
        (1, 0, "a1"),
        (2, 0, "a2"),
        (4, 0, "a4"),
        (5, 0, "a5"),
        (10, 1, "b10"),
        (17, 1, "b17"),
    ];
    for (id, holder, name) in held {
        for (via, dc) in d.dcs.iter().enumerate() {
            let r = get(&dc.url(&format!("/v2/clusters/{id:08}"))).await;
            assert_eq!(
                r.status,
                StatusCode::OK,
                "read {id} via dc{}: {}",
                via + 1,
                r.text()
            );
            assert_eq!(r.json()["name"], name, "read {id} via dc{}", via + 1);
            let rid = format!("w-{id}-{via}");
            let w = call(
                Method::POST,
                &dc.url(&format!("/v2/clusters/{id:08}/abort")),
                &[ADMIN[0], ADMIN[1], ("x-request-id", &rid)],
                "",
            )
            .await;
            assert_eq!(
                w.status,
                StatusCode::OK,
                "write {id} via dc{}: {}",
                via + 1,
                w.text()
            );
            let at: Vec<usize> = (0..3)
                .filter(|&k| {
                    d.dcs[k]
                        .log()
                        .iter()
                        .any(|e| e.request_id.as_deref() == Some(rid.as_str()))
                })
                .collect();
            assert_eq!(at, vec![holder], "write {id} via dc{}", via + 1);
        }
    }
    // /admin/explain says pinned.
    let explain = get(&d.dcs[2].admin_url("/admin/explain?method=GET&path=/v2/clusters/00000002"))
        .await
        .json();
    assert_eq!(explain["pinned"]["dc"], "dc1", "{explain}");
    assert_eq!(explain["pinned"]["lo"], 1);
    assert!(
        explain["why"].as_str().unwrap().starts_with("pinned"),
        "{explain}"
    );

    // A misplaced create: dc1's Coopr still hands out 6 (increment 1), whose shard (6) is dc3's.
    assert_eq!(
        get(&d.dcs[0].admin_url("/ready")).await.status,
        StatusCode::OK
    );
    let created = post(
        &d.dcs[0].url("/v2/clusters"),
        "{\"name\":\"late\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    assert_eq!(created.json()["id"], "00000006");
    let ready = get(&d.dcs[0].admin_url("/ready")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let failed = &ready.json()["failed"];
    let check = failed
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "ids_placed")
        .unwrap_or_else(|| panic!("{failed}"));
    assert_eq!(check["ids"][0], "00000006");
    // The fix names the counter for dc1's partition above 6: 7.
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("set its id counter to 7"),
        "{check}"
    );
    let metrics = get(&d.dcs[0].admin_url("/metrics")).await.text();
    assert!(
        metrics.contains("coopr_router_misplaced_ids_total 1"),
        "{metrics}"
    );
    // Pinned to dc1 in etcd at once; every router reads and writes it at dc1.
    for dc in &d.dcs {
        pins_seen(dc, 4).await;
        let r = get(&dc.url("/v2/clusters/00000006")).await;
        assert_eq!(r.status, StatusCode::OK, "via {}: {}", dc.name, r.text());
        assert_eq!(r.json()["name"], "late");
    }
    assert_eq!(
        pins::list(&s).await.unwrap()[2].by,
        "misplaced",
        "the pin says who wrote it"
    );
    // adopt again: the misplaced pin is kept, nothing added.
    let third = adopt::run(cfg.clone(), &opts(&d, false)).await.unwrap();
    assert!(third.plan.pins.is_empty(), "{:?}", third.plan.pins);
    assert!(third.plan.conflicts.is_empty());
    assert_eq!(third.plan.kept, 7);
    // Cleared by the operator: ready again.
    let cleared = call(
        Method::POST,
        &d.dcs[0].admin_url("/admin/misplaced/clear"),
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        "",
    )
    .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.text());
    assert_eq!(cleared.json()["cleared"], 1);
    assert_eq!(
        get(&d.dcs[0].admin_url("/ready")).await.status,
        StatusCode::OK
    );

    // dc1's shards move to dc2 (a planned handoff: dc1's routers hold their leases, so no
    // failover may take them): dc1's pinned clusters follow its shards. dc3's router forwards
    // them to dc2, whose standby server for dc1 takes the writes (in these tests each DC's
    // simulator doubles as its standby server for the other DCs).
    let plans = handoff::plan(&s, None, Some("dc1"), "dc2").await.unwrap();
    handoff::request(&s, &plans, "test").await.unwrap();
    let moved = handoff::wait(&s, &plans, WAIT).await.unwrap();
    assert!(
        moved
            .iter()
            .all(|o| matches!(o, handoff::Outcome::Moved { .. })),
        "{moved:?}"
    );
    for dc in &d.dcs {
        eventually(WAIT, "dc1's shards at dc2", || async {
            (routes(dc).await["shards"][1]["owner"] == "dc2").then_some(())
        })
        .await;
    }
    let explain =
        get(&d.dcs[1].admin_url("/admin/explain?method=POST&path=/v2/clusters/00000002/abort"))
            .await
            .json();
    assert_eq!(
        explain["destination"], "standby Coopr server for dc1",
        "{explain}"
    );
    // dc2's simulator (standing in for dc1's replicated database) does not hold cluster 2:
    // what matters is where the write went, which the router's headers say.
    for (via, route) in [(1, "standby"), (2, "forwarded")] {
        let w = post(&d.dcs[via].url("/v2/clusters/00000002/abort"), "").await;
        assert_eq!(
            (
                w.header("x-coopr-router-dc"),
                w.header("x-coopr-router-route")
            ),
            ("dc2", route),
            "via dc{}: {} {}",
            via + 1,
            w.status,
            w.text()
        );
    }
    // dc2's own pins are untouched: cluster 10 is still served by dc2's own server.
    assert_eq!(
        get(&d.dcs[2].url("/v2/clusters/00000010")).await.json()["name"],
        "b10"
    );
}
