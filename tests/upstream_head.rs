//! A proxied request's head written straight from the client's parts (`Outbound::proxied`)
//! against the head of the `Request` the router used to build for it (`upstream_request_to`,
//! then `headers::set_hop_and_epoch`, then `Outbound::of_request`: `Host`, the body's framing,
//! the encoding): for random client requests (hop-by-hop headers, `Connection` naming others,
//! earlier `X-Forwarded-For` / `Forwarded`, router headers, `Content-Length`s, with or without
//! `Host` or an HTTP/2 `:authority`) both must give the same request line, the same values of
//! every header in the same order per name, and the same body framing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coopr_router::body::ProxyBody;
use coopr_router::headers;
use coopr_router::upstream::{Outbound, RouterHeaders, upstream_request_to};
use coopr_router::wire::Length;
use http::header::HeaderValue;
use http::request::Parts;
use http::uri::{PathAndQuery, Uri};
use http::{Method, Request, Version};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The request line and every header's values in order, by name.
type Parsed = (String, BTreeMap<String, Vec<Vec<u8>>>);

fn parse(head: &[u8]) -> Parsed {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    let status = req.parse(head).expect("a well-formed head");
    assert_eq!(
        status,
        httparse::Status::Complete(head.len()),
        "one whole head"
    );
    assert_eq!(req.version, Some(1), "always HTTP/1.1");
    let line = format!("{} {}", req.method.unwrap(), req.path.unwrap());
    let mut by_name: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for h in req.headers.iter() {
        by_name
            .entry(h.name.to_ascii_lowercase())
            .or_default()
            .push(h.value.to_vec());
    }
    (line, by_name)
}

/// Header names a client request may carry, the interesting ones for this path.
const NAMES: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "x-drop",
    "x-forwarded-for",
    "forwarded",
    "x-coopr-router-hop",
    "x-coopr-router-epoch",
    "content-length",
    "coopr-userid",
    "coopr-tenantid",
    "x-request-id",
    "cookie",
];

/// Values for a header: `Connection` lists naming other headers, numbers for lengths, text.
fn value_for(name: &'static str) -> BoxedStrategy<String> {
    match name {
        "connection" => prop::collection::vec(
            prop::sample::select(vec![
                "keep-alive",
                "close",
                "x-drop",
                "X-Forwarded-For",
                "forwarded",
                "host",
                "content-length",
                "x-coopr-router-hop",
                "x-coopr-router-epoch",
                "coopr-userid",
                "bad name",
                "",
            ]),
            1..4,
        )
        .prop_map(|v| v.join(", "))
        .boxed(),
        "content-length" => prop::sample::select(vec!["0", "2", "17", "2, 2", "x"])
            .prop_map(str::to_string)
            .boxed(),
        "x-forwarded-for" => prop::sample::select(vec!["10.1.2.3", "", "198.51.100.4, 10.0.0.1"])
            .prop_map(str::to_string)
            .boxed(),
        "forwarded" => prop::sample::select(vec!["for=10.1.2.3;proto=https", ""])
            .prop_map(str::to_string)
            .boxed(),
        _ => "[a-zA-Z0-9=;:./ -]{0,12}".boxed(),
    }
}

fn header() -> impl Strategy<Value = (&'static str, String)> {
    prop::sample::select(NAMES).prop_flat_map(|n| value_for(n).prop_map(move |v| (n, v)))
}

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    uri: &'static str,
    h2: bool,
    headers: Vec<(&'static str, String)>,
    body: Length,
    router: (Option<&'static str>, u64, bool),
    remote: &'static str,
    target: Option<&'static str>,
    base: &'static str,
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
    ]);
    let uri = prop::sample::select(vec![
        "/v2/clusters/00000042/status",
        "/v2/clusters?x=1&y=%20",
        "http://client.example:8080/v2/clusters/42/abort?x=1",
        "https://client.example/v2/tenants",
    ]);
    let body = prop_oneof![
        Just(Length::Ended),
        (0u64..40).prop_map(Length::Known),
        Just(Length::Unknown),
    ];
    let router = (
        prop::option::of(prop::sample::select(vec!["dc2", "dc-west"])),
        prop_oneof![Just(0u64), 1u64..1_000_000],
        any::<bool>(),
    );
    let remote = prop::sample::select(vec!["192.0.2.7:4000", "[2001:db8::1]:443", "127.0.0.1:1"]);
    let target = prop::option::of(prop::sample::select(vec!["/v2/tasks/take", "/x?y=1"]));
    let base = prop::sample::select(vec![
        "http://10.0.0.9:55054",
        "http://coopr.local:80",
        "https://coopr.local:443",
        "https://peer.example:8443",
    ]);
    (
        method,
        uri,
        any::<bool>(),
        prop::collection::vec(header(), 0..10),
        body,
        router,
        remote,
        target,
        base,
    )
        .prop_map(
            |(method, uri, h2, headers, body, router, remote, target, base)| Case {
                method,
                uri,
                h2,
                headers,
                body,
                router,
                remote,
                target,
                base,
            },
        )
}

