//! `coopr-router run --config FILE` as an operator runs it: it serves, reloads on SIGHUP, and
//! exits 0 on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::child::KillOnDrop;
use support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(client: u16, peer: u16, admin: u16, backend: &str) -> String {
    format!(
        "dc = \"dc1\"\nshard_count = 3\n\n[listen]\nclient = \"127.0.0.1:{client}\"\npeer = \"127.0.0.1:{peer}\"\nadmin = \"127.0.0.1:{admin}\"\n\n\
         [[backends]]\nurl = \"{backend}\"\n\n[dcs.dc1]\npeer_url = \"http://127.0.0.1:{peer}\"\nid_start = 1\nid_increment = 1\n\n\
         [admin]\nwatch_config_ms = 0\n\n[log]\naccess_log = true\nformat = \"json\"\n"
    )
}

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_reloads_on_sighup_and_stops_on_sigterm() {
    let d = start(Duration::from_millis(50)).await;
    let (a, b) = (
        format!("http://{}", d.dcs[0].sim_addr),
        format!("http://{}", d.dcs[1].sim_addr),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.toml");
    let (client, peer, admin) = (free_port(), free_port(), free_port());
    std::fs::write(&path, config(client, peer, admin, &a)).unwrap();
    let mut child = run_router(&path, Stdio::null(), admin).await;
    let admin_url = |p: &str| format!("http://127.0.0.1:{admin}{p}");
    let create = "{\"name\":\"x\",\"clusterTemplate\":\"demo\",\"numMachines\":1}";
    let r = post(&format!("http://127.0.0.1:{client}/v2/clusters"), create).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(d.dcs[0].log_has("POST", "/v2/clusters"));
    // SIGHUP reloads the edited file: new requests go to B.
    std::fs::write(&path, config(client, peer, admin, &b)).unwrap();
    signal(child.id(), "-HUP");
    eventually(Duration::from_secs(10), "reloaded", || async {
        let routes = call(Method::GET, &admin_url("/admin/routes"), &[], "")
            .await
            .json();
        (routes["backends"][0]["url"].as_str() == Some(&format!("{b}/"))).then_some(())
    })
    .await;
    let r = post(&format!("http://127.0.0.1:{client}/v2/clusters"), create).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(d.dcs[1].log_has("POST", "/v2/clusters"));
    signal(child.id(), "-TERM");
    let status = eventually(Duration::from_secs(15), "exit", || {
        let s = child.0.as_mut().unwrap().try_wait().unwrap();
        async move { s }
    })
    .await;
    assert!(status.success(), "{status:?}");
}

/// Health checks (`GET /status`, one per peer per interval) stay out of the access log unless
/// `log.access_log_health` asks for them; other requests are logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_stay_out_of_the_access_log_unless_asked_for() {
    let d = start(Duration::from_millis(50)).await;
    let backend = format!("http://{}", d.dcs[0].sim_addr);
    for with_health in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.toml");
        let (client, peer, admin) = (free_port(), free_port(), free_port());
        let mut text = config(client, peer, admin, &backend);
        if with_health {
            text.push_str("access_log_health = true\n");
        }
        std::fs::write(&path, text).unwrap();
        let mut child = run_router(&path, Stdio::piped(), admin).await;
        let status = get(&format!("http://127.0.0.1:{client}/status")).await;
        assert_eq!(status.status, StatusCode::OK);
        let list = get(&format!("http://127.0.0.1:{client}/v2/clusters")).await;
        assert_eq!(list.status, StatusCode::OK);
        signal(child.id(), "-TERM");
        let out = child.take().wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let access: Vec<&str> = text.lines().filter(|l| l.contains("\"access\"")).collect();
        assert!(
            access
                .iter()
                .any(|l| l.contains("\"path\":\"/v2/clusters\"")),
            "the list is logged: {text}"
        );
        assert_eq!(
            access.iter().any(|l| l.contains("\"path\":\"/status\"")),
            with_health,
            "health checks logged only with access_log_health: {text}"
        );
    }
}

/// `coopr-router run --config PATH` with its standard output to `stdout`, once its admin port
/// says ready; killed if the test fails before it stops.
async fn run_router(path: &std::path::Path, stdout: Stdio, admin: u16) -> KillOnDrop {
    let child = Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .args(["run", "--config"])
        .arg(path)
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = KillOnDrop::new(child);
    let ready = format!("http://127.0.0.1:{admin}/ready");
    eventually(Duration::from_secs(20), "router ready", || async {
        let up = tokio::net::TcpStream::connect(("127.0.0.1", admin))
            .await
            .is_ok();
        (up && call(Method::GET, &ready, &[], "").await.status == StatusCode::OK).then_some(())
    })
    .await;
    child
}

/// The names of a process's threads (`/proc/PID/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let comm = t.unwrap().path().join("comm");
        if let Ok(n) = std::fs::read_to_string(comm) {
            names.push(n.trim().to_string());
        }
    }
    names
}

/// `listen.threads` serving threads, one per CPU when it is absent; every one of them
/// answers, and the start is logged with their number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_serves_on_listen_threads_threads() {
    let d = start(Duration::from_millis(50)).await;
    let backend = format!("http://{}", d.dcs[0].sim_addr);
    let cpus = std::thread::available_parallelism().unwrap().get();
    for threads in [None, Some(3)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.toml");
        let (client, peer, admin) = (free_port(), free_port(), free_port());
        let mut text = config(client, peer, admin, &backend);
        if let Some(n) = threads {
            text = text.replacen("[listen]\n", &format!("[listen]\nthreads = {n}\n"), 1);
        }
        std::fs::write(&path, text).unwrap();
        let mut child = run_router(&path, Stdio::piped(), admin).await;
        let pid = child.id();
        let want = threads.unwrap_or(cpus);
        let serving = thread_names(pid)
            .into_iter()
            .filter(|n| n.starts_with("coopr-serve-"))
            .count();
        assert_eq!(serving, want, "{threads:?}: {:?}", thread_names(pid));
        // Twice as many connections as threads, each open while the next is placed: every
        // thread gets some, and each answers.
        let mut open = Vec::new();
        for _ in 0..2 * want {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", client))
                .await
                .unwrap();
            s.write_all(b"GET /status HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before an answer");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(
                got.starts_with(b"HTTP/1.1 200"),
                "{}",
                String::from_utf8_lossy(&got)
            );
            open.push(s);
        }
        drop(open);
        signal(pid, "-TERM");
        let out = child.take().wait_with_output().unwrap();
        assert!(out.status.success(), "{:?}", out.status);
        let text = String::from_utf8_lossy(&out.stdout);
        let started = text
            .lines()
            .find(|l| l.contains("router started"))
            .unwrap_or_else(|| panic!("no start line: {text}"));
        assert!(
            started.contains(&format!("\"serving_threads\":{want}")),
            "{started}"
        );
    }
}
