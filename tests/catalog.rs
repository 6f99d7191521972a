//! One catalog everywhere (issue 24), three DCs in-process with replication on and the
//! catalog's home in dc1: a tenant and a template created through any DC are applied at dc1
//! first (its answer is the client's) and delivered, in order, to every other DC's Coopr by
//! name; a DC that is down or refuses gets them later (retried, counted, listed at
//! `/admin/catalog`); with the home DC down, catalog writes are refused naming it while reads
//! and cluster traffic go on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const FAST: Duration = Duration::from_millis(100);
const TOKEN: &str = "catalog-test-admin-token";
const ACME: [(&str, &str); 2] = [("Coopr-UserID", "admin"), ("Coopr-TenantID", "acme")];
const WAIT: Duration = Duration::from_secs(10);

/// Replication on (fast retries), the catalog's home in dc1.
fn extra(dir: &Path) -> impl Fn(usize) -> String {
    extra_with(dir, "dc1", "")
}

/// Replication on (fast retries), the catalog's home in `home`, then `more`.
fn extra_with(dir: &Path, home: &str, more: &str) -> impl Fn(usize) -> String {
    let (dir, home, more) = (dir.to_path_buf(), home.to_string(), more.to_string());
    move |i| {
        format!(
            "[admin]\ntoken = \"{TOKEN}\"\n\n[replication]\nenabled = true\npath = \"{}/dc{}.redb\"\nretry_min_ms = 20\nretry_max_ms = 200\n\n[catalog]\nhome = \"{home}\"\n\n{more}",
            dir.display(),
            i + 1
        )
    }
}

