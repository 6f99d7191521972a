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

/// `GET`/`DELETE /v2/nodes/{id}` through a DC that does not hold the node's cluster land at
/// the DC that does (found from the replicated details); an unknown node gets the local
/// server's own answer.
#[tokio::test]
async fn nodes_follow_their_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(Duration::from_millis(50), repl::extra(dir.path(), None, "")).await;
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

/// The token every Coopr of the like-Coopr deployment takes (one security realm), and the
/// router's service credential.
const TOKEN: &str = "coopr-realm-token-0123456789";

struct LikeCoopr {
    dcs: Vec<LikeDc>,
    /// `relays[k]`: in front of DC k's peer port, keeping every byte the other DCs sent it.
    relays: Vec<relay::Relay>,
    dir: tempfile::TempDir,
}

struct LikeDc {
    router: coopr_router::app::RouterHandle,
    sim: coopr_router::sim::Sim,
    _stop: coopr_router::shutdown::ShutdownTrigger,
}

impl LikeDc {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.router.client_addr)
    }
}

/// Three DCs whose simulators behave like Coopr: two ports, security mode, job ids as written,
/// operations that advance only when a provisioner — working through its router's provisioner
/// listener — takes and finishes their tasks; replication on, peers reached through tapping
/// relays.
async fn like_coopr() -> LikeCoopr {
    use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
    use coopr_router::sim::{ProvisionerConfig, Sim, SimConfig, TaskMode};
    use tokio::net::TcpListener;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("coopr.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let bind = || async { TcpListener::bind("127.0.0.1:0").await.unwrap() };
    let mut bound = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let (c, p, a, pv, ext, tasks) = (
            bind().await,
            bind().await,
            bind().await,
            bind().await,
            bind().await,
            bind().await,
        );
        addrs.push((
            c.local_addr().unwrap(),
            p.local_addr().unwrap(),
            a.local_addr().unwrap(),
            ext.local_addr().unwrap(),
        ));
        bound.push((c, p, a, pv, ext, tasks));
    }
    let mut relays = Vec::new();
    for a in &addrs {
        let options = relay::Options {
            tap: true,
            ..Default::default()
        };
        relays.push(relay::Relay::start_with(a.1, options).await);
    }
    let via: Vec<std::net::SocketAddr> = relays.iter().map(|r| r.addr).collect();
    let mut dcs = Vec::new();
    for (i, (c, p, a, pv, ext, tasks)) in bound.into_iter().enumerate() {
        let pv_addr = pv.local_addr().unwrap();
        let tasks_addr = tasks.local_addr().unwrap();
        let sim = Sim::new(
            SimConfig {
                id_start: i as u64 + 1,
                id_increment: 3,
                op_delay: Duration::from_millis(20),
                name: format!("dc{}", i + 1),
                security_token: Some(TOKEN.to_string()),
                tasks: TaskMode::External,
                provisioner: Some(ProvisionerConfig {
                    url: Some(format!("http://{pv_addr}")),
                    id: format!("prov-dc{}", i + 1),
                    ..ProvisionerConfig::default()
                }),
                ..SimConfig::default()
            }
            .like_coopr(),
        )
        .unwrap();
        let (stop, shutdown) = ShutdownTrigger::new();
        let s2 = shutdown.clone();
        tokio::spawn(sim.clone().serve_external(ext, Shutdown::wait(shutdown)));
        tokio::spawn(sim.clone().serve_tasks(tasks, Shutdown::wait(s2)));
        let sim_addr = addrs[i].3;
        let extra = format!(
            "[replication]\nenabled = true\npath = \"{}/dc{}.redb\"\npoll_min_ms = 20\npoll_max_ms = 200\nretry_min_ms = 20\nretry_max_ms = 200\n\n\
             [coopr]\ntoken_file = \"{}\"\n\n[health]\ninterval_ms = 100\n",
            dir.path().display(),
            i + 1,
            token_file.display()
        );
        let mut text = config_text_via(i, &addrs, &via, &extra);
        // Each DC's simulator doubles as its standby server for the other DCs (support's
        // layout); its tasks API serves the standby's provisioners too.
        for k in 1..=3 {
            text = text.replace(
                &format!("[standby.dc{k}]\nurl = \"http://{sim_addr}\"\n"),
                &format!(
                    "[standby.dc{k}]\nurl = \"http://{sim_addr}\"\ntasks_url = \"http://{tasks_addr}\"\n"
                ),
            );
        }
        let text = text
            .replace(
                &format!("[[backends]]\nurl = \"http://{sim_addr}\"\n"),
                &format!("[[backends]]\nurl = \"http://{sim_addr}\"\ntasks_url = \"http://{tasks_addr}\"\n"),
            )
            .replacen("\n\n[[backends]]", &format!("\nprovisioner = \"{pv_addr}\"\n\n[[backends]]"), 1);
        let cfg = coopr_router::config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let l = coopr_router::app::Listeners {
            client: c,
            peer: p,
            admin: a,
            provisioner: Some(pv),
        };
        dcs.push(LikeDc {
            router: coopr_router::app::start(cfg, l).unwrap(),
            sim,
            _stop: stop,
        });
    }
    LikeCoopr { dcs, relays, dir }
}

