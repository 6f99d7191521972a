//! The router's own HTTP/1.1 server (`server/fast.rs`) and hyper's behind it: plain requests
//! (whole heads, bodies that came with them, pipelined, HEAD, `Connection: close`) are served
//! without hyper, and what is not plain (a body still on its way, chunked, HTTP/1.0) goes to
//! hyper's server and is answered there, on the same connection, losing nothing. Which server
//! took a request is read from `coopr_router_http1_to_hyper_total`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The tests of this file run one at a time: the counter is process-wide.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ID: &str = "Host: router\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\n";

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\n{ID}\r\n")
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\n{ID}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// `coopr_router_http1_to_hyper_total{listener="client"}`.
async fn to_hyper(dc: &Dc) -> f64 {
    let m = support::get(&dc.admin_url("/metrics")).await.text();
    m.lines()
        .find(|l| l.starts_with("coopr_router_http1_to_hyper_total{listener=\"client\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// One answer read off `s` (bytes of the next kept in `buf`): its status, its head (lower
/// case) and its body. `head_only`: the answer to a HEAD (a length, no body).
async fn answer(s: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> (u16, String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut fill = async |buf: &mut Vec<u8>| {
        let mut chunk = [0u8; 4096];
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "closed; got {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        fill(buf).await;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    buf.drain(..end);
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or_else(|| panic!("a length: {head}"));
    if head_only {
        return (status, head, String::new());
    }
    while buf.len() < length {
        fill(buf).await;
    }
    let body = String::from_utf8_lossy(&buf.drain(..length).collect::<Vec<_>>()).into_owned();
    (status, head, body)
}

/// Reads until the router closes the connection (10 s at most).
async fn until_closed(s: &mut TcpStream) -> String {
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("closed within 10 s")
        .expect("read");
    String::from_utf8_lossy(&rest).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_never_reach_hyper() {
    let _serial = SERIAL.lock().await;
    let d = start(Duration::from_millis(50)).await;
    let dc = &d.dcs[0];
    let before = to_hyper(dc).await;
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let mut buf = Vec::new();
    // A create whose body came with its head.
    let body = r#"{"name":"own","clusterTemplate":"demo","numMachines":1}"#;
    s.write_all(post("/v2/clusters", body).as_bytes())
        .await
        .unwrap();
    let (status, head, created) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200, "{head}{created}");
    assert!(head.contains("\r\ndate: "), "hyper's Date header: {head}");
    assert!(head.contains("x-request-id: "), "{head}");
    let id = serde_json::from_str::<serde_json::Value>(&created).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Three requests in one write, the middle one a HEAD: answered in order, the HEAD with
    // its length and no body (else the third answer would be read from the wrong place).
    let status_path = format!("/v2/clusters/{id}/status");
    let three = format!(
        "{}HEAD {status_path} HTTP/1.1\r\n{ID}\r\n{}",
        get(&status_path),
        get("/v2/clusters")
    );
    s.write_all(three.as_bytes()).await.unwrap();
    let (status, _, first) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200, "{first}");
    assert!(first.contains(&id), "{first}");
    let (_, head, _) = answer(&mut s, &mut buf, true).await;
    assert!(!head.contains("content-length: 0\r\n"), "{head}");
    let (status, _, list) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains(&id), "{list}");
    // `Connection: close`: the last answer on the connection.
    s.write_all(format!("GET /v2/clusters HTTP/1.1\r\n{ID}Connection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, _, _) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200);
    assert_eq!(
        until_closed(&mut s).await,
        "",
        "nothing after the last answer"
    );
    assert!(buf.is_empty());
    assert_eq!(to_hyper(dc).await, before, "no request went to hyper");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_plain_goes_to_hyper_on_the_same_connection() {
    let _serial = SERIAL.lock().await;
    let d = start(Duration::from_millis(50)).await;
    let dc = &d.dcs[0];
    let before = to_hyper(dc).await;
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let mut buf = Vec::new();
    // A body that comes after its head: the head alone goes to hyper, which reads the body.
    let body = r#"{"name":"split","clusterTemplate":"demo","numMachines":1}"#;
    let whole = post("/v2/clusters", body);
    let (head, rest) = whole.split_at(whole.len() - body.len());
    s.write_all(head.as_bytes()).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "the head handed to hyper",
        || async { (to_hyper(dc).await == before + 1.0).then_some(()) },
    )
    .await;
    s.write_all(rest.as_bytes()).await.unwrap();
    let (status, _, created) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200, "{created}");
    assert!(created.contains("\"id\""), "{created}");
    // Then a plain request on the same connection (hyper's session may still be the one to
    // read it: it hands the connection back once it holds nothing of it).
    s.write_all(get("/v2/clusters").as_bytes()).await.unwrap();
    let (status, _, list) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.contains("split"), "{list}");
    // A chunked body, on a new connection: hyper's.
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    let chunked = format!(
        "POST /v2/clusters HTTP/1.1\r\n{ID}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    s.write_all(chunked.as_bytes()).await.unwrap();
    let (status, _, created) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(to_hyper(dc).await, before + 2.0);
    // HTTP/1.0 (no keep-alive), on a new connection: hyper answers and closes.
    let mut s = TcpStream::connect(dc.client).await.unwrap();
    s.write_all(format!("GET /v2/clusters HTTP/1.0\r\n{ID}\r\n").as_bytes())
        .await
        .unwrap();
    let (status, head, _) = answer(&mut s, &mut buf, false).await;
    assert_eq!(status, 200, "{head}");
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert_eq!(until_closed(&mut s).await, "");
    assert!(buf.is_empty());
    assert_eq!(to_hyper(dc).await, before + 3.0);
}
