//! The router's own HTTP/2 server (`src/server/h2`) against hyper 1's (`proto/h2/server.rs`
//! over the h2 crate, configured as the router configured it before), on the same inputs:
//! random sequences of requests (methods, paths with queries, header fields of every kind a
//! client sends: names from HPACK's static table and others, repeated names, values with
//! inner spaces; bodies from empty to past the initial stream window, in random pieces) are
//! sent by hyper's HTTP/2 client (the h2 crate's HPACK encoder: Huffman, its dynamic table,
//! carried across the requests of one connection) to each server over an in-memory pipe. Each
//! server's handler records what it was handed and answers as the request asks (a status,
//! header fields, a body of some length, which may outgrow the client's windows). Both must
//! hand the handler the same method, URI, version, header fields and body, and the client must
//! get the same status, header fields (but `date`) and body from both.
//!
//! Every exchange runs on a current-thread runtime whose clock is paused: nothing depends on
//! how fast the machine is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use coopr_router::body::{ClientBody, ProxyBody};
use coopr_router::server::h2::{Limits, Options, serve};
use coopr_router::shutdown::ShutdownTrigger;
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::{TokioExecutor, TokioIo};
use proptest::prelude::*;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a handler was handed.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: Method,
    uri: String,
    version: http::Version,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// What the client got.
#[derive(Debug, Clone, PartialEq)]
struct Got {
    status: StatusCode,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Sizes of the pieces the body is sent in.
    pieces: Vec<usize>,
    status: u16,
    answer_headers: Vec<(String, String)>,
    answer_len: usize,
}

fn fields(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = h
        .iter()
        .filter(|(n, _)| *n != http::header::DATE)
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    // The order of different names is the map's; compare as a multiset kept in per-name order.
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The answer a request asks for: `x-answer-status`, `x-answer-len` and `x-answer-*` fields.
fn answer(headers: &HeaderMap) -> Response<ProxyBody> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let status = get("x-answer-status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let len: usize = get("x-answer-len")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut resp = Response::new(if len == 0 {
        ProxyBody::Empty
    } else {
        ProxyBody::full((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
    });
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    for (n, v) in headers {
        if let Some(rest) = n.as_str().strip_prefix("x-answer-h-") {
            resp.headers_mut()
                .append(HeaderName::from_bytes(rest.as_bytes()).unwrap(), v.clone());
        }
    }
    resp
}

async fn record<B>(req: Request<B>, seen: &Mutex<Vec<Seen>>) -> Response<ProxyBody>
where
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = req.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    let resp = answer(&parts.headers);
    seen.lock().unwrap().push(Seen {
        method: parts.method,
        uri: parts.uri.to_string(),
        version: parts.version,
        headers: fields(&parts.headers),
        body,
    });
    resp
}

/// Sends `cases` in turn over one connection to the server at the other end of `io`.
async fn client(io: tokio::io::DuplexStream, cases: &[Case]) -> Vec<Got> {
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut got = Vec::new();
    for c in cases {
        let mut b = Request::builder()
            .method(c.method.clone())
            .uri(format!("http://coopr.test{}", c.path));
        for (n, v) in &c.headers {
            b = b.header(n.as_str(), v.as_str());
        }
        b = b
            .header("x-answer-status", c.status.to_string())
            .header("x-answer-len", c.answer_len.to_string());
        for (n, v) in &c.answer_headers {
            b = b.header(format!("x-answer-h-{n}"), v.as_str());
        }
        let mut chunks = Vec::new();
        let mut at = 0;
        for p in c.pieces.iter().cycle() {
            if at >= c.body.len() {
                break;
            }
            let end = (at + p).min(c.body.len());
            chunks.push(Ok::<_, Infallible>(http_body::Frame::data(
                Bytes::copy_from_slice(&c.body[at..end]),
            )));
            at = end;
        }
        let body = StreamBody::new(futures_stream(chunks));
        let resp = send.send_request(b.body(body).unwrap()).await.unwrap();
        let (parts, body) = resp.into_parts();
        got.push(Got {
            status: parts.status,
            headers: fields(&parts.headers),
            body: body.collect().await.unwrap().to_bytes().to_vec(),
        });
    }
    got
}

/// A stream of the given items (no futures-util stream combinators needed in the test).
fn futures_stream<T: Unpin>(items: Vec<T>) -> impl futures_util::Stream<Item = T> + Unpin {
    struct Items<T>(std::collections::VecDeque<T>);
    impl<T: Unpin> futures_util::Stream for Items<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.pop_front())
        }
    }
    Items(items.into())
}

fn remote() -> SocketAddr {
    "127.0.0.1:9".parse().unwrap()
}

