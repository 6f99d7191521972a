//! The local Coopr servers: round robin, a server that refuses connections is skipped for a
//! while, a hung server gives 504; and the 421 path between routers whose maps disagree.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::app::{self, Listeners};
use coopr_router::config;
use http::{Method, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::net::TcpListener;

async fn listeners() -> Listeners {
    Listeners {
        client: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    }
}

/// A loopback address nothing listens on.
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A one-DC config with the given backends and extra text.
fn one_dc(backends: &[String], extra: &str) -> String {
    let mut t = "dc = \"dc1\"\nshard_count = 3\n\n[listen]\nclient = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\nadmin = \"127.0.0.1:3\"\n\n".to_string();
    for b in backends {
        t.push_str(&format!("[[backends]]\nurl = \"{b}\"\n\n"));
    }
    t.push_str("[dcs.dc1]\npeer_url = \"http://127.0.0.1:2\"\nid_start = 1\nid_increment = 1\n\n");
    t.push_str(extra);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_skips_a_server_that_refuses_connections() {
    let d = start(Duration::from_millis(50)).await;
    let live = format!("http://{}", d.dcs[0].sim_addr);
    let dead = format!("http://{}", dead_addr());
    let cfg = config::parse(&one_dc(
        &[dead, live],
        "[timeouts]\nbackend_cooldown_ms = 60000\n",
    ))
    .unwrap();
    let router = app::start(cfg, listeners().await).unwrap();
    // Every request succeeds: a refused connection is retried on the next server (nothing was
    // sent), and the refusing server is then skipped.
    for _ in 0..6 {
        let r = get(&format!(
            "http://{}/v2/clustertemplates",
            router.client_addr
        ))
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let routes = call(
        Method::GET,
        &format!("http://{}/admin/routes", router.admin_addr),
        &[],
        "",
    )
    .await
    .json();
    let health: Vec<bool> = routes["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["healthy"].as_bool().unwrap())
        .collect();
    assert_eq!(health, vec![false, true], "{routes}");
    router.shutdown();
    router.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_gives_504() {
    // Accepts connections and reads, but never answers.
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    let cfg = config::parse(&one_dc(
        &[format!("http://{hung_addr}")],
        "[timeouts]\nresponse_ms = 300\n",
    ))
    .unwrap();
    let router = app::start(cfg, listeners().await).unwrap();
    let r = get(&format!("http://{}/v2/clusters/7", router.client_addr)).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-route"), "error");
    assert!(r.json()["error"].as_str().unwrap().contains("in time"));
    router.shutdown();
    router.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_421_from_the_peer_is_retried_on_a_fresh_map_then_refused() {
    // dc3 believes dc2 owns shard 1; dc2 (rightly) thinks dc1 does.
    let d = start_with(Duration::from_millis(50), |i| {
        if i == 2 {
            "[[ownership.shards]]\nshard = 1\nowner = \"dc2\"\n".to_string()
        } else {
            String::new()
        }
    })
    .await;
    let id = create_active(&d.dcs[0], "moved").await;
    let path = format!("/v2/clusters/{id}/services/restart");
    let r = post(&d.dcs[2].url(&path), "").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.header("retry-after"), "1");
    assert!(r.json()["error"].as_str().unwrap().contains("dc2"));
    assert!(
        !d.dcs.iter().any(|dc| dc.log_has("POST", &path)),
        "no DC applied it"
    );
    // Once dc3's map agrees (a config reload publishes the corrected map), the write goes through.
    let router = d.dcs[2].router.as_ref().unwrap();
    let fixed = config::parse(
        &d.dcs[2]
            .config_text
            .replace("owner = \"dc2\"", "owner = \"dc1\""),
    )
    .unwrap();
    assert!(router.reloader.apply(fixed).applied);
    let r = post(&d.dcs[2].url(&path), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    assert!(d.dcs[0].log_has("POST", &path));
}
