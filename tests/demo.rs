//! The `demo` command as a user runs it: three DCs come up on the documented ports, the printed
//! curl flow works (create in dc1, write through dc2 lands in dc1), and SIGINT stops it cleanly
//! with exit status 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// A base port whose 24 demo ports (etcd's included) are all free right now.
fn free_base() -> u16 {
    for base in (20_000u16..30_000).step_by(1_000) {
        let all_free = (0..3u16).all(|i| {
            (0..8u16)
                .all(|o| std::net::TcpListener::bind(("127.0.0.1", base + 100 * i + o)).is_ok())
        });
        if all_free {
            return base;
        }
    }
    panic!("no free base port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_the_documented_flow_and_stops_on_sigint() {
    let base = free_base();
    let mut child = Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .args([
            "demo",
            "--base-port",
            &base.to_string(),
            "--op-delay-ms",
            "100",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    let url =
        |dc: u16, off: u16, path: &str| format!("http://127.0.0.1:{}{path}", base + 100 * dc + off);
    for dc in 0..3 {
        let ready = url(dc, 2, "/ready");
        eventually(Duration::from_secs(20), "demo ready", || async {
            let ok =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Empty<bytes::Bytes>>()
                    .get(ready.parse().unwrap())
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK);
            ok.then_some(())
        })
        .await;
    }
    // etcd is on PATH (Debian's etcd-server, as .ci/run installs): the routers take ownership
    // from the demo's own three-member etcd.
    let routes = get(&url(1, 2, "/admin/routes")).await.json();
    assert_eq!(routes["source"], "etcd", "{routes}");
    assert_eq!(routes["stale"], false, "{routes}");
    let r = post(
        &url(0, 0, "/v2/clusters"),
        "{\"name\":\"demo\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["id"], "00000001");
    eventually(Duration::from_secs(10), "active", || async {
        (get(&url(0, 0, "/v2/clusters/00000001/status")).await.json()["status"] == "active")
            .then_some(())
    })
    .await;
    // dc2 answers a read of dc1's cluster from its replica once replication delivered it.
    eventually(Duration::from_secs(10), "replica read in dc2", || async {
        let r = get(&url(1, 0, "/v2/clusters/00000001")).await;
        (r.header("x-coopr-router-route") == "replica").then_some(())
    })
    .await;
    let r = post(&url(1, 0, "/v2/clusters/00000001/services/restart"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    let log = call(Method::GET, &url(0, 3, "/sim/log"), &[], "")
        .await
        .json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "/v2/clusters/00000001/services/restart"),
        "{log}"
    );
    let log2 = call(Method::GET, &url(1, 3, "/sim/log"), &[], "")
        .await
        .json();
    assert!(
        !log2.as_array().unwrap().iter().any(|e| e["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/v2/clusters"))),
        "{log2}"
    );
    // The cluster went active because dc1's provisioner took and finished its tasks through
    // dc1's router (its provisioner listener, base+5), the only address it was given.
    assert!(
        log.as_array().unwrap().iter().any(|e| e["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/v2/provisioners/"))),
        "{log}"
    );
    // Ctrl-C.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = eventually(Duration::from_secs(15), "demo exit", || {
        let s = child.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(exit.success(), "demo exited with {exit:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("curl") && out.contains(&format!("127.0.0.1:{base}")),
        "{out}"
    );
    assert!(out.contains("demo stopped"), "{out}");
    assert!(
        out.contains("started the demo's own etcd: three members at"),
        "{out}"
    );
    // Its members stopped with it.
    for i in 0..3u16 {
        let member = base + 100 * i + 6;
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", member)).is_ok(),
            "etcd member on {member} still listening"
        );
    }
}