fn parts_of(c: &Case) -> Parts {
    let mut b = Request::builder()
        .method(c.method.clone())
        .uri(c.uri)
        .version(if c.h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        });
    for (n, v) in &c.headers {
        b = b.header(*n, v.as_str());
    }
    b.body(()).unwrap().into_parts().0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn a_head_written_from_the_parts_is_the_head_of_the_request_built_before(c in case()) {
        let parts = parts_of(&c);
        let base: Uri = c.base.parse().unwrap();
        let remote: SocketAddr = c.remote.parse().unwrap();
        let hop = c.router.0.map(HeaderValue::from_static);
        let router = RouterHeaders { hop: hop.clone(), epoch: c.router.1, carried: c.router.2 };

        // Before: a `Request` with its own header map, then the pool's finishing touches.
        let pq = c.target.map_or_else(
            || parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/")),
            PathAndQuery::from_static,
        );
        let mut req = upstream_request_to(&parts, &base, pq, remote, ProxyBody::Empty);
        headers::set_hop_and_epoch(req.headers_mut(), hop, c.router.1, c.router.2);
        let before = Outbound::of_parts(req.into_parts().0, c.body);

        // Now: written from the parts.
        let now = Outbound::proxied(&parts, &base, c.target, remote, &router, c.body);

        prop_assert_eq!(&now.method, &before.method);
        prop_assert_eq!(now.framing, before.framing);
        prop_assert_eq!(&now.base, &base);
        let (a, b) = (parse(&now.head), parse(&before.head));
        prop_assert_eq!(
            a, b,
            "now:\n{}\nbefore:\n{}",
            String::from_utf8_lossy(&now.head),
            String::from_utf8_lossy(&before.head)
        );
    }
}

/// A known case, spelled out: what the owner's hop of a forwarded write sends its Coopr server.
#[test]
fn a_forwarded_write_reaches_coopr_with_the_client_and_the_epoch() {
    let req = Request::post("/v2/clusters/00000042/pause")
        .header("host", "router.example")
        .header("connection", "keep-alive, x-drop")
        .header("x-drop", "1")
        .header("x-forwarded-for", "198.51.100.4")
        .header("forwarded", "for=198.51.100.4;proto=http")
        .header("x-coopr-router-hop", "dc2")
        .header("x-coopr-router-epoch", "9")
        .header("content-length", "2")
        .header("coopr-userid", "admin")
        .body(())
        .unwrap();
    let (parts, ()) = req.into_parts();
    let router = RouterHeaders {
        hop: None,
        epoch: 7,
        carried: true,
    };
    let out = Outbound::proxied(
        &parts,
        &"http://10.0.0.9:55054".parse().unwrap(),
        None,
        "10.0.0.2:4000".parse().unwrap(),
        &router,
        Length::Known(2),
    );
    let (line, h) = parse(&out.head);
    assert_eq!(line, "POST /v2/clusters/00000042/pause");
    let one = |n: &str| -> Vec<&str> {
        h.get(n)
            .map(|v| v.iter().map(|b| std::str::from_utf8(b).unwrap()).collect())
            .unwrap_or_default()
    };
    assert_eq!(one("host"), ["router.example"]);
    assert_eq!(one("x-forwarded-for"), ["198.51.100.4, 10.0.0.2"]);
    assert_eq!(
        one("forwarded"),
        ["for=198.51.100.4;proto=http, for=10.0.0.2;proto=http"]
    );
    assert_eq!(
        one("x-coopr-router-epoch"),
        ["7"],
        "our epoch, not the one that came"
    );
    assert!(
        one("x-coopr-router-hop").is_empty(),
        "no hop header to Coopr"
    );
    assert!(one("connection").is_empty() && one("x-drop").is_empty());
    assert_eq!(one("content-length"), ["2"]);
    assert_eq!(one("coopr-userid"), ["admin"]);
    assert_eq!(
        out.framing,
        coopr_router::wire::Framing::Length(2),
        "the body goes by its length"
    );
}
