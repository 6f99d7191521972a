//! `coopr-router status` as an operator runs it, against three running DCs: every router's view
//! (shards with owners, DC health, replication queues, operation counts), the token taken from
//! `--config`, and a killed DC shown as down by the others and as unreadable itself (exit 1).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;
use support::*;

const TOKEN: &str = "status-cli-test-token";

async fn status(args: &[&str]) -> (bool, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_coopr-router"))
            .arg("status")
            .args(args)
            .env_remove("COOPR_ROUTER_ADMIN_TOKEN")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("status finishes")
    .expect("status runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_every_dc_and_a_killed_one_as_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = start_with(Duration::from_millis(50), |i| {
        format!(
            "[admin]\ntoken = \"{TOKEN}\"\n\n\
             [health]\ninterval_ms = 100\ntimeout_ms = 300\nrise = 1\nfall = 2\n\n\
             [replication]\nenabled = true\npath = \"{}/dc{}.redb\"\n",
            dir.path().display(),
            i + 1
        )
    })
    .await;
    let admins: Vec<String> = d.dcs.iter().map(|dc| dc.admin_url("")).collect();
    let mut args = vec!["--token", TOKEN];
    for a in &admins {
        args.extend(["--admin", a.as_str()]);
    }
    let routes = routes(&d.dcs[0]).await;
    let (ok, out, err) = status(&args).await;
    assert!(ok, "{out}\n{err}");
    for (i, a) in admins.iter().enumerate() {
        assert!(
            out.contains(&format!(
                "== dc{} ({a})  ready  map: static, revision 0, not fenced",
                i + 1
            )),
            "dc{} header in\n{out}",
            i + 1
        );
    }
    for s in routes["shards"].as_array().unwrap() {
        let cell = format!(
            "{:>4} {}/{}",
            s["shard"],
            s["owner"].as_str().unwrap(),
            s["epoch"]
        );
        assert_eq!(
            out.matches(&cell).count(),
            3,
            "{cell:?} once per DC in\n{out}"
        );
    }
    assert_eq!(
        out.matches("operations: open 0, interrupted 0").count(),
        3,
        "{out}"
    );
    assert!(out.contains("dc3      peer     up"), "{out}");
    assert!(out.contains("queued      0  lag -"), "{out}");

    // Without the token, operations say what is missing (the rest is open by default).
    let (ok, out, _) = status(&["--admin", &admins[0]]).await;
    assert!(ok);
    assert!(
        out.contains("operations: open ? (needs the admin token (--token))"),
        "{out}"
    );

    // --config: the admin address and the token come from the router's config file.
    let file = dir.path().join("dc1.toml");
    std::fs::write(&file, &d.dcs[0].config_text).unwrap();
    let (ok, out, err) = status(&["--config", file.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert!(out.contains(&format!("== dc1 ({})", admins[0])), "{out}");
    assert!(out.contains("operations: open 0, interrupted 0"), "{out}");

    // Kill dc3: dc1 shows it down, dc3's own admin port cannot be read (exit status 1).
    d.dcs[2].stop_router().await;
    d.dcs[2].stop_sim();
    eventually(Duration::from_secs(10), "dc1 sees dc3 down", || async {
        let (_, out, _) = status(&["--admin", &admins[0]]).await;
        out.contains("dc3      peer     DOWN").then_some(())
    })
    .await;
    let (ok, out, err) = status(&args).await;
    assert!(!ok, "an unreadable router fails the command");
    assert!(
        err.contains(&format!("{} could not be read", admins[2])),
        "{err}"
    );
    assert!(out.contains(&format!("== {}: DOWN (", admins[2])), "{out}");
    assert!(out.contains("dc3      peer     DOWN"), "{out}");
    assert!(
        out.contains("== dc2 ("),
        "the others are still shown:\n{out}"
    );
}
