//! Every connection has a deadline in every state, and one client connection cannot hold an
//! unbounded number of upstream connections: a connection that sends one byte of what may be
//! an h2c preface, a TLS session that sends nothing after its handshake, an idle h2c
//! connection, a request body that stalls, and 200 trickling h2 streams.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::tls::{Pki, client_config, connect};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Small deadlines: the head (and idle) timeout 500 ms, a stalled body 500 ms.
fn small(t: String) -> String {
    t.replace(
        "[timeouts]\n",
        "[timeouts]\nrequest_head_ms = 500\nbody_idle_ms = 500\n",
    )
}

/// Reads until the peer closes (or fails): `true` if that happened within `within`.
async fn closes_within<S: AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
    let mut buf = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut buf))
        .await
        .is_ok()
}

async fn status_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return false;
    };
    let _ = s
        .write_all(b"GET /status HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    buf.starts_with(b"HTTP/1.1 200")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_of_a_preface_holds_its_slot_only_until_the_deadline() {
    let d = support::start_with_text(Duration::from_millis(50), |_, t| {
        small(t) + "[limits]\nmax_connections = 3\n"
    })
    .await;
    let addr = d.dcs[0].client;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"P").await.unwrap();
        held.push(s);
    }
    for s in &mut held {
        assert!(
            closes_within(s, Duration::from_secs(5)).await,
            "a connection that sent only `P` is still open"
        );
    }
    support::eventually(Duration::from_secs(5), "a new client served", || async {
        status_ok(addr).await.then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_tls_session_is_closed_whatever_alpn_chose() {
    let pki = Pki::new(&["dc1", "dc2", "dc3"]);
    let d = support::start_with_text(Duration::from_millis(50), |i, t| small(pki.edit(i, t))).await;
    let offers: [&[&[u8]]; 3] = [&[b"h2"], &[b"http/1.1"], &[]];
    for alpn in offers {
        let mut tls = connect(
            d.dcs[0].client,
            "localhost",
            client_config(&pki.ca(), None, alpn),
        )
        .await
        .expect("handshake");
        assert!(
            closes_within(&mut tls, Duration::from_secs(5)).await,
            "a silent TLS session (ALPN {alpn:?}) is still open"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_h2c_connection_gets_goaway_and_closes() {
    let d = support::start_with_text(Duration::from_millis(50), |_, t| small(t)).await;
    let dc = &d.dcs[0];
    let stream = TcpStream::connect(dc.client).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2c handshake");
    let conn = tokio::spawn(conn);
    let req = Request::get(format!("http://{}/status", dc.client))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.expect("h2 response");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
    // Idle from here: the router says GOAWAY and closes; the client's connection ends.
    let ended = tokio::time::timeout(Duration::from_secs(5), conn).await;
    assert!(ended.is_ok(), "an idle h2c connection is still open");
    assert!(send.is_closed() || send.ready().await.is_err());
}

/// DC 1's only Coopr server becomes `backend`.
fn backend_of_dc1(i: usize, t: String, backend: SocketAddr) -> String {
    if i != 0 {
        return t;
    }
    let key = "[[backends]]\nurl = \"";
    let start = t.find(key).unwrap() + key.len();
    let end = start + t[start..].find('"').unwrap();
    format!("{}http://{backend}{}", &t[..start], &t[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_cut_with_408() {
    let (backend, now, _) = hanging_backend().await;
    let d = support::start_with_text(Duration::from_millis(50), |i, t| {
        backend_of_dc1(i, small(t), backend)
    })
    .await;
    let mut s = TcpStream::connect(d.dcs[0].client).await.unwrap();
    // An unclassified path goes to the local Coopr server (which waits for the whole body),
    // its body streamed.
    s.write_all(
        b"POST /v2/anything HTTP/1.1\r\nHost: r\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\nContent-Length: 100\r\n\r\n0123456789",
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    assert!(text.contains("body_timeout"), "{text:?}");
    // The upstream request was aborted: its connection is gone.
    support::eventually(
        Duration::from_secs(5),
        "the upstream connection closed",
        || async { (now.load(Ordering::SeqCst) == 0).then_some(()) },
    )
    .await;
}

/// A Coopr stand-in that answers `GET /status` and otherwise reads request bytes forever,
/// counting the connections that carry such a request (now and at most).
async fn hanging_backend() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), max.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let (n, m) = (n.clone(), m.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => head.extend_from_slice(&b[..k]),
                    }
                }
                if head.starts_with(b"GET /status") {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                    return;
                }
                let c = n.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(c, Ordering::SeqCst);
                while let Ok(k) = s.read(&mut b).await {
                    if k == 0 {
                        break;
                    }
                }
                n.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, now, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_trickling_h2_streams_hold_a_bounded_number_of_upstream_connections() {
    let (backend, now, max) = hanging_backend().await;
    let d = support::start_with_text(Duration::from_millis(50), |i, t| {
        backend_of_dc1(i, t + "[limits]\nupstream_per_connection = 4\n", backend)
    })
    .await;
    let dc = &d.dcs[0];
    let stream = TcpStream::connect(dc.client).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake::<_, support::ChannelBody>(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let mut feeds = Vec::new();
    for i in 0..200 {
        let (tx, rx) = mpsc::channel(4);
        let req = Request::post(format!("http://{}/v2/trickle/{i}", dc.client))
            .header("coopr-userid", "admin")
            .header("coopr-tenantid", "superadmin")
            .body(support::ChannelBody(rx))
            .unwrap();
        let mut send = send.clone();
        tokio::spawn(async move {
            let _ = send.ready().await;
            let _ = send.send_request(req).await;
        });
        feeds.push(tx);
    }
    // The streams trickle their bodies for a while: one byte each, every 100 ms.
    support::eventually(Duration::from_secs(5), "upstream requests", || async {
        (now.load(Ordering::SeqCst) >= 4).then_some(())
    })
    .await;
    for _ in 0..10 {
        for tx in &feeds {
            let _ = tx.try_send(Bytes::from_static(b"x"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let most = max.load(Ordering::SeqCst);
    assert!(
        most <= 4,
        "one h2 connection held {most} upstream connections at once"
    );
}
