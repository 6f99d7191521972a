//! The admin API: the token, `/ready` per cause, hot reload (admin endpoint and file watch)
//! while requests are in flight, a broken file keeping the old config, 100 reloads under load
//! failing nothing, runtime log level, and drain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use coopr_router::app::{self, Listeners, RouterHandle};
use coopr_router::config;
use http::{Method, StatusCode};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use support::*;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const TOKEN: &str = "test-token-0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// A one-DC router config whose only Coopr server is `backend`.
fn text(backend: &str, extra: &str) -> String {
    let watch = if extra.contains("watch_config_ms") {
        ""
    } else {
        "watch_config_ms = 50\n"
    };
    format!(
        "dc = \"dc1\"\nshard_count = 3\n\n[listen]\nclient = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\nadmin = \"127.0.0.1:3\"\n\n\
         [[backends]]\nurl = \"{backend}\"\n\n[dcs.dc1]\npeer_url = \"http://127.0.0.1:2\"\nid_start = 1\nid_increment = 1\n\n\
         [health]\ninterval_ms = 50\ntimeout_ms = 200\nrise = 1\nfall = 1\n\n[admin]\ntoken = \"{TOKEN}\"\ndrain_delay_ms = 300\n{watch}{extra}"
    )
}

async fn router(path: &Path) -> RouterHandle {
    let cfg = config::load(path).unwrap();
    let l = Listeners {
        client: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    };
    app::start_with_file(cfg, Some(path.to_path_buf()), l).unwrap()
}

fn admin(r: &RouterHandle, path: &str) -> String {
    format!("http://{}{path}", r.admin_addr)
}

async fn authed(method: Method, url: &str) -> Reply {
    call(
        method,
        url,
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        "",
    )
    .await
}

