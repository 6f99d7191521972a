//! The status page (`GET /admin/status` and `/` on the admin port) against three running DCs:
//! served without the token and self-contained; `/admin/status.json` follows the token rules;
//! and, loaded in a real headless browser (Debian's `chromium`, which `.ci/run` installs), the
//! page renders every shard with its owner and shows a killed DC as down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::StatusCode;
use std::time::Duration;
use support::*;

const TOKEN: &str = "status-test-token";

fn extra(dir: &std::path::Path, i: usize) -> String {
    format!(
        "[admin]\ntoken = \"{TOKEN}\"\nopen_reads = false\n\n\
         [health]\ninterval_ms = 100\ntimeout_ms = 300\nrise = 1\nfall = 2\n\n\
         [replication]\nenabled = true\npath = \"{}/dc{}.redb\"\nretry_min_ms = 20\nretry_max_ms = 200\n",
        dir.display(),
        i + 1
    )
}

/// Runs Debian's chromium headless on `url` and returns the DOM after the page's scripts ran.
async fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                &format!("--user-data-dir={}", profile.path().display()),
                "--virtual-time-budget=5000",
                "--dump-dom",
                url,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("chromium finishes within 60 s")
    .expect("chromium runs (apt-get install chromium; .ci/run installs it)");
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        dom.contains("</html>"),
        "chromium printed no DOM (status {}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The `data-up` attribute of DC `name`'s row in the rendered DCs table.
fn rendered_up(dom: &str, name: &str) -> Option<String> {
    let start = dom.find(&format!("data-dc=\"{name}\" data-up=\""))?;
    let rest = &dom[start + format!("data-dc=\"{name}\" data-up=\"").len()..];
    Some(rest[..rest.find('"')?].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_open_and_self_contained_and_its_data_needs_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(Duration::from_millis(50), |i| extra(dir.path(), i)).await;
    for path in ["/", "/admin/status"] {
        let r = get(&d.dcs[0].admin_url(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path} needs no token");
        assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
        assert!(
            r.header("content-security-policy")
                .contains("default-src 'none'")
        );
        let page = r.text();
        assert!(page.contains("<script>") && page.contains("<style>"));
        for external in [
            "src=\"http",
            "href=\"http",
            "<link",
            "<script src",
            "@import",
            "url(",
        ] {
            assert!(
                !page.contains(external),
                "{path} loads something: {external}"
            );
        }
    }
    // The data needs the token here (open_reads = false); operations always do.
    let url = d.dcs[0].admin_url("/admin/status.json");
    assert_eq!(get(&url).await.status, StatusCode::UNAUTHORIZED);
    let auth = format!("Bearer {TOKEN}");
    let r = call(http::Method::GET, &url, &[("authorization", &auth)], "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["dc"], "dc1");
    assert_eq!(v["shards"].as_array().unwrap().len(), 12);
    let dcs = v["dcs"].as_array().unwrap();
    assert_eq!(dcs.len(), 3);
    assert_eq!(dcs[0]["local"], true);
    assert_eq!(dcs[1]["local"], false);
    assert_eq!(v["replication"]["enabled"], true);
    let peers: Vec<&str> = v["replication"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer"].as_str().unwrap())
        .collect();
    assert_eq!(peers, ["dc2", "dc3"]);
    assert_eq!(v["changes"], serde_json::json!([]));
    // A write in dc1 queues records for its peers; once they acknowledged, the queues are empty.
    let id = create_active(&d.dcs[0], "status").await;
    assert_eq!(id, "00000001");
    eventually(Duration::from_secs(10), "queues drained", || async {
        let v = call(http::Method::GET, &url, &[("authorization", &auth)], "")
            .await
            .json();
        v["replication"]["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["queued"] == 0 && p["oldest_age_ms"].is_null())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headless_browser_renders_every_shard_and_a_killed_dc_as_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start_with(Duration::from_millis(50), |i| extra(dir.path(), i)).await;
    let routes = call(
        http::Method::GET,
        &d.dcs[0].admin_url("/admin/routes"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        "",
    )
    .await
    .json();
    let page = d.dcs[0].admin_url(&format!("/admin/status#token={TOKEN}"));
    let dom = dump_dom(&page).await;
    let shards = routes["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 12);
    for s in shards {
        let cell = format!(
            "data-shard=\"{}\" data-owner=\"{}\" data-epoch=\"{}\"",
            s["shard"],
            s["owner"].as_str().unwrap(),
            s["epoch"]
        );
        assert!(
            dom.contains(&cell),
            "no cell {cell} in the rendered page:\n{dom}"
        );
    }
    for dc in ["dc1", "dc2", "dc3"] {
        assert_eq!(
            rendered_up(&dom, dc).as_deref(),
            Some("true"),
            "{dc} up:\n{dom}"
        );
    }
    assert!(dom.contains(">ready<"), "readiness shown");
    // (The page's own script is in the DOM too: assert on rendered markup only.)
    assert!(
        dom.contains("data-ops=\"open\">0<"),
        "operations read with the token"
    );
    assert!(dom.contains("data-ops=\"interrupted\">0<"));

    // Kill dc3 (router and Coopr): dc1's page shows it down.
    d.dcs[2].stop_router().await;
    d.dcs[2].stop_sim();
    eventually(Duration::from_secs(10), "dc1 sees dc3 down", || async {
        let v = call(
            http::Method::GET,
            &d.dcs[0].admin_url("/admin/status.json"),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            "",
        )
        .await
        .json();
        (v["dcs"][2]["up"] == false).then_some(())
    })
    .await;
    let dom = dump_dom(&page).await;
    assert_eq!(rendered_up(&dom, "dc3").as_deref(), Some("false"), "{dom}");
    assert_eq!(rendered_up(&dom, "dc2").as_deref(), Some("true"));
    let row = &dom[dom.find("data-dc=\"dc3\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains(">down<"), "dc3's row says down: {row}");

    // Without the token the page renders no data and asks for it.
    let dom = dump_dom(&d.dcs[0].admin_url("/admin/status")).await;
    assert!(
        !dom.contains("data-shard=\"0\""),
        "no data without the token"
    );
    assert!(
        dom.contains("cannot read this router: the admin API needs the token (HTTP 401)"),
        "{dom}"
    );
}
