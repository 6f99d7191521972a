//! Tests of `reload/plan.rs` (kept in their own file; the module is `tests` of it).
//!
//! Test code only: `reload/plan.rs` includes this file under `#[cfg(test)]`, so its unwraps never
//! run on a request, etcd or replication path.

use super::*;
use crate::config;
use std::path::Path;

/// A config with every section present and every list and map non-empty (so every key
/// shows), for the static or the etcd source. TLS files live under `dir`.
pub(super) fn full_text(dir: &Path, source: &str) -> String {
    let p = |rel: &str| dir.join(rel).display().to_string();
    format!(
        r#"dc = "dc1"
shard_count = 12
rules = "coopr"

[listen]
client = "127.0.0.1:50001"
peer = "127.0.0.1:50002"
admin = "127.0.0.1:50003"
provisioner = "127.0.0.1:50004"

[[backends]]
url = "http://127.0.0.1:55054"
tasks_url = "http://127.0.0.1:55055"

[dcs.dc1]
peer_url = "https://10.1.0.5:55061"
id_start = 1
id_increment = 3

[dcs.dc2]
peer_url = "https://10.2.0.5:55061"
id_start = 2
id_increment = 3

[dcs.dc3]
peer_url = "https://10.3.0.5:55061"
id_start = 3
id_increment = 3

[admin]
token = "0123456789abcdef"
token_file = "{token}"

[coopr]
token_file = "{token}"

[standby.dc3]
url = "http://10.1.0.30:55054"
tasks_url = "http://10.1.0.30:55055"

[ownership]
source = "{source}"
endpoints = ["http://10.0.0.10:2379"]
state_file = "/tmp/dc1.ownership.json"
username = "router"
password = "secret"
tls_ca_file = "{ca}"
tls_cert_file = "{dc1_server}"
tls_key_file = "{dc1_server_key}"

[[ownership.shards]]
shard = 0
owner = "dc1"
replicas = ["dc2"]

[[ownership.pins]]
lo = 1
hi = 5000
dc = "dc1"

[replication]
path = "/tmp/dc1.replication.redb"
restart_hook = "http://127.0.0.1:9000/restart"

[catalog]
home = "dc2"

[tls.client]
cert_file = "{dc1_server}"
key_file = "{dc1_server_key}"

[tls.peer]
ca_file = "{ca}"
cert_file = "{dc1_peer}"
key_file = "{dc1_peer_key}"

[tls.backend]
ca_file = "{ca}"

[tls.provisioner]
cert_file = "{dc1_server}"
key_file = "{dc1_server_key}"
client_ca_file = "{ca}"
"#,
        token = p("token"),
        ca = p("ca.pem"),
        dc1_server = p("dc1/server.pem"),
        dc1_server_key = p("dc1/server.key"),
        dc1_peer = p("dc1/peer.pem"),
        dc1_peer_key = p("dc1/peer.key"),
    )
}

/// Dev certificates and token files in a temporary directory.
pub(super) fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let dcs = ["dc1".to_string(), "dc2".to_string()];
    crate::tls::dev::write_dev_set(dir.path(), &dcs, &[]).unwrap();
    std::fs::write(dir.path().join("token"), "token-from-the-file-0\n").unwrap();
    std::fs::write(dir.path().join("token2"), "another-token-file-1\n").unwrap();
    dir
}

pub(super) fn full(dir: &Path, source: &str) -> Config {
    config::parse(&full_text(dir, source)).unwrap()
}

/// `base` with `edits` made (dotted key, TOML value or `None` to remove), validated.
pub(super) fn edit(base: &Config, edits: &[(String, Option<String>)]) -> Result<Config, String> {
    let mut v = toml::Value::try_from(&base.raw).unwrap();
    for (key, value) in edits {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, path) = parts.split_last().unwrap();
        let mut at = &mut v;
        for seg in path {
            at = match at {
                toml::Value::Table(t) => t.get_mut(*seg),
                toml::Value::Array(a) => a.get_mut(seg.parse::<usize>().unwrap()),
                other => panic!("{key}: {seg} is in {other:?}"),
            }
            .ok_or_else(|| format!("{key}: no {seg}"))?;
        }
        let value = value.as_ref().map(|text| {
            toml::from_str::<toml::Table>(&format!("v = {text}")).unwrap()["v"].clone()
        });
        match (at, value) {
            (toml::Value::Table(t), Some(value)) => {
                t.insert(last.to_string(), value);
            }
            (toml::Value::Table(t), None) => {
                t.remove(*last);
            }
            (toml::Value::Array(a), Some(value)) => a[last.parse::<usize>().unwrap()] = value,
            (other, _) => panic!("{key}: cannot edit {other:?}"),
        }
    }
    config::parse(&toml::to_string(&v).unwrap()).map_err(|e| e.to_string())
}

