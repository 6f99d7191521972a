//! Property tests through a running router (three DCs in-process): any spelling of a cluster id
//! (leading zeros, percent-encoded digits, doubled slashes) lands on the same shard and the DC
//! that owns it; arbitrary request lines and headers get an HTTP answer or a closed connection,
//! never a router error above 4xx nor a hang, and the router keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes with `Connection: close` semantics and reads the answer (5 s at most).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = s.write_all(bytes).await;
    let mut buf = Vec::new();
    match tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await {
        Ok(_) => Ok(String::from_utf8_lossy(&buf).into_owned()),
        Err(_) => Err(format!(
            "no close within 5 s; read {:?}",
            String::from_utf8_lossy(&buf)
        )),
    }
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

fn status(text: &str) -> Option<u16> {
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// A spelling of `n`: padded, some digits percent-encoded, slashes doubled.
fn spelling() -> impl Strategy<Value = (u64, String)> {
    (
        0u64..=i64::MAX as u64,
        0usize..6,
        prop::collection::vec(any::<bool>(), 19),
        1usize..3,
    )
        .prop_map(|(n, pad, enc, slashes)| {
            let digits = format!("{}{n}", "0".repeat(pad));
            let digits = if digits.len() > 19 {
                n.to_string()
            } else {
                digits
            };
            let id: String = digits
                .bytes()
                .zip(enc.iter().cycle())
                .map(|(b, &e)| {
                    if e {
                        format!("%{b:02X}")
                    } else {
                        (b as char).to_string()
                    }
                })
                .collect();
            let s = "/".repeat(slashes);
            (n, format!("{s}v2{s}clusters{s}{id}"))
        })
}

#[test]
fn properties_hold_through_the_router() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = rt.block_on(support::start(Duration::from_millis(50)));
    let addr = d.dcs[1].client;
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    // Every spelling of an id: the shard is id mod 12 and the answering DC is its home DC.
    runner
        .run(&spelling(), |(n, path)| {
            let text = rt
                .block_on(exchange(
                    addr,
                    format!("GET {path} HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                ))
                .map_err(TestCaseError::fail)?;
            let shard = n % 12;
            let home = match shard % 3 {
                1 => "dc1",
                2 => "dc2",
                _ => "dc3",
            };
            let want = shard.to_string();
            prop_assert_eq!(
                header(&text, "x-coopr-router-shard"),
                Some(want.as_str()),
                "{}",
                text
            );
            prop_assert_eq!(header(&text, "x-coopr-router-dc"), Some(home), "{}", text);
            Ok(())
        })
        .unwrap();
    // Arbitrary request lines and headers: an answer or a close, never a router 5xx.
    let line = (
        "(GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS|[A-Z]{1,8}|get|G\\x00T)",
        "(/|/v2/|/v2/clusters/|/v2/nodes|/v2/metrics/nodes/usage\\?cluster=)[ -~]{0,40}",
        "(HTTP/1\\.1|HTTP/1\\.0|HTTP/2\\.0|HTTP/1\\.1 x|)",
        prop::collection::vec("[A-Za-z-]{1,12}: [ -~]{0,30}", 0..6),
        "[ -~]{0,64}",
    );
    runner
        .run(&line, |(method, target, version, headers, body)| {
            let mut req =
                format!("{method} {target} {version}\r\nHost: r\r\nConnection: close\r\n");
            for h in &headers {
                req.push_str(h);
                req.push_str("\r\n");
            }
            req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
            let text = rt
                .block_on(exchange(addr, req.as_bytes()))
                .map_err(TestCaseError::fail)?;
            if let Some(s) = status(&text) {
                let router_error = header(&text, "x-coopr-router-route") == Some("error");
                prop_assert!(!(router_error && s >= 500), "{}\n{}", req, text);
            }
            let ok = rt
                .block_on(exchange(
                    addr,
                    b"GET /status HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n",
                ))
                .map_err(TestCaseError::fail)?;
            prop_assert_eq!(status(&ok), Some(200));
            Ok(())
        })
        .unwrap();
    drop(d);
}
