//! The `demo` command as a user runs it: three DCs come up on the documented ports, the printed
//! curl flow works (create in dc1, write through dc2 lands in dc1), and SIGINT stops it cleanly
//! with exit status 0.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// A base port whose 30 demo ports (and its control port) are all free right now.
fn free_base(from: u16) -> u16 {
    for base in (from..from + 10_000).step_by(1_000) {
        let all_free = (0..3u16).all(|i| {
            (0..10u16)
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
    use std::os::unix::process::CommandExt;
    let base = free_base(20_000);
    let child = Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .args([
            "demo",
            "--base-port",
            &base.to_string(),
            "--op-delay-ms",
            "100",
        ])
        .env("RUST_LOG", "warn")
        .env("TMPDIR", demo_tmp())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("demo starts");
    // Stopped however the test ends (a failed assertion would leave it running).
    let mut demo = Running(child);
    let url =
        |dc: u16, off: u16, path: &str| format!("http://127.0.0.1:{}{path}", base + 100 * dc + off);
    for dc in 0..3 {
        let ready = url(dc, 2, "/ready");
        eventually(Duration::from_secs(120), "demo ready", || async {
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
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = eventually(Duration::from_secs(15), "demo exit", || {
        let s = demo.0.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(exit.success(), "demo exited with {exit:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(demo.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("curl") && out.contains(&format!("127.0.0.1:{base}")),
        "{out}"
    );
    assert!(out.contains("demo stopped"), "{out}");
}

/// The demo in its own process group, stopped with its etcd members (SIGINT to the group, then
/// SIGKILL) however the test ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        for _ in 0..100 {
            if self.0.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}

/// Whether `url` answers 200 (false while nothing listens there).
async fn answers_ok(url: &str) -> bool {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>()
        .get(url.parse().unwrap())
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
}

/// Where the demo keeps its files: /dev/shm when there is one (etcd's fsyncs on these disks are
/// slow), through TMPDIR.
fn demo_tmp() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Sends one command line to the demo's control endpoint; its answer.
async fn control(base: u16, line: &str) -> String {
    call(
        Method::POST,
        &format!("http://127.0.0.1:{}/demo", base + 9),
        &[],
        line,
    )
    .await
    .text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_its_own_etcd_and_shows_a_kill_a_failover_and_a_handoff() {
    use std::os::unix::process::CommandExt;
    let base = free_base(30_000);
    let child = Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .args([
            "demo",
            "--base-port",
            &base.to_string(),
            "--op-delay-ms",
            "100",
            "--no-terminal",
        ])
        .env("RUST_LOG", "error")
        .env("TMPDIR", demo_tmp())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("demo starts");
    let mut demo = Running(child);
    // Its output is read as it comes (a full pipe would stop the demo mid-command).
    let mut stdout = demo.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let url =
        |dc: u16, off: u16, path: &str| format!("http://127.0.0.1:{}{path}", base + 100 * dc + off);
    for dc in 0..3 {
        let ready = url(dc, 2, "/ready");
        eventually(Duration::from_secs(120), "demo ready", || async {
            answers_ok(&ready).await.then_some(())
        })
        .await;
    }
    let r = post(
        &url(0, 0, "/v2/clusters"),
        "{\"name\":\"d\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    eventually(
        Duration::from_secs(20),
        "active, and replicated to dc2",
        || async {
            let status = get(&url(0, 0, &format!("/v2/clusters/{id}/status"))).await;
            let replica = get(&url(1, 0, &format!("/v2/clusters/{id}"))).await;
            (status.json()["status"] == "active"
                && replica.header("x-coopr-router-route") == "replica")
                .then_some(())
        },
    )
    .await;
    // The map comes from the demo's etcd: dc1 owns the cluster's shard.
    let shard = id.parse::<u32>().unwrap() % 12;
    let owner = |map: &str| -> String {
        map.lines()
            .find(|l| l.starts_with(&format!("shard {shard:>3}:")))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(owner(&control(base, "map").await), "dc1");
    // Kill dc1: its router and simulator stop, its shards move to a live DC.
    let killed = control(base, "kill dc1").await;
    assert!(killed.starts_with("killed dc1"), "{killed}");
    assert!(
        !answers_ok(&url(0, 2, "/live")).await,
        "dc1's router still answers"
    );
    let new_owner = eventually(Duration::from_secs(30), "dc1's shards moved", || async {
        let o = owner(&control(base, "map").await);
        (o == "dc2" || o == "dc3").then_some(o)
    })
    .await;
    // A read of dc1's cluster through dc2 is answered there, from its replica.
    let read = control(base, &format!("get dc2 /v2/clusters/{id}")).await;
    assert!(
        read.contains(": 200, answered by dc2 (route replica)"),
        "{read}"
    );
    // dc1 comes back as a non-owner; a handoff gives its shard back.
    let started = control(base, "start dc1").await;
    assert!(started.starts_with("started dc1"), "{started}");
    eventually(Duration::from_secs(30), "dc1 ready again", || async {
        answers_ok(&url(0, 2, "/ready")).await.then_some(())
    })
    .await;
    assert_eq!(owner(&control(base, "map").await), new_owner);
    let handed = eventually(Duration::from_secs(60), "handoff back", || async {
        let out = control(base, &format!("handoff {shard} dc1")).await;
        out.contains(&format!("shard {shard} moved {new_owner} -> dc1"))
            .then_some(out)
    })
    .await;
    assert_eq!(owner(&control(base, "map").await), "dc1", "{handed}");
    // A write through dc3 now lands at dc1 again.
    eventually(Duration::from_secs(20), "write answered by dc1", || async {
        let r = post(
            &url(2, 0, &format!("/v2/clusters/{id}/services/restart")),
            "",
        )
        .await;
        (r.status == StatusCode::OK && r.header("x-coopr-router-dc") == "dc1").then_some(())
    })
    .await;
    // Ctrl-C: everything stops, the demo's etcd data is gone.
    let status = Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = eventually(Duration::from_secs(20), "demo exit", || {
        let s = demo.0.try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(exit.success(), "demo exited with {exit:?}");
    let out = reader.join().unwrap();
    assert!(out.contains("three-member etcd"), "{out}");
    // The demo printed the failover's move of the shard, and the handoff's.
    assert!(
        out.contains(&format!("ownership: shard {shard} dc1 -> ")),
        "{out}"
    );
    assert!(
        out.contains(&format!("handoff: shard {shard} moved {new_owner} -> dc1")),
        "{out}"
    );
    for dc in ["dc1", "dc2", "dc3"] {
        let dir = demo_tmp().join(format!("coopr-router-demo-{base}-etcd-{dc}"));
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