pub(super) fn edits(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
        .collect()
}

/// Whether `pattern` (`*` for one segment) names `key`.
pub(super) fn matches(pattern: &str, key: &str) -> bool {
    let (p, k): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), key.split('.').collect());
    p.len() == k.len() && p.iter().zip(&k).all(|(p, k)| *p == "*" || p == k)
}

pub(super) fn class_of(key: &str) -> Option<Class> {
    KEYS.iter()
        .find(|(pattern, _)| matches(pattern, key))
        .map(|(_, c)| *c)
}

/// Every leaf key of a serialized config; array indexes become `*`.
pub(super) fn leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    let join = |seg: &str| {
        if prefix.is_empty() {
            seg.to_string()
        } else {
            format!("{prefix}.{seg}")
        }
    };
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                leaves(v, &join(k), out);
            }
        }
        serde_json::Value::Array(a) if !a.is_empty() => {
            for v in a {
                leaves(v, &join("*"), out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

#[test]
fn every_key_of_the_config_is_classified() {
    let dir = files();
    let mut seen = Vec::new();
    for source in ["static", "etcd"] {
        let mut raw = full(dir.path(), source).raw;
        // The sections' presence keys too.
        let mut keys = Vec::new();
        leaves(&serde_json::to_value(&raw).unwrap(), "", &mut keys);
        raw.tls = TlsConfig::default();
        leaves(&serde_json::to_value(&raw).unwrap(), "", &mut keys);
        keys.sort();
        keys.dedup();
        let unclassified: Vec<&String> = keys.iter().filter(|k| class_of(k).is_none()).collect();
        assert!(
            unclassified.is_empty(),
            "config keys not classified as hot or restart: {unclassified:?}; add each to \
             reload::plan::KEYS and handle it in plan()"
        );
        seen.extend(keys);
    }
    for (pattern, _) in KEYS {
        assert!(
            seen.iter().any(|k| matches(pattern, k)),
            "KEYS names {pattern:?}, which is no key of the config"
        );
    }
    // The example configs hold nothing else.
    for file in ["static.toml", "etcd.toml", "shared.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(file);
        let raw = config::load(&path).unwrap().raw;
        let mut keys = Vec::new();
        leaves(&serde_json::to_value(&raw).unwrap(), "", &mut keys);
        for k in keys {
            // An empty list or map stands for its elements' keys.
            let elements = |p: &str| {
                let (p, k): (Vec<&str>, Vec<&str>) =
                    (p.split('.').collect(), k.split('.').collect());
                p.len() > k.len() && p.iter().zip(&k).all(|(p, k)| *p == "*" || p == k)
            };
            assert!(
                class_of(&k).is_some() || KEYS.iter().any(|(p, _)| elements(p)),
                "{file}: key {k:?} is not classified"
            );
        }
    }
}

/// One change (one or more edits of keys of the same class) per case.
pub(super) fn cases(dir: &Path, source: &str) -> Vec<Vec<(String, Option<String>)>> {
    let other = if source == "etcd" { "static" } else { "etcd" };
    let p = |rel: &str| format!("{:?}", dir.join(rel).display().to_string());
    let one = |k: &str, v: &str| edits(&[(k, Some(v))]);
    let mut out = vec![
        one("dc", "\"dc2\""),
        one("shard_count", "24"),
        one("listen.client", "\"127.0.0.1:50011\""),
        one("listen.peer", "\"127.0.0.1:50012\""),
        one("listen.admin", "\"127.0.0.1:50013\""),
        one("listen.provisioner", "\"127.0.0.1:50014\""),
        one("listen.insecure_plaintext_peer", "true"),
        one("backends.0.url", "\"http://127.0.0.1:55154\""),
        one("backends.0.tasks_url", "\"http://127.0.0.1:55155\""),
        one("dcs.dc2.peer_url", "\"https://10.2.0.9:55061\""),
        one("dcs.dc2.id_start", "5"),
        edits(&[
            ("dcs.dc1.id_increment", Some("6")),
            ("dcs.dc2.id_increment", Some("6")),
            ("dcs.dc3.id_increment", Some("6")),
        ]),
        one("ownership.mode", "\"shared\""),
        one("ownership.source", &format!("{other:?}")),
        one("ownership.shards.0.shard", "3"),
        one("ownership.shards.0.owner", "\"dc3\""),
        one("ownership.shards.0.replicas.0", "\"dc3\""),
        one("ownership.pins.0.lo", "2"),
        one("ownership.pins.0.hi", "6000"),
        one("ownership.pins.0.dc", "\"dc2\""),
        one("ownership.endpoints.0", "\"http://10.0.0.11:2379\""),
        one("ownership.prefix", "\"/other/\""),
        one("ownership.fence_after_ms", "2000"),
        one("ownership.epoch_wait_ms", "700"),
        one("ownership.compact_every_ms", "60000"),
        one("ownership.state_file", "\"/tmp/other.json\""),
        one("ownership.connect_timeout_ms", "3000"),
        one("ownership.username", "\"other\""),
        one("ownership.password", "\"other\""),
        one("ownership.tls_ca_file", &p("dc2/server.pem")),
        edits(&[
            ("ownership.tls_cert_file", Some(&p("dc2/server.pem"))),
            ("ownership.tls_key_file", Some(&p("dc2/server.key"))),
        ]),
        one("log.format", "\"json\""),
        one("log.access_log", "true"),
        one("log.access_log_health", "true"),
        one("health.interval_ms", "2000"),
        one("health.timeout_ms", "2000"),
        one("health.rise", "3"),
        one("health.fall", "4"),
        one("admin.token", "\"fedcba9876543210\""),
        one("admin.token_file", &p("token2")),
        one("coopr.token_file", &p("token2")),
        one("admin.open_reads", "false"),
        one("admin.drain_delay_ms", "1"),
        one("admin.watch_config_ms", "0"),
        one("standby.dc3.url", "\"http://10.1.0.31:55054\""),
        one("standby.dc3.tasks_url", "\"http://10.1.0.31:55055\""),
        one("failover.mode", "\"manual\""),
        one("failover.lease_ttl_ms", "6000"),
        one("failover.grace_ms", "3000"),
        one("failover.fence_margin_ms", "900"),
        one("failover.min_interval_ms", "1000"),
        one("failover.max_hold_ms", "100"),
        one("failover.buffer_max_ms", "100"),
        one("failover.buffer_max_requests", "5"),
        one("failover.buffer_max_bytes", "4096"),
        one("failover.failback", "\"manual\""),
        one("failover.failback_after_ms", "1500"),
        one("replication.enabled", "true"),
        one("replication.sweep_ms", "3000"),
        one("replication.path", "\"/tmp/other.redb\""),
        one("replication.outbox_max_records", "10"),
        one("replication.batch_max_records", "10"),
        one("replication.poll_min_ms", "10"),
        one("replication.poll_max_ms", "10000"),
        one("replication.retry_min_ms", "10"),
        one("replication.retry_max_ms", "100000"),
        one("replication.list_body_bytes", "2048"),
        one("replication.restart_hook", "\"http://127.0.0.1:9001/x\""),
        one("replication.hook_max_attempts", "1"),
        one("replication.retain_terminated_ms", "1000"),
        one("replication.batch_body_bytes", "1048576"),
        one("catalog.home", "\"dc3\""),
        one("tls.handshake_timeout_ms", "5000"),
        edits(&[("tls.client", None)]),
        edits(&[
            ("tls.client.cert_file", Some(&p("dc2/server.pem"))),
            ("tls.client.key_file", Some(&p("dc2/server.key"))),
        ]),
        one("tls.peer.ca_file", &p("dc2/peer.pem")),
        edits(&[
            ("tls.peer.cert_file", Some(&p("dc2/peer.pem"))),
            ("tls.peer.key_file", Some(&p("dc2/peer.key"))),
        ]),
        edits(&[("tls.backend", None)]),
        edits(&[("tls.provisioner", None)]),
        edits(&[
            ("tls.provisioner.cert_file", Some(&p("dc2/server.pem"))),
            ("tls.provisioner.key_file", Some(&p("dc2/server.key"))),
        ]),
        one("tls.provisioner.client_ca_file", &p("dc2/peer.pem")),
        one("tls.backend.ca_file", &p("dc1/server.pem")),
    ];
    for (k, v) in [
        ("timeouts.connect_ms", "1"),
        ("timeouts.response_ms", "1"),
        ("timeouts.request_head_ms", "1"),
        ("timeouts.backend_cooldown_ms", "1"),
        ("timeouts.shutdown_grace_ms", "1"),
        ("timeouts.upstream_idle_ms", "1"),
        ("timeouts.idle_park_ms", "1"),
        ("timeouts.body_idle_ms", "1"),
        ("limits.inspect_body_bytes", "2048"),
        ("limits.max_connections", "5"),
        ("limits.max_header_bytes", "10000"),
        ("limits.h2_max_concurrent_streams", "5"),
        ("limits.max_headers", "5"),
        ("limits.max_uri_bytes", "300"),
        ("limits.upstream_per_connection", "2"),
        ("limits.peer_h2_streams", "8"),
    ] {
        out.push(one(k, v));
    }
    out
}

/// A row's class as it applies with `source` running.
pub(super) fn effective(class: Class, source: OwnershipSource) -> Class {
    match (class, source) {
        (EtcdRestart(n), OwnershipSource::Etcd) => Restart(n),
        (EtcdNoted(n), OwnershipSource::Etcd) => Noted(n),
        (EtcdRestart(_) | EtcdNoted(_), OwnershipSource::Static) => Hot,
        (c, _) => c,
    }
}

#[test]
fn each_key_alone_is_hot_or_reported_or_kept_as_its_table_row_says() {
    let dir = files();
    for source in ["static", "etcd"] {
        let cases = cases(dir.path(), source);
        for (pattern, _) in KEYS {
            // `rules` has one valid value; `tls.peer` on/off moves the peer URLs too (below).
            if ["rules", "tls.peer"].contains(pattern) {
                continue;
            }
            assert!(
                cases.iter().flatten().any(|(k, _)| matches(pattern, k)),
                "no case changes {pattern}"
            );
        }
        let old = full(dir.path(), source);
        assert_eq!(
            plan(&old, old.clone()),
            Plan {
                config: old.clone(),
                needs_restart: vec![]
            }
        );
        for case in &cases {
            let key = &case[0].0;
            let class = class_of(key).unwrap_or_else(|| panic!("{key} has no row"));
            for (k, _) in case {
                assert_eq!(class_of(k), Some(class), "{k} and {key} in one case");
            }
            let new = edit(&old, case).unwrap_or_else(|e| panic!("{source}, {case:?}: {e}"));
            assert_ne!(new, old, "{source}, {case:?} changes nothing");
            let got = plan(&old, new.clone());
            let (restart, config) = match effective(class, old.raw.ownership.source) {
                Hot => (vec![], &new),
                Noted(n) => (vec![n.to_string()], &new),
                Restart(n) => (vec![n.to_string()], &old),
                c => unreachable!("{c:?}"),
            };
            assert_eq!(got.needs_restart, restart, "{source}, {case:?}");
            assert!(
                got.config == *config,
                "{source}, {case:?}: applied {:#?}",
                got.config.raw
            );
        }
    }
}

/// `tls.peer` off: the peer URLs turn plain with it.
pub(super) fn peer_off() -> Vec<(String, Option<String>)> {
    edits(&[
        ("tls.peer", None),
        ("dcs.dc1.peer_url", Some("\"http://10.1.0.5:55061\"")),
        ("dcs.dc2.peer_url", Some("\"http://10.2.0.5:55061\"")),
        ("dcs.dc3.peer_url", Some("\"http://10.3.0.5:55061\"")),
    ])
}

#[test]
fn tls_on_off_keeps_the_listener_mode_and_peer_on_off_the_topology() {
    let dir = files();
    for source in ["static", "etcd"] {
        let on = full(dir.path(), source);
        let off = edit(&on, &peer_off()).unwrap();
        let topology: &[&str] = if source == "etcd" { &[TOPOLOGY] } else { &[] };
        for (old, new) in [(&on, &off), (&off, &on)] {
            let got = plan(old, new.clone());
            assert_eq!(
                got.needs_restart,
                [topology, &[TLS_PEER]].concat(),
                "{source}"
            );
            assert!(
                got.config == *old,
                "{source}: the peer port and its URLs stay"
            );
        }
        let plain = edit(&on, &edits(&[("tls.client", None)])).unwrap();
        for (old, new) in [(&on, &plain), (&plain, &on)] {
            let got = plan(old, new.clone());
            assert_eq!(got.needs_restart, [TLS_CLIENT], "{source}");
            assert!(got.config == *old, "{source}");
        }
    }
}

#[test]
fn hot_and_restart_changes_at_once() {
    let dir = files();
    let old = full(dir.path(), "static");
    let new = edit(
        &old,
        &edits(&[
            ("listen.client", Some("\"127.0.0.1:50011\"")),
            ("limits.max_connections", Some("5")),
            ("timeouts.connect_ms", Some("1")),
            ("backends.0.url", Some("\"http://127.0.0.1:55154\"")),
            ("ownership.shards.0.owner", Some("\"dc3\"")),
            ("shard_count", Some("24")),
        ]),
    )
    .unwrap();
    let got = plan(&old, new.clone());
    assert_eq!(got.needs_restart, ["listen", "limits.max_connections"]);
    // Everything new but the listeners: limits.max_connections is reported and stored.
    let mut want = new;
    want.raw.listen = old.raw.listen.clone();
    assert!(got.config == want, "{:#?}", got.config.raw);
    assert_eq!(got.config.raw.limits.max_connections, 5);
    assert_eq!(got.config.shards.len(), 24);
    assert_eq!(got.config.shards[0].owner, 2);

    // A new ownership source keeps the whole section and the topology; the rest applies.
    let new = edit(
        &old,
        &edits(&[
            ("ownership.source", Some("\"etcd\"")),
            ("ownership.shards.0.owner", Some("\"dc3\"")),
            ("shard_count", Some("24")),
            ("timeouts.connect_ms", Some("1")),
        ]),
    )
    .unwrap();
    let got = plan(&old, new);
    assert_eq!(got.needs_restart, [OWNERSHIP]);
    let mut want = old.clone();
    want.raw.timeouts.connect_ms = 1;
    assert!(got.config == want, "{:#?}", got.config.raw);

    // With etcd: the client settings are kept, the rest of the section applies.
    let old = full(dir.path(), "etcd");
    let new = edit(
        &old,
        &edits(&[
            ("ownership.endpoints.0", Some("\"http://10.0.0.11:2379\"")),
            ("ownership.username", Some("\"other\"")),
            ("ownership.epoch_wait_ms", Some("700")),
        ]),
    )
    .unwrap();
    let got = plan(&old, new);
    assert_eq!(got.needs_restart, [ETCD_CLIENT]);
    let o = &got.config.raw.ownership;
    assert_eq!(o.endpoints, old.raw.ownership.endpoints);
    assert_eq!(
        (o.username.as_deref(), o.epoch_wait_ms),
        (Some("other"), 700)
    );
}

#[test]
fn every_restart_at_once_is_reported_in_order() {
    let dir = files();
    let old = full(dir.path(), "etcd");
    let mut all = peer_off();
    all.extend(edits(&[
        ("listen.client", Some("\"127.0.0.1:50011\"")),
        ("limits.max_connections", Some("5")),
        ("limits.max_header_bytes", Some("10000")),
        ("limits.h2_max_concurrent_streams", Some("5")),
        ("timeouts.request_head_ms", Some("1")),
        ("timeouts.shutdown_grace_ms", Some("1")),
        ("failover.max_hold_ms", Some("1")),
        ("replication.enabled", Some("true")),
        ("ownership.prefix", Some("\"/other/\"")),
        ("ownership.fence_after_ms", Some("2000")),
        ("shard_count", Some("24")),
        ("tls.client", None),
        ("tls.handshake_timeout_ms", Some("1")),
    ]));
    let got = plan(&old, edit(&old, &all).unwrap());
    assert_eq!(
        got.needs_restart,
        [
            "listen",
            "limits.max_connections",
            "limits.max_header_bytes",
            "limits.h2_max_concurrent_streams",
            "timeouts.request_head_ms",
            "timeouts.shutdown_grace_ms",
            "failover",
            "replication",
            ETCD_CLIENT,
            FENCE,
            TOPOLOGY,
            TLS_CLIENT,
            TLS_PEER,
            HANDSHAKE,
        ]
    );
}
