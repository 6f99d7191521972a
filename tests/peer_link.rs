//! The HTTP/2 link to peer routers (`src/upstream/h2`): against the router's own HTTP/2 server
//! (what a peer router serves its peer port with), requests sent at once share one connection
//! and reach the server as sent, an answer larger than the stream window streams through
//! whole, and a peer that cannot be reached is a failure that sent nothing. Through three
//! routers: a forwarded request answers the same over the link as over HTTP/1.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use coopr_router::body::{ClientBody, ProxyBody};
use coopr_router::config::Timeouts;
use coopr_router::server::h2::{Limits, Options, serve};
use coopr_router::shutdown::ShutdownTrigger;
use coopr_router::upstream::{Outbound, SendError, Upstream};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// What the server's handler was handed: method, URI, the `x-*` fields, the body.
type Seen = (Method, String, Vec<(String, String)>, Vec<u8>);

struct Peer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// The router's own HTTP/2 server on a loopback port: each request is recorded and answered
/// with `x-answer-len` bytes (byte i = i % 251) and its `x-echo` field back.
async fn peer() -> Peer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (connections.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, remote)) = listener.accept().await else {
                return;
            };
            c.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            tokio::spawn(async move {
                let (_trigger, shutdown) = ShutdownTrigger::new();
                let opts = Options {
                    limits: Limits {
                        max_streams: 256,
                        max_header_list: 64 * 1024,
                        stream_window: 1024 * 1024,
                        conn_window: 1024 * 1024,
                    },
                    idle: Duration::from_secs(3600),
                    per_connection: 32,
                };
                let handler = move |req: Request<ClientBody>, _: SocketAddr| {
                    let s = s.clone();
                    async move { answer(req, &s).await }
                };
                // The h2c preface is read by `serve` itself when nothing was read before.
                serve(tcp, Bytes::new(), remote, handler, opts, &shutdown).await;
            });
        }
    });
    Peer {
        addr,
        connections,
        seen,
    }
}

