//! Criterion benches of the pure part of the request path: classifying
//! `GET /v2/clusters/{id}/status` and looking up its shard in a routing snapshot (issue 9's
//! goal: classify + lookup under 200 ns together). Run: `cargo bench --bench route`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coopr_router::classify::{Head, classify_head};
use coopr_router::routing::{DcEntry, Decision, Origin, Routes, RoutingTable, ShardEntry, decide};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Method, Uri};
use std::hint::black_box;

/// Three DCs (ids start 1/2/3, increment 3) and 12 shards, dc1 owning all, as in `load/bench.sh`.
fn table() -> RoutingTable {
    let dcs = (0..3)
        .map(|i| DcEntry {
            name: format!("dc{}", i + 1),
            peer_url: Uri::from_static("http://127.0.0.1:9000"),
            id_start: i + 1,
            id_increment: 3,
        })
        .collect();
    let shards = (0..12)
        .map(|n| ShardEntry {
            owner: n % 3,
            replicas: vec![],
            epoch: 7,
            home: None,
            handoff: None,
        })
        .collect();
    RoutingTable::new(1, 0, dcs, shards)
}

const PATH: &str = "/v2/clusters/00000001/status";

fn classify(c: &mut Criterion) {
    c.bench_function("classify GET /v2/clusters/{id}/status", |b| {
        b.iter(|| classify_head(black_box(&Method::GET), black_box(PATH), None))
    });
}

fn lookup(c: &mut Criterion) {
    let (routes, _publisher) = Routes::new(table());
    let Ok(Head::Done(class)) = classify_head(&Method::GET, PATH, None) else {
        panic!("{PATH} must classify from its head");
    };
    c.bench_function("lookup: load snapshot + decide", |b| {
        b.iter(|| decide(&routes.load(), black_box(&class), Origin::Client, false))
    });
}

/// What the proxy does before its first byte upstream: classify, load the snapshot, decide.
fn classify_and_lookup(c: &mut Criterion) {
    let (routes, _publisher) = Routes::new(table());
    c.bench_function("classify + lookup GET /v2/clusters/{id}/status", |b| {
        b.iter(|| {
            let Ok(Head::Done(class)) =
                classify_head(black_box(&Method::GET), black_box(PATH), None)
            else {
                return None;
            };
            match decide(&routes.load(), &class, Origin::Client, false) {
                Decision::Go(route) => Some(route),
                _ => None,
            }
        })
    });
}

criterion_group!(benches, classify, lookup, classify_and_lookup);
criterion_main!(benches);
