//! Three DCs in-process, static map: writes reach the owner DC and nowhere else, reads of owned
//! clusters and id-less requests stay local, a request from a peer is never forwarded again,
//! clients cannot spoof router headers, errors are clear, and an adopted shard without a standby
//! server is refused naming its home DC.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use std::time::Duration;
use support::*;

const FAST: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_another_dc_lands_in_the_owner_only() {
    let d = start(FAST).await;
    let (dc1, dc2, dc3) = (&d.dcs[0], &d.dcs[1], &d.dcs[2]);
    // dc1's Coopr creates ids 1, 4, 7, ...: shard 1, dc1's home shard.
    let id = create_active(dc1, "alpha").await;
    assert_eq!(id, "00000001");
    let path = format!("/v2/clusters/{id}/services/restart");
    let r = post(&dc2.url(&path), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    assert_eq!(r.header("x-coopr-router-route"), "forwarded");
    assert_eq!(r.header("x-coopr-router-shard"), "1");
    assert!(!r.header("x-request-id").is_empty());
    // The owner's answer to the peer router itself carries no DC, route or shard: the
    // forwarding router names them (above), so they would be written and parsed for nothing.
    let r = call(
        Method::GET,
        &dc1.peer_url(&format!("/v2/clusters/{id}/status")),
        &[ADMIN[0], ADMIN[1], ("x-coopr-router-hop", "dc2")],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for name in [
        "x-coopr-router-dc",
        "x-coopr-router-route",
        "x-coopr-router-shard",
    ] {
        assert_eq!(r.header(name), "", "{name} on an answer to a peer");
    }
    assert!(dc1.log_has("POST", &path), "dc1 log: {:?}", dc1.log());
    assert!(!dc2.log_has("POST", &path) && !dc3.log_has("POST", &path));
    // The same cluster under another spelling of its id goes to the same owner.
    let r = post(&dc3.url("/v2/clusters/1/services/stop"), "").await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "pending after the restart: {}",
        r.text()
    );
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    // The request id the client chose travels to the owner's Coopr server.
    eventually(Duration::from_secs(5), "active again", || async {
        (get(&dc1.url(&format!("/v2/clusters/{id}/status")))
            .await
            .json()["status"]
            == "active")
            .then_some(())
    })
    .await;
    let mut h = ADMIN.to_vec();
    h.push(("x-request-id", "trace-me-42"));
    let r = call(
        Method::POST,
        &dc3.url("/v2/clusters/00000001/services/start"),
        &h,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-request-id"), "trace-me-42");
    let entry = dc1
        .log()
        .into_iter()
        .find(|e| e.path.ends_with("/services/start"))
        .expect("logged at dc1");
    assert_eq!(entry.request_id.as_deref(), Some("trace-me-42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_local_when_owned_and_read_through_otherwise() {
    let d = start(FAST).await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    let id = create_active(dc1, "beta").await;
    let r = get(&dc1.url(&format!("/v2/clusters/{id}"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-coopr-router-route"), "local");
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    assert_eq!(r.json()["id"], id.as_str());
    let r = get(&dc2.url(&format!("/v2/clusters/{id}/status"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-coopr-router-route"), "forwarded");
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    assert_eq!(r.json()["clusterid"], id.as_str());
    // Coopr's own errors pass through untouched.
    let r = get(&dc2.url("/v2/clusters/00000004")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    let r = call(
        Method::GET,
        &dc1.url(&format!("/v2/clusters/{id}")),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_less_requests_and_creates_stay_local() {
    let d = start(FAST).await;
    let dc2 = &d.dcs[1];
    let r = get(&dc2.url("/v2/clustertemplates")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-route"), "local");
    assert_eq!(r.header("x-coopr-router-dc"), "dc2");
    let r = call(Method::GET, &dc2.url("/status"), &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-coopr-router-dc"), "dc2");
    // A create at dc2 lands in dc2's Coopr, in dc2's id partition.
    let id = create_active(dc2, "gamma").await;
    assert_eq!(id, "00000002");
    assert!(dc2.log_has("POST", "/v2/clusters"));
    assert!(!d.dcs[0].log_has("POST", "/v2/clusters") && !d.dcs[2].log_has("POST", "/v2/clusters"));
    // The list is answered by the local server.
    let r = get(&dc2.url("/v2/clusters")).await;
    assert_eq!(r.header("x-coopr-router-route"), "local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_writes_route_by_the_body_and_bad_bodies_are_refused() {
    let d = start(FAST).await;
    let (dc1, dc3) = (&d.dcs[0], &d.dcs[2]);
    let id = create_active(dc1, "delta").await;
    let node =
        format!("{{\"id\":\"n-1\",\"clusterId\":\"{id}\",\"services\":[],\"properties\":{{}}}}");
    let r = post(&dc3.url("/v2/nodes"), &node).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    assert!(dc1.log_has("POST", "/v2/nodes"));
    // getNodeProperties is a read: through dc3 it is read through to the owner.
    let r = post(
        &dc3.url("/v2/getNodeProperties"),
        &format!("{{\"clusterId\":\"{id}\"}}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    for (body, status) in [
        ("{\"clusterId\":\"x7\"}", StatusCode::BAD_REQUEST),
        ("[\"not an object\"]", StatusCode::BAD_REQUEST),
        ("{nope", StatusCode::BAD_REQUEST),
    ] {
        let r = post(&dc3.url("/v2/nodes"), body).await;
        assert_eq!(r.status, status, "{body}");
        let j = r.json();
        assert!(
            j["error"].as_str().is_some_and(|e| !e.is_empty()) && j["request_id"].is_string(),
            "{j}"
        );
    }
    // A body to inspect that is over the limit: 413, before any of it reaches a Coopr server.
    let big = format!(
        "{{\"clusterId\":\"{id}\",\"pad\":\"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let r = post(&dc3.url("/v2/nodes"), &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = send(
        Method::POST,
        &dc3.url("/v2/nodes"),
        &ADMIN,
        GenBody::new(200 * 1024),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Bad ids in paths: 400 from the router.
    for path in [
        "/v2/clusters/abc",
        "/v2/clusters/-5/status",
        "/v2/clusters/99999999999999999999",
        "/v2/clusters/../x",
    ] {
        let r = get(&dc3.url(path)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(r.header("content-type"), "application/json");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_a_peer_is_never_forwarded_again() {
    let d = start(FAST).await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    let id = create_active(dc1, "eps").await;
    let before = dc1.log().len();
    let path = format!("/v2/clusters/{id}/services/restart");
    // Straight to dc2's peer port, as if dc3's router had sent it: dc2 is not the owner.
    let r = call(
        Method::POST,
        &dc2.peer_url(&path),
        &[ADMIN[0], ADMIN[1], ("x-coopr-router-hop", "dc3")],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST, "{}", r.text());
    let view = r.json();
    assert_eq!(view["owner"], "dc1");
    assert_eq!(view["dc"], "dc2");
    assert_eq!(view["shard"], 1);
    assert_eq!(dc1.log().len(), before, "nothing reached the owner");
    // A read from a peer for a cluster it does not own: also 421, never read through.
    let r = get(&dc2.peer_url(&format!("/v2/clusters/{id}"))).await;
    assert_eq!(r.status, StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_spoof_router_headers() {
    let d = start(FAST).await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    let id = create_active(dc1, "zeta").await;
    // A client claiming to be a peer is still treated as a client: forwarded, not refused.
    let h = [
        ADMIN[0],
        ADMIN[1],
        ("x-coopr-router-hop", "dc3"),
        ("x-coopr-router-epoch", "999"),
    ];
    let r = call(
        Method::POST,
        &dc2.url(&format!("/v2/clusters/{id}/services/restart")),
        &h,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-route"), "forwarded");
    let e = dc1
        .log()
        .into_iter()
        .rev()
        .find(|e| e.path.ends_with("/services/restart"))
        .unwrap();
    assert_eq!(
        e.epoch, None,
        "the client's epoch header never reaches Coopr"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_owners_and_servers_get_clear_errors() {
    let mut d = start(FAST).await;
    let id = create_active(&d.dcs[0], "eta").await;
    d.dcs[0].stop_router().await;
    let dc2 = &d.dcs[1];
    let r = post(&dc2.url(&format!("/v2/clusters/{id}/services/restart")), "").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.header("retry-after"), "1");
    assert!(r.json()["error"].as_str().unwrap().contains("dc1"));
    // A DC whose only Coopr server is gone: 502.
    let d = start(FAST).await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let text = d.dcs[2].config_text.replace(
        &format!("url = \"http://{}\"", d.dcs[2].sim_addr),
        &format!("url = \"http://{dead}\""),
    );
    let cfg = coopr_router::config::parse(&text).unwrap();
    let listeners = coopr_router::app::Listeners {
        client: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    };
    let router = coopr_router::app::start(cfg, listeners).unwrap();
    let r = get(&format!(
        "http://{}/v2/clustertemplates",
        router.client_addr
    ))
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(r.json()["request_id"].is_string());
    let r = call(
        Method::GET,
        &format!("http://{}/ready", router.admin_addr),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    router.shutdown();
    router.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let d = start(FAST).await;
    let id = create_active(&d.dcs[0], "theta").await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let req = http::Request::get(d.dcs[1].url(&format!("/v2/clusters/{id}/status")))
        .header("Coopr-UserID", "admin")
        .header("Coopr-TenantID", "superadmin")
        .body(Default::default())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-coopr-router-dc"], "dc1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_shard_without_a_standby_is_refused_naming_its_home() {
    // Every map says dc1 adopted shard 0 (home dc3); dc1 has no standby server for dc3.
    let d = start_with(Duration::from_millis(50), |i| {
        let moved = "[[ownership.shards]]\nshard = 0\nowner = \"dc1\"\nreplicas = [\"dc3\"]\n";
        match i {
            0 => format!("{NO_STANDBY}{moved}"),
            _ => moved.to_string(),
        }
    })
    .await;
    let body = "{\"id\":\"adopted-node\",\"clusterId\":\"00000012\"}";
    for dc in [&d.dcs[0], &d.dcs[1]] {
        let r = call(Method::POST, &dc.url("/v2/nodes"), &ADMIN, body).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.header("retry-after"), "1");
        assert_eq!(r.header("x-coopr-router-error"), "adopted");
        assert_eq!(r.json()["home_dc"], "dc3", "{}", r.text());
        assert_eq!(r.json()["shard"], 0);
    }
    let r = call(
        Method::GET,
        &d.dcs[0].url("/v2/clusters/00000012"),
        &ADMIN,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.json()["home_dc"], "dc3");
    assert!(
        d.dcs.iter().all(|dc| !dc.log_has("POST", "/v2/nodes")),
        "nothing was applied anywhere"
    );
}
