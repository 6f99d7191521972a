//! Large bodies stream through the router both ways in bounded memory, and shutdown lets an
//! in-flight request finish while refusing new connections. One test per file section keeps the
//! peak-RSS measurement free of other tests' noise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;
use support::*;
use tokio::sync::mpsc;

const MIB: u64 = 1024 * 1024;

/// FNV-1a 64 of the generated pattern (byte i = i % 251), computed in chunks.
fn pattern_fnv(len: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..len {
        h ^= i % 251;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    let d = start(Duration::from_millis(50)).await;
    let dc1 = &d.dcs[0];
    let size = 256 * MIB;
    let before = peak_rss_kib();
    let url = dc1.url("/v2/plugins/automatortypes/chef/cookbooks/big");
    let r = send(Method::POST, &url, &ADMIN, GenBody::new(size)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let j = r.json();
    assert_eq!(j["size"], size);
    assert_eq!(
        j["fnv1a64"],
        format!("{:016x}", pattern_fnv(size)),
        "bytes arrived intact: {j}"
    );
    // Download: count and check every byte without keeping them.
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let resp = client
        .get(
            dc1.url(&format!("/v2/sim/blob?size={size}"))
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-coopr-router-route"], "local");
    let mut body = resp.into_body();
    let mut n: u64 = 0;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            for &b in data.iter() {
                assert_eq!(b, (n % 251) as u8, "byte {n}");
                n += 1;
            }
        }
    }
    assert_eq!(n, size);
    let grown = peak_rss_kib().saturating_sub(before);
    // 512 MiB went through; bounded streaming keeps the peak far below that.
    assert!(
        grown < 96 * 1024,
        "peak RSS grew by {grown} KiB while streaming 2 x {size} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_request_finish() {
    let mut d = start(Duration::from_millis(50)).await;
    let url = d.dcs[0].url("/v2/plugins/automatortypes/chef/cookbooks/slow");
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let upload =
        tokio::spawn(async move { send(Method::POST, &url, &ADMIN, ChannelBody(rx)).await });
    tx.send(Bytes::from_static(b"first part;")).await.unwrap();
    // Wait until the router has opened its connection to the simulator (the request is in
    // flight), then stop the router mid-request.
    let (client_addr, sim_addr) = (d.dcs[0].client, d.dcs[0].sim_addr);
    let router = d.dcs[0].router.take().unwrap();
    eventually(Duration::from_secs(5), "request forwarded", || async {
        tcp_established_to(sim_addr).then_some(())
    })
    .await;
    router.shutdown();
    let stopped = tokio::spawn(router.wait());
    // New connections are refused once the listener is closed.
    eventually(Duration::from_secs(5), "listener closed", || async {
        tokio::net::TcpStream::connect(client_addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    assert!(
        !stopped.is_finished(),
        "the router waits for the in-flight request"
    );
    tx.send(Bytes::from_static(b"second part")).await.unwrap();
    drop(tx);
    let r = upload.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["size"], 22);
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("router stopped after the request")
        .unwrap();
    d.dcs[0].router = None;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_longer_than_the_response_timeout_still_succeeds() {
    // The response timeout counts from the end of the request body, not from its start.
    let d = start(Duration::from_millis(50)).await;
    let text = d.dcs[0]
        .config_text
        .replace("response_ms = 10000", "response_ms = 300");
    let cfg = coopr_router::config::parse(&text).unwrap();
    let l = coopr_router::app::Listeners {
        client: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    };
    let router = coopr_router::app::start(cfg, l).unwrap();
    let url = format!(
        "http://{}/v2/plugins/automatortypes/chef/cookbooks/paced",
        router.client_addr
    );
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let upload =
        tokio::spawn(async move { send(Method::POST, &url, &ADMIN, ChannelBody(rx)).await });
    // Six chunks 100 ms apart: twice the response timeout.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for _ in 0..6 {
        tick.tick().await;
        tx.send(Bytes::from_static(b"0123456789")).await.unwrap();
    }
    drop(tx);
    let r = upload.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["size"], 60);
    router.shutdown();
    router.wait().await;
}
