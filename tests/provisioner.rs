//! Coopr's internal API (what Coopr binds to `server.tasks.port`, which authenticates nobody:
//! task takes carry the provider's credentials) is refused on the client and peer ports and
//! never reaches Coopr from there; the provisioner listener serves it from the local servers'
//! tasks API, over TLS with client certificates when `[tls.provisioner]` asks for them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use coopr_router::app::{self, Listeners, RouterHandle};
use coopr_router::config;
use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
use coopr_router::sim::{Sim, SimConfig};
use coopr_router::tls::dev::{DevCa, Usage, Validity};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use support::*;
use tokio::net::TcpListener;

/// The internal routes, one per family of Coopr's TaskHandler and ProvisionerHandler.
const INTERNAL: &[(&str, &str)] = &[
    ("POST", "/v2/tasks/take"),
    ("POST", "/v2/tasks/finish"),
    ("PUT", "/v2/provisioners/p-evil"),
    ("POST", "/v2/provisioners/p-evil/heartbeat"),
    ("DELETE", "/v2/provisioners/p-evil"),
    ("PUT", "/v2/plugins/providertypes/aws"),
    ("GET", "/v2/tenants/t1/providertypes/aws/keys/k1/versions/1"),
];

struct One {
    router: RouterHandle,
    sim: SocketAddr,
    _stop: ShutdownTrigger,
    _dir: tempfile::TempDir,
}

