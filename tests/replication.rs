//! Replication end to end on the static map: three DCs in-process, each router with its own
//! replica store; finished states reach the other DCs, reads and lists are answered from the
//! replica store with Coopr's visibility rules, a peer or owner that was down loses nothing,
//! and `providerFields` never leave the owner DC (asserted on the bytes the peer received).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use support::*;

const OP: Duration = Duration::from_millis(400);
const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "hunter2-SECRET-KEY";
/// `/admin/operations` always needs the admin token.
const TOKEN: &str = "replication-test-admin-token";

/// `GET` an admin URL with the token.
async fn admin_get(url: &str) -> Reply {
    let auth = format!("Bearer {TOKEN}");
    call(Method::GET, url, &[("Authorization", auth.as_str())], "").await
}

fn as_user<'a>(user: &'a str, tenant: &'a str) -> [(&'a str, &'a str); 2] {
    [("Coopr-UserID", user), ("Coopr-TenantID", tenant)]
}

/// Creates a cluster through `dc` as `user` (tenant superadmin), with provider credentials in
/// the body; returns its id.
async fn create(dc: &Dc, user: &str, name: &str) -> String {
    let body = format!(
        "{{\"name\":\"{name}\",\"clusterTemplate\":\"demo\",\"numMachines\":1,\"providerFields\":{{\"secretKey\":\"{SECRET}\"}}}}"
    );
    let r = call(
        Method::POST,
        &dc.url("/v2/clusters"),
        &as_user(user, "superadmin"),
        &body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "create: {}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

/// Waits until `dc` answers `path` from its replica store with `want(json)` true.
async fn replica_until(dc: &Dc, path: &str, what: &str, want: impl Fn(&Value) -> bool) -> Reply {
    let url = dc.url(path);
    eventually(WAIT, what, || async {
        let r = get(&url).await;
        (r.status == StatusCode::OK
            && r.header("x-coopr-router-route") == "replica"
            && want(&r.json()))
        .then_some(r)
    })
    .await
}

/// Every replication record in the bytes a peer received, in order: (shard, seq, kind, cluster).
fn records_in(bytes: &[u8]) -> Vec<(u64, u64, String, String)> {
    let mut out = Vec::new();
    let needle = b"{\"seq\":";
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if &bytes[i..i + needle.len()] == needle {
            let mut it = serde_json::Deserializer::from_slice(&bytes[i..]).into_iter::<Value>();
            if let Some(Ok(v)) = it.next() {
                let r = &v["record"];
                out.push((
                    r["shard"].as_u64().unwrap(),
                    v["seq"].as_u64().unwrap(),
                    r["kind"].as_str().unwrap().to_string(),
                    r["cluster"].as_str().unwrap().to_string(),
                ));
            }
        }
        i += 1;
    }
    out
}

/// Each (shard, seq) exactly once, and in increasing order per shard.
fn assert_in_order_once(records: &[(u64, u64, String, String)]) {
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    for (shard, seq, kind, cluster) in records {
        let prev = last.insert(*shard, *seq).unwrap_or(0);
        assert!(
            *seq > prev,
            "shard {shard}: seq {seq} ({kind} of {cluster}) after {prev}: out of order or duplicated\n{records:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_reconfigure_delete_reach_every_dc_without_provider_fields() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_relayed(OP, repl::extra(dir.path(), Some(TOKEN), ""), |from, _| {
        (from == 0).then(repl::tapped)
    })
    .await;
    let (dc1, dc2, dc3) = (&d.dcs[0], &d.dcs[1], &d.dcs[2]);
    let id = create(dc1, "admin", "alpha").await;
    let path = format!("/v2/clusters/{id}");
    for dc in [dc2, dc3] {
        let r = replica_until(dc, &path, "create replicated", |v| v["status"] == "active").await;
        assert_eq!(r.header("x-coopr-router-dc"), dc.name);
        assert_eq!(r.header("x-coopr-router-replica-epoch"), "0");
        assert!(
            r.header("age").parse::<u64>().is_ok(),
            "Age: {:?}",
            r.header("age")
        );
        assert_eq!(r.json()["id"], id);
    }
    let old_config = get(&dc2.url(&format!("{path}/config"))).await.json();

    // Reconfigure through dc2 (forwarded to the owner, dc1).
    let body = format!(
        "{{\"config\":{{\"tier\":\"gold\"}},\"providerFields\":{{\"secretKey\":\"{SECRET}\"}}}}"
    );
    let r = call(
        Method::PUT,
        &dc2.url(&format!("{path}/config")),
        &ADMIN,
        &body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-route"), "forwarded");
    // Before the finish: the previous finished state, with its age.
    let before = get(&dc3.url(&format!("{path}/config"))).await;
    assert_eq!(before.header("x-coopr-router-route"), "replica");
    assert_eq!(
        before.json(),
        old_config,
        "a read before the finish shows the previous state"
    );
    assert!(before.header("age").parse::<u64>().is_ok());
    for dc in [dc2, dc3] {
        replica_until(
            dc,
            &format!("{path}/config"),
            "reconfigure replicated",
            |v| v["tier"] == "gold",
        )
        .await;
    }
    // Cache-Control: no-cache goes to the owner.
    let r = call(
        Method::GET,
        &dc2.url(&path),
        &[ADMIN[0], ADMIN[1], ("Cache-Control", "no-cache")],
        "",
    )
    .await;
    assert_eq!(r.header("x-coopr-router-route"), "forwarded");
    assert_eq!(r.status, StatusCode::OK);

    // Delete through dc3.
    let r = call(Method::DELETE, &dc3.url(&path), &ADMIN, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for dc in [dc2, dc3] {
        replica_until(dc, &format!("{path}/status"), "delete replicated", |v| {
            v["status"] == "terminated"
        })
        .await;
    }
    let services = get(&dc2.url(&format!("{path}/services"))).await;
    assert_eq!(services.header("x-coopr-router-route"), "replica");

    // What crossed to dc2 and dc3: the records, and never a provider field.
    for to in [1, 2] {
        let bytes = d.relay(0, to).tapped();
        let text = String::from_utf8_lossy(&bytes);
        let recs = records_in(&bytes);
        let kinds: Vec<&str> = recs.iter().map(|r| r.2.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "intent", "finished", "intent", "finished", "intent", "finished"
            ],
            "to dc{}",
            to + 1
        );
        assert!(recs.iter().all(|r| r.3 == id));
        assert!(
            !text.contains(SECRET),
            "a provider credential reached dc{}",
            to + 1
        );
        assert!(
            !text.contains("providerFields"),
            "a providerFields object reached dc{}",
            to + 1
        );
        assert!(
            text.contains("\"tier\":\"gold\""),
            "the reconfigure body crossed (stripped)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_apply_coopr_visibility_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(OP, repl::extra(dir.path(), Some(TOKEN), "")).await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    let id = create(dc1, "bob", "bobs").await;
    let path = format!("/v2/clusters/{id}");
    let url = dc2.url(&path);
    eventually(WAIT, "bob's cluster replicated", || async {
        let r = call(Method::GET, &url, &as_user("bob", "superadmin"), "").await;
        (r.status == StatusCode::OK
            && r.header("x-coopr-router-route") == "replica"
            && r.json()["status"] == "active")
            .then_some(())
    })
    .await;
    let cases: [(&[(&str, &str)], StatusCode); 5] = [
        (&as_user("admin", "superadmin"), StatusCode::OK),
        (&as_user("carol", "superadmin"), StatusCode::NOT_FOUND),
        (&as_user("bob", "acme"), StatusCode::NOT_FOUND),
        (
            &[("Coopr-TenantID", "superadmin")],
            StatusCode::UNAUTHORIZED,
        ),
        (&[("Coopr-UserID", "bob")], StatusCode::UNAUTHORIZED),
    ];
    for (headers, want) in cases {
        for sub in ["", "/status", "/config"] {
            let r = call(Method::GET, &dc2.url(&format!("{path}{sub}")), headers, "").await;
            assert_eq!(r.status, want, "{headers:?} {sub}: {}", r.text());
            assert_eq!(r.header("x-coopr-router-route"), "replica");
        }
    }
    // Lists follow the same rules.
    let list = |user: &'static str, tenant: &'static str| {
        let url = dc2.url("/v2/clusters");
        async move {
            call(Method::GET, &url, &as_user(user, tenant), "")
                .await
                .json()
        }
    };
    let ids = |v: Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(list("bob", "superadmin").await), [id.as_str()]);
    assert_eq!(ids(list("admin", "superadmin").await), [id.as_str()]);
    assert!(ids(list("carol", "superadmin").await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_merge_local_and_replicated_clusters_with_status_filters() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(OP, repl::extra(dir.path(), Some(TOKEN), "")).await;
    let (dc1, dc2, dc3) = (&d.dcs[0], &d.dcs[1], &d.dcs[2]);
    let a = create(dc1, "admin", "a").await;
    let b = create(dc2, "admin", "b").await;
    for (dc, id) in [(dc3, &a), (dc3, &b), (dc1, &b), (dc2, &a)] {
        replica_until(dc, &format!("/v2/clusters/{id}"), "replicated", |v| {
            v["status"] == "active"
        })
        .await;
    }
    let ids = |r: Reply| {
        let mut v: Vec<String> = r
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    for dc in [dc1, dc2, dc3] {
        assert_eq!(
            ids(get(&dc.url("/v2/clusters")).await),
            both,
            "{}: each cluster once",
            dc.name
        );
        assert_eq!(ids(get(&dc.url("/v2/clusters?status=active")).await), both);
        assert!(ids(get(&dc.url("/v2/clusters?status=terminated")).await).is_empty());
    }
    let r = call(
        Method::DELETE,
        &dc3.url(&format!("/v2/clusters/{a}")),
        &ADMIN,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    replica_until(
        dc3,
        &format!("/v2/clusters/{a}"),
        "delete replicated",
        |v| v["status"] == "terminated",
    )
    .await;
    replica_until(
        dc2,
        &format!("/v2/clusters/{a}"),
        "delete replicated",
        |v| v["status"] == "terminated",
    )
    .await;
    for dc in [dc2, dc3] {
        assert_eq!(
            ids(get(&dc.url("/v2/clusters?status=terminated")).await),
            [a.as_str()],
            "{}",
            dc.name
        );
        assert_eq!(
            ids(get(&dc.url("/v2/clusters?status=active,pending")).await),
            [b.as_str()],
            "{}",
            dc.name
        );
        assert_eq!(ids(get(&dc.url("/v2/clusters")).await), both);
    }
    let item = get(&dc3.url("/v2/clusters")).await.json();
    let first = &item.as_array().unwrap()[0];
    for key in [
        "id",
        "name",
        "ownerId",
        "createTime",
        "status",
        "numNodes",
        "provider",
        "clusterTemplate",
    ] {
        assert!(!first[key].is_null(), "summary field {key}: {first}");
    }
}

/// Waits until `dc` answers every cluster of `ids` from its replica store as active.
async fn all_active(dc: &Dc, ids: &[String], what: &str) {
    for id in ids {
        replica_until(dc, &format!("/v2/clusters/{id}"), what, |v| {
            v["status"] == "active"
        })
        .await;
    }
}

/// dc2's router down while dc1 creates `n` clusters (named `{prefix}{i}`), each replicated to
/// dc3 before this returns; what dc1 sends dc2 is tapped. The deployment and the ids.
async fn dc2_down_while_dc1_creates(
    dir: &std::path::Path,
    n: usize,
    prefix: &str,
) -> (Deployment, Vec<String>) {
    let mut d = start_relayed(OP, repl::extra(dir, Some(TOKEN), ""), repl::tap_dc1_to_dc2).await;
    repl::asks_settled(&d, TOKEN).await;
    d.dcs[1].stop_router().await;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(create(&d.dcs[0], "admin", &format!("{prefix}{i}")).await);
    }
    all_active(&d.dcs[2], &ids, "dc3 has it").await;
    (d, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_down_while_five_operations_finish_catches_up_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, ids) = dc2_down_while_dc1_creates(dir.path(), 5, "down").await;
    // Everything finished at the owner; dc2's share waits in dc1's outbox.
    let open = admin_get(&d.dcs[0].admin_url("/admin/operations?state=open"))
        .await
        .json();
    assert_eq!(open["operations"], serde_json::json!([]), "{open}");
    assert!(d.relay(0, 1).tapped().is_empty() || records_in(&d.relay(0, 1).tapped()).is_empty());
    d.dcs[1].restart_router().await;
    all_active(&d.dcs[1], &ids, "dc2 caught up").await;
    let recs = records_in(&d.relay(0, 1).tapped());
    assert_eq!(recs.len(), 10, "5 intents and 5 finishes: {recs:?}");
    assert_in_order_once(&recs);
    // Per cluster: the intent before its finish.
    for id in &ids {
        let kinds: Vec<&str> = recs
            .iter()
            .filter(|r| &r.3 == id)
            .map(|r| r.2.as_str())
            .collect();
        assert_eq!(kinds, ["intent", "finished"], "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_restarted_with_a_full_outbox_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut d, mut ids) = dc2_down_while_dc1_creates(dir.path(), 3, "r").await;
    // One more, still pending when the owner's router stops: its operation is open on disk.
    ids.push(create(&d.dcs[0], "admin", "in-flight").await);
    d.dcs[0].stop_router().await;
    d.dcs[0].restart_router().await;
    d.dcs[1].restart_router().await;
    all_active(&d.dcs[1], &ids, "dc2 has everything").await;
    let recs = records_in(&d.relay(0, 1).tapped());
    assert_eq!(
        recs.len(),
        8,
        "4 intents and 4 finishes, once each: {recs:?}"
    );
    assert_in_order_once(&recs);
    let list = get(&d.dcs[1].url("/v2/clusters")).await.json();
    assert_eq!(
        list.as_array().unwrap().len(),
        4,
        "no duplicates in the list: {list}"
    );
}

/// A restart hook that refuses its first delivery (500) and accepts the rest, keeping bodies.
async fn hook_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let mut all = seen.lock().unwrap();
                            all.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                            let status = if all.len() == 1 { 500 } else { 200 };
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                let io = hyper_util::rt::TokioIo::new(conn);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/restart"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_operations_are_listed_and_delivered_to_the_restart_hook() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, received) = hook_server().await;
    let base = repl::extra(dir.path(), Some(TOKEN), "");
    // dc2 has no standby server for dc1, so its adopted reads come from the replica store.
    let extra = move |i: usize| {
        let mut t = base(i);
        if i == 1 {
            t.insert_str(0, NO_STANDBY);
            t.push_str(&format!("restart_hook = \"{hook}\"\n"));
        }
        t
    };
    let mut d = start_relayed(Duration::from_secs(6), extra, repl::tap_dc1_to_dc2).await;
    let id = create(&d.dcs[0], "admin", "cut-short").await;
    assert_eq!(id, "00000001", "shard 1");
    // The intent reaches dc2 while every map says dc1 owns shard 1 (so dc2 admits it).
    let sent = |d: &Deployment, kind: &str| {
        records_in(&d.relay(0, 1).tapped())
            .iter()
            .any(|(_, _, k, c)| k == kind && *c == id)
    };
    eventually(WAIT, "the intent sent to dc2", || async {
        sent(&d, "intent").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Then shard 1 moves to dc2, as after a failover (a static map: dc2 restarts with it).
    let dc2 = &mut d.dcs[1];
    dc2.stop_router().await;
    dc2.config_text.push_str(
        "\n[[ownership.shards]]\nshard = 1\nowner = \"dc2\"\nreplicas = [\"dc1\", \"dc3\"]\n",
    );
    dc2.restart_router().await;
    let dc2 = &d.dcs[1];
    let url = dc2.admin_url("/admin/operations?state=interrupted");
    let listed = eventually(WAIT, "the intent delivered to the hook", || async {
        let v = admin_get(&url).await.json();
        let op = v["operations"].as_array()?.first()?.clone();
        (op["hook"]["delivered"] == true).then_some(op)
    })
    .await;
    assert_eq!(listed["intent"]["cluster"], id);
    assert_eq!(listed["intent"]["action"], "cluster_create");
    assert_eq!(listed["intent"]["origin"], "dc1");
    assert!(listed["intent"].get("body").is_none(), "{listed}");
    assert_eq!(
        listed["hook"]["attempts"], 2,
        "the first delivery was refused and retried: {listed}"
    );
    assert_eq!(listed["hook"]["last_status"], 200);
    {
        let bodies = received.lock().unwrap();
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[1]["cluster"], id);
        assert_eq!(bodies[1]["body"]["name"], "cut-short");
        assert!(!bodies[1].to_string().contains(SECRET));
    }
    // An adopted shard with no finished state yet: 503 naming the home DC.
    let r = get(&dc2.url(&format!("/v2/clusters/{id}"))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-error"), "adopted");
    // dc1 (whose map still says it owns shard 1) sends the finish later; in the static map
    // every epoch is 0, so only the configured owner (now dc2) may write shard 1 at dc2: the
    // record is refused, and the operation stays interrupted (delivered once, not again).
    eventually(WAIT, "the finish sent to dc2", || async {
        sent(&d, "finished").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let v = admin_get(&url).await.json();
    assert_eq!(v["operations"][0]["intent"]["cluster"], id, "{v}");
    let r = get(&dc2.url(&format!("/v2/clusters/{id}"))).await;
    assert_eq!(r.header("x-coopr-router-error"), "adopted", "{}", r.text());
    assert_eq!(
        received.lock().unwrap().len(),
        2,
        "delivered once, not again"
    );
    let bad = admin_get(&dc2.admin_url("/admin/operations?state=bogus")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coopr_callback_makes_the_finish_known_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let base = repl::extra(dir.path(), Some(TOKEN), "");
    // Polling so slow that only the callback can explain a quick finish.
    let extra = move |i: usize| {
        base(i).replace(
            "poll_min_ms = 20\npoll_max_ms = 200",
            "poll_min_ms = 600000\npoll_max_ms = 600000",
        )
    };
    let d = start_with(Duration::from_millis(200), extra).await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    let id = create(dc1, "admin", "called-back").await;
    let status = dc1.url(&format!("/v2/clusters/{id}/status"));
    eventually(WAIT, "active at the owner", || async {
        (get(&status).await.json()["status"] == "active").then_some(())
    })
    .await;
    // What Coopr's HttpPostClusterCallback sends (UPPERCASE enums, no Content-Type).
    let body = format!(
        "{{\"cluster\":{{\"id\":\"{id}\",\"status\":\"ACTIVE\"}},\"job\":{{\"clusterAction\":\"CLUSTER_CREATE\",\"jobStatus\":\"COMPLETE\"}},\"nodes\":[]}}"
    );
    let r = call(
        Method::POST,
        &dc1.peer_url("/replication/v1/coopr-callback"),
        &[],
        &body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["woke"], id);
    replica_until(
        dc2,
        &format!("/v2/clusters/{id}"),
        "finish replicated after the callback",
        |v| v["status"] == "active",
    )
    .await;
    let junk = call(
        Method::POST,
        &dc1.peer_url("/replication/v1/coopr-callback"),
        &[],
        "nope",
    )
    .await;
    assert_eq!(junk.status, StatusCode::OK);
    assert_eq!(junk.json()["woke"], Value::Null);
    // A malformed batch is refused and changes nothing.
    let bad = call(
        Method::POST,
        &dc2.peer_url("/replication/v1/batch"),
        &[],
        "{\"records\": 3}",
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.header("x-coopr-router-error"), "replication_batch");
}
