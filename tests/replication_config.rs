//! The `[replication]` section: defaults, unknown keys refused with the line, and each bad value
//! refused with its key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coopr_router::config;

const EXAMPLE: &str = include_str!("../config/static.toml");

fn with(section: &str) -> String {
    format!("{EXAMPLE}\n[replication]\n{section}\n")
}

#[test]
fn defaults_are_off_and_sane() {
    let cfg = config::parse(EXAMPLE).unwrap();
    let r = &cfg.raw.replication;
    assert!(!r.enabled);
    assert_eq!((r.poll_min_ms, r.poll_max_ms), (250, 5_000));
    assert!(r.outbox_max_records >= 100_000);
    let on = config::parse(&with(
        "enabled = true\npath = \"/tmp/x.redb\"\nrestart_hook = \"http://127.0.0.1:9000/restart\"",
    ))
    .unwrap();
    assert!(on.raw.replication.enabled);
    assert_eq!(
        on.raw.replication.restart_hook.as_deref(),
        Some("http://127.0.0.1:9000/restart")
    );
}

#[test]
fn replication_is_refused_in_shared_mode() {
    let text = EXAMPLE.replace("[ownership]\n", "[ownership]\nmode = \"shared\"\n");
    assert!(text.contains("mode = \"shared\""));
    let e = config::parse(&format!("{text}\n[replication]\nenabled = true\n")).unwrap_err();
    assert!(e.to_string().contains("replication.enabled"), "{e}");
    config::parse(&text).expect("shared mode without replication is fine");
}

#[test]
fn bad_replication_keys_are_refused_with_the_key() {
    let cases = [
        ("enabeld = true", "enabeld"),
        ("outbox_max_records = 0", "replication.outbox_max_records"),
        ("batch_max_records = 0", "replication.batch_max_records"),
        (
            "poll_min_ms = 500\npoll_max_ms = 100",
            "replication.poll_max_ms",
        ),
        ("retry_min_ms = 0", "replication.retry_max_ms"),
        ("list_body_bytes = 10", "replication.list_body_bytes"),
        ("batch_body_bytes = 1000", "replication.batch_body_bytes"),
        ("hook_max_attempts = 0", "replication.hook_max_attempts"),
        ("restart_hook = \"ftp://x/y\"", "replication.restart_hook"),
        (
            "restart_hook = \"http://u:p@x:1/y\"",
            "replication.restart_hook",
        ),
    ];
    for (section, key) in cases {
        let text = with(section);
        match config::parse(&text) {
            Ok(_) => panic!("accepted: {section}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(key), "{section}: {msg}");
                assert!(e.line.is_some(), "{section}: no line in {msg}");
            }
        }
    }
}
