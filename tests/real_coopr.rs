//! The router in front of a server that behaves like Coopr (issue "In front of real Coopr"):
//! ids go on as Coopr writes them, Coopr's service credential, and no secret leaves its DC.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use std::time::Duration;
use support::*;

/// A cluster written with an unpadded id reaches Coopr padded (`%08d`), from the owner DC and
/// forwarded from another one, so Coopr's job ids and its plan lookups agree.
#[tokio::test]
async fn unpadded_ids_reach_coopr_padded() {
    let d = start(Duration::from_millis(50)).await;
    let id = create_active(&d.dcs[0], "pad").await;
    let n: u64 = id.parse().unwrap();
    assert_eq!(id, format!("{n:08}"));
    // Through the owner DC, then forwarded from dc2: both arrive padded.
    let r = call(
        Method::POST,
        &d.dcs[0].url(&format!("/v2/clusters/{n}/pause")),
        &ADMIN,
        "",
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    assert!(d.dcs[0].log_has("POST", &format!("/v2/clusters/{id}/pause")));
    assert!(!d.dcs[0].log_has("POST", &format!("/v2/clusters/{n}/pause")));
    let r = call(
        Method::DELETE,
        &d.dcs[1].url(&format!("/v2/clusters/{n}")),
        &ADMIN,
        "",
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    assert!(d.dcs[0].log_has("DELETE", &format!("/v2/clusters/{id}")));
    assert!(!d.dcs[0].log_has("DELETE", &format!("/v2/clusters/{n}")));
    // A read with an unpadded id is answered too.
    let r = get(&d.dcs[0].url(&format!("/v2/clusters/{n}/status"))).await;
    assert_eq!(r.status, StatusCode::OK);
}

fn repl_extra(dir: &std::path::Path) -> impl Fn(usize) -> String + use<> {
    let dir = dir.to_path_buf();
    move |i| {
        format!(
            "[replication]\nenabled = true\npath = \"{}/dc{}.redb\"\npoll_min_ms = 20\npoll_max_ms = 200\nretry_min_ms = 20\nretry_max_ms = 200\n",
            dir.display(),
            i + 1
        )
    }
}

/// `GET`/`DELETE /v2/nodes/{id}` through a DC that does not hold the node's cluster land at
/// the DC that does (found from the replicated details); an unknown node gets the local
/// server's own answer.
#[tokio::test]
async fn nodes_follow_their_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(Duration::from_millis(50), repl_extra(dir.path())).await;
    let id = create_active(&d.dcs[0], "nodes").await;
    let details = get(&d.dcs[0].url(&format!("/v2/clusters/{id}")))
        .await
        .json();
    let node = details["nodes"][0]["id"]
        .as_str()
        .expect("a node")
        .to_string();
    // dc2 learns the cluster (and its nodes) by replication.
    let replica = d.dcs[1].url(&format!("/v2/clusters/{id}"));
    eventually(Duration::from_secs(10), "replicated to dc2", || async {
        let r = get(&replica).await;
        (r.header("x-coopr-router-route") == "replica").then_some(())
    })
    .await;
    let r = get(&d.dcs[1].url(&format!("/v2/nodes/{node}"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["clusterId"], id.as_str());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    let r = call(
        Method::DELETE,
        &d.dcs[1].url(&format!("/v2/nodes/{node}")),
        &ADMIN,
        "",
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    let path = format!("/v2/nodes/{node}");
    assert!(d.dcs[0].log_has("DELETE", &path), "the delete reached dc1");
    assert!(
        !d.dcs[1].log_has("DELETE", &path),
        "dc2's Coopr saw no delete"
    );
    // An unknown node: the local server answers, as Coopr's NodeHandler does (200 `null`).
    let r = get(&d.dcs[1].url("/v2/nodes/no-such-node")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text().trim(), "null");
    assert_eq!(r.header("x-coopr-router-dc"), "dc2");
    assert_eq!(r.header("x-coopr-router-route"), "local");
}
