//! Idle HTTP/1.1 client connections park (hand hyper's buffers back and wait holding only the
//! socket) and lose nothing: the same keep-alive connection serves requests across parks, a
//! request pipelined behind another (whole or split mid-head) is answered, a request with a
//! body before an idle spell is fine, parked connections close at the idle timeout and at
//! shutdown, and h2c prior knowledge still works on the same port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests of this file run one at a time: the parked-connections gauge is process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three DCs whose routers park idle connections at once (`idle_park_ms = 0`, unless `extra`
/// says otherwise), with `extra` more `[timeouts]` keys.
async fn deployment(extra: &str) -> Deployment {
    let park = if extra.contains("idle_park_ms") {
        ""
    } else {
        "idle_park_ms = 0\n"
    };
    let timeouts = format!("[timeouts]\n{park}{extra}");
    start_with_text(Duration::from_millis(50), move |_, t| {
        t.replacen("[timeouts]\n", &timeouts, 1)
    })
    .await
}

fn get(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: router\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\n\r\n"
    )
}

/// Reads one response (Content-Length or chunked) from `s`, keeping bytes of the next in
/// `buf`. Returns the status code and the body.
async fn response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fill = async |buf: &mut Vec<u8>| {
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut chunk))
            .await
            .expect("response within 10 s")
            .expect("read");
        assert!(
            n > 0,
            "connection closed; got {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(buf).await;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let status: u16 = head[9..12].parse().expect("status code");
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().expect("length"));
    buf.drain(..head_end);
    let body = match length {
        Some(n) => {
            while buf.len() < n {
                fill(buf).await;
            }
            buf.drain(..n).collect::<Vec<u8>>()
        }
        None => {
            assert!(head.contains("transfer-encoding: chunked"), "{head}");
            let mut body = Vec::new();
            loop {
                let line_end = loop {
                    if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    fill(buf).await;
                };
                let size =
                    usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16)
                        .expect("chunk size");
                while buf.len() < line_end + 2 + size + 2 {
                    fill(buf).await;
                }
                body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
                buf.drain(..line_end + 2 + size + 2);
                if size == 0 {
                    break body;
                }
            }
        }
    };
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The router's `coopr_router_parked_connections{listener="client"}` (process-wide: every
/// router in this test binary records into one registry).
async fn parked(dc: &Dc) -> f64 {
    let m = support::get(&dc.admin_url("/metrics")).await.text();
    m.lines()
        .find(|l| l.starts_with("coopr_router_parked_connections{listener=\"client\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits until the connections of the tests before this one are gone.
async fn none_parked(dc: &Dc) {
    eventually(Duration::from_secs(5), "no parked connections", || async {
        (parked(dc).await == 0.0).then_some(())
    })
    .await;
}

/// Lets the router run idle for a moment (a round trip to its admin port), time enough to park
/// a connection that may park (`idle_park_ms = 0` parks on the first idle poll).
async fn let_the_router_idle(dc: &Dc) {
    for _ in 0..3 {
        parked(dc).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keep_alive_connection_serves_requests_across_parks() {
    let _serial = SERIAL.lock().await;
    let d = deployment("").await;
    let dc = &d.dcs[0];
    none_parked(dc).await;
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let mut buf = Vec::new();
    for round in 0..3 {
        s.write_all(get("/v2/clusters").as_bytes()).await.unwrap();
        let (status, body) = response(&mut s, &mut buf).await;
        assert_eq!(status, 200, "round {round}: {body}");
        // Idle now: the connection parks (the gauge counts it), and stays open.
        eventually(
            Duration::from_secs(5),
            "the idle connection parks",
            || async { (parked(dc).await >= 1.0).then_some(()) },
        )
        .await;
    }
    assert!(buf.is_empty(), "nothing but the three responses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_parks_only_after_idle_park_ms_of_quiet() {
    let _serial = SERIAL.lock().await;
    let d = deployment("idle_park_ms = 400\n").await;
    let dc = &d.dcs[0];
    none_parked(dc).await;
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let mut buf = Vec::new();
    // Requests back to back for longer than idle_park_ms: the connection never parks between
    // them (the gauge is read between requests, on the admin port).
    let started = Instant::now();
    let mut last = started;
    while started.elapsed() < Duration::from_millis(1000) {
        s.write_all(get("/v2/clusters").as_bytes()).await.unwrap();
        assert_eq!(response(&mut s, &mut buf).await.0, 200);
        let gap = last.elapsed();
        last = Instant::now();
        if gap < Duration::from_millis(300) {
            assert_eq!(parked(dc).await, 0.0, "parked while busy");
        }
    }
    // Quiet now: it parks once the timer fires, no sooner than idle_park_ms.
    let quiet = Instant::now();
    eventually(
        Duration::from_secs(5),
        "the quiet connection parks",
        || async { (parked(dc).await >= 1.0).then_some(()) },
    )
    .await;
    assert!(
        quiet.elapsed() >= Duration::from_millis(350),
        "{:?}",
        quiet.elapsed()
    );
    s.write_all(get("/v2/clusters").as_bytes()).await.unwrap();
    assert_eq!(response(&mut s, &mut buf).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_even_split_mid_head() {
    let _serial = SERIAL.lock().await;
    let d = deployment("").await;
    let dc = &d.dcs[0];
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let mut buf = Vec::new();
    // Two whole requests in one write.
    let two = format!("{}{}", get("/v2/clusters"), get("/v2/clusters?x=1"));
    s.write_all(two.as_bytes()).await.unwrap();
    assert_eq!(response(&mut s, &mut buf).await.0, 200);
    assert_eq!(response(&mut s, &mut buf).await.0, 200);
    // A request and the first half of the next one's head; the first is answered while the
    // second half is still to come (so the router is idle with a partial head buffered).
    let next = get("/v2/clusters?y=2");
    let (half, rest) = next.split_at(20);
    s.write_all(format!("{}{half}", get("/v2/clusters")).as_bytes())
        .await
        .unwrap();
    assert_eq!(response(&mut s, &mut buf).await.0, 200);
    // Give a wrongly parking router every chance to drop the half head.
    let_the_router_idle(dc).await;
    s.write_all(rest.as_bytes()).await.unwrap();
    let (status, body) = response(&mut s, &mut buf).await;
    assert_eq!(status, 200, "{body}");
    assert!(buf.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_body_before_an_idle_spell_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let d = deployment("").await;
    let dc = &d.dcs[0];
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let mut buf = Vec::new();
    let body = r#"{"name":"parked","clusterTemplate":"demo","numMachines":1}"#;
    let post = format!(
        "POST /v2/clusters HTTP/1.1\r\nHost: router\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(post.as_bytes()).await.unwrap();
    let (status, created) = response(&mut s, &mut buf).await;
    assert_eq!(status, 200, "{created}");
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The same connection, after it had every chance to park.
    let_the_router_idle(dc).await;
    s.write_all(get(&format!("/v2/clusters/{id}/status")).as_bytes())
        .await
        .unwrap();
    let (status, text) = response(&mut s, &mut buf).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&id) || text.contains("status"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_closes_at_the_idle_timeout() {
    let _serial = SERIAL.lock().await;
    let d = deployment("request_head_ms = 300\n").await;
    let dc = &d.dcs[0];
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let mut buf = Vec::new();
    s.write_all(get("/v2/clusters").as_bytes()).await.unwrap();
    assert_eq!(response(&mut s, &mut buf).await.0, 200);
    let started = Instant::now();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("the router closes an idle connection")
        .expect("read");
    assert_eq!(n, 0, "closed without sending anything");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_parked_connections_at_once() {
    let _serial = SERIAL.lock().await;
    let mut d = deployment("").await;
    let client = d.dcs[0].client;
    let mut idle = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(client).await.unwrap();
        let mut buf = Vec::new();
        s.write_all(get("/v2/clusters").as_bytes()).await.unwrap();
        assert_eq!(response(&mut s, &mut buf).await.0, 200);
        idle.push(s);
    }
    // Plus one that never sent anything.
    idle.push(TcpStream::connect(client).await.unwrap());
    let started = Instant::now();
    d.dcs[0].stop_router().await;
    // The grace period is 5 s (support's config): idle connections must not use it.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    for mut s in idle {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_prior_knowledge_still_works_on_the_client_port() {
    let _serial = SERIAL.lock().await;
    let d = deployment("").await;
    let dc = &d.dcs[0];
    let stream = TcpStream::connect(dc.client).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    for _ in 0..2 {
        let req = http::Request::get(format!("http://{}/v2/clusters", dc.client))
            .header("coopr-userid", "admin")
            .header("coopr-tenantid", "superadmin")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.expect("h2 response");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_body_is_not_taken_for_a_request() {
    let _serial = SERIAL.lock().await;
    let d = deployment("").await;
    let dc = &d.dcs[0];
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let mut buf = Vec::new();
    // Refused from its head alone (a malformed cluster id), before its body was sent.
    let head = "POST /v2/clusters/not-an-id/pause HTTP/1.1\r\nHost: router\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\nContent-Length: 18\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let (status, text) = response(&mut s, &mut buf).await;
    assert_eq!(status, 400, "{text}");
    let_the_router_idle(dc).await;
    // The body (which looks like a request of its own), then a real request.
    let _ = s.write_all(b"GET /evil HTTP/1.1").await;
    let _ = s.write_all(get("/v2/clusters").as_bytes()).await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
    buf.extend_from_slice(&rest);
    // hyper closes a connection whose request body was left unread; a parked connection would
    // have read the body as a request of its own (and answered it).
    assert!(
        buf.is_empty(),
        "nothing after the refusal: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

/// A TLS HTTP/1.1 connection parks too (hyper's buffers go, rustls keeps its state) and serves
/// its next requests on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_keep_alive_connection_serves_requests_across_parks() {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    let _serial = SERIAL.lock().await;
    let pki = support::tls::Pki::new(&["dc1", "dc2", "dc3"]);
    let d = start_with_text(Duration::from_millis(50), |i, t| {
        pki.edit(i, t)
            .replacen("[timeouts]\n", "[timeouts]\nidle_park_ms = 0\n", 1)
    })
    .await;
    let dc = &d.dcs[0];
    none_parked(dc).await;
    let config = support::tls::client_config(&pki.ca(), None, &[b"http/1.1"]);
    let tls = support::tls::connect(dc.client, "localhost", config)
        .await
        .expect("TLS to the client port");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    for round in 0..3 {
        let req = http::Request::get("/v2/clusters")
            .header("host", "localhost")
            .header("coopr-userid", "admin")
            .header("coopr-tenantid", "superadmin")
            .body(Full::new(Bytes::new()))
            .unwrap();
        // Ready again once the last response was read (an error: the router closed it).
        send.ready().await.expect("the connection is still open");
        let resp = send.send_request(req).await.expect("an answer");
        assert_eq!(resp.status(), 200, "round {round}");
        resp.into_body().collect().await.unwrap();
        // Idle now: the connection parks (the gauge counts it), and stays open.
        eventually(
            Duration::from_secs(5),
            "the idle TLS connection parks",
            || async { (parked(dc).await >= 1.0).then_some(()) },
        )
        .await;
    }
    assert!(!conn.is_finished(), "the connection is still open");
}