/// Writes the config file the way editors do: a temp file renamed over it.
fn write_config(path: &Path, body: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config_file(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let p = dir.path().join("router.toml");
    write_config(&p, body);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_what_changes_things_and_optionally_reads() {
    let d = start(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let sim = d.dcs[0].sim_url("");
    let path = config_file(&dir, &text(&sim, "open_reads = false\n"));
    let r = router(&path).await;
    for open in ["/live", "/ready"] {
        assert_eq!(
            call(Method::GET, &admin(&r, open), &[], "").await.status,
            StatusCode::OK,
            "{open}"
        );
    }
    for (method, p) in [
        (Method::GET, "/admin/routes"),
        (Method::GET, "/metrics"),
        (Method::GET, "/admin/explain?method=GET&path=/v2/clusters/1"),
        (Method::POST, "/admin/reload"),
        (Method::POST, "/admin/drain"),
        (Method::POST, "/admin/log-level?filter=debug"),
        (Method::GET, "/admin/log-level"),
    ] {
        let resp = call(method.clone(), &admin(&r, p), &[], "").await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{method} {p}");
        assert_eq!(resp.header("www-authenticate"), "Bearer");
        let bad = call(
            method.clone(),
            &admin(&r, p),
            &[("Authorization", "Bearer wrong-token-000000")],
            "",
        )
        .await;
        assert_eq!(
            bad.status,
            StatusCode::UNAUTHORIZED,
            "{method} {p} with a wrong token"
        );
    }
    for p in [
        "/admin/routes",
        "/metrics",
        "/admin/explain?method=POST&path=/v2/clusters/1/abort",
        "/admin/log-level",
    ] {
        assert_eq!(
            authed(Method::GET, &admin(&r, p)).await.status,
            StatusCode::OK,
            "{p}"
        );
    }
    let explain = authed(
        Method::GET,
        &admin(
            &r,
            "/admin/explain?method=POST&path=/v2/clusters/00000004/abort",
        ),
    )
    .await
    .json();
    assert_eq!(
        (
            explain["class"].as_str(),
            explain["shard"].as_u64(),
            explain["owner"].as_str()
        ),
        (Some("write"), Some(1), Some("dc1"))
    );
    coopr_router::logging::init(false);
    let set = authed(Method::POST, &admin(&r, "/admin/log-level?filter=debug")).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    assert_eq!(
        authed(Method::GET, &admin(&r, "/admin/log-level"))
            .await
            .json()["filter"],
        "debug"
    );
    assert_eq!(
        authed(Method::POST, &admin(&r, "/admin/log-level?filter=%5Bbad"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // Without any token configured, changing endpoints are off (403) and reads are open.
    let path2 = dir.path().join("notoken.toml");
    write_config(
        &path2,
        &text(&sim, "").replace(&format!("token = \"{TOKEN}\"\n"), ""),
    );
    let r2 = router(&path2).await;
    assert_eq!(
        call(Method::POST, &admin(&r2, "/admin/reload"), &[], "")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(Method::GET, &admin(&r2, "/admin/routes"), &[], "")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_new_requests_while_an_in_flight_one_finishes_on_the_old_backend() {
    let d = start(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (d.dcs[0].sim_url(""), d.dcs[1].sim_url(""));
    let path = config_file(&dir, &text(&a, ""));
    let r = router(&path).await;
    let upload_path = "/v2/plugins/automatortypes/chef/cookbooks/inflight";
    let url = format!("http://{}{upload_path}", r.client_addr);
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let upload =
        tokio::spawn(async move { send(Method::POST, &url, &ADMIN, ChannelBody(rx)).await });
    tx.send(Bytes::from_static(b"part one;")).await.unwrap();
    eventually(WAIT, "upload in flight", || async {
        tcp_established_to(d.dcs[0].sim_addr).then_some(())
    })
    .await;
    // Point the router at B and reload through the admin API.
    write_config(&path, &text(&b, "watch_config_ms = 0\n"));
    let rep = authed(Method::POST, &admin(&r, "/admin/reload")).await;
    assert_eq!(rep.status, StatusCode::OK, "{}", rep.text());
    let created = post(
        &format!("http://{}/v2/clusters", r.client_addr),
        "{\"name\":\"n\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    assert!(
        d.dcs[1].log_has("POST", "/v2/clusters") && !d.dcs[0].log_has("POST", "/v2/clusters"),
        "new requests go to B"
    );
    tx.send(Bytes::from_static(b"part two")).await.unwrap();
    drop(tx);
    let done = upload.await.unwrap();
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.json()["size"], 17);
    assert!(
        d.dcs[0].log_has("POST", upload_path) && !d.dcs[1].log_has("POST", upload_path),
        "the in-flight request finished on A"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_old_config_and_a_fixed_one_is_picked_up_by_the_watch() {
    let d = start(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (d.dcs[0].sim_url(""), d.dcs[1].sim_url(""));
    let path = config_file(&dir, &text(&a, ""));
    let r = router(&path).await;
    write_config(
        &path,
        &text(&a, "").replace("shard_count = 3", "shard_count = \"three\""),
    );
    let rep = authed(Method::POST, &admin(&r, "/admin/reload")).await;
    assert_eq!(rep.status, StatusCode::BAD_REQUEST);
    let err = rep.json()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("line 2") && err.contains("shard_count"),
        "{err}"
    );
    let routes = authed(Method::GET, &admin(&r, "/admin/routes"))
        .await
        .json();
    assert!(
        routes["reload"]["last_error"]
            .as_str()
            .unwrap()
            .contains("shard_count"),
        "{routes}"
    );
    assert!(routes["reload"]["failed"].as_u64().unwrap() >= 1);
    let ok = get(&format!("http://{}/v2/clustertemplates", r.client_addr)).await;
    assert_eq!(ok.status, StatusCode::OK, "the old config still serves");
    // A fixed file pointing at B: the file watch applies it without being asked.
    write_config(&path, &text(&b, ""));
    eventually(WAIT, "watch reload", || async {
        let routes = authed(Method::GET, &admin(&r, "/admin/routes"))
            .await
            .json();
        (routes["backends"][0]["url"].as_str() == Some(&format!("{b}/"))).then_some(())
    })
    .await;
    let routes = authed(Method::GET, &admin(&r, "/admin/routes"))
        .await
        .json();
    assert!(routes["reload"]["last_error"].is_null(), "{routes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_reloads_under_load_fail_no_request() {
    let d = start(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (d.dcs[0].sim_url(""), d.dcs[1].sim_url(""));
    let path = config_file(&dir, &text(&a, "watch_config_ms = 0\n"));
    let r = router(&path).await;
    let url = format!("http://{}/v2/clustertemplates", r.client_addr);
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (url, stop, sent, failed) = (url.clone(), stop.clone(), sent.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            // Bounded: at most 5000 requests per task.
            for _ in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = get(&url).await;
                sent.fetch_add(1, Ordering::Relaxed);
                if r.status != StatusCode::OK {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for i in 0..100 {
        write_config(
            &path,
            &text(if i % 2 == 0 { &b } else { &a }, "watch_config_ms = 0\n"),
        );
        let rep = authed(Method::POST, &admin(&r, "/admin/reload")).await;
        assert_eq!(rep.status, StatusCode::OK, "reload {i}: {}", rep.text());
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 100, "load ran: {sent}");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during 100 reloads"
    );
    let routes = authed(Method::GET, &admin(&r, "/admin/routes"))
        .await
        .json();
    assert!(routes["reload"]["ok"].as_u64().unwrap() >= 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_fails_for_a_dead_backend_and_recovers_after_a_reload() {
    let d = start(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let path = config_file(&dir, &text(&dead, "watch_config_ms = 0\n"));
    let r = router(&path).await;
    let ready = call(Method::GET, &admin(&r, "/ready"), &[], "").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    let failed = ready.json()["failed"].clone();
    assert_eq!(
        failed.as_array().unwrap().len(),
        1,
        "only the backend check fails: {failed}"
    );
    assert_eq!(failed[0]["check"], "backend");
    write_config(
        &path,
        &text(
            &format!("http://{}", d.dcs[0].sim_addr),
            "watch_config_ms = 0\n",
        ),
    );
    assert_eq!(
        authed(Method::POST, &admin(&r, "/admin/reload"))
            .await
            .status,
        StatusCode::OK
    );
    let ready = call(Method::GET, &admin(&r, "/ready"), &[], "").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_turns_readiness_off_first_then_lets_in_flight_requests_finish() {
    let d = start(Duration::from_millis(50)).await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(&dir, &text(&d.dcs[0].sim_url(""), ""));
    let r = router(&path).await;
    let url = format!(
        "http://{}/v2/plugins/automatortypes/chef/cookbooks/drain",
        r.client_addr
    );
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let upload =
        tokio::spawn(async move { send(Method::POST, &url, &ADMIN, ChannelBody(rx)).await });
    tx.send(Bytes::from_static(b"before;")).await.unwrap();
    eventually(WAIT, "upload in flight", || async {
        tcp_established_to(d.dcs[0].sim_addr).then_some(())
    })
    .await;
    let drained = authed(Method::POST, &admin(&r, "/admin/drain")).await;
    assert_eq!(drained.status, StatusCode::ACCEPTED);
    let ready = call(Method::GET, &admin(&r, "/ready"), &[], "").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "readiness turns false at once"
    );
    assert!(ready.text().contains("not_draining"));
    // Still serving until the drain delay has passed: new requests work.
    let client = r.client_addr;
    let stopping = r.stopping();
    eventually(WAIT, "listener closed after the drain delay", || async {
        tokio::net::TcpStream::connect(client)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    tokio::time::timeout(WAIT, stopping)
        .await
        .expect("the router reports it is stopping");
    tx.send(Bytes::from_static(b"after")).await.unwrap();
    drop(tx);
    let done = upload.await.unwrap();
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert_eq!(done.json()["size"], 12);
    tokio::time::timeout(WAIT, r.wait())
        .await
        .expect("router stopped");
}
