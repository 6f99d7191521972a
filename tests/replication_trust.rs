//! Trust nothing that arrives on the peer port: forged replication batches (a DC that does not
//! own the shard, a shard that is not the cluster's, shard 4294967295, an epoch from the future)
//! are refused while the real owner's later records still apply; under mutual TLS a batch (and
//! a request for the full state, `/replication/v1/resync`) is tied to the DC its certificate
//! names, and the routers' own requests for the full state get through; a public plaintext peer port needs an explicit opt-out;
//! an oversized batch is refused before its body is read; `/admin/operations` shows no request
//! bodies and always needs the token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use coopr_router::tls::dev::{Usage, Validity};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};
use std::time::Duration;
use support::tls::{Pki, client_config, connect, leaf, request};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OP: Duration = Duration::from_millis(200);
const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "an-admin-token-0123456789";

/// A finished record as a router sends it.
fn finished(seq: u64, cluster: &str, shard: u64, epoch: u64, origin: &str, status: &str) -> Value {
    json!({
        "seq": seq,
        "record": {
            "kind": "finished",
            "op": 1,
            "origin": origin,
            "cluster": cluster,
            "shard": shard,
            "epoch": epoch,
            "tenant": "superadmin",
            "owner": "admin",
            "action": "cluster_create",
            "outcome": "success",
            "captured_ms": 1,
            "details": {"id": cluster, "name": "forged", "status": status, "clusterTemplate": {"name": "demo"}},
            "status": {"status": status},
            "config": {"tier": status},
            "services": [],
            "plan": null
        }
    })
}

