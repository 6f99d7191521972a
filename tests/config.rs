//! Configuration: the shipped example is valid, and every kind of mistake is refused with the
//! key and the line named, by the library and by `coopr-router check-config`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coopr_router::config;
use std::process::Command;

const EXAMPLE: &str = include_str!("../config/static.toml");

#[test]
fn the_example_is_valid_and_expands_the_static_map() {
    let cfg = config::parse(EXAMPLE).expect("config/static.toml must be valid");
    assert_eq!(cfg.dcs.len(), 3);
    assert_eq!(cfg.shards.len(), 12);
    // Shard 1's home is dc1 (1 mod 3 == 1), shard 2's dc2, shard 0's dc3.
    assert_eq!(cfg.dcs[cfg.shards[1].owner].name, "dc1");
    assert_eq!(cfg.dcs[cfg.shards[2].owner].name, "dc2");
    assert_eq!(cfg.dcs[cfg.shards[0].owner].name, "dc3");
    assert_eq!(cfg.shards[1].replicas.len(), 2);
}

fn refused(text: &str) -> config::ConfigError {
    match config::parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn mistakes_name_the_key_and_line() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (replace this, with this, expect this key in the message, on the line holding this)
        (
            "rules = \"coopr\"",
            "rules = \"coopr\"\ncolour = \"blue\"",
            "colour",
            "colour",
        ),
        (
            "shard_count = 12",
            "shard_count = 10",
            "shard_count",
            "shard_count =",
        ),
        ("dc = \"dc1\"", "dc = \"dc9\"", "dc", "dc = \"dc9\""),
        (
            "id_start = 2\n",
            "id_start = 4\n",
            "dcs.dc2.id_start",
            "id_start = 4",
        ),
        (
            "peer_url = \"http://10.2.0.5:55061\"",
            "peer_url = \"ftp://x\"",
            "dcs.dc2.peer_url",
            "ftp://x",
        ),
        (
            "connect_ms = 2000",
            "connect_ms = 0",
            "timeouts.connect_ms",
            "connect_ms = 0",
        ),
        (
            "connect_ms = 2000",
            "connect_ms = \"fast\"",
            "connect_ms",
            "connect_ms = \"fast\"",
        ),
        (
            "access_log = true",
            "access_log = true\nverbose = 1",
            "verbose",
            "verbose",
        ),
        (
            "# [[ownership.shards]]\n# shard = 0\n# owner = \"dc1\"",
            "[[ownership.shards]]\nshard = 0\nowner = \"dc7\"",
            "ownership.shards.0.owner",
            "owner = \"dc7\"",
        ),
        (
            "# [[ownership.shards]]\n# shard = 0",
            "[[ownership.shards]]\nshard = 99\nowner = \"dc1\"",
            "ownership.shards.0.shard",
            "shard = 99",
        ),
        (
            "# [[ownership.shards]]\n# shard = 0\n# owner = \"dc1\"",
            "[[ownership.pins]]\nlo = 1\nhi = 10\ndc = \"dc7\"",
            "ownership.pins.0.dc",
            "dc = \"dc7\"",
        ),
        (
            "# [[ownership.shards]]\n# shard = 0\n# owner = \"dc1\"",
            "[[ownership.pins]]\nlo = 10\nhi = 9\ndc = \"dc1\"",
            "ownership.pins.0.hi",
            "hi = 9",
        ),
        (
            "# [[ownership.shards]]\n# shard = 0\n# owner = \"dc1\"",
            "[[ownership.pins]]\nlo = 1\nhi = 10\ndc = \"dc1\"\n\n[[ownership.pins]]\nlo = 10\ndc = \"dc2\"",
            "ownership.pins.1.lo",
            "lo = 10",
        ),
        (
            "# threads = 4 ",
            "threads = 0 ",
            "listen.threads",
            "threads = 0",
        ),
        (
            "# threads = 4 ",
            "threads = 1000 ",
            "listen.threads",
            "threads = 1000",
        ),
        (
            "url = \"http://127.0.0.1:55054\"",
            "url = \"http://127.0.0.1:55054/coopr\"",
            "backends.0.url",
            "55054/coopr",
        ),
    ];
    for (from, to, key, marker) in cases {
        assert!(EXAMPLE.contains(from), "example lacks {from:?}");
        let text = EXAMPLE.replacen(from, to, 1);
        let line = text.lines().position(|l| l.contains(marker)).unwrap() + 1;
        let e = refused(&text);
        let msg = e.to_string();
        assert!(msg.contains(key), "{to:?}: {msg} should name {key}");
        assert_eq!(e.line, Some(line), "{to:?}: {msg}");
        assert!(msg.starts_with(&format!("line {line}")), "{msg}");
    }
}

#[test]
fn check_config_exits_non_zero_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&good, EXAMPLE).unwrap();
    std::fs::write(
        &bad,
        EXAMPLE.replacen("shard_count = 12", "shard_count = 0", 1),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_coopr-router");
    let ok = Command::new(bin)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = Command::new(bin)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shard_count") && err.contains("line 10"),
        "{err}"
    );
}

#[test]
fn every_shipped_example_is_valid() {
    for (name, text) in [
        ("static", EXAMPLE),
        ("etcd", include_str!("../config/etcd.toml")),
        ("shared", include_str!("../config/shared.toml")),
    ] {
        let cfg = config::parse(text).unwrap_or_else(|e| panic!("config/{name}.toml: {e}"));
        assert_eq!(cfg.dcs.len(), 3, "{name}");
    }
    let etcd = config::parse(include_str!("../config/etcd.toml")).unwrap();
    assert_eq!(etcd.raw.ownership.source, config::OwnershipSource::Etcd);
    let shared = config::parse(include_str!("../config/shared.toml")).unwrap();
    assert_eq!(shared.raw.ownership.mode, config::OwnershipMode::Shared);
    // The etcd source without endpoints is refused, naming the key.
    let e = config::parse(
        &include_str!("../config/etcd.toml").replace("endpoints = [", "# endpoints = ["),
    )
    .unwrap_err();
    assert!(e.to_string().contains("ownership.endpoints"), "{e}");
    // Compaction: the example's 5 min; off is 0; below a second is refused, naming the key.
    assert_eq!(etcd.raw.ownership.compact_every_ms, 300_000);
    let etcd_text = include_str!("../config/etcd.toml");
    for (value, ok) in [("0", true), ("1000", true), ("999", false)] {
        let text = etcd_text.replace(
            "compact_every_ms = 300000",
            &format!("compact_every_ms = {value}"),
        );
        match config::parse(&text) {
            Ok(c) => assert!(ok, "{value} accepted: {}", c.raw.ownership.compact_every_ms),
            Err(e) => assert!(
                !ok && e.to_string().contains("ownership.compact_every_ms"),
                "{value}: {e}"
            ),
        }
    }
}

#[test]
fn a_reader_that_went_away_ends_a_command_quietly() {
    // `coopr-router check-config f | head -c0`: standard output is a pipe nobody reads.
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, EXAMPLE).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .arg("check-config")
        .arg(&good)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}
