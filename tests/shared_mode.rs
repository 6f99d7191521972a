//! Shared-database mode: three DCs in front of one simulator state (three listeners, one id
//! counter). Writes through any DC are applied once; when every local server of a DC is down its
//! router sends requests to the next healthy DC and `/ready` says so; traffic comes back after
//! the rise threshold; a write that broke after it was sent is not replayed elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::app::{self, Listeners, RouterHandle};
use coopr_router::config;
use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
use coopr_router::sim::{Sim, SimConfig};
use http::{Method, StatusCode};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

struct World {
    sim: Sim,
    sim_addrs: Vec<SocketAddr>,
    sim_stops: Vec<Option<ShutdownTrigger>>,
    routers: Vec<RouterHandle>,
}

impl World {
    fn url(&self, dc: usize, path: &str) -> String {
        format!("http://{}{path}", self.routers[dc].client_addr)
    }
    fn admin(&self, dc: usize, path: &str) -> String {
        format!("http://{}{path}", self.routers[dc].admin_addr)
    }
    fn serve_sim(&mut self, dc: usize, listener: TcpListener) {
        let (stop, shutdown) = ShutdownTrigger::new();
        tokio::spawn(self.sim.clone().serve(listener, Shutdown::wait(shutdown)));
        self.sim_stops[dc] = Some(stop);
    }
    /// Stops DC `dc`'s Coopr server (its listener of the shared simulator).
    fn kill_server(&mut self, dc: usize) {
        if let Some(s) = self.sim_stops[dc].take() {
            s.trigger();
        }
    }
    fn log_count(&self, path: &str) -> usize {
        self.sim.log().iter().filter(|e| e.path == path).count()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for r in &self.routers {
            r.shutdown();
        }
        for s in self.sim_stops.iter().flatten() {
            s.trigger();
        }
    }
}

/// `dc1_backend` replaces dc1's server with another address.
async fn world(health: &str, dc1_backend: Option<SocketAddr>) -> World {
    let sim = Sim::new(SimConfig {
        op_delay: Duration::from_millis(100),
        name: "shared".into(),
        ..SimConfig::default()
    })
    .unwrap();
    let mut w = World {
        sim,
        sim_addrs: vec![],
        sim_stops: vec![None, None, None],
        routers: vec![],
    };
    let mut addrs = Vec::new();
    let mut listeners = Vec::new();
    for dc in 0..3 {
        let sl = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut sim_addr = sl.local_addr().unwrap();
        w.sim_addrs.push(sim_addr);
        w.serve_sim(dc, sl);
        if dc == 0
            && let Some(b) = dc1_backend
        {
            sim_addr = b;
        }
        let l = Listeners {
            client: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            peer: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            provisioner: None,
        };
        addrs.push((
            l.client.local_addr().unwrap(),
            l.peer.local_addr().unwrap(),
            l.admin.local_addr().unwrap(),
            sim_addr,
        ));
        listeners.push(l);
    }
    let extra = format!("[ownership]\nmode = \"shared\"\n\n[health]\n{health}\n");
    for (i, l) in listeners.into_iter().enumerate() {
        let cfg = config::parse(&config_text(i, &addrs, &extra)).unwrap();
        w.routers.push(app::start(cfg, l).unwrap());
    }
    w
}

const FAST_HEALTH: &str = "interval_ms = 50\ntimeout_ms = 200\nrise = 2\nfall = 2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_any_dc_is_applied_once_in_the_shared_state() {
    let w = world(FAST_HEALTH, None).await;
    let r = post(
        &w.url(1, "/v2/clusters"),
        "{\"name\":\"s\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc2");
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(w.log_count("/v2/clusters"), 1);
    // Every DC sees it at once (one database), and serves it locally.
    eventually(WAIT, "active", || async {
        let r = get(&w.url(2, &format!("/v2/clusters/{id}/status"))).await;
        (r.status == StatusCode::OK && r.json()["status"] == "active").then_some(())
    })
    .await;
    let path = format!("/v2/clusters/{id}/services/restart");
    let r = post(&w.url(2, &path), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-route"), "local");
    assert_eq!(r.header("x-coopr-router-dc"), "dc3");
    assert!(
        !r.header("x-coopr-router-shard").is_empty(),
        "ids are still classified by shard"
    );
    assert_eq!(w.log_count(&path), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_whose_servers_are_down_sends_traffic_to_the_next_dc_and_takes_it_back() {
    let mut w = world(FAST_HEALTH, None).await;
    let r = get(&w.url(0, "/v2/clustertemplates")).await;
    assert_eq!(r.header("x-coopr-router-route"), "local");
    w.kill_server(0);
    // From the first request on, nothing fails: a refused connection moves on to dc2 at once,
    // and after the fall threshold dc1 stops trying its own server.
    eventually(WAIT, "dc1 marked down", || async {
        let r = get(&w.url(0, "/v2/clustertemplates")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-coopr-router-route"), "forwarded");
        assert_eq!(r.header("x-coopr-router-dc"), "dc2");
        let ready = call(Method::GET, &w.admin(0, "/ready"), &[], "").await;
        (ready.status == StatusCode::SERVICE_UNAVAILABLE && ready.text().contains("backend"))
            .then_some(())
    })
    .await;
    // A create through dc1 lands once, through dc2.
    let r = post(
        &w.url(0, "/v2/clusters"),
        "{\"name\":\"away\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc2");
    assert_eq!(w.log_count("/v2/clusters"), 1);
    // The server comes back on its address: traffic returns after the rise threshold.
    let l = TcpListener::bind(w.sim_addrs[0]).await.unwrap();
    w.serve_sim(0, l);
    eventually(WAIT, "dc1 local again", || async {
        let r = get(&w.url(0, "/v2/clustertemplates")).await;
        (r.header("x-coopr-router-route") == "local").then_some(())
    })
    .await;
    let ready = call(Method::GET, &w.admin(0, "/ready"), &[], "").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_broke_after_it_was_sent_is_not_replayed() {
    // dc1's "server" reads the request and hangs up without answering.
    let breaker = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = breaker.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = breaker.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
            });
        }
    });
    // Slow probes, so dc1 still believes its server is up when the write arrives.
    let w = world(
        "interval_ms = 60000\ntimeout_ms = 200\nrise = 1\nfall = 5",
        Some(addr),
    )
    .await;
    let r = post(
        &w.url(0, "/v2/clusters"),
        "{\"name\":\"once\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-error"), "backend_error");
    assert_eq!(w.log_count("/v2/clusters"), 0, "not replayed on another DC");
}
