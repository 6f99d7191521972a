//! The catalog's home held in etcd (`catalog/home`, issue 24): it wins over `catalog.home` in
//! the routers' configs, has an epoch (its `mod_revision`) and a history record, and every router
//! follows a move through its watch: the next global write goes to the new home, and `/admin`
//! says where the home comes from.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::catalog_home::{self, HomeWrite};
use coopr_router::etcd::ops;
use http::StatusCode;
use serde_json::json;
use std::time::Duration;
use support::etcd::EtcdServer;
use support::*;

const PREFIX: &str = "/catalog-home-test/";
const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_home_moves_through_etcd_and_every_router_follows() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 12, false).await.expect("init");
    let dir = tempfile::tempdir().unwrap();
    let url = etcd.url();
    let d = start_with_data(Duration::from_millis(100), None, |i| {
        format!(
            "[replication]\nenabled = true\npath = \"{}/dc{}.redb\"\nretry_min_ms = 20\nretry_max_ms = 200\n\n\
             [catalog]\nhome = \"dc1\"\n\n\
             [ownership]\nsource = \"etcd\"\nendpoints = [\"{url}\"]\nprefix = \"{PREFIX}\"\nstate_file = \"{}/router-dc{}.json\"\n",
            dir.path().display(),
            i + 1,
            dir.path().display(),
            i + 1
        )
    })
    .await;
    for dc in &d.dcs {
        eventually(WAIT, "router fresh", || async {
            let r = routes(dc).await;
            (r["fenced"] == false).then_some(())
        })
        .await;
    }
    // Nothing in etcd: the config's home, dc1.
    assert_eq!(catalog_home::get(&s).await.unwrap(), None);
    assert_eq!(
        routes(&d.dcs[2]).await["catalog_home"],
        json!({"dc": "dc1", "source": "config"})
    );
    let r = post(
        &d.dcs[2].url("/v2/tenants"),
        r#"{"name":"acme","workers":1}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    // An unknown DC is refused; dc2 becomes the home, with an epoch and a history record.
    assert!(catalog_home::set(&s, "dc9", "test", "typo").await.is_err());
    let moved = catalog_home::set(&s, "dc2", "test", "dc1 maintenance")
        .await
        .unwrap();
    let HomeWrite::Moved { from, epoch } = moved else {
        panic!("{moved:?}")
    };
    assert_eq!(from, None);
    assert_eq!(
        catalog_home::set(&s, "dc2", "test", "again").await.unwrap(),
        HomeWrite::Unchanged
    );
    for dc in &d.dcs {
        eventually(WAIT, "router follows the home", || async {
            (routes(dc).await["catalog_home"]
                == json!({"dc": "dc2", "epoch": epoch, "source": "etcd"}))
            .then_some(())
        })
        .await;
    }
    // The next global write through dc3 (and through dc1, the config's home) goes to dc2 first.
    for (dc, name) in [(&d.dcs[2], "globex"), (&d.dcs[0], "initech")] {
        let r = post(
            &dc.url("/v2/tenants"),
            &json!({"name": name, "workers": 1}).to_string(),
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-coopr-router-dc"), "dc2", "through {}", dc.name);
    }
    let e = call(
        http::Method::GET,
        &d.dcs[0].admin_url("/admin/explain?method=POST&path=/v2/tenants"),
        &[],
        "",
    )
    .await
    .json();
    assert!(
        e.to_string().contains("router of dc2 (the catalog's home)"),
        "{e}"
    );
    // And every DC's Coopr gets them, delivered from the new home.
    for dc in &d.dcs {
        eventually(WAIT, "the three tenants in every DC's Coopr", || async {
            let n = dc
                .log()
                .iter()
                .filter(|e| e.method == "POST" && e.path == "/v2/tenants")
                .count();
            (n == 3).then_some(())
        })
        .await;
    }
    // The move is in the history.
    let history = {
        let mut c = s.connect().await.unwrap();
        c.get(
            format!("{PREFIX}history/catalog-home/"),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap()
        .kvs()
        .len()
    };
    assert_eq!(history, 1);
}
