//! TLS end to end: three DCs with TLS on the client port and mutual TLS between routers; ALPN;
//! the peer port refusing certificates that are missing, from another CA, expired, or naming no
//! DC of the map; and certificate hot reload that keeps open connections.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use coopr_router::tls::dev::{DevCa, Usage, Validity};
use http::{Request, StatusCode};
use http_body_util::Full;
use std::time::Duration;
use support::tls::{Pki, client_config, connect, get, leaf, request};

#[tokio::test]
async fn three_dcs_speak_tls_to_clients_and_mutual_tls_to_each_other() {
    let pki = Pki::new(&["dc1", "dc2", "dc3"]);
    let d = support::start_with_text(Duration::from_millis(50), |i, t| pki.edit(i, t)).await;
    let ca = pki.ca();
    // h2 when offered, HTTP/1.1 otherwise.
    let offers: [&[&[u8]]; 3] = [&[b"h2", b"http/1.1"], &[b"http/1.1"], &[]];
    for alpn in offers {
        let tls = connect(d.dcs[0].client, "localhost", client_config(&ca, None, alpn))
            .await
            .expect("TLS to the client port");
        let want: Option<&[u8]> = alpn.first().copied();
        assert_eq!(tls.get_ref().1.alpn_protocol(), want);
        let v = tls.get_ref().1.protocol_version();
        assert!(matches!(v, Some(rustls::ProtocolVersion::TLSv1_3)), "{v:?}");
        let req = Request::get("https://localhost/status")
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(request(tls, req).await.unwrap().status, StatusCode::OK);
    }
    // A cluster created in dc1, read through dc2: dc2's router reads it from dc1 over mTLS.
    let tls = connect(d.dcs[0].client, "127.0.0.1", client_config(&ca, None, &[]))
        .await
        .unwrap();
    let req = Request::post("/v2/clusters")
        .header("host", "127.0.0.1")
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
    let via_dc2 = get(
        d.dcs[1].client,
        "localhost",
        client_config(&ca, None, &[b"h2"]),
        &format!("/v2/clusters/{id}"),
    )
    .await
    .unwrap();
    assert_eq!(via_dc2.status, StatusCode::OK, "{}", via_dc2.text());
    assert_eq!(via_dc2.header("x-coopr-router-route"), "forwarded");
    assert_eq!(via_dc2.header("x-coopr-router-dc"), "dc1");
    // Plain HTTP to a TLS port gets no HTTP answer.
    let plain = tokio::time::timeout(
        Duration::from_secs(5),
        support::tls::plain_exchange(d.dcs[0].client),
    )
    .await
    .expect("the router closes a plain connection to a TLS port");
    assert!(!plain.starts_with(b"HTTP/1.1 200"), "{plain:?}");
}

#[tokio::test]
async fn the_peer_port_refuses_certificates_that_name_no_dc_of_the_map() {
    let pki = Pki::new(&["dc1", "dc2", "dc3"]);
    let d = support::start_with_text(Duration::from_millis(50), |i, t| pki.edit(i, t)).await;
    let deployment_ca = &pki.ca;
    let other_ca = DevCa::new("someone else's CA").unwrap();
    let now = Validity::current(1);
    let peer = d.dcs[0].peer;
    let name = "dc1.peer.coopr-router";
    let ok = leaf(deployment_ca, Usage::Peer("dc2".into()), now);
    let cases = [
        ("no client certificate", None),
        (
            "another CA",
            Some(leaf(&other_ca, Usage::Peer("dc2".into()), now)),
        ),
        (
            "expired",
            Some(leaf(
                deployment_ca,
                Usage::Peer("dc2".into()),
                Validity::expired(),
            )),
        ),
        (
            "a DC not in the map",
            Some(leaf(deployment_ca, Usage::Peer("dc9".into()), now)),
        ),
        (
            "a client-port certificate",
            Some(leaf(
                deployment_ca,
                Usage::Server(vec!["localhost".into()]),
                now,
            )),
        ),
    ];
    for (what, cert) in &cases {
        let cfg = client_config(&pki.ca(), cert.as_ref(), &[]);
        let r = get(peer, name, cfg, "/status").await;
        assert!(r.is_err(), "{what}: the peer port must refuse, got {r:?}");
    }
    // The router still serves a good peer afterwards.
    let r = get(
        peer,
        name,
        client_config(&pki.ca(), Some(&ok), &[]),
        "/status",
    )
    .await
    .expect("a DC's certificate is accepted");
    assert_eq!(r.status, StatusCode::OK);
    // A router presenting dc1's name must also be dc1: a client dialling dc1's peer port and
    // expecting dc2 refuses.
    let wrong_name = get(
        peer,
        "dc2.peer.coopr-router",
        client_config(&pki.ca(), Some(&ok), &[]),
        "/status",
    )
    .await;
    assert!(wrong_name.is_err(), "{wrong_name:?}");
    let failures = support::get(&d.dcs[0].admin_url("/metrics")).await.text();
    assert!(
        failures
            .lines()
            .any(|l| l.starts_with("coopr_router_tls_handshake_failures_total{listener=\"peer\"}")),
        "{failures}"
    );
}

