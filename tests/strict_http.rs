//! HTTP as strict as HAProxy: `Host` exactly once (HTTP/2: `:authority` may stand in, a
//! disagreeing `host` is refused), `Connection` may not name protected headers, no `CONNECT`
//! or `OPTIONS *`, `chunked` once and last, exactly `limits.max_headers` fields allowed, and
//! ALPN decides the protocol on TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::time::Duration;
use support::tls::{Pki, client_config, connect};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The status of the first response to `bytes` and the text read until close (or 5 s).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let _ = s.write_all(bytes).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok());
    (status, text)
}

const ID: &str = "Coopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\nConnection: close\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_heads_on_http1() {
    let d = support::start(Duration::from_millis(50)).await;
    let addr = d.dcs[0].client;
    let fields = |n: usize| -> String {
        // Host, the two identity headers, Connection: 4 fields; then fillers up to n.
        let fill: String = (0..n - 4).map(|i| format!("X-F{i}: v\r\n")).collect();
        format!("GET /status HTTP/1.1\r\nHost: r\r\n{ID}{fill}\r\n")
    };
    let cases: Vec<(&str, String, &[u16])> = vec![
        ("no Host", format!("GET /status HTTP/1.1\r\n{ID}\r\n"), &[400]),
        (
            "two Host",
            format!("GET /status HTTP/1.1\r\nHost: a\r\nHost: b\r\n{ID}\r\n"),
            &[400],
        ),
        (
            "Connection names x-request-id",
            "GET /status HTTP/1.1\r\nHost: r\r\nConnection: close, x-request-id\r\n\r\n".into(),
            &[400],
        ),
        (
            "Connection names a router header",
            "GET /status HTTP/1.1\r\nHost: r\r\nConnection: close, X-Coopr-Router-Dc\r\n\r\n"
                .into(),
            &[400],
        ),
        (
            "Connection names Host",
            "GET /status HTTP/1.1\r\nHost: r\r\nConnection: close, host\r\n\r\n".into(),
            &[400],
        ),
        (
            "Connection names Content-Length",
            "POST /v2/x HTTP/1.1\r\nHost: r\r\nConnection: close, content-length\r\nContent-Length: 2\r\n\r\n{}".into(),
            &[400],
        ),
        (
            "Connection names Transfer-Encoding",
            "POST /v2/x HTTP/1.1\r\nHost: r\r\nConnection: close, Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(),
            &[400],
        ),
        (
            "CONNECT",
            "CONNECT r:443 HTTP/1.1\r\nHost: r:443\r\nConnection: close\r\n\r\n".into(),
            &[400, 405],
        ),
        (
            "OPTIONS *",
            "OPTIONS * HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".into(),
            &[400, 405],
        ),
        (
            "chunked, chunked",
            "POST /v2/x HTTP/1.1\r\nHost: r\r\nConnection: close\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n".into(),
            &[400],
        ),
        ("exactly max_headers (100) fields", fields(100), &[200]),
        ("max_headers + 1 fields", fields(101), &[431]),
    ];
    let mut report = Vec::new();
    for (what, bytes, want) in &cases {
        let (status, text) = raw(addr, bytes.as_bytes()).await;
        // The router's own refusals carry its JSON error body.
        let ok = status.is_some_and(|s| want.contains(&s))
            && (!matches!(status, Some(400 | 405)) || text.contains("\"error\""));
        report.push(format!(
            "{what}: {status:?} ok={ok} {:?}",
            text.lines().last()
        ));
    }
    assert!(report.iter().all(|r| r.contains("ok=true")), "{report:#?}");
    // A non-final chunked: hyper refuses it itself (400, no JSON body).
    let (status, _) = raw(
        addr,
        b"POST /v2/x HTTP/1.1\r\nHost: r\r\nConnection: close\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(status, Some(400));
    assert!(d.dcs[0].log().is_empty(), "{:?}", d.dcs[0].log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_authority_stands_in_for_host_and_must_agree_with_it() {
    let d = support::start(Duration::from_millis(50)).await;
    let dc = &d.dcs[0];
    let stream = TcpStream::connect(dc.client).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    tokio::spawn(conn);
    let mut status = async |host: Option<&str>| {
        let mut b = Request::get(format!("http://{}/status", dc.client));
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let resp = send
            .send_request(b.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("h2 response");
        let s = resp.status().as_u16();
        resp.into_body().collect().await.unwrap();
        s
    };
    assert_eq!(status(None).await, 200, ":authority alone");
    assert_eq!(
        status(Some(&dc.client.to_string())).await,
        200,
        "agreeing host"
    );
    assert_eq!(
        status(Some("elsewhere.example")).await,
        400,
        "disagreeing host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_decides_the_protocol_on_tls() {
    let pki = Pki::new(&["dc1", "dc2", "dc3"]);
    let d = support::start_with_text(Duration::from_millis(50), |i, t| pki.edit(i, t)).await;
    // ALPN chose HTTP/1.1: the HTTP/2 preface is not HTTP/2 here.
    let mut tls = connect(
        d.dcs[0].client,
        "localhost",
        client_config(&pki.ca(), None, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    assert!(
        buf.is_empty() || buf.starts_with(b"HTTP/1.1 4"),
        "HTTP/2 served over an http/1.1 ALPN: {:?}",
        String::from_utf8_lossy(&buf)
    );
    // ALPN chose h2: an HTTP/1.1 request gets no HTTP/1.1 answer.
    let mut tls = connect(
        d.dcs[0].client,
        "localhost",
        client_config(&pki.ca(), None, &[b"h2"]),
    )
    .await
    .unwrap();
    tls.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/1.1"),
        "HTTP/1.1 served over an h2 ALPN: {:?}",
        String::from_utf8_lossy(&buf)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_h2c_preface_is_answered_in_http2() {
    let d = support::start(Duration::from_millis(50)).await;
    // A broken preface, and h2spec's 3.5/2 (a first line that is neither HTTP/1 nor HTTP/2).
    for opening in [
        &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..],
        b"INVALID CONNECTION PREFACE\r\n\r\n",
        b"GARBAGE\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(d.dcs[0].client).await.unwrap();
        s.write_all(opening).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        // GOAWAY (type 7) on stream 0, PROTOCOL_ERROR (1), and the end; not an HTTP/1.1 answer.
        assert!(
            buf.len() == 17
                && buf[3] == 7
                && buf[5..9] == [0, 0, 0, 0]
                && buf[13..17] == [0, 0, 0, 1],
            "{:?} answered {:?}",
            String::from_utf8_lossy(opening),
            String::from_utf8_lossy(&buf)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_in_pieces_is_still_http1() {
    let d = support::start(Duration::from_millis(50)).await;
    let mut s = TcpStream::connect(d.dcs[0].client).await.unwrap();
    // The first line arrives a few bytes at a time; the router waits for all of it.
    for piece in [&b"GE"[..], b"T /v2/clus", b"ters HTT", b"P/1.1\r"] {
        s.write_all(piece).await.unwrap();
        s.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.write_all(format!("\nHost: x\r\n{ID}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// One HTTP/2 frame: length, type, flags, stream, payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Reads frames (type, flags, stream, payload) until `stop` says so or `within` passes.
async fn frames_until(
    s: &mut TcpStream,
    within: Duration,
    mut stop: impl FnMut(u8, u32, &[u8]) -> bool,
) -> Vec<(u8, u32, Vec<u8>)> {
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(within, async {
        loop {
            let mut head = [0u8; 9];
            if s.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let stream = u32::from_be_bytes([head[5] & 0x7f, head[6], head[7], head[8]]);
            let mut payload = vec![0u8; len];
            if s.read_exact(&mut payload).await.is_err() {
                return;
            }
            let done = stop(head[3], stream, &payload);
            seen.push((head[3], stream, payload));
            if done {
                return;
            }
        }
    })
    .await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_a_body_is_answered_after_the_body_not_under_the_client() {
    let d = support::start(Duration::from_millis(50)).await;
    let addr = d.dcs[0].client;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // GET / on stream 1 without END_STREAM: a body follows (HPACK: static :method GET,
    // :scheme http, :path /, and :authority as a literal).
    let authority = addr.to_string();
    let mut block = vec![0x82, 0x86, 0x84, 0x41, authority.len() as u8];
    block.extend_from_slice(authority.as_bytes());
    let mut opening = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    opening.extend(frame(4, 0, 0, &[]));
    opening.extend(frame(1, 0x4, 1, &block));
    s.write_all(&opening).await.unwrap();
    // While the body has not ended, no answer comes (Coopr answers a GET without reading its
    // body; the router reads a read's body first). Absence over a window.
    let early = frames_until(&mut s, Duration::from_millis(300), |kind, stream, _| {
        kind == 1 && stream == 1
    })
    .await;
    assert!(
        !early
            .iter()
            .any(|(kind, stream, _)| *kind == 1 && *stream == 1),
        "answered before the body ended: {early:?}"
    );
    // The client resets the stream, then sends DATA on it: a stream error STREAM_CLOSED (h2spec
    // 5.1/8), which the router can only give if it had not reset the stream itself.
    let mut tail = frame(3, 0, 1, &8u32.to_be_bytes());
    tail.extend(frame(0, 0x1, 1, b"test"));
    s.write_all(&tail).await.unwrap();
    let later = frames_until(&mut s, Duration::from_secs(5), |kind, stream, payload| {
        (kind == 3 && stream == 1) || kind == 7 && payload.len() >= 8
    })
    .await;
    let closed = later.iter().any(|(kind, stream, payload)| {
        (*kind == 3 && *stream == 1 && payload[..] == [0, 0, 0, 5])
            || (*kind == 7 && payload[4..8] == [0, 0, 0, 5])
    });
    assert!(
        closed,
        "no STREAM_CLOSED after DATA on a reset stream: {later:?}"
    );
}
