//! End-to-end tests of the Coopr simulator: a `Sim` served on 127.0.0.1:0 in-process, driven
//! over HTTP with hyper-util's client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use coopr_router::sim::{LogEntry, Sim, SimConfig, blob_byte, fnv1a64};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ADMIN: (&str, &str) = ("admin", "superadmin");
const ALICE: (&str, &str) = ("alice", "superadmin");
const BOB: (&str, &str) = ("bob", "superadmin");

/// A running simulator.
struct Srv {
    addr: SocketAddr,
    sim: Sim,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn cfg(op_delay_ms: u64) -> SimConfig {
    SimConfig {
        op_delay: Duration::from_millis(op_delay_ms),
        ..SimConfig::default()
    }
}

async fn start(cfg: SimConfig) -> Srv {
    let sim = Sim::new(cfg).expect("sim");
    serve(sim).await
}

async fn serve(sim: Sim) -> Srv {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(sim.clone().serve(listener, async {
        let _ = rx.await;
    }));
    Srv {
        addr,
        sim,
        stop: Some(tx),
        task: Some(task),
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

/// A simulator on two ports, as Coopr: external API on `Srv::addr`, tasks API on the returned
/// address (also `Sim::tasks_addr`).
async fn start_two(cfg: SimConfig) -> (Srv, SocketAddr, oneshot::Sender<()>) {
    let sim = Sim::new(cfg).expect("sim");
    let ext = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let tasks = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (addr, tasks_addr) = (ext.local_addr().unwrap(), tasks.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let (ttx, trx) = oneshot::channel::<()>();
    let task = tokio::spawn(sim.clone().serve_external(ext, async {
        let _ = rx.await;
    }));
    tokio::spawn(sim.clone().serve_tasks(tasks, async {
        let _ = trx.await;
    }));
    let srv = Srv {
        addr,
        sim,
        stop: Some(tx),
        task: Some(task),
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    (srv, tasks_addr, ttx)
}

impl Srv {
    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("serve");
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<(&str, &str)>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        self.call_to(self.addr, method, path, who, extra, body)
            .await
    }

    async fn call_to(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        who: Option<(&str, &str)>,
        extra: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some((user, tenant)) = who {
            b = b
                .header("Coopr-UserID", user)
                .header("Coopr-TenantID", tenant);
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        let body = body.map(|v| Bytes::from(v.to_string())).unwrap_or_default();
        let resp = self
            .client
            .request(b.body(Full::new(body)).expect("request"))
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, who: (&str, &str)) -> Resp {
        self.call(Method::GET, path, Some(who), &[], None).await
    }

    async fn post(&self, path: &str, who: (&str, &str), body: Value) -> Resp {
        self.call(Method::POST, path, Some(who), &[], Some(body))
            .await
    }

    async fn create(&self, who: (&str, &str), name: &str) -> String {
        let r = self
            .post(
                "/v2/clusters",
                who,
                json!({"name": name, "clusterTemplate": "demo", "numMachines": 2}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["id"].as_str().expect("id").to_string()
    }

    async fn status(&self, id: &str, who: (&str, &str)) -> Value {
        let r = self.get(&format!("/v2/clusters/{id}/status"), who).await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Polls until the cluster is no longer pending (5 s deadline).
    async fn wait_settled(&self, id: &str, who: (&str, &str)) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.status(id, who).await;
            if s["status"] != "pending" {
                return s;
            }
            assert!(tokio::time::Instant::now() < deadline, "still pending: {s}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn status_routing_and_auth() {
    let s = start(cfg(100)).await;
    let r = s.call(Method::GET, "/status", None, &[], None).await;
    assert_eq!((r.status, r.text().as_str()), (200, "OK\n"));
    assert_eq!(
        r.headers.get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    // Routing comes before the header check.
    assert_eq!(
        s.call(Method::GET, "/v2/nope", None, &[], None)
            .await
            .status,
        404
    );
    assert_eq!(
        s.call(Method::PUT, "/v2/clusters", None, &[], None)
            .await
            .status,
        405
    );
    assert_eq!(
        s.call(Method::POST, "/v2/clusters/1/status", None, &[], None)
            .await
            .status,
        405
    );
    // Then the headers.
    let r = s.call(Method::GET, "/v2/clusters", None, &[], None).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, "Coopr-UserID not found in request headers.")
    );
    let r = s
        .call(
            Method::GET,
            "/v2/clusters",
            None,
            &[("Coopr-UserID", "u")],
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (401, "Coopr-TenantID not found in request headers.")
    );
    let r = s.get("/v2/clusters", ("u", "nosuch")).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "Tenant does not exist.")
    );
    // Empty segments and a trailing slash are ignored.
    let r = s.get("//v2//clusters/", ALICE).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!([]));
    // Bad JSON is a plain-text 400; missing fields are a JSON 400.
    let r = s
        .call(Method::POST, "/v2/clusters", Some(ALICE), &[], None)
        .await;
    assert_eq!(r.status, 400);
    let r = s.post("/v2/clusters", ALICE, json!({"name": "x"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"missingFields": ["clusterTemplate", "numMachines"]})
    );
    let r = s
        .post(
            "/v2/clusters",
            ALICE,
            json!({"name": "x", "clusterTemplate": "nope", "numMachines": 1}),
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .post(
            "/v2/clusters",
            ALICE,
            json!({"name": "x", "clusterTemplate": "demo", "numMachines": 0}),
        )
        .await;
    assert_eq!(r.status, 400);
    // Internal routes need no headers.
    let r = s
        .call(
            Method::POST,
            "/v2/tasks/take",
            None,
            &[],
            Some(json!({"workerId": "w"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let take = json!({"workerId": "w", "provisionerId": "p", "tenantId": "superadmin"});
    assert_eq!(
        s.call(
            Method::POST,
            "/v2/tasks/take",
            None,
            &[],
            Some(take.clone())
        )
        .await
        .status,
        204
    );
    let mut finish = take.clone();
    finish["status"] = json!(0);
    finish["taskId"] = json!("00000001-001-001");
    assert_eq!(
        s.call(Method::POST, "/v2/tasks/finish", None, &[], Some(take))
            .await
            .status,
        400
    );
    assert_eq!(
        s.call(Method::POST, "/v2/tasks/finish", None, &[], Some(finish))
            .await
            .status,
        417
    );
    let hb = json!({"usage": {}});
    let r = s
        .call(
            Method::POST,
            "/v2/provisioners/p1/heartbeat",
            None,
            &[],
            Some(hb.clone()),
        )
        .await;
    assert_eq!(r.status, 404);
    let reg = json!({"id": "p1", "host": "h", "port": 1, "capacityTotal": 10, "usage": {}, "assignments": {}});
    assert_eq!(
        s.call(Method::PUT, "/v2/provisioners/p1", None, &[], Some(reg))
            .await
            .status,
        200
    );
    assert_eq!(
        s.call(
            Method::POST,
            "/v2/provisioners/p1/heartbeat",
            None,
            &[],
            Some(hb)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        s.call(Method::DELETE, "/v2/provisioners/p1", None, &[], None)
            .await
            .status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn create_pending_then_active_with_ids() {
    let s = start(SimConfig {
        id_start: 3,
        id_increment: 10,
        ..cfg(150)
    })
    .await;
    let a = s.create(ALICE, "a").await;
    let b = s.create(ALICE, "b").await;
    assert_eq!((a.as_str(), b.as_str()), ("00000003", "00000013"));
    let st = s.status(&a, ALICE).await;
    assert_eq!(st["clusterid"], "00000003");
    assert_eq!(st["status"], "pending");
    assert_eq!(st["action"], "cluster_create");
    assert_eq!(st["actionstatus"], "running");
    let d = s.get("/v2/clusters/3", ALICE).await.json();
    assert_eq!(d["id"], "00000003");
    assert_eq!(d["latestJobId"], "00000003-003");
    assert_eq!(
        s.get("/v2/clusters/00000013", ALICE).await.json()["latestJobId"],
        "00000013-013"
    );
    // Deleting while pending is a conflict.
    assert_eq!(
        s.call(Method::DELETE, "/v2/clusters/3", Some(ALICE), &[], None)
            .await
            .status,
        409
    );
    let done = s.wait_settled("0003", ALICE).await;
    assert_eq!(done["status"], "active");
    assert_eq!(done["actionstatus"], "complete");
    assert_eq!(done["stepstotal"], done["stepscompleted"]);
    // Details, nodes and properties.
    let d = s.get("/v2/clusters/3", ALICE).await.json();
    assert_eq!(d["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(d["account"]["tenantId"], "superadmin");
    assert_eq!(d["progress"]["actionstatus"], "complete");
    let nodenums: Vec<u64> = d["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["properties"]["nodenum"].as_u64())
        .collect();
    assert_eq!(nodenums, vec![1000, 1001]);
    let props = s
        .post(
            "/v2/getNodeProperties",
            ALICE,
            json!({"clusterId": "3", "properties": ["nodenum"]}),
        )
        .await;
    assert_eq!(props.status, 200);
    assert_eq!(props.json().as_object().map(|o| o.len()), Some(2));
    let empty = s
        .post("/v2/getNodeProperties", ALICE, json!({"clusterId": "999"}))
        .await;
    assert_eq!(empty.json(), json!({}));
    assert_eq!(
        s.post("/v2/getNodeProperties", ALICE, json!({"clusterId": "x"}))
            .await
            .status,
        500
    );
    assert_eq!(
        s.post("/v2/getNodeProperties", ALICE, json!({}))
            .await
            .status,
        400
    );
    // Plans use UPPERCASE names.
    let plan = s.get("/v2/clusters/3/plans/00000003-003", ALICE).await;
    assert_eq!(plan.status, 200);
    assert_eq!(plan.json()["action"], "CLUSTER_CREATE");
    assert_eq!(plan.json()["stages"][0][0]["taskName"], "CREATE");
    assert_eq!(
        s.get("/v2/clusters/3/plans/00000013-013", ALICE)
            .await
            .status,
        400
    );
    // Non-numeric ids: 500 on reads, 400 on writes.
    assert_eq!(s.get("/v2/clusters/abc", ALICE).await.status, 500);
    assert_eq!(
        s.call(Method::DELETE, "/v2/clusters/abc", Some(ALICE), &[], None)
            .await
            .status,
        400
    );
    // Service action on an unknown service, then a real one.
    assert_eq!(
        s.post("/v2/clusters/3/services/nosuch/stop", ALICE, json!({}))
            .await
            .status,
        404
    );
    assert_eq!(
        s.post("/v2/clusters/3/services/base/stop", ALICE, json!({}))
            .await
            .status,
        200
    );
    assert_eq!(s.status(&a, ALICE).await["action"], "stop_services");
    assert_eq!(s.wait_settled(&a, ALICE).await["status"], "active");
    // Delete: pending → terminated; deleting again is a 200 no-op.
    assert_eq!(
        s.call(Method::DELETE, "/v2/clusters/3", Some(ALICE), &[], None)
            .await
            .status,
        200
    );
    assert_eq!(s.status(&a, ALICE).await["action"], "cluster_delete");
    assert_eq!(s.wait_settled(&a, ALICE).await["status"], "terminated");
    let job = s.get("/v2/clusters/3", ALICE).await.json()["latestJobId"].clone();
    assert_eq!(
        s.call(Method::DELETE, "/v2/clusters/3", Some(ALICE), &[], None)
            .await
            .status,
        200
    );
    assert_eq!(
        s.get("/v2/clusters/3", ALICE).await.json()["latestJobId"],
        job
    );
    s.stop().await;
}

#[tokio::test]
async fn visibility_and_tenants() {
    let s = start(cfg(60_000)).await;
    let id = s.create(ALICE, "mine").await;
    for path in [
        format!("/v2/clusters/{id}"),
        format!("/v2/clusters/{id}/status"),
    ] {
        assert_eq!(s.get(&path, BOB).await.status, 404, "{path}");
        assert_eq!(s.get(&path, ADMIN).await.status, 200, "{path}");
    }
    assert_eq!(
        s.post(&format!("/v2/clusters/{id}/abort"), BOB, json!({}))
            .await
            .status,
        404
    );
    assert_eq!(s.get("/v2/clusters", BOB).await.json(), json!([]));
    assert_eq!(
        s.get("/v2/clusters", ADMIN)
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // Tenants are superadmin-only.
    let t = json!({"tenant": {"name": "acme", "workers": 10}});
    assert_eq!(s.post("/v2/tenants", ALICE, t.clone()).await.status, 403);
    assert_eq!(s.post("/v2/tenants", ADMIN, t.clone()).await.status, 200);
    assert_eq!(s.post("/v2/tenants", ADMIN, t).await.status, 409);
    let acme = s.get("/v2/tenants/acme", ADMIN).await.json();
    assert_eq!(acme["id"].as_str().map(str::len), Some(36));
    // Workers count against the provisioners' capacity (TenantProvisionerService); a PUT of an
    // unknown tenant writes it (writeTenantSpecification), within the capacity too.
    s.sim.set_tenant_worker_capacity(Some(12));
    let srv = &s;
    let put = |name: &str, workers: u64| {
        let body = json!({"name": name, "workers": workers});
        let path = format!("/v2/tenants/{name}");
        async move {
            srv.call(Method::PUT, &path, Some(ADMIN), &[], Some(body))
                .await
        }
    };
    let r = s
        .post("/v2/tenants", ADMIN, json!({"name": "wide", "workers": 3}))
        .await;
    assert_eq!(
        (r.status, r.text()),
        (409, "Not enough capacity to add tenant.".into())
    );
    let r = put("wide", 3).await;
    assert_eq!(
        (r.status, r.text()),
        (409, "Not enough capacity to update tenant.".into())
    );
    assert_eq!(put("wide", 2).await.status, 200, "created by a PUT");
    assert_eq!(s.get("/v2/tenants/wide", ADMIN).await.json()["workers"], 2);
    assert_eq!(put("acme", 11).await.status, 409, "12 - 2 left for acme");
    assert_eq!(put("acme", 10).await.status, 200);
    s.sim.set_tenant_worker_capacity(None);
    assert_eq!(put("acme", 100).await.status, 200);
    // Another tenant's admin cannot see the cluster; its own demo template works.
    assert_eq!(
        s.get(&format!("/v2/clusters/{id}"), ("admin", "acme"))
            .await
            .status,
        404
    );
    let other = s.create(("carol", "acme"), "theirs").await;
    assert_eq!(other, "00000002");
    assert_eq!(s.get("/v2/clusters/2", ALICE).await.status, 404);
    // Templates: tenant admin only.
    let tpl = json!({"name": "big", "defaults": {"services": [], "provider": "sim"}});
    assert_eq!(
        s.post("/v2/clustertemplates", ("carol", "acme"), tpl.clone())
            .await
            .status,
        403
    );
    assert_eq!(
        s.post("/v2/clustertemplates", ("admin", "acme"), tpl.clone())
            .await
            .status,
        200
    );
    assert_eq!(
        s.post("/v2/clustertemplates", ("admin", "acme"), tpl)
            .await
            .status,
        409
    );
    assert_eq!(
        s.get("/v2/clustertemplates/big", ("carol", "acme"))
            .await
            .status,
        200
    );
    assert_eq!(s.get("/v2/clustertemplates/big", ALICE).await.status, 404);
    // Abort a running create: incomplete.
    assert_eq!(
        s.post(&format!("/v2/clusters/{id}/abort"), ALICE, json!({}))
            .await
            .status,
        200
    );
    let st = s.status(&id, ALICE).await;
    assert_eq!(
        (st["status"].as_str(), st["actionstatus"].as_str()),
        (Some("incomplete"), Some("failed"))
    );
    s.stop().await;
}

#[tokio::test]
async fn list_filters_by_status() {
    let s = start(cfg(60_000)).await;
    s.create(ALICE, "one").await;
    s.create(ALICE, "two").await;
    let n = |v: Value| v.as_array().map_or(0, Vec::len);
    assert_eq!(
        n(s.get("/v2/clusters?status=active", ALICE).await.json()),
        0
    );
    assert_eq!(
        n(s.get("/v2/clusters?status=pending,bogus", ALICE)
            .await
            .json()),
        2
    );
    assert_eq!(n(s.get("/v2/clusters?status=bogus", ALICE).await.json()), 2);
    let list = s.get("/v2/clusters", ALICE).await.json();
    assert_eq!(list[0]["id"], "00000002");
    assert_eq!(list[0]["numNodes"], 2);
    assert_eq!(list[0]["clusterTemplate"]["name"], "demo");
    s.stop().await;
}

#[tokio::test]
async fn failures_and_persistence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("state.json");
    let s = start(SimConfig {
        data: Some(data.clone()),
        ..cfg(50)
    })
    .await;
    let id = s.create(ALICE, "keep").await;
    assert_eq!(s.wait_settled(&id, ALICE).await["status"], "active");
    s.stop().await;
    assert!(data.exists());
    // Restart on the same file, now with every operation failing.
    let s = start(SimConfig {
        data: Some(data.clone()),
        failure_rate: 1.0,
        ..cfg(50)
    })
    .await;
    assert_eq!(s.status(&id, ALICE).await["status"], "active");
    let r = s
        .call(
            Method::PUT,
            &format!("/v2/clusters/{id}/config"),
            Some(ALICE),
            &[],
            Some(json!({"config": {"a": 1}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let st = s.wait_settled(&id, ALICE).await;
    assert_eq!(
        (st["status"].as_str(), st["actionstatus"].as_str()),
        (Some("inconsistent"), Some("failed"))
    );
    // Ids continue after the restart; a failed create is incomplete.
    let next = s.create(ALICE, "doomed").await;
    assert_eq!(next, "00000002");
    assert_eq!(s.wait_settled(&next, ALICE).await["status"], "incomplete");
    // The log survived the restart too.
    assert_eq!(s.sim.log().first().map(|e| e.seq), Some(1));
    s.stop().await;
}

/// `POST /sim/expire/{id}` does what Coopr's lease janitor does (`ClusterCleanup.expireClusters`:
/// `requestClusterDelete` on an active or incomplete cluster whose lease ended): a delete job,
/// `pending`, then `terminated`, the lease in the past; the list (Coopr's `ClusterHandler`, no
/// status filter: every cluster, terminated ones too) shows it terminated. No `Coopr-*` headers
/// needed; a cluster the janitor would not pick is 409, an unknown one 404.
#[tokio::test]
async fn sim_expire_does_what_the_lease_janitor_does() {
    let s = start(cfg(50)).await;
    let id = s.create(ALICE, "lease").await;
    s.wait_settled(&id, ALICE).await;
    let r = s
        .call(Method::POST, &format!("/sim/expire/{id}"), None, &[], None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let st = s.status(&id, ALICE).await;
    assert_eq!(
        (st["status"].as_str(), st["action"].as_str()),
        (Some("pending"), Some("cluster_delete")),
        "{st}"
    );
    let done = s.wait_settled(&id, ALICE).await;
    assert_eq!(done["status"], "terminated");
    let details = s.get(&format!("/v2/clusters/{id}"), ALICE).await.json();
    let expire = details["expireTime"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(expire > 0 && expire <= now, "lease ended: {expire}");
    let list = s.get("/v2/clusters", ADMIN).await.json();
    let item = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(item["status"], "terminated");
    assert_eq!(item["progress"]["action"], "cluster_delete");
    let again = s
        .call(Method::POST, &format!("/sim/expire/{id}"), None, &[], None)
        .await;
    assert_eq!(again.status, 409, "terminated: the janitor skips it");
    let none = s
        .call(Method::POST, "/sim/expire/424242", None, &[], None)
        .await;
    assert_eq!(none.status, 404);
    let log = s.sim.log();
    assert!(
        log.iter()
            .any(|e| e.path == format!("/sim/expire/{id}") && e.status == 200),
        "{log:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn sim_log_records_writes_only() {
    let s = start(cfg(60_000)).await;
    let hdrs = [("x-coopr-router-epoch", "7"), ("x-request-id", "req-1")];
    let body = json!({"name": "l", "clusterTemplate": "demo", "numMachines": 1});
    let r = s
        .call(Method::POST, "/v2/clusters", Some(ALICE), &hdrs, Some(body))
        .await;
    assert_eq!(r.status, 200);
    s.get("/v2/clusters/1", ALICE).await;
    s.get("/v2/clusters", ALICE).await;
    s.post("/v2/getNodeProperties", ALICE, json!({"clusterId": "1"}))
        .await;
    // A failed write is not logged either.
    s.call(
        Method::DELETE,
        "/v2/clusters/00000001",
        Some(ALICE),
        &[],
        None,
    )
    .await;
    s.post("/v2/clusters/0001/pause", ALICE, json!({})).await;
    let log: Vec<LogEntry> = serde_json::from_value(
        s.call(Method::GET, "/sim/log", None, &[], None)
            .await
            .json(),
    )
    .expect("log shape");
    assert_eq!(log.len(), 2, "{log:?}");
    let e = &log[0];
    assert_eq!(
        (e.seq, e.method.as_str(), e.path.as_str(), e.status),
        (1, "POST", "/v2/clusters", 200)
    );
    assert_eq!(e.cluster_id.as_deref(), Some("00000001"));
    assert_eq!(e.epoch.as_deref(), Some("7"));
    assert_eq!(e.request_id.as_deref(), Some("req-1"));
    assert_eq!(
        (e.tenant.as_deref(), e.user.as_deref()),
        (Some("superadmin"), Some("alice"))
    );
    assert_eq!(log[1].path, "/v2/clusters/0001/pause");
    assert_eq!(log[1].cluster_id.as_deref(), Some("00000001"));
    assert_eq!(log[1].epoch, None);
    let since = s
        .call(Method::GET, "/sim/log?since=1", None, &[], None)
        .await
        .json();
    assert_eq!(since.as_array().map(Vec::len), Some(1));
    assert_eq!(s.sim.log().len(), 2);
    assert_eq!(s.status("1", ALICE).await["actionstatus"], "paused");
    s.stop().await;
}

#[tokio::test]
async fn two_listeners_share_one_state() {
    let sim = Sim::new(cfg(60_000)).expect("sim");
    let a = serve(sim.clone()).await;
    let b = serve(sim).await;
    assert_eq!(a.create(ALICE, "a").await, "00000001");
    assert_eq!(b.create(ALICE, "b").await, "00000002");
    assert_eq!(b.get("/v2/clusters/1", ALICE).await.status, 200);
    assert_eq!(a.sim.log().len(), 2);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn plugin_upload_and_download_stream() {
    let s = start(cfg(100)).await;
    let payload: Vec<u8> = (0..1_500_000u32)
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    let path = "/v2/plugins/automatortypes/chef-solo/cookbooks/hadoop";
    let upload = |who: (&'static str, &'static str)| {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}{path}", s.addr))
            .header("Coopr-UserID", who.0)
            .header("Coopr-TenantID", who.1)
            .body(Full::new(Bytes::from(payload.clone())))
            .expect("req");
        s.client.request(req)
    };
    assert_eq!(upload(ALICE).await.expect("send").status(), 403);
    let resp = upload(ADMIN).await.expect("send");
    assert_eq!(resp.status(), 200);
    let v: Value = serde_json::from_slice(&resp.into_body().collect().await.expect("b").to_bytes())
        .expect("json");
    let fnv = fnv1a64(0xcbf2_9ce4_8422_2325, &payload);
    assert_eq!(
        v,
        json!({"name": "hadoop", "version": 1, "status": "inactive",
        "size": payload.len(), "fnv1a64": format!("{fnv:016x}")})
    );
    assert_eq!(upload(ADMIN).await.expect("send").status(), 200);
    // Download version 2 (internal route, no headers): the pattern, `size` bytes long.
    let r = s
        .call(
            Method::GET,
            "/v2/tenants/superadmin/automatortypes/chef-solo/cookbooks/hadoop/versions/2",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), payload.len());
    assert!(
        r.body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == blob_byte(i as u64))
    );
    let r = s
        .call(
            Method::GET,
            "/v2/tenants/superadmin/automatortypes/chef-solo/cookbooks/hadoop/versions/3",
            None,
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    s.stop().await;
}

#[tokio::test]
async fn blob_download_over_http1_and_h2c() {
    let s = start(cfg(100)).await;
    let r = s
        .call(Method::GET, "/v2/sim/blob?size=300001", None, &[], None)
        .await;
    assert_eq!((r.status, r.body.len()), (200, 300_001));
    assert!(
        r.body
            .iter()
            .enumerate()
            .all(|(i, b)| *b == (i % 251) as u8)
    );
    assert_eq!(
        s.call(Method::GET, "/v2/sim/blob?size=x", None, &[], None)
            .await
            .status,
        400
    );
    let h2: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let resp = h2
        .request(
            Request::get(format!("http://{}/v2/sim/blob?size=70000", s.addr))
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await
        .expect("h2c");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(body.len(), 70_000);
    assert_eq!(body[69_999], blob_byte(69_999));
    s.stop().await;
}

#[tokio::test]
async fn two_ports_route_like_coopr() {
    let (s, tasks, stop_tasks) = start_two(cfg(50)).await;
    assert_eq!(s.sim.tasks_addr(), Some(tasks));
    assert_eq!(s.sim.addr(), Some(s.addr));
    let take = json!({"workerId": "w", "provisionerId": "p", "tenantId": "superadmin"});
    // Internal routes on the external port: 404, or 405 where the path exists there.
    let r = s
        .call(
            Method::POST,
            "/v2/tasks/take",
            None,
            &[],
            Some(take.clone()),
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("Not Found"), "{}", r.text());
    let reg = json!({"id": "p1", "capacityTotal": 1, "usage": {}});
    let r = s
        .call(
            Method::PUT,
            "/v2/provisioners/p1",
            None,
            &[],
            Some(reg.clone()),
        )
        .await;
    assert_eq!(r.status, 405);
    let r = s
        .call(
            Method::PUT,
            "/v2/plugins/providertypes/sim",
            None,
            &[],
            Some(json!({"name": "sim"})),
        )
        .await;
    assert_eq!(r.status, 405);
    // External routes on the tasks port.
    let r = s
        .call_to(tasks, Method::GET, "/status", None, &[], None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call_to(tasks, Method::GET, "/v2/clusters", Some(ADMIN), &[], None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call_to(
            tasks,
            Method::GET,
            "/v2/provisioners/p1",
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status, 405);
    // Each route on its own port works.
    assert_eq!(
        s.call(Method::GET, "/status", None, &[], None).await.status,
        200
    );
    let r = s
        .call_to(
            tasks,
            Method::PUT,
            "/v2/provisioners/p1",
            None,
            &[],
            Some(reg),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call_to(tasks, Method::POST, "/v2/tasks/take", None, &[], Some(take))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(s.get("/v2/provisioners/p1", ADMIN).await.status, 200);
    let _ = stop_tasks.send(());
    s.stop().await;
}

#[tokio::test]
async fn security_token_on_every_port() {
    let (s, tasks, stop_tasks) = start_two(SimConfig {
        security_token: Some("T0K3N".into()),
        ..cfg(50)
    })
    .await;
    for (addr, path) in [
        (s.addr, "/status"),
        (s.addr, "/v2/clusters"),
        (tasks, "/v2/tasks/take"),
    ] {
        let r = s
            .call_to(addr, Method::GET, path, Some(ADMIN), &[], None)
            .await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"coopr\"");
        assert_eq!(r.headers["content-type"], "application/json;charset=UTF-8");
        assert_eq!(r.json(), json!({"auth_uri": []}));
    }
    // Unknown paths too: the check comes before routing.
    let r = s.call(Method::GET, "/v2/nope", None, &[], None).await;
    assert_eq!(r.status, 401);
    let r = s
        .call(
            Method::GET,
            "/status",
            None,
            &[("authorization", "Bearer wrong")],
            None,
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["www-authenticate"],
        "Bearer realm=\"coopr\" error=\"invalid_token\" error_description=\"Invalid token signature.\""
    );
    assert_eq!(
        r.json(),
        json!({"error": "invalid_token", "error_description": "Invalid token signature.", "auth_uri": []})
    );
    let bearer = [("authorization", "Bearer T0K3N")];
    let r = s.call(Method::GET, "/status", None, &bearer, None).await;
    assert_eq!(r.status, 200);
    let r = s
        .call(Method::GET, "/v2/clusters", Some(ADMIN), &bearer, None)
        .await;
    assert_eq!(r.status, 200);
    let take = json!({"workerId": "w", "provisionerId": "p", "tenantId": "superadmin"});
    let r = s
        .call_to(
            tasks,
            Method::POST,
            "/v2/tasks/take",
            None,
            &bearer,
            Some(take),
        )
        .await;
    assert_eq!(r.status, 204);
    let _ = stop_tasks.send(());
    s.stop().await;
}

#[tokio::test]
async fn secrets_in_details() {
    let s = start(cfg(30)).await;
    let r = s
        .post(
            "/v2/clusters",
            ALICE,
            json!({"name": "sec", "clusterTemplate": "demo", "numMachines": 2,
                   "providerFields": {"region": "sim-2", "api_password": "ignored",
                                      "user_token": "sim-secret-user-token"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let d = s.get(&format!("/v2/clusters/{id}"), ALICE).await.json();
    let prov = &d["provider"]["provisioner"];
    assert_eq!(prov["api_password"], "sim-secret-api-password");
    assert_eq!(prov["api_user"], "sim-api-user");
    // Overridable admin field taken from the request; a non-overridable one ignored; a
    // sensitive user field kept out of the cluster.
    assert_eq!(prov["region"], "sim-2");
    assert!(!d.to_string().contains("sim-secret-user-token"));
    assert!(!d.to_string().contains("sim-secret-ssh-password"));
    s.wait_settled(&id, ALICE).await;
    let d = s.get(&format!("/v2/clusters/{id}"), ALICE).await.json();
    for n in d["nodes"].as_array().unwrap() {
        assert_eq!(
            n["provisionerResults"]["ssh-auth"],
            json!({"user": "root", "password": "sim-secret-ssh-password"})
        );
    }
    let pt = s.get("/v2/plugins/providertypes/sim", ALICE).await;
    assert_eq!(pt.status, 200);
    assert_eq!(
        pt.json()["parameters"]["admin"]["fields"]["api_password"]["type"],
        "password"
    );
    s.stop().await;
}

#[tokio::test]
async fn id_counter_continues_from_stored_value() {
    let s = start(SimConfig {
        id_start: 1,
        id_increment: 3,
        id_counter_start: Some(1000),
        ..cfg(50)
    })
    .await;
    let a = s.create(ALICE, "a").await;
    let b = s.create(ALICE, "b").await;
    assert_eq!((a.as_str(), b.as_str()), ("00001000", "00001003"));
    let d = s.get(&format!("/v2/clusters/{a}"), ALICE).await.json();
    assert_eq!(d["latestJobId"], "00001000-1000");
    s.stop().await;
}

#[tokio::test]
async fn job_ids_as_written_and_solve_layout() {
    let s = start(SimConfig::default().like_coopr()).await;
    let s = {
        // Short delay, Coopr's id rules.
        s.stop().await;
        start(SimConfig {
            op_delay: Duration::from_millis(40),
            ..SimConfig::default().like_coopr()
        })
        .await
    };
    let id = s.create(ALICE, "c").await;
    assert_eq!(id, "00000001");
    // solve_layout first (job 1, complete), then cluster_create (job 2).
    let plans = s.get("/v2/clusters/1/plans", ALICE).await.json();
    assert_eq!(plans[0]["action"], "SOLVE_LAYOUT");
    assert_eq!(plans[0]["id"], "00000001-001");
    assert_eq!(plans[1]["action"], "CLUSTER_CREATE");
    let d = s.get("/v2/clusters/1", ALICE).await.json();
    assert_eq!(d["latestJobId"], "00000001-002");
    assert_eq!(s.status(&id, ALICE).await["action"], "cluster_create");
    s.wait_settled(&id, ALICE).await;
    // DELETE with the id as written: the job is named after "1".
    let r = s
        .call(Method::DELETE, "/v2/clusters/1", Some(ALICE), &[], None)
        .await;
    assert_eq!(r.status, 200);
    let d = s.get("/v2/clusters/00000001", ALICE).await.json();
    assert_eq!(d["latestJobId"], "1-003");
    // The plan is found under the id as written only: Coopr compares the strings.
    let r = s.get("/v2/clusters/00000001/plans/1-003", ALICE).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Job 1-003 does not belong to cluster 00000001");
    let r = s.get("/v2/clusters/1/plans/1-003", ALICE).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["clusterId"], "1");
    assert_eq!(r.json()["action"], "CLUSTER_DELETE");
    // And a padded job id is not found under the unpadded path.
    assert_eq!(
        s.get("/v2/clusters/1/plans/00000001-002", ALICE)
            .await
            .status,
        400
    );
    assert_eq!(
        s.get("/v2/clusters/00000001/plans/00000001-002", ALICE)
            .await
            .status,
        200
    );
    assert_eq!(s.get("/v2/clusters/1/plans/1-x", ALICE).await.status, 400);
    s.stop().await;
}

#[tokio::test]
async fn external_tasks_wait_for_the_provisioner() {
    // First without a provisioner: the create stays pending.
    let (s, tasks, stop_tasks) = start_two(SimConfig {
        tasks: coopr_router::sim::TaskMode::External,
        op_delay: Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await;
    let id = s.create(ALICE, "ext").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let st = s.status(&id, ALICE).await;
    assert_eq!(st["status"], "pending");
    assert_eq!(st["stepscompleted"], 0);
    // An unregistered provisioner may not take.
    let take = json!({"workerId": "w", "provisionerId": "nobody", "tenantId": "superadmin"});
    let r = s
        .call_to(tasks, Method::POST, "/v2/tasks/take", None, &[], Some(take))
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "Provisioner nobody is not registered.")
    );
    let _ = stop_tasks.send(());
    s.stop().await;

    // Now with the built-in provisioner pointed at the sim's own tasks port, behind a token.
    let (s, tasks, stop_tasks) = start_two(SimConfig {
        tasks: coopr_router::sim::TaskMode::External,
        security_token: Some("tok".into()),
        provisioner: Some(coopr_router::sim::ProvisionerConfig {
            poll: Duration::from_millis(5),
            ..Default::default()
        }),
        ..SimConfig::default()
    })
    .await;
    assert_eq!(s.sim.tasks_addr(), Some(tasks));
    let bearer = [("authorization", "Bearer tok")];
    let r = s
        .call(
            Method::POST,
            "/v2/clusters",
            Some(ALICE),
            &bearer,
            Some(json!({"name": "ext", "clusterTemplate": "demo", "numMachines": 2})),
        )
        .await;
    assert_eq!(r.status, 200);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    for _ in 0..400 {
        last = s
            .call(
                Method::GET,
                &format!("/v2/clusters/{id}/status"),
                Some(ALICE),
                &bearer,
                None,
            )
            .await
            .json();
        if last["status"] != "pending" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(last["status"], "active", "{last}");
    assert_eq!(last["actionstatus"], "complete");
    assert_eq!(last["stepstotal"], last["stepscompleted"]);
    let d = s
        .call(
            Method::GET,
            &format!("/v2/clusters/{id}"),
            Some(ALICE),
            &bearer,
            None,
        )
        .await
        .json();
    for n in d["nodes"].as_array().unwrap() {
        assert_eq!(
            n["provisionerResults"]["ssh-auth"]["password"],
            "sim-secret-ssh-password"
        );
        assert!(
            n["properties"]["hostname"]
                .as_str()
                .unwrap()
                .starts_with("host-")
        );
    }
    let provs = s
        .call(Method::GET, "/v2/provisioners", Some(ADMIN), &bearer, None)
        .await;
    assert_eq!(provs.json().as_array().map(Vec::len), Some(1));
    let _ = stop_tasks.send(());
    s.stop().await;
}