#[tokio::test]
async fn a_reload_serves_new_certificates_to_new_connections_and_keeps_open_ones() {
    use http_body_util::BodyExt;
    let pki = Pki::new(&["dc1", "dc2", "dc3"]);
    let d = support::start_with_text(Duration::from_millis(50), |i, t| pki.edit(i, t)).await;
    let dc1 = &d.dcs[0];
    let cfg = client_config(&pki.ca(), None, &[b"http/1.1"]);
    // Before: the certificate does not name reloaded.test.
    assert!(
        connect(dc1.client, "reloaded.test", cfg.clone())
            .await
            .is_err()
    );
    let open = connect(dc1.client, "localhost", cfg.clone()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(open))
            .await
            .unwrap();
    tokio::spawn(conn);
    let status = || {
        Request::get("/status")
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let r = sender.send_request(status()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.into_body().collect().await.unwrap();
    // Replace the client port's certificate and reload.
    let new = leaf(
        &pki.ca,
        Usage::Server(vec!["reloaded.test".into(), "localhost".into()]),
        Validity::current(1),
    );
    std::fs::write(pki.path("dc1/server.pem"), &new.cert_pem).unwrap();
    std::fs::write(pki.path("dc1/server.key"), &new.key_pem).unwrap();
    let text = dc1.config_text.clone();
    let router = dc1.router.as_ref().unwrap();
    let report = router
        .reloader
        .apply(coopr_router::config::parse(&text).unwrap());
    assert!(report.applied && report.error.is_none(), "{report:?}");
    // New connections get the new certificate; the open one still works.
    let fresh = connect(dc1.client, "reloaded.test", cfg.clone())
        .await
        .expect("the new certificate names reloaded.test");
    let req = Request::get("/status")
        .header("host", "reloaded.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(request(fresh, req).await.unwrap().status, StatusCode::OK);
    let r = sender.send_request(status()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the open connection survives");
    // A broken key file is refused by validation (what a reload from the file does first)...
    std::fs::write(pki.path("dc1/server.key"), "not a key").unwrap();
    let e = coopr_router::config::parse(&text).unwrap_err();
    assert_eq!(e.key, "tls.client.key_file", "{e}");
    // ...and a key that does not match the certificate fails the reload and changes nothing.
    let other = leaf(&pki.ca, Usage::Peer("dc1".into()), Validity::current(1));
    std::fs::write(pki.path("dc1/server.key"), &other.key_pem).unwrap();
    let report = router
        .reloader
        .apply(coopr_router::config::parse(&text).unwrap());
    assert!(!report.applied, "{report:?}");
    assert!(
        report
            .error
            .as_deref()
            .unwrap_or("")
            .contains("tls.client.key_file"),
        "{report:?}"
    );
    assert!(
        connect(dc1.client, "reloaded.test", cfg).await.is_ok(),
        "the running certificate stays"
    );
}

#[test]
fn the_tls_section_is_validated_with_the_key_at_fault() {
    let pki = Pki::new(&["dc1", "dc2", "dc3"]);
    let a: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    let addrs: Vec<_> = (0..3)
        .map(|i| {
            let p = |n: u16| std::net::SocketAddr::new(a.ip(), 10_000 + 10 * i + n);
            (p(0), p(1), p(2), p(3))
        })
        .collect();
    let plain = support::config_text(0, &addrs, "");
    let tls = pki.edit(0, plain.clone());
    assert!(coopr_router::config::parse(&tls).is_ok());
    let cases = [
        (
            plain.replacen("peer_url = \"http://", "peer_url = \"https://", 1),
            "dcs.dc1.peer_url",
        ),
        (
            tls.replacen("peer_url = \"https://", "peer_url = \"http://", 1),
            "dcs.dc1.peer_url",
        ),
        (
            tls.replace("dc1/peer.pem", "dc1/missing.pem"),
            "tls.peer.cert_file",
        ),
        (
            tls.replace("dc1/server.key", "dc1/server.pem"),
            "tls.client.key_file",
        ),
        (
            tls.clone() + "[tls.backend]\nca_file = \"x\"\nverify = false\n",
            "",
        ),
        (
            tls.replacen("url = \"http://", "url = \"https://", 1),
            "backends.0.url",
        ),
        (
            plain.clone() + "[tls]\nhandshake_timeout_ms = 0\n",
            "tls.handshake_timeout_ms",
        ),
    ];
    for (text, key) in cases {
        let e = coopr_router::config::parse(&text).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        if key.is_empty() {
            assert!(e.message.contains("verify"), "{e}");
        }
    }
}

#[tokio::test]
async fn a_renewed_certificate_file_is_picked_up_by_the_file_watch() {
    use coopr_router::app;
    let pki = Pki::new(&["dc1"]);
    let listeners = app::Listeners {
        client: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    };
    let client = listeners.client.local_addr().unwrap();
    let peer = listeners.peer.local_addr().unwrap();
    let text = format!(
        "dc = \"dc1\"\nshard_count = 3\n\n[listen]\nclient = \"{client}\"\npeer = \"{peer}\"\nadmin = \"{}\"\n\n[[backends]]\nurl = \"http://127.0.0.1:9\"\n\n[dcs.dc1]\npeer_url = \"https://{peer}\"\nid_start = 1\nid_increment = 3\n\n[admin]\nwatch_config_ms = 50\n\n{}",
        listeners.admin.local_addr().unwrap(),
        pki.tls_section("dc1")
    );
    let path = pki.path("dc1.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = coopr_router::config::load(&path).unwrap();
    let router = app::start_with_file(cfg, Some(path), listeners).unwrap();
    let tls_cfg = client_config(&pki.ca(), None, &[]);
    assert!(
        connect(client, "renewed.test", tls_cfg.clone())
            .await
            .is_err()
    );
    // Renew the certificate in place (the config file does not change).
    let new = leaf(
        &pki.ca,
        Usage::Server(vec!["renewed.test".into()]),
        Validity::current(1),
    );
    std::fs::write(pki.path("dc1/server.key"), &new.key_pem).unwrap();
    std::fs::write(pki.path("dc1/server.pem"), &new.cert_pem).unwrap();
    support::eventually(Duration::from_secs(10), "the renewed certificate", || {
        let cfg = tls_cfg.clone();
        async move { connect(client, "renewed.test", cfg).await.ok().map(|_| ()) }
    })
    .await;
    router.shutdown();
    router.wait().await;
}

#[tokio::test]
async fn coopr_servers_over_https_are_trusted_through_the_backend_ca_only() {
    let pki = Pki::new(&["dc1", "dc2", "dc3"]);
    let backend_ca = DevCa::new("Coopr servers' CA").unwrap();
    let cert = leaf(
        &backend_ca,
        Usage::Server(vec!["127.0.0.1".into()]),
        Validity::current(1),
    );
    let relay = support::tls::TlsRelay::start(&cert).await;
    let ca_file = pki.path("backend-ca.pem");
    std::fs::write(&ca_file, backend_ca.cert_pem()).unwrap();
    // dc1's Coopr server is reached through the TLS relay; dc2 trusts the wrong CA for it.
    let edit = |i: usize, text: String, ca: &std::path::Path| {
        let start = text.find("url = \"http://").unwrap() + "url = \"http://".len();
        let end = start + text[start..].find('"').unwrap();
        let sim: std::net::SocketAddr = text[start..end].parse().unwrap();
        *relay.target.lock().unwrap() = Some(sim);
        let text = text.replacen(
            &format!("url = \"http://{sim}\""),
            &format!("url = \"https://{}\"", relay.addr),
            1,
        );
        format!(
            "{}\n[tls.backend]\nca_file = \"{}\"\n",
            pki.edit(i, text),
            ca.display()
        )
    };
    let d = support::start_with_text(Duration::from_millis(50), |i, t| {
        if i == 0 {
            edit(i, t, &ca_file)
        } else {
            pki.edit(i, t)
        }
    })
    .await;
    let r = get(
        d.dcs[0].client,
        "localhost",
        client_config(&pki.ca(), None, &[]),
        "/v2/clusters",
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-route"), "local");
    // The deployment CA does not vouch for Coopr servers: 502, and nothing was sent.
    let wrong = support::start_with_text(Duration::from_millis(50), |i, t| {
        if i == 0 {
            edit(i, t, &pki.ca())
        } else {
            pki.edit(i, t)
        }
    })
    .await;
    let r = get(
        wrong.dcs[0].client,
        "localhost",
        client_config(&pki.ca(), None, &[]),
        "/v2/clusters",
    )
    .await
    .unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
}