fn authed() -> [(&'static str, &'static str); 3] {
    [
        ADMIN[0],
        ADMIN[1],
        ("Authorization", "Bearer coopr-realm-token-0123456789"),
    ]
}

/// Issue "In front of real Coopr", end to end: security mode everywhere, provisioners through
/// the routers' provisioner listeners, replication, and no planted secret in any byte a peer
/// received or any replica store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_dcs_in_front_of_coopr_like_servers() {
    use coopr_router::sim::{API_PASSWORD, SSH_PASSWORD};
    let d = like_coopr().await;
    let wait = Duration::from_secs(30);
    // /ready is 200 everywhere: the service token passes Coopr's security mode.
    for dc in &d.dcs {
        let ready = format!("http://{}/ready", dc.router.admin_addr);
        eventually(wait, "ready", || async {
            (call(Method::GET, &ready, &[], "").await.status == StatusCode::OK).then_some(())
        })
        .await;
    }
    // A cluster created in each DC goes active: its tasks were taken and finished by that
    // DC's provisioner through the router's provisioner listener.
    let mut ids = Vec::new();
    for (i, dc) in d.dcs.iter().enumerate() {
        let r = call(
            Method::POST,
            &dc.url("/v2/clusters"),
            &authed(),
            &format!("{{\"name\":\"c{i}\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}"),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "create in dc{}: {}",
            i + 1,
            r.text()
        );
        let id = r.json()["id"].as_str().unwrap().to_string();
        let url = dc.url(&format!("/v2/clusters/{id}/status"));
        eventually(wait, "cluster active", || async {
            let r = call(Method::GET, &url, &authed(), "").await;
            (r.json()["status"] == "active").then_some(())
        })
        .await;
        assert!(
            dc.sim
                .log()
                .iter()
                .any(|e| e.path.starts_with("/v2/tasks/finish")
                    || e.path.starts_with("/v2/provisioners/")),
            "provisioner traffic reached dc{}'s Coopr through its router",
            i + 1
        );
        ids.push(id);
    }
    // The owner's Coopr really holds the planted secrets (so the checks below can fail).
    let direct = call(
        Method::GET,
        &format!(
            "http://{}/v2/clusters/{}",
            d.dcs[0].sim.addr().unwrap(),
            ids[0]
        ),
        &authed(),
        "",
    )
    .await;
    assert!(direct.text().contains(API_PASSWORD), "{}", direct.text());
    assert!(direct.text().contains(SSH_PASSWORD), "{}", direct.text());
    // Every cluster becomes a replica read in the two other DCs.
    for (i, id) in ids.iter().enumerate() {
        for (k, dc) in d.dcs.iter().enumerate() {
            if k == i {
                continue;
            }
            let url = dc.url(&format!("/v2/clusters/{id}"));
            let r = eventually(wait, "replica read", || async {
                let r = call(Method::GET, &url, &authed(), "").await;
                (r.header("x-coopr-router-route") == "replica").then_some(r)
            })
            .await;
            assert!(!r.text().contains(API_PASSWORD) && !r.text().contains(SSH_PASSWORD));
            assert!(
                r.header("x-coopr-router-withheld")
                    .contains("provider.provisioner"),
                "a replica read says what was withheld"
            );
        }
    }
    // An unpadded delete finishes (Coopr's plan lookup by the padded id works) and replicates
    // as terminated.
    let n: u64 = ids[0].parse().unwrap();
    let r = call(
        Method::DELETE,
        &d.dcs[0].url(&format!("/v2/clusters/{n}")),
        &authed(),
        "",
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    let replica = d.dcs[1].url(&format!("/v2/clusters/{}/status", ids[0]));
    eventually(wait, "terminated at the replica", || async {
        let r = call(Method::GET, &replica, &authed(), "").await;
        (r.header("x-coopr-router-route") == "replica" && r.json()["status"] == "terminated")
            .then_some(())
    })
    .await;
    // Internal routes on the client and peer ports: 404, and nothing reached a tasks port.
    for port in [d.dcs[1].router.client_addr, d.dcs[1].router.peer_addr] {
        let r = call(
            Method::PUT,
            &format!("http://{port}/v2/provisioners/intruder"),
            &authed(),
            r#"{"id":"intruder","capacityTotal":1,"capacityFree":1,"host":"h","port":1}"#,
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(r.header("x-coopr-router-error"), "internal_route");
    }
    assert!(
        !d.dcs[1]
            .sim
            .log()
            .iter()
            .any(|e| e.path.contains("intruder"))
    );
    // Raw bytes: no planted secret in any batch a peer received, nor in any store file.
    for (k, relay) in d.relays.iter().enumerate() {
        let bytes = relay.tapped();
        assert!(
            !bytes.is_empty(),
            "dc{} received replication traffic",
            k + 1
        );
        for secret in [API_PASSWORD, SSH_PASSWORD] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} reached dc{}",
                k + 1
            );
        }
    }
    for k in 1..=3 {
        let store = std::fs::read(d.dir.path().join(format!("dc{k}.redb"))).unwrap();
        for secret in [API_PASSWORD, SSH_PASSWORD] {
            assert!(
                !store.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} is in dc{k}'s replica store"
            );
        }
    }
}