async fn admin_catalog(dc: &Dc) -> Value {
    let auth = format!("Bearer {TOKEN}");
    let r = call(
        Method::GET,
        &dc.admin_url("/admin/catalog"),
        &[("authorization", auth.as_str())],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

/// The demo template under another name.
fn template(name: &str, description: &str) -> String {
    json!({
        "name": name,
        "description": description,
        "defaults": {"services": ["base"], "provider": "sim", "hardwaretype": "small",
                     "imagetype": "ubuntu", "config": {}},
        "compatibility": {"services": ["base"], "hardwaretypes": ["small"], "imagetypes": ["ubuntu"]},
        "constraints": {},
        "administration": {"leaseduration": {"initial": 0, "max": 0, "step": 0}},
    })
    .to_string()
}

async fn create_tenant(dc: &Dc, name: &str, workers: u64) -> Reply {
    post(
        &dc.url("/v2/tenants"),
        &json!({"name": name, "workers": workers}).to_string(),
    )
    .await
}

/// The catalog writes (non-GET, 2xx) a DC's simulator applied, in order, as `METHOD path`.
fn catalog_log(dc: &Dc) -> Vec<String> {
    dc.log()
        .into_iter()
        .filter(|e| !e.path.starts_with("/v2/clusters"))
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_and_a_template_created_through_dc2_are_usable_in_dc1_and_dc3() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(FAST, extra(dir.path())).await;
    let (dc1, dc2, dc3) = (&d.dcs[0], &d.dcs[1], &d.dcs[2]);
    // The tenant: applied at the home DC first, whose answer is the client's.
    let r = create_tenant(dc2, "acme", 1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    assert_eq!(r.header("x-coopr-router-route"), "forwarded");
    assert!(dc1.log_has("POST", "/v2/tenants"));
    // The template, in the new tenant.
    let r = call(
        Method::POST,
        &dc2.url("/v2/clustertemplates"),
        &ACME,
        &template("big", "made through dc2"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    // Delivered to dc2 and dc3 (reads stay local: each DC's own Coopr answers).
    for dc in [dc2, dc3] {
        let url = dc.url("/v2/clustertemplates/big");
        let got = eventually(WAIT, "template delivered", || async {
            let r = call(Method::GET, &url, &ACME, "").await;
            (r.status == StatusCode::OK).then(|| r.json())
        })
        .await;
        assert_eq!(got["description"], "made through dc2");
        assert_eq!(
            catalog_log(dc),
            ["POST /v2/tenants", "POST /v2/clustertemplates"],
            "{}: in order, once",
            dc.name
        );
    }
    // A cluster of tenant acme with template big, created through dc1 and through dc3: each
    // DC's own Coopr resolves tenant and template by name.
    for (dc, want_id) in [(dc1, "00000001"), (dc3, "00000003")] {
        let r = call(
            Method::POST,
            &dc.url("/v2/clusters"),
            &ACME,
            r#"{"name":"c","clusterTemplate":"big","numMachines":1}"#,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}: {}", dc.name, r.text());
        assert_eq!(r.json()["id"], want_id);
        assert!(dc.log_has("POST", "/v2/clusters"));
    }
    // Everything acknowledged: nothing left queued, both DCs listed with their answer.
    let view = admin_catalog(dc1).await;
    assert_eq!(view["home"], "dc1");
    for dc in ["dc2", "dc3"] {
        let v = &view["dcs"][dc];
        assert_eq!(v["queued"], 0, "{view}");
        assert_eq!(v["delivered"], 2, "{view}");
        assert_eq!(v["last"]["status"], 200, "{view}");
        assert_eq!(v["last"]["write"], "POST /v2/clustertemplates", "{view}");
    }
    // `/admin/explain` says where a catalog write goes, and a read.
    let ex = get(&dc2.admin_url("/admin/explain?method=POST&path=/v2/tenants"))
        .await
        .json();
    assert_eq!(ex["class"], "global", "{ex}");
    assert_eq!(
        ex["destination"], "router of dc1 (the catalog's home)",
        "{ex}"
    );
    let ex = get(&dc1.admin_url("/admin/explain?method=PUT&path=/v2/services/x"))
        .await
        .json();
    assert!(
        ex["destination"]
            .as_str()
            .unwrap()
            .contains("then delivered"),
        "{ex}"
    );
    let ex = get(&dc2.admin_url("/admin/explain?method=GET&path=/v2/services/x"))
        .await
        .json();
    assert_eq!(ex["class"], "local", "{ex}");
    // Reads stay local: no catalog read reached another DC.
    let r = call(Method::GET, &dc3.url("/v2/clustertemplates"), &ACME, "").await;
    assert_eq!(r.header("x-coopr-router-route"), "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_down_during_five_catalog_writes_gets_all_five_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start_with(FAST, extra(dir.path())).await;
    d.dcs[2].stop_router().await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    // Five writes whose order matters: a create, then four updates of the same service.
    let svc = |v: u32| {
        json!({"name": "hdfs", "description": format!("v{v}"), "dependencies": {}, "provisioner": {}}).to_string()
    };
    let r = post(&dc2.url("/v2/services"), &svc(1)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for v in 2..=5 {
        let r = call(Method::PUT, &dc1.url("/v2/services/hdfs"), &ADMIN, &svc(v)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let want: Vec<String> = std::iter::once("POST /v2/services".to_string())
        .chain((2..=5).map(|_| "PUT /v2/services/hdfs".to_string()))
        .collect();
    // dc2 has them all already; dc3's are queued at the home DC, its failures counted.
    eventually(WAIT, "dc2 has all five", || async {
        (catalog_log(dc2) == want).then_some(())
    })
    .await;
    let view = eventually(WAIT, "dc3's deliveries refused", || async {
        let v = admin_catalog(dc1).await;
        (v["dcs"]["dc3"]["refused"].as_u64() > Some(0)).then_some(v)
    })
    .await;
    assert_eq!(view["dcs"]["dc3"]["queued"], 5, "{view}");
    assert_eq!(
        view["dcs"]["dc3"]["pending"][0]["write"],
        "POST /v2/services"
    );
    assert!(catalog_log(&d.dcs[2]).is_empty());
    // The home's router restarts meanwhile: nothing queued is lost.
    d.dcs[0].stop_router().await;
    d.dcs[0].restart_router().await;
    d.dcs[2].restart_router().await;
    let dc3 = &d.dcs[2];
    eventually(WAIT, "dc3 has all five", || async {
        (catalog_log(dc3) == want).then_some(())
    })
    .await;
    let r = get(&dc3.url("/v2/services/hdfs")).await;
    assert_eq!(
        r.json()["description"],
        "v5",
        "the last write wins everywhere"
    );
    let r = get(&d.dcs[1].url("/v2/services/hdfs")).await;
    assert_eq!(r.json()["description"], "v5");
    let view = eventually(WAIT, "dc3's queue empty", || async {
        let v = admin_catalog(&d.dcs[0]).await;
        (v["dcs"]["dc3"]["queued"] == 0).then_some(v)
    })
    .await;
    assert_eq!(view["dcs"]["dc3"]["last"]["status"], 200, "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_write_refused_by_one_dc_is_retried_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(FAST, extra(dir.path())).await;
    let (dc1, dc2, dc3) = (&d.dcs[0], &d.dcs[1], &d.dcs[2]);
    // dc3's provisioners have no room for the tenant's workers.
    dc3.sim.set_tenant_worker_capacity(Some(1));
    let r = create_tenant(dc3, "big", 5).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the home DC's answer: {}",
        r.text()
    );
    // A second write behind it waits: order is kept.
    let r = create_tenant(dc2, "small", 0).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    eventually(WAIT, "dc2 has both", || async {
        (catalog_log(dc2) == ["POST /v2/tenants", "POST /v2/tenants"]).then_some(())
    })
    .await;
    let view = eventually(WAIT, "dc3's refusal retried and listed", || async {
        let v = admin_catalog(dc1).await;
        (v["dcs"]["dc3"]["attempts"].as_u64() >= Some(2)).then_some(v)
    })
    .await;
    let v3 = &view["dcs"]["dc3"];
    assert_eq!(v3["last"]["status"], 409, "{view}");
    assert_eq!(v3["last"]["write"], "POST /v2/tenants");
    assert!(
        v3["last"]["answer"]
            .as_str()
            .unwrap()
            .contains("Not enough capacity"),
        "{view}"
    );
    assert_eq!(v3["queued"], 2, "{view}");
    assert!(catalog_log(dc3).is_empty(), "nothing skipped ahead");
    let metrics = get(&dc1.admin_url("/metrics")).await.text();
    assert!(
        metrics.contains(r#"coopr_router_catalog_deliveries_total{dc="dc3",result="refused"}"#),
        "{metrics}"
    );
    // Room made: both arrive, in order.
    dc3.sim.set_tenant_worker_capacity(None);
    eventually(WAIT, "dc3 has both", || async {
        (catalog_log(dc3) == ["POST /v2/tenants", "POST /v2/tenants"]).then_some(())
    })
    .await;
    for name in ["big", "small"] {
        let r = get(&dc3.url(&format!("/v2/tenants/{name}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
    }
    let r = get(&dc3.url("/v2/tenants/big")).await;
    assert_eq!(r.json()["workers"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_home_dc_down_catalog_writes_are_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start_with(FAST, extra(dir.path())).await;
    let id = create_active(&d.dcs[1], "before").await;
    d.dcs[0].stop_router().await;
    let (dc2, dc3) = (&d.dcs[1], &d.dcs[2]);
    for dc in [dc2, dc3] {
        let r = create_tenant(dc, "acme", 0).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.header("x-coopr-router-error"), "catalog_home_down");
        assert_eq!(r.header("x-coopr-router-catalog-home"), "dc1");
        assert!(!r.header("retry-after").is_empty());
        assert_eq!(r.json()["home_dc"], "dc1");
        assert!(r.json()["error"].as_str().unwrap().contains("dc1"));
    }
    assert!(catalog_log(dc2).is_empty() && catalog_log(dc3).is_empty());
    // Reads and cluster traffic are unaffected.
    let r = get(&dc2.url("/v2/clustertemplates")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&dc3.url(&format!("/v2/clusters/{id}"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = post(
        &dc2.url("/v2/clusters"),
        r#"{"name":"after","clusterTemplate":"demo","numMachines":1}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The home is back: the same write goes through.
    let started = Instant::now();
    d.dcs[0].restart_router().await;
    let r = create_tenant(&d.dcs[2], "acme", 0).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(started.elapsed() < WAIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_catalog_writes_sent_concurrently_through_two_dcs_leave_one_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(FAST, extra(dir.path())).await;
    let (dc2, dc3) = (&d.dcs[1], &d.dcs[2]);
    let svc = |v: &str| {
        json!({"name": "zk", "description": v, "dependencies": {}, "provisioner": {}}).to_string()
    };
    let r = post(&dc2.url("/v2/services"), &svc("first")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for round in 0..10 {
        // The same tenant created through two DCs at once: one wins at the home DC.
        let name = format!("t{round}");
        let (a, b) = tokio::join!(create_tenant(dc2, &name, 1), create_tenant(dc3, &name, 2));
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "{} / {}", a.text(), b.text());
        // One service updated through two DCs at once, with different bodies.
        let (ua, ub) = (dc2.url("/v2/services/zk"), dc3.url("/v2/services/zk"));
        let (ba, bb) = (svc(&format!("a{round}")), svc(&format!("b{round}")));
        let (a, b) = tokio::join!(
            call(Method::PUT, &ua, &ADMIN, &ba),
            call(Method::PUT, &ub, &ADMIN, &bb),
        );
        assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
    }
    // Every DC ends with the home DC's catalog.
    async fn snapshot(dc: &Dc) -> (Vec<(String, Value)>, Value) {
        let mut t: Vec<(String, Value)> = get(&dc.url("/v2/tenants"))
            .await
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["workers"].clone(),
                )
            })
            .collect();
        t.sort_by(|x, y| x.0.cmp(&y.0));
        let zk = get(&dc.url("/v2/services/zk")).await.json()["description"].clone();
        (t, zk)
    }
    let home = snapshot(&d.dcs[0]).await;
    assert_eq!(home.0.len(), 11, "superadmin and ten tenants: {home:?}");
    for dc in [dc2, dc3] {
        eventually(WAIT, "the same catalog as the home DC", || async {
            (snapshot(dc).await == home).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_sent_elsewhere_finds_the_tenant_and_template_made_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    // dc2 does not own its home shard 2, so its creates go to dc1; the catalog's home is dc3.
    let more = "[[ownership.shards]]\nshard = 2\nowner = \"dc1\"\nreplicas = [\"dc2\", \"dc3\"]\n";
    let d = start_with(FAST, extra_with(dir.path(), "dc3", more)).await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    let r = create_tenant(dc2, "acme", 1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc3");
    let r = call(
        Method::POST,
        &dc2.url("/v2/clustertemplates"),
        &ACME,
        &template("big", "made through dc2 at dc3"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let url = dc1.url("/v2/clustertemplates/big");
    eventually(WAIT, "template delivered to dc1", || async {
        (call(Method::GET, &url, &ACME, "").await.status == StatusCode::OK).then_some(())
    })
    .await;
    let r = call(
        Method::POST,
        &dc2.url("/v2/clusters"),
        &ACME,
        r#"{"name":"c","clusterTemplate":"big","numMachines":1}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.header("x-coopr-router-dc"),
        "dc1",
        "the create went elsewhere"
    );
    assert_eq!(r.json()["id"], "00000001");
    assert!(dc1.log_has("POST", "/v2/clusters"));
    assert!(!dc2.log_has("POST", "/v2/clusters"));
}

/// The closing figure of issue 24: from a global write's answer (sent through dc2 or dc3, with
/// 25 ms each way between DCs) to the entity being readable in the two other DCs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_writes_are_readable_everywhere_soon_after_their_answer() {
    let dir = tempfile::tempdir().unwrap();
    let relay = |_, _| {
        Some(relay::Options {
            delay: Duration::from_millis(25),
            tap: false,
        })
    };
    let d = start_relayed(FAST, extra(dir.path()), relay).await;
    const N: usize = 60;
    // Through dc2 or dc3 (forwarded to the home), and through dc1 (the home itself).
    let (mut forwarded, mut at_home) = (Vec::new(), Vec::new());
    for n in 0..N {
        let via = n % 3;
        let others: Vec<&Dc> = (0..3).filter(|&k| k != via).map(|k| &d.dcs[k]).collect();
        let name = format!("svc{n}");
        let body = json!({"name": name, "description": "x", "dependencies": {}, "provisioner": {}});
        let r = post(&d.dcs[via].url("/v2/services"), &body.to_string()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let answered = Instant::now();
        for dc in others {
            let url = dc.url(&format!("/v2/services/{name}"));
            // Polled every 2 ms (finer than `eventually`).
            while get(&url).await.status != StatusCode::OK {
                assert!(
                    answered.elapsed() < WAIT,
                    "{name} never reached {}",
                    dc.name
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        match via {
            0 => at_home.push(answered.elapsed()),
            _ => forwarded.push(answered.elapsed()),
        }
    }
    for (what, mut lags) in [
        ("through dc2/dc3", forwarded),
        ("through dc1 (home)", at_home),
    ] {
        lags.sort();
        let n = lags.len();
        let (p50, p99) = (lags[n / 2], lags[(n * 99 / 100).min(n - 1)]);
        println!(
            "catalog write {what}: answer -> readable in the two other DCs (25 ms relay): p50 {p50:?} p99 {p99:?} (n={n})"
        );
        assert!(
            p99 < Duration::from_secs(2),
            "{what}: p50 {p50:?} p99 {p99:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_on_one_dcs_coopr_is_drift_and_sync_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(FAST, extra(dir.path())).await;
    let (dc1, dc2, dc3) = (&d.dcs[0], &d.dcs[1], &d.dcs[2]);
    let auth = format!("Bearer {TOKEN}");
    let admin = [("authorization", auth.as_str())];
    let diff = || async {
        let r = call(
            Method::GET,
            &dc1.admin_url("/admin/catalog/diff"),
            &admin,
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        r.json()
    };
    // Through the router: the same everywhere, no drift.
    let r = create_tenant(dc2, "acme", 1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    eventually(WAIT, "acme everywhere", || async {
        let v = diff().await;
        (v["dcs"]["dc2"]["differences"] == 0 && v["dcs"]["dc3"]["differences"] == 0).then_some(())
    })
    .await;
    // Straight to dc3's Coopr: a template the others lack, and a changed service.
    let r = call(
        Method::POST,
        &dc3.sim_url("/v2/clustertemplates"),
        &ACME,
        &template("rogue", "made on dc3 only"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let base = json!({"name": "base", "description": "changed on dc3", "dependencies": {}, "provisioner": {}});
    let r = call(
        Method::PUT,
        &dc3.sim_url("/v2/services/base"),
        &ACME,
        &base.to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = diff().await;
    assert_eq!(v["dcs"]["dc2"]["differences"], 0, "{v}");
    let drift: Vec<(String, String, String)> = v["dcs"]["dc3"]["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap().to_string();
            (s("kind"), s("name"), s("what"))
        })
        .collect();
    let want = |k: &str, n: &str, w: &str| (k.to_string(), n.to_string(), w.to_string());
    assert_eq!(
        drift,
        [
            want("services", "base", "differs"),
            want("clustertemplates", "rogue", "extra")
        ],
        "{v}"
    );
    // Named in /ready as a warning; the DC stays ready.
    let r = get(&dc1.admin_url("/ready")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["warnings"][0]["check"], "catalog_drift");
    assert_eq!(r.json()["warnings"][0]["dc"], "dc3");
    let metrics = get(&dc1.admin_url("/metrics")).await.text();
    assert!(
        metrics.contains(r#"coopr_router_catalog_drift{dc="dc3",kind="services"} 1"#),
        "{metrics}"
    );
    // `coopr-router catalog diff` prints the same, and fails; `catalog sync --to dc3` repairs
    // dc3 from the home, by replayed writes.
    let conf = dir.path().join("dc1.toml");
    std::fs::write(&conf, &dc1.config_text).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_coopr-router"))
            .args(["catalog", "--config", conf.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = tokio::task::block_in_place(|| cli(&["diff"]));
    assert!(!ok, "drift fails the command: {text}");
    assert!(text.contains("dc2: 0 differences from dc1"), "{text}");
    assert!(text.contains("dc3: 2 differences from dc1"), "{text}");
    assert!(
        text.contains("differs services base (tenant acme)"),
        "{text}"
    );
    assert!(
        text.contains("extra clustertemplates rogue (tenant acme)"),
        "{text}"
    );
    let (ok, text) = tokio::task::block_in_place(|| cli(&["sync", "--to", "dc3"]));
    assert!(ok, "{text}");
    assert!(text.contains("dc3: 2 writes queued"), "{text}");
    assert!(text.contains("PUT /v2/services/base"), "{text}");
    assert!(text.contains("DELETE /v2/clustertemplates/rogue"), "{text}");
    eventually(WAIT, "dc3 repaired", || async {
        (diff().await["dcs"]["dc3"]["differences"] == 0).then_some(())
    })
    .await;
    let r = call(
        Method::GET,
        &dc3.url("/v2/clustertemplates/rogue"),
        &ACME,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(&dc1.admin_url("/ready")).await;
    assert!(r.json().get("warnings").is_none(), "{}", r.text());
    let (ok, text) = tokio::task::block_in_place(|| cli(&["diff"]));
    assert!(ok, "{text}");
    // A sync asked of the home DC itself, or of a DC that does not exist, is refused.
    let r = call(
        Method::POST,
        &dc1.admin_url("/admin/catalog/sync?to=dc1"),
        &admin,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text());
    // Only the home compares and repairs.
    let r = call(
        Method::GET,
        &dc2.admin_url("/admin/catalog/diff"),
        &admin,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.text().contains("dc1"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_that_disagree_on_the_home_refuse_rather_than_apply_in_two_places() {
    let dir = tempfile::tempdir().unwrap();
    // dc2's router takes dc3 for the home (a reload half rolled out); dc3's takes dc1.
    let homes = ["dc1", "dc3", "dc1"];
    let d = start_with(FAST, |i| extra_with(dir.path(), homes[i], "")(i)).await;
    let r = create_tenant(&d.dcs[1], "acme", 0).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-error"), "owner_moved");
    for dc in &d.dcs {
        assert!(catalog_log(dc).is_empty(), "{}: {:?}", dc.name, dc.log());
    }
    // Through a router that agrees with the home, it goes through.
    let r = create_tenant(&d.dcs[2], "acme", 0).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
}