/// The cases through the router's own server: what its handler saw, what the client got.
async fn own(cases: &[Case]) -> (Vec<Seen>, Vec<Got>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let seen = Arc::new(Mutex::new(Vec::new()));
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
    let s = seen.clone();
    let handler = move |req: Request<ClientBody>, _: SocketAddr| {
        let s = s.clone();
        async move { record(req, &s).await }
    };
    let server =
        tokio::spawn(
            async move { serve(b, Bytes::new(), remote(), handler, opts, &shutdown).await },
        );
    let got = client(a, cases).await;
    server.abort();
    let seen = seen.lock().unwrap().clone();
    (seen, got)
}

/// The same through hyper's HTTP/2 server, configured as `server/mod.rs` configured it.
async fn hyper(cases: &[Case]) -> (Vec<Seen>, Vec<Got>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let s = s.clone();
        async move { Ok::<_, Infallible>(record(req, &s).await) }
    });
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024);
    let server = tokio::spawn(async move {
        let _ = builder.serve_connection(TokioIo::new(b), svc).await;
    });
    let got = client(a, cases).await;
    server.abort();
    let seen = seen.lock().unwrap().clone();
    (seen, got)
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        // Names in HPACK's static table, and the router's own.
        prop::sample::select(vec![
            "accept",
            "accept-encoding",
            "user-agent",
            "cookie",
            "content-type",
            "referer",
            "cache-control",
            "if-none-match",
            "authorization",
            "x-coopr-userid",
            "x-coopr-tenantid",
            "x-coopr-apikey",
            "x-request-id",
            "forwarded",
        ])
        .prop_map(str::to_string),
        "[a-z][a-z0-9-]{0,20}".prop_filter("not an answer header", |n| !n.starts_with("x-answer")),
    ]
}

fn value() -> impl Strategy<Value = String> {
    // Visible ASCII with inner spaces, no leading or trailing whitespace.
    "[!-~]([ !-~]{0,40}[!-~])?"
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]),
        "/[a-z0-9/._-]{0,30}(\\?[a-z0-9=&]{0,20})?",
        prop::collection::vec((name(), value()), 0..8),
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..300),
            1 => (60_000usize..140_000).prop_map(|n| (0..n).map(|i| (i % 7) as u8).collect()),
        ],
        prop::collection::vec(1usize..20_000, 1..4),
        prop::sample::select(vec![200u16, 201, 204, 302, 400, 404, 409, 418, 500, 503]),
        prop::collection::vec(("[a-z][a-z0-9-]{0,12}", value()), 0..4),
        prop_oneof![3 => 0usize..500, 1 => 60_000usize..200_000],
    )
        .prop_map(
            |(method, path, headers, body, pieces, status, answer_headers, answer_len)| Case {
                method,
                path,
                headers,
                body,
                pieces,
                status,
                // Fields HTTP/2 does not carry, or that the servers set themselves, are left out.
                answer_headers: answer_headers
                    .into_iter()
                    .filter(|(n, _)| {
                        !matches!(
                            n.as_str(),
                            "connection"
                                | "keep-alive"
                                | "proxy-connection"
                                | "transfer-encoding"
                                | "upgrade"
                                | "te"
                                | "content-length"
                                | "date"
                        )
                    })
                    .collect(),
                answer_len: if status == 204 { 0 } else { answer_len },
            },
        )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_same_requests_are_handed_on_and_answered_as_by_hyper(
        cases in prop::collection::vec(case(), 1..6),
    ) {
        let rt = runtime();
        let (own_seen, own_got) = rt.block_on(own(&cases));
        let (hyper_seen, hyper_got) = rt.block_on(hyper(&cases));
        prop_assert_eq!(own_seen.len(), cases.len());
        prop_assert_eq!(&own_seen, &hyper_seen);
        prop_assert_eq!(&own_got, &hyper_got);
        for (c, s) in cases.iter().zip(&own_seen) {
            prop_assert_eq!(&s.body, &c.body);
        }
    }
}

#[test]
fn a_request_with_a_large_body_and_a_large_answer_gets_through_both() {
    let case = Case {
        method: Method::POST,
        path: "/v2/clusters".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: vec![7; 3 * 1024 * 1024],
        pieces: vec![16_384],
        status: 200,
        answer_headers: vec![("x-a".into(), "b".into())],
        answer_len: 3 * 1024 * 1024,
    };
    let rt = runtime();
    let (own_seen, own_got) = rt.block_on(own(std::slice::from_ref(&case)));
    let (hyper_seen, hyper_got) = rt.block_on(hyper(std::slice::from_ref(&case)));
    assert_eq!(own_seen, hyper_seen);
    assert_eq!(own_got, hyper_got);
    assert_eq!(own_got[0].body.len(), 3 * 1024 * 1024);
}