/// One DC: a simulator and a router whose config gets `listen_extra` in `[listen]` and `extra`
/// at the end; the provisioner listener is bound when `provisioner` is set.
async fn one(provisioner: bool, extra: &str) -> One {
    let sim = Sim::new(SimConfig::default()).unwrap();
    let sl = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = sl.local_addr().unwrap();
    let (stop, shutdown) = ShutdownTrigger::new();
    tokio::spawn(sim.serve(sl, Shutdown::wait(shutdown)));
    let pl = if provisioner {
        Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let listen_extra = match &pl {
        Some(l) => format!("provisioner = \"{}\"\n", l.local_addr().unwrap()),
        None => String::new(),
    };
    let text = format!(
        "dc = \"dc1\"\nshard_count = {shards}\n\n[listen]\nclient = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\nadmin = \"127.0.0.1:3\"\n{listen_extra}\n\
         [[backends]]\nurl = \"http://{sim_addr}\"\ntasks_url = \"http://{sim_addr}\"\n\n\
         [dcs.dc1]\npeer_url = \"http://127.0.0.1:2\"\nid_start = 1\nid_increment = {inc}\n\n{extra}",
        inc = if extra.contains("[dcs.dc2]") { 2 } else { 1 },
        shards = if extra.contains("[dcs.dc2]") { 4 } else { 3 }
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = config::load(&path).unwrap();
    let l = Listeners {
        client: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: pl,
    };
    One {
        router: app::start(cfg, l).unwrap(),
        sim: sim_addr,
        _stop: stop,
        _dir: dir,
    }
}

/// Whether the simulator logged a state change at `path`.
async fn sim_logged(sim: SocketAddr, path: &str) -> bool {
    let log = get(&format!("http://{sim}/sim/log")).await.json();
    log.as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"].as_str() == Some(path))
}

#[tokio::test]
async fn internal_routes_are_refused_on_the_client_and_peer_ports() {
    let d = one(false, "").await;
    // The check can fail: a provisioner registered directly with the simulator is logged.
    let direct = call(
        Method::PUT,
        &format!("http://{}/v2/provisioners/p-direct", d.sim),
        &[],
        r#"{"id":"p-direct","capacityTotal":10,"capacityFree":10,"host":"h","port":1}"#,
    )
    .await;
    assert!(direct.status.is_success(), "{}", direct.text());
    assert!(sim_logged(d.sim, "/v2/provisioners/p-direct").await);
    for port in [d.router.client_addr, d.router.peer_addr] {
        for (method, path) in INTERNAL {
            let r = call(
                Method::from_bytes(method.as_bytes()).unwrap(),
                &format!("http://{port}{path}"),
                &[],
                r#"{"id":"p-evil","capacityTotal":10,"capacityFree":10,"host":"h","port":1,"provisionerId":"p-evil","workerId":"w","tenantId":"t1"}"#,
            )
            .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path} on {port}");
            assert_eq!(r.header("x-coopr-router-error"), "internal_route");
            assert_eq!(
                r.json()["error"]
                    .as_str()
                    .map(|s| s.contains("listen.provisioner")),
                Some(true)
            );
        }
    }
    assert!(
        !sim_logged(d.sim, "/v2/provisioners/p-evil").await,
        "nothing reached Coopr's tasks API"
    );
    // External routes still pass.
    assert_eq!(
        get(&format!("http://{}/status", d.router.client_addr))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_provisioner_listener_serves_the_internal_api() {
    let d = one(true, "").await;
    let p = d.router.provisioner_addr.expect("a provisioner listener");
    let r = call(
        Method::PUT,
        &format!("http://{p}/v2/provisioners/p1"),
        &[],
        r#"{"id":"p1","capacityTotal":10,"capacityFree":10,"host":"h","port":1}"#,
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    assert_eq!(r.header("x-coopr-router-route"), "local");
    assert!(sim_logged(d.sim, "/v2/provisioners/p1").await);
    let take = call(
        Method::POST,
        &format!("http://{p}/v2/tasks/take"),
        &[],
        r#"{"provisionerId":"p1","workerId":"w1","tenantId":"superadmin"}"#,
    )
    .await;
    assert!(
        take.status.is_success() || take.status == StatusCode::NO_CONTENT,
        "{}",
        take.status
    );
}

#[test]
fn a_provisioner_listener_needs_each_servers_tasks_url() {
    let text = "dc = \"dc1\"\nshard_count = 3\n\n[listen]\nclient = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\nadmin = \"127.0.0.1:3\"\nprovisioner = \"127.0.0.1:4\"\n\n\
                [[backends]]\nurl = \"http://127.0.0.1:5\"\n\n[dcs.dc1]\npeer_url = \"http://127.0.0.1:2\"\nid_start = 1\nid_increment = 1\n";
    let e = config::parse(text).unwrap_err().to_string();
    assert!(e.contains("backends.0.tasks_url"), "{e}");
}

#[tokio::test]
async fn tls_provisioner_refuses_a_client_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("provisioner CA").unwrap();
    let server = ca
        .issue(
            &Usage::Server(vec!["localhost".into(), "127.0.0.1".into()]),
            Validity::current(1),
        )
        .unwrap();
    let client = ca
        .issue(&Usage::Peer("prov1".into()), Validity::current(1))
        .unwrap();
    let w = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let ca_file = w("ca.pem", &ca.cert_pem());
    let cert = w("server.pem", &server.cert_pem);
    let key = w("server.key", &server.key_pem);
    let d = one(
        true,
        &format!(
            "[tls.provisioner]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\nclient_ca_file = \"{ca_file}\"\n"
        ),
    )
    .await;
    let p = d.router.provisioner_addr.unwrap();
    let req = || {
        Request::get(format!("https://localhost:{}/status", p.port()))
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // Without a client certificate: refused (the handshake or the first read fails).
    let anonymous =
        support::tls::client_config(dir.path().join("ca.pem").as_path(), None, &[b"http/1.1"]);
    let refused = match support::tls::connect(p, "localhost", anonymous).await {
        Err(_) => true,
        Ok(tls) => support::tls::request(tls, req()).await.is_err(),
    };
    assert!(refused, "a provisioner without a certificate is refused");
    // With one signed by the provisioner CA: served by Coopr's tasks API.
    let with = support::tls::client_config(
        dir.path().join("ca.pem").as_path(),
        Some(&client),
        &[b"http/1.1"],
    );
    let tls = support::tls::connect(p, "localhost", with).await.unwrap();
    let r = support::tls::request(tls, req()).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
}

/// A standby server's provisioners reach its tasks API under `/standby/{home}/` on the
/// provisioner listener; an unknown home gets 404 `no_standby`.
#[tokio::test]
async fn standby_provisioners_reach_the_standby_tasks_api() {
    let standby = Sim::new(SimConfig {
        name: "standby-for-dc2".into(),
        ..SimConfig::default()
    })
    .unwrap();
    let sl = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let standby_addr = sl.local_addr().unwrap();
    let (_stop, shutdown) = ShutdownTrigger::new();
    tokio::spawn(standby.serve(sl, Shutdown::wait(shutdown)));
    let d = one(
        true,
        &format!(
            "[dcs.dc2]\npeer_url = \"http://127.0.0.1:9\"\nid_start = 2\nid_increment = 2\n\n\
             [standby.dc2]\nurl = \"http://{standby_addr}\"\ntasks_url = \"http://{standby_addr}\"\n"
        ),
    )
    .await;
    let p = d.router.provisioner_addr.unwrap();
    let r = call(
        Method::PUT,
        &format!("http://{p}/standby/dc2/v2/provisioners/p-standby"),
        &[],
        r#"{"id":"p-standby","capacityTotal":10,"capacityFree":10,"host":"h","port":1}"#,
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    assert_eq!(r.header("x-coopr-router-route"), "standby");
    assert!(sim_logged(standby_addr, "/v2/provisioners/p-standby").await);
    assert!(!sim_logged(d.sim, "/v2/provisioners/p-standby").await);
    let r = call(
        Method::POST,
        &format!("http://{p}/standby/dc9/v2/tasks/take"),
        &[],
        "{}",
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("x-coopr-router-error"), "no_standby");
}