/// Coopr's security mode with the router's service credential wrong or missing: `/ready`
/// names the cause (`coopr_token`), not "no server answers"; with the right token it is ready,
/// and the token shows in no admin view or metric.
#[tokio::test]
async fn ready_names_a_missing_service_token() {
    use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
    use coopr_router::sim::{Sim, SimConfig};
    use tokio::net::TcpListener;
    let sim = Sim::new(SimConfig {
        security_token: Some(TOKEN.to_string()),
        ..SimConfig::default()
    })
    .unwrap();
    let sl = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = sl.local_addr().unwrap();
    let (_stop, shutdown) = ShutdownTrigger::new();
    tokio::spawn(sim.serve(sl, Shutdown::wait(shutdown)));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    for (token, ready) in [
        (None, false),
        (Some("wrong-token"), false),
        (Some(TOKEN), true),
    ] {
        let coopr = match token {
            Some(t) => {
                std::fs::write(&token_file, format!("{t}\n")).unwrap();
                format!("[coopr]\ntoken_file = \"{}\"\n", token_file.display())
            }
            None => String::new(),
        };
        let text = format!(
            "dc = \"dc1\"\nshard_count = 3\n\n[listen]\nclient = \"127.0.0.1:1\"\npeer = \"127.0.0.1:2\"\nadmin = \"127.0.0.1:3\"\n\n\
             [[backends]]\nurl = \"http://{sim_addr}\"\n\n[dcs.dc1]\npeer_url = \"http://127.0.0.1:2\"\nid_start = 1\nid_increment = 1\n\n\
             [admin]\ntoken = \"admin-token-0123456789\"\n\n{coopr}"
        );
        let l = coopr_router::app::Listeners {
            client: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            peer: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            provisioner: None,
        };
        let r = coopr_router::app::start(coopr_router::config::parse(&text).unwrap(), l).unwrap();
        let resp = call(
            Method::GET,
            &format!("http://{}/ready", r.admin_addr),
            &[],
            "",
        )
        .await;
        if ready {
            assert_eq!(resp.status, StatusCode::OK, "{}", resp.text());
        } else {
            assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                resp.json()["failed"][0]["check"],
                "coopr_token",
                "{}",
                resp.text()
            );
        }
        let auth = [("Authorization", "Bearer admin-token-0123456789")];
        for path in [
            "/admin/routes",
            "/metrics",
            "/admin/explain?method=GET&path=/status",
        ] {
            let v = call(
                Method::GET,
                &format!("http://{}{path}", r.admin_addr),
                &auth,
                "",
            )
            .await;
            assert!(v.status.is_success(), "{path}: {}", v.status);
            assert!(
                !v.text().contains(TOKEN) && !v.text().contains("wrong-token"),
                "{path}"
            );
        }
        r.shutdown();
        r.wait().await;
    }
}