fn batch(from: &str, records: Vec<Value>) -> String {
    json!({"from": from, "records": records}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_batches_on_a_loopback_peer_port_are_refused_and_the_owner_still_applies() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(OP, repl::extra(dir.path(), Some(TOKEN), "")).await;
    let (dc1, dc2) = (&d.dcs[0], &d.dcs[1]);
    // A cluster created in dc1 lives in one of dc1's home shards (shard = id mod 12).
    let id = create_active(dc1, "real").await;
    let n: u64 = id.parse().unwrap();
    let shard = n % 12;
    let path = format!("/v2/clusters/{id}");
    eventually(WAIT, "the create reaches dc2", || async {
        let r = get(&dc2.url(&format!("{path}/config"))).await;
        (r.header("x-coopr-router-route") == "replica").then_some(())
    })
    .await;
    // A cluster id nobody created, in the same shard (dc1's).
    let ghost = format!("{:08}", n + 12 * 1000);
    let batch_url = dc2.peer_url("/replication/v1/batch");
    let cases = [
        (
            "another DC than the owner",
            batch(
                "dc3",
                vec![
                    finished(u64::MAX, &id, shard, 0, "dc3", "forged"),
                    finished(u64::MAX, &ghost, shard, 0, "dc3", "forged"),
                ],
            ),
        ),
        (
            "a shard that is not the cluster's",
            batch(
                "dc2",
                vec![finished(
                    u64::MAX,
                    &id,
                    (shard + 1) % 12,
                    0,
                    "dc2",
                    "forged",
                )],
            ),
        ),
        (
            "shard 4294967295",
            batch(
                "dc1",
                vec![finished(
                    u64::MAX,
                    &id,
                    u64::from(u32::MAX),
                    0,
                    "dc1",
                    "forged",
                )],
            ),
        ),
    ];
    for (what, body) in cases {
        let r = post(&batch_url, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text());
        assert_eq!(r.json()["applied"], 0, "{what}: {}", r.text());
        assert!(
            r.json()["refused"].as_u64().unwrap() >= 1,
            "{what}: {}",
            r.text()
        );
    }
    // An epoch from the future, even in the owner's name: refused, nothing applied (503 so a
    // real sender would send it again once its map caught up).
    let r = post(
        &batch_url,
        &batch(
            "dc1",
            vec![finished(u64::MAX, &id, shard, u64::MAX, "dc1", "forged")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-error"), "replication_epoch_ahead");
    // Nothing forged is served or listed.
    let cfg = get(&dc2.url(&format!("{path}/config"))).await;
    assert_eq!(cfg.header("x-coopr-router-route"), "replica");
    assert_ne!(cfg.json()["tier"], "forged", "{}", cfg.text());
    let list = get(&dc2.url("/v2/clusters")).await.text();
    assert!(!list.contains(&ghost), "{list}");
    assert!(!list.contains("forged"), "{list}");
    let metrics = get(&dc2.admin_url("/metrics")).await.text();
    for reason in ["not_owner", "wrong_shard", "epoch_ahead"] {
        assert!(
            metrics.contains(&format!(
                "coopr_router_replication_refused_total{{reason=\"{reason}\"}}"
            )),
            "{reason}: {metrics}"
        );
    }
    // The owner's later real records apply (a reconfigure through dc1), read back through
    // dc2's replica store.
    let r = call(
        Method::PUT,
        &dc1.url(&format!("{path}/config")),
        &ADMIN,
        "{\"config\":{\"tier\":\"gold\"}}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    eventually(WAIT, "the owner's reconfigure reaches dc2", || async {
        let r = get(&dc2.url(&format!("{path}/config"))).await;
        (r.header("x-coopr-router-route") == "replica" && r.json()["tier"] == "gold").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_mutual_tls_a_batch_is_the_certificates_dc() {
    let pki = Pki::new(&["dc1", "dc2", "dc3"]);
    let dir = tempfile::tempdir().unwrap();
    let d = start_full(
        OP,
        None,
        repl::extra(dir.path(), Some(TOKEN), ""),
        |i, t| pki.edit(i, t),
        |_, _| None,
    )
    .await;
    let dc3_cert = leaf(&pki.ca, Usage::Peer("dc3".into()), Validity::current(1));
    let post_to = |path: &'static str, body: String| {
        let cfg = client_config(&pki.ca(), Some(&dc3_cert), &[b"http/1.1"]);
        let addr = d.dcs[1].peer;
        async move {
            let tls = connect(addr, "dc2.peer.coopr-router", cfg).await.unwrap();
            let req = Request::post(format!("https://dc2.peer.coopr-router{path}"))
                .header("host", "dc2.peer.coopr-router")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            request(tls, req).await.unwrap()
        }
    };
    let post_batch = |body: String| post_to("/replication/v1/batch", body);
    // A request for the full state is tied to the certificate's DC the same way.
    let r = post_to("/replication/v1/resync", json!({"from": "dc1"}).to_string()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-error"), "replication_sender");
    let r = post_to("/replication/v1/resync", json!({"from": "dc3"}).to_string()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["owed"], "dc3");
    // The routers' own requests for the full state (their stores are new) went over mutual
    // TLS, each with its own certificate: none is still asking.
    repl::asks_settled(&d, TOKEN).await;
    // dc3's certificate, claiming to be dc1 (the owner of shard 1): refused whole.
    let r = post_batch(batch(
        "dc1",
        vec![finished(u64::MAX, "00000001", 1, 0, "dc1", "forged")],
    ))
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-error"), "replication_sender");
    assert_eq!(r.json()["certified_dc"], "dc3");
    // In its own name it is heard, and refused per record: dc3 does not own shard 1.
    let r = post_batch(batch(
        "dc3",
        vec![finished(u64::MAX, "00000001", 1, 0, "dc3", "forged")],
    ))
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        (r.json()["applied"].as_u64(), r.json()["refused"].as_u64()),
        (Some(0), Some(1))
    );
    let metrics = support::get(&d.dcs[1].admin_url("/metrics")).await.text();
    assert!(
        metrics.contains("coopr_router_replication_refused_total{reason=\"sender\"}"),
        "{metrics}"
    );
    // The real owner, with its own certificate, is heard: a create in dc1 reaches dc2's
    // replica store.
    let ca = pki.ca();
    let tls = connect(d.dcs[0].client, "localhost", client_config(&ca, None, &[]))
        .await
        .unwrap();
    let req = Request::post("https://localhost/v2/clusters")
        .header("host", "localhost")
        .header("coopr-userid", "admin")
        .header("coopr-tenantid", "superadmin")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"name":"t","clusterTemplate":"demo","numMachines":1}"#,
        )))
        .unwrap();
    let created = request(tls, req).await.unwrap();
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_string();
    eventually(WAIT, "dc1's create replicated to dc2 over mTLS", || async {
        let r = support::tls::get(
            d.dcs[1].client,
            "localhost",
            client_config(&ca, None, &[]),
            &format!("/v2/clusters/{id}"),
        )
        .await
        .ok()?;
        (r.header("x-coopr-router-route") == "replica" && r.json()["status"] == "active")
            .then_some(())
    })
    .await;
}

#[test]
fn check_config_refuses_a_public_plaintext_peer_port_unless_opted_out() {
    let example = include_str!("../config/static.toml");
    let public = example.replacen("peer = \"127.0.0.1:55061\"", "peer = \"0.0.0.0:55061\"", 1);
    assert_ne!(public, example);
    let opted_out = public.replacen(
        "peer = \"0.0.0.0:55061\"",
        "peer = \"0.0.0.0:55061\"\ninsecure_plaintext_peer = true",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_coopr-router");
    let check = |text: &str| {
        let f = dir.path().join("c.toml");
        std::fs::write(&f, text).unwrap();
        std::process::Command::new(bin)
            .arg("check-config")
            .arg(&f)
            .output()
            .unwrap()
    };
    let out = check(&public);
    assert!(!out.status.success(), "a public plaintext peer port passed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen.peer") && err.contains("insecure_plaintext_peer"),
        "{err}"
    );
    let out = check(&opted_out);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // IPv6 wildcard too; loopback (the shipped examples) passes.
    assert!(
        !check(&example.replacen("127.0.0.1:55061", "[::]:55061", 1))
            .status
            .success()
    );
    assert!(check(example).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_batch_is_refused_before_its_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(OP, repl::extra(dir.path(), Some(TOKEN), "")).await;
    let mut s = tokio::net::TcpStream::connect(d.dcs[1].peer).await.unwrap();
    s.write_all(
        b"POST /replication/v1/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n",
    )
    .await
    .unwrap();
    // No body is sent: the answer must come from the declared length alone.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf))
        .await
        .expect("the 413 comes at once, without waiting for the body")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_operations_show_no_bodies_and_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    // Operations take long enough to be seen open.
    let d = start_with(
        Duration::from_secs(3),
        repl::extra(dir.path(), Some(TOKEN), ""),
    )
    .await;
    let dc1 = &d.dcs[0];
    let secret = "pw-SECRET-in-the-config";
    let body = format!(
        "{{\"name\":\"opsee\",\"clusterTemplate\":\"demo\",\"numMachines\":1,\"config\":{{\"password\":\"{secret}\"}}}}"
    );
    let r = call(Method::POST, &dc1.url("/v2/clusters"), &ADMIN, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let url = dc1.admin_url("/admin/operations?state=open");
    // open_reads is on by default, yet this view needs the token.
    let r = support::get(&url).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    let auth = format!("Bearer {TOKEN}");
    let r = call(Method::GET, &url, &[("Authorization", auth.as_str())], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let ops = r.json()["operations"].as_array().unwrap().clone();
    let op = ops
        .iter()
        .find(|o| o["cluster"] == id)
        .unwrap_or_else(|| panic!("{}", r.text()));
    assert_eq!(op["action"], "cluster_create");
    assert_eq!(op["has_body"], true);
    assert!(op.get("body").is_none(), "{op}");
    assert!(!r.text().contains(secret), "{}", r.text());
    // Other read-only views stay open with open_reads.
    assert_eq!(
        support::get(&dc1.admin_url("/admin/routes")).await.status,
        StatusCode::OK
    );
}
