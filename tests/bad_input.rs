//! Bad input on the client port, over raw TCP: every case gets a clear 4xx (or, for a framing
//! error, a closed connection), nothing panics, and the router still serves another client
//! afterwards. (A peer with a wrong certificate is refused at the handshake: tests/tls.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What came back: the status code of the first response (None: closed without one), and the
/// whole text read until the router closed the connection (or 5 s passed).
#[derive(Debug)]
struct Answer {
    status: Option<u16>,
    closed: bool,
    text: String,
}

async fn raw(addr: SocketAddr, bytes: &[u8]) -> Answer {
    raw_slow(addr, &[bytes], Duration::ZERO).await
}

/// Sends `parts` with `pause` between them, then reads until close or 5 s.
async fn raw_slow(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> Answer {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        if s.write_all(p).await.is_err() {
            break;
        }
    }
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .is_ok();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok());
    Answer {
        status,
        closed,
        text,
    }
}

/// A request with `Connection: close`, so the router closes after answering.
fn req(method: &str, target: &str, extra: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {target} HTTP/1.1\r\nHost: router\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The router still answers another client.
async fn still_serves(addr: SocketAddr, after: &str) {
    let a = raw(addr, &req("GET", "/status", "", "")).await;
    assert_eq!(a.status, Some(200), "after {after}: {a:?}");
}

/// A 4xx, or a connection closed without a response.
fn refused(a: &Answer) -> bool {
    match a.status {
        Some(s) => (400..500).contains(&s) && a.closed,
        None => a.closed,
    }
}

async fn deployment() -> support::Deployment {
    support::start_with_text(Duration::from_millis(50), |_, t| {
        t.replace("[timeouts]\n", "[timeouts]\nrequest_head_ms = 700\n")
    })
    .await
}

#[tokio::test]
async fn malformed_request_lines_and_framing_are_refused() {
    let d = deployment().await;
    let addr = d.dcs[0].client;
    let long_header = format!("X-Big: {}\r\n", "a".repeat(70 * 1024));
    let many_headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GARBAGE\r\n\r\n".to_vec()),
        ("no version", b"GET /status\r\n\r\n".to_vec()),
        ("unknown version", b"GET /status HTTP/7.1\r\nHost: x\r\n\r\n".to_vec()),
        ("space in target", b"GET /st atus HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("NUL in target", b"GET /v2/clusters/\x00 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("invalid UTF-8 in target", b"GET /v2/clusters/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("invalid UTF-8 in a header", b"GET /status HTTP/1.1\r\nHost: x\r\nX-A: \xff\x00\r\n\r\n".to_vec()),
        ("header without colon", b"GET /status HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n".to_vec()),
        ("space before colon", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n".to_vec()),
        ("CL and TE", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("TE and CL", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("two different Content-Length", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde".to_vec()),
        ("Content-Length list", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 5\r\n\r\nabcde".to_vec()),
        ("negative Content-Length", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec()),
        ("obfuscated TE xchunked", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n".to_vec()),
        ("TE chunked, identity", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n".to_vec()),
        ("TE with a tab", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n".to_vec()),
        ("TE on HTTP/1.0", b"POST /v2/clusters/1/abort HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec()),
        ("bad chunk size", b"POST /v2/clusters/1/abort HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n".to_vec()),
        ("oversized header", format!("GET /status HTTP/1.1\r\nHost: x\r\n{long_header}\r\n").into_bytes()),
        ("too many headers", format!("GET /status HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes()),
    ];
    let mut report = Vec::new();
    for (what, bytes) in &cases {
        let a = raw(addr, bytes).await;
        // CL beside TE: hyper lets chunked win (the length is dropped), and closes the
        // connection after the response (RFC 9112 §6.1): the bytes behind the chunked body
        // are never read as a request. Coopr answers the chunked request itself.
        let te_wins = what.starts_with("CL and TE")
            || what.starts_with("TE and CL")
            || what.starts_with("TE with a tab");
        // A first line without an `HTTP/` version is no HTTP/1 request: GOAWAY and close.
        let not_http = what.starts_with("garbage") || what.starts_with("no version");
        let want = if what.starts_with("oversized") || what.starts_with("too many") {
            Some(431)
        } else if not_http {
            None
        } else {
            Some(400)
        };
        let ok = if te_wins {
            a.closed && a.status.is_some() && a.text.matches("HTTP/1.1 ").count() == 1
        } else {
            refused(&a) && a.status == want
        } && !a.text.contains("smuggled");
        report.push(format!(
            "{what}: {:?} closed={} ok={ok} {:?}",
            a.status,
            a.closed,
            a.text.get(..60)
        ));
        still_serves(addr, what).await;
    }
    assert!(report.iter().all(|r| r.contains("ok=true")), "{report:#?}");
    // Nothing reached Coopr: no abort was accepted from any of these.
    assert!(
        !d.dcs[0].log_has("POST", "/v2/clusters/1/abort"),
        "{:?}\n{report:#?}",
        d.dcs[0].log()
    );
}

#[tokio::test]
async fn slow_heads_and_slow_inspected_bodies_are_cut_off() {
    let d = deployment().await;
    let addr = d.dcs[0].client;
    // A head that never ends (request_head_ms = 700): the connection closes, with 408 or not.
    let started = std::time::Instant::now();
    let a = raw_slow(
        addr,
        &[b"GET /status HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n"],
        Duration::from_millis(200),
    )
    .await;
    assert!(a.closed, "{a:?}");
    assert!(matches!(a.status, None | Some(408)), "{a:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    still_serves(addr, "slow head").await;
    // The same for the second head of a kept-alive connection: the first request is answered,
    // the second head, begun in the same write and never ended, is cut off.
    let started = std::time::Instant::now();
    let a = raw_slow(
        addr,
        &[
            b"GET /status HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\n",
            b"Host: x\r\n",
            b"X-A: 1\r\n",
            b"X-B: 1\r\n",
            b"X-C: 1\r\n",
            b"X-D: 1\r\n",
            b"X-E: 1\r\n",
        ],
        Duration::from_millis(200),
    )
    .await;
    assert!(a.closed, "{a:?}");
    assert_eq!(a.status, Some(200), "the first request was answered: {a:?}");
    assert_eq!(a.text.matches("HTTP/1.1 ").count(), 1, "{a:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    still_serves(addr, "slow second head").await;
    // An inspected body (POST /v2/nodes needs its clusterId) that stalls: 408.
    let head = b"POST /v2/nodes HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"clusterId\":";
    let a = raw_slow(addr, &[head, b"\"4"], Duration::from_millis(100)).await;
    assert_eq!(a.status, Some(408), "{a:?}");
    still_serves(addr, "slow body").await;
}

#[tokio::test]
async fn bad_cluster_ids_targets_and_bodies_get_clear_4xx() {
    let d = deployment().await;
    let addr = d.dcs[0].client;
    let long = format!("/v2/clusters?x={}", "a".repeat(9000));
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("negative id", req("GET", "/v2/clusters/-1", "", ""), 400),
        (
            "huge id",
            req("GET", "/v2/clusters/99999999999999999999", "", ""),
            400,
        ),
        (
            "past i64::MAX",
            req("GET", "/v2/clusters/9223372036854775808", "", ""),
            400,
        ),
        (
            "non-numeric id",
            req("DELETE", "/v2/clusters/abc", "", ""),
            400,
        ),
        ("hex id", req("GET", "/v2/clusters/0x10", "", ""), 400),
        ("id with a sign", req("GET", "/v2/clusters/+4", "", ""), 400),
        (
            "percent-encoded minus",
            req("GET", "/v2/clusters/%2D4", "", ""),
            400,
        ),
        (
            "encoded slash",
            req("POST", "/v2/clusters/4%2F..%2F7/abort", "", ""),
            400,
        ),
        (
            "dot-dot",
            req("POST", "/v2/clusters/../clusters/4/abort", "", ""),
            400,
        ),
        ("dot segment", req("GET", "/v2/clusters/./4", "", ""), 400),
        (
            "encoded dot-dot",
            req("GET", "/v2/clusters/%2e%2e/4", "", ""),
            400,
        ),
        (
            "invalid UTF-8, encoded",
            req("GET", "/v2/clusters/%ff%fe", "", ""),
            400,
        ),
        (
            "usage with a bad cluster",
            req("GET", "/v2/metrics/nodes/usage?cluster=-3", "", ""),
            400,
        ),
        ("target over max_uri_bytes", req("GET", &long, "", ""), 414),
        (
            "nodes body not JSON",
            req("POST", "/v2/nodes", "", "nope"),
            400,
        ),
        (
            "nodes body an array",
            req("POST", "/v2/nodes", "", "[1,2]"),
            400,
        ),
        (
            "nodes body a string",
            req("POST", "/v2/nodes", "", "\"4\""),
            400,
        ),
        (
            "clusterId not an id",
            req(
                "POST",
                "/v2/getNodeProperties",
                "",
                "{\"clusterId\":\"-4\"}",
            ),
            400,
        ),
        (
            "body invalid UTF-8",
            {
                let mut r = req("POST", "/v2/nodes", "", "{\"clusterId\":\"\u{0}\u{0}\"}");
                let n = r.len();
                r[n - 4] = 0xff;
                r[n - 3] = 0xfe;
                r
            },
            400,
        ),
        (
            "body over inspect_body_bytes",
            req(
                "POST",
                "/v2/nodes",
                "",
                &format!("{{\"pad\":\"{}\"}}", "x".repeat(70_000)),
            ),
            413,
        ),
    ];
    let mut report = Vec::new();
    for (what, bytes, want) in &cases {
        let a = raw(addr, bytes).await;
        let json_error = a.text.contains("\"error\"") || a.status == Some(414);
        let ok = a.status == Some(*want) && (a.status != Some(400) || json_error);
        report.push(format!(
            "{what}: {:?} ok={ok} {:?}",
            a.status,
            a.text.lines().last()
        ));
        still_serves(addr, what).await;
    }
    assert!(report.iter().all(|r| r.contains("ok=true")), "{report:#?}");
    // Path tricks never reached Coopr as a write.
    assert!(d.dcs[0].log().is_empty(), "{:?}", d.dcs[0].log());
}

#[tokio::test]
async fn spoofed_router_headers_on_the_client_port_are_ignored() {
    let d = deployment().await;
    let dc1 = &d.dcs[0];
    let id = support::create_active(dc1, "spoof").await;
    // A client pretending to be a router: hop from dc2, a huge epoch, a forged route.
    let spoof = "X-Coopr-Router-Hop: dc2\r\nX-Coopr-Router-Epoch: 999999\r\nX-Coopr-Router-Route: local\r\nX-Coopr-Router-Dc: dc3\r\n";
    let a = raw(
        dc1.client,
        &req("POST", &format!("/v2/clusters/{id}/abort"), spoof, ""),
    )
    .await;
    assert!(a.status.is_some_and(|s| s < 500), "{a:?}");
    assert!(a.text.contains("x-coopr-router-dc: dc1"), "{a:?}");
    let entry = dc1
        .log()
        .into_iter()
        .find(|e| e.path.ends_with("/abort"))
        .expect("the abort reached dc1's Coopr");
    assert_ne!(entry.epoch.as_deref(), Some("999999"), "{entry:?}");
    // The same request from dc2 goes through dc2's router, which adds its own hop header.
    let a = raw(
        d.dcs[1].client,
        &req("GET", &format!("/v2/clusters/{id}"), spoof, ""),
    )
    .await;
    assert_eq!(a.status, Some(200), "{a:?}");
    assert!(a.text.contains("x-coopr-router-route: forwarded"), "{a:?}");
}

#[tokio::test]
async fn past_max_connections_new_connections_are_closed_and_service_resumes() {
    let d = support::start_with_text(Duration::from_millis(50), |_, t| {
        t + "[limits]\nmax_connections = 4\n"
    })
    .await;
    let addr = d.dcs[0].client;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // A complete request on each, so each is surely accepted and holding its slot.
        s.write_all(b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(s);
    }
    let over = raw(addr, &req("GET", "/status", "", "")).await;
    assert!(over.closed && over.status.is_none(), "{over:?}");
    drop(held.pop());
    support::eventually(Duration::from_secs(5), "a freed slot", || async {
        (raw(addr, &req("GET", "/status", "", "")).await.status == Some(200)).then_some(())
    })
    .await;
}

/// A client still sending an oversized body when the 413 comes reads the 413: the router reads
/// and throws away the rest (bounded) instead of closing with unread data, which the kernel
/// turns into a reset that can destroy the answer before the client reads it. Both ways to
/// 413: a declared length over the limit (answered before any of the body is read), and a
/// chunked body that turns out too large.
#[tokio::test]
async fn a_client_still_sending_an_oversized_body_reads_the_413() {
    let d = deployment().await;
    let addr = d.dcs[0].client;
    let chunk = vec![b'x'; 64 * 1024];
    let declared = format!(
        "POST /v2/nodes HTTP/1.1\r\nHost: router\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        6 * chunk.len()
    );
    let mut parts: Vec<&[u8]> = vec![declared.as_bytes()];
    parts.extend(std::iter::repeat_n(chunk.as_slice(), 6));
    let a = raw_slow(addr, &parts, Duration::from_millis(30)).await;
    assert_eq!(a.status, Some(413), "declared length: {a:?}");

    let head = "POST /v2/nodes HTTP/1.1\r\nHost: router\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk.clone(),
        b"\r\n".to_vec(),
    ]
    .concat();
    let mut parts: Vec<&[u8]> = vec![head.as_bytes()];
    parts.extend(std::iter::repeat_n(framed.as_slice(), 6));
    parts.push(b"0\r\n\r\n");
    let a = raw_slow(addr, &parts, Duration::from_millis(30)).await;
    assert_eq!(a.status, Some(413), "chunked: {a:?}");
    // An HTTP client that writes the whole body before it reads (hyper's does): without the
    // drain its write fails with a reset and it never sees the answer.
    for i in 0..5 {
        let r = support::send(
            http::Method::POST,
            &d.dcs[0].url("/v2/nodes"),
            &support::ADMIN,
            support::GenBody::new(900 * 1024),
        )
        .await;
        assert_eq!(r.status, http::StatusCode::PAYLOAD_TOO_LARGE, "try {i}");
    }
    still_serves(addr, "oversized bodies").await;
}