async fn answer(req: Request<ClientBody>, seen: &Mutex<Vec<Seen>>) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    let mut fields: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-") || *n == "content-length")
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    fields.sort();
    let len: usize = parts
        .headers
        .get("x-answer-len")
        .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
    let echo = parts.headers.get("x-echo").cloned();
    seen.lock()
        .unwrap()
        .push((parts.method, parts.uri.to_string(), fields, body));
    let mut resp = Response::new(if len == 0 {
        ProxyBody::Empty
    } else {
        ProxyBody::full((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
    });
    if let Some(e) = echo {
        resp.headers_mut().insert("x-echo", e);
    }
    resp
}

fn upstream() -> Upstream {
    let tls = coopr_router::tls::Material::plain().unwrap();
    Upstream::new(&Timeouts::default(), &tls).with_peer_links(128)
}

fn request(
    addr: SocketAddr,
    i: usize,
    answer_len: usize,
    body: &'static str,
) -> Request<ProxyBody> {
    let method = if body.is_empty() {
        Method::GET
    } else {
        Method::POST
    };
    Request::builder()
        .method(method)
        .uri(format!("http://{addr}/v2/clusters/{i:08}/status?n={i}"))
        .header("x-echo", format!("e{i}"))
        .header("x-answer-len", answer_len.to_string())
        .header("x-multi", "a")
        .header("x-multi", "b")
        .body(if body.is_empty() {
            ProxyBody::Empty
        } else {
            ProxyBody::full(body)
        })
        .unwrap()
}

async fn send(
    u: &Upstream,
    req: Request<ProxyBody>,
) -> Result<(StatusCode, String, Vec<u8>), SendError> {
    let (out, body) = Outbound::of_request(req);
    let resp = u.send_to_peer(out, body, Duration::from_secs(10)).await?;
    let echo = resp
        .headers()
        .get("x-echo")
        .map_or(String::new(), |v| v.to_str().unwrap().to_string());
    let status = resp.status();
    let body = tokio::time::timeout(Duration::from_secs(20), resp.into_body().collect())
        .await
        .expect("the body within 20 s")
        .unwrap()
        .to_bytes()
        .to_vec();
    Ok((status, echo, body))
}

#[tokio::test]
async fn requests_sent_at_once_share_one_connection_and_arrive_as_sent() {
    let p = peer().await;
    let u = upstream();
    let sends = (0..50).map(|i| {
        let u = u.clone();
        let body = if i % 2 == 0 { "" } else { "{\"a\":1}" };
        let req = request(p.addr, i, i * 10, body);
        async move { send(&u, req).await.unwrap() }
    });
    let answers = futures_util::future::join_all(sends).await;
    for (i, (status, echo, body)) in answers.into_iter().enumerate() {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(echo, format!("e{i}"));
        assert_eq!(
            body,
            (0..i * 10).map(|k| (k % 251) as u8).collect::<Vec<u8>>()
        );
    }
    assert_eq!(
        p.connections.load(Ordering::SeqCst),
        1,
        "one connection for them all"
    );
    let mut seen = p.seen.lock().unwrap().clone();
    seen.sort_by_key(|s| s.1.clone());
    assert_eq!(seen.len(), 50);
    for (i, (method, uri, fields, body)) in seen.into_iter().enumerate() {
        let post = i % 2 == 1;
        assert_eq!(method, if post { Method::POST } else { Method::GET });
        assert_eq!(
            uri,
            format!("http://{}/v2/clusters/{i:08}/status?n={i}", p.addr)
        );
        let mut want = vec![
            ("x-answer-len".to_string(), (i * 10).to_string()),
            ("x-echo".to_string(), format!("e{i}")),
            ("x-multi".to_string(), "a".to_string()),
            ("x-multi".to_string(), "b".to_string()),
        ];
        if post {
            want.push(("content-length".to_string(), "7".to_string()));
        }
        want.sort();
        assert_eq!(fields, want, "request {i}");
        assert_eq!(
            body,
            if post {
                b"{\"a\":1}".to_vec()
            } else {
                Vec::new()
            }
        );
    }
}

#[tokio::test]
async fn an_answer_larger_than_the_stream_window_streams_through_whole() {
    let p = peer().await;
    let u = upstream();
    let len = 3 * 1024 * 1024 + 17;
    let big = (0..2).map(|i| {
        let u = u.clone();
        let req = request(p.addr, i, len, "");
        async move { send(&u, req).await.unwrap() }
    });
    for (status, _, body) in futures_util::future::join_all(big).await {
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), len);
        assert!(body.iter().enumerate().all(|(k, b)| *b == (k % 251) as u8));
    }
    assert_eq!(p.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_peer_that_cannot_be_reached_is_a_failure_that_sent_nothing() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let u = upstream();
    match send(&u, request(closed, 1, 0, "{}")).await {
        Err(SendError::Connect(_)) => {}
        other => panic!("{:?}", other.map(|a| a.0)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_answers_the_same_over_the_link_as_over_http1() {
    // dc2 forwards over HTTP/2 links (the default), dc3 over HTTP/1.1.
    let d = start_with(Duration::from_millis(50), |i| {
        if i == 2 {
            "[limits]\npeer_h2_streams = 0\n".into()
        } else {
            String::new()
        }
    })
    .await;
    let (dc1, dc2, dc3) = (&d.dcs[0], &d.dcs[1], &d.dcs[2]);
    let id = create_active(dc1, "alpha").await;
    let reads = [
        format!("/v2/clusters/{id}"),
        format!("/v2/clusters/{id}/status"),
        format!("/v2/clusters/{id}/config"),
        format!("/v2/clusters/{id}/services"),
        "/v2/clusters/00000004".to_string(),
    ];
    for path in &reads {
        let a = get(&dc2.url(path)).await;
        let b = get(&dc3.url(path)).await;
        assert_eq!(a.status, b.status, "{path}");
        assert_eq!(a.header("x-coopr-router-route"), "forwarded", "{path}");
        assert_eq!(b.header("x-coopr-router-route"), "forwarded", "{path}");
        for h in [
            "x-coopr-router-dc",
            "x-coopr-router-shard",
            "x-coopr-router-epoch",
            "content-type",
            "content-length",
        ] {
            assert_eq!(a.header(h), b.header(h), "{path}: {h}");
        }
        assert_eq!(a.text(), b.text(), "{path}");
    }
    // A write over the link lands in the owner's Coopr with the same request id.
    let path = format!("/v2/clusters/{id}/services/restart");
    let r = post(&dc2.url(&path), "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(
        dc1.log()
            .iter()
            .any(|e| e.path == path && e.request_id.as_deref() == Some(r.header("x-request-id")))
    );
    // The metrics recorder is the process's: what dc2 opened is told apart by its peer.
    let metrics = get(&dc2.admin_url("/metrics")).await.text();
    let opened = format!(
        "coopr_router_peer_h2_links_opened_total{{peer=\"{}\"}}",
        dc1.peer
    );
    assert!(metrics.contains(&opened), "{opened} in {metrics}");
    assert!(
        !metrics.contains("coopr_router_peer_over_http1_total"),
        "{metrics}"
    );
}

/// A peer that accepts and then never answers (its packets dropped by a partition), after
/// opening HTTP/2 (`greet`: an empty SETTINGS) or not (a relay with nothing behind it).
async fn silent_peer(greet: bool) -> (SocketAddr, Arc<Mutex<Vec<tokio::net::TcpStream>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            if greet {
                tokio::io::AsyncWriteExt::write_all(&mut tcp, &[0, 0, 0, 4, 0, 0, 0, 0, 0])
                    .await
                    .unwrap();
            }
            h.lock().unwrap().push(tcp);
        }
    });
    (addr, held)
}

#[tokio::test]
async fn a_silent_peer_is_found_out_by_a_ping_not_by_the_response_timeout() {
    let (addr, held) = silent_peer(true).await;
    let u = upstream();
    let started = std::time::Instant::now();
    let first = {
        let u = u.clone();
        tokio::spawn(async move { send(&u, request(addr, 1, 0, "{}")).await.map(|a| a.0) })
    };
    // A link that read nothing for 200 ms with a stream open takes no new stream: the next
    // request opens a connection of its own.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = {
        let u = u.clone();
        tokio::spawn(async move { send(&u, request(addr, 2, 0, "{}")).await.map(|a| a.0) })
    };
    match first.await.unwrap() {
        Err(SendError::Failed(e)) => assert!(e.contains("PING"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "found out in {:?}, not after the 10 s response timeout",
        started.elapsed()
    );
    assert!(matches!(second.await.unwrap(), Err(SendError::Failed(_))));
    assert_eq!(
        held.lock().unwrap().len(),
        2,
        "the second request took a new connection"
    );
}

#[tokio::test]
async fn a_connection_that_never_opens_http2_sent_nothing() {
    // Accepted (a relay, a balancer) but no router behind it: nothing of the request left, so
    // it is refused, sent again once, and then a failure that sent nothing (held upstream).
    let (addr, held) = silent_peer(false).await;
    let u = upstream();
    match send(&u, request(addr, 1, 0, "{}")).await {
        Err(SendError::Connect(e)) => assert!(e.contains("SETTINGS"), "{e}"),
        other => panic!("{:?}", other.map(|a| a.0)),
    }
    assert_eq!(held.lock().unwrap().len(), 2, "tried twice");
}
