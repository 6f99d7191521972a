//! Tests of `reload/plan.rs` against the reload as it was written before the plan: the old
//! decision code is kept here verbatim (`before`) and must agree with `plan` on every single
//! change and every valid pair of changes.
//!
//! Test code only: `reload/plan.rs` includes this file under `#[cfg(test)]`, so its unwraps never
//! run on a request, etcd or replication path.

use super::tests::{cases, edit, edits, files, full, peer_off};
use super::*;

/// The reload's decision as it was written before the plan (`Reloader::apply` and
/// `tls::server::keep_listener_modes`), kept to check that the plan decides the same.
fn before(old: &Config, mut cfg: Config) -> (Config, Vec<String>) {
    let mut restart = Vec::new();
    if cfg.raw.listen != old.raw.listen {
        restart.push("listen".to_string());
        cfg.raw.listen = old.raw.listen.clone();
    }
    let (ol, nl, ot, nt) = (
        &old.raw.limits,
        &cfg.raw.limits,
        &old.raw.timeouts,
        &cfg.raw.timeouts,
    );
    for (name, changed) in [
        (
            "limits.max_connections",
            ol.max_connections != nl.max_connections,
        ),
        (
            "limits.max_header_bytes",
            ol.max_header_bytes != nl.max_header_bytes,
        ),
        (
            "limits.h2_max_concurrent_streams",
            ol.h2_max_concurrent_streams != nl.h2_max_concurrent_streams,
        ),
        // Added after the plan replaced this code.
        (
            "limits.upstream_per_connection",
            ol.upstream_per_connection != nl.upstream_per_connection,
        ),
        (
            "timeouts.request_head_ms",
            ot.request_head_ms != nt.request_head_ms,
        ),
        (
            "timeouts.shutdown_grace_ms",
            ot.shutdown_grace_ms != nt.shutdown_grace_ms,
        ),
    ] {
        if changed {
            restart.push(name.to_string());
        }
    }
    if cfg.raw.failover != old.raw.failover {
        restart.push("failover".to_string());
    }
    // Added after the plan replaced this code: `replication.sweep_ms` is hot.
    let replication_but_sweep = ReplicationConfig {
        sweep_ms: old.raw.replication.sweep_ms,
        ..cfg.raw.replication.clone()
    };
    if replication_but_sweep != old.raw.replication {
        restart.push("replication".to_string());
    }
    let (o, n) = (&old.raw.ownership, &cfg.raw.ownership);
    if o.source != n.source || o.mode != n.mode {
        restart.push("ownership.source/mode".to_string());
        cfg.raw.ownership = o.clone();
        cfg.shards = old.shards.clone();
        cfg.raw.dcs = old.raw.dcs.clone();
        cfg.raw.shard_count = old.raw.shard_count;
        cfg.dcs = old.dcs.clone();
        cfg.local = old.local;
        cfg.standby = old.standby.clone();
        cfg.standby_tasks = old.standby_tasks.clone();
    } else if o.source == OwnershipSource::Etcd {
        let mut keep = n.clone();
        for (name, changed) in [
            (
                "ownership.endpoints/prefix/credentials",
                o.endpoints != n.endpoints
                    || o.prefix != n.prefix
                    || o.username != n.username
                    || o.password != n.password
                    || o.tls_ca_file != n.tls_ca_file
                    || o.tls_cert_file != n.tls_cert_file
                    || o.tls_key_file != n.tls_key_file,
            ),
            (
                "ownership.fence_after_ms",
                o.fence_after_ms != n.fence_after_ms,
            ),
            (
                "shard_count/dcs (etcd source)",
                cfg.raw.shard_count != old.raw.shard_count || cfg.dcs != old.dcs,
            ),
        ] {
            if changed {
                restart.push(name.to_string());
            }
        }
        keep.endpoints = o.endpoints.clone();
        keep.prefix = o.prefix.clone();
        keep.fence_after_ms = o.fence_after_ms;
        cfg.raw.ownership = keep;
        if cfg.raw.shard_count != old.raw.shard_count || cfg.dcs != old.dcs {
            cfg.raw.shard_count = old.raw.shard_count;
            cfg.raw.dcs = old.raw.dcs.clone();
            cfg.dcs = old.dcs.clone();
            cfg.shards = old.shards.clone();
            cfg.local = old.local;
            cfg.standby = old.standby.clone();
            cfg.standby_tasks = old.standby_tasks.clone();
        }
    }
    let (o, n) = (&old.raw.tls, &mut cfg.raw.tls);
    if o.client.is_some() != n.client.is_some() {
        restart.push("tls.client (on/off)".to_string());
        n.client = o.client.clone();
    }
    if o.peer.is_some() != n.peer.is_some() {
        restart.push("tls.peer (on/off)".to_string());
        n.peer = o.peer.clone();
        cfg.raw.dcs = old.raw.dcs.clone();
        cfg.raw.shard_count = old.raw.shard_count;
        cfg.dcs = old.dcs.clone();
        cfg.shards = old.shards.clone();
        cfg.local = old.local;
        cfg.standby = old.standby.clone();
        cfg.standby_tasks = old.standby_tasks.clone();
    }
    // Added after the plan replaced this code: the provisioner port's TLS, like the client's.
    if o.provisioner.is_some() != n.provisioner.is_some() {
        restart.push("tls.provisioner (on/off)".to_string());
        n.provisioner = o.provisioner.clone();
    }
    if o.handshake_timeout_ms != n.handshake_timeout_ms {
        restart.push("tls.handshake_timeout_ms".to_string());
    }
    (cfg, restart)
}

#[test]
fn the_plan_decides_what_the_reload_decided_before_for_every_change_and_pair() {
    let dir = files();
    let mut checked = 0;
    for source in ["static", "etcd"] {
        let base = full(dir.path(), source);
        let mut cases = cases(dir.path(), source);
        cases.push(peer_off());
        // Each running config: the full one, and the full one without TLS on the listeners.
        let bare = edit(
            &base,
            &[peer_off(), edits(&[("tls.client", None)])].concat(),
        )
        .unwrap();
        for old in [&base, &bare] {
            for (i, a) in cases.iter().enumerate() {
                for b in &cases[i..] {
                    let mut both = a.clone();
                    if a != b {
                        both.extend(b.iter().cloned());
                    }
                    // Changes that cannot go together (or do not apply) are skipped.
                    let Ok(new) = edit(old, &both) else { continue };
                    if new.raw.dc != old.raw.dc {
                        continue; // refused before planning
                    }
                    let got = plan(old, new.clone());
                    let (config, needs_restart) = before(old, new);
                    assert_eq!(got.needs_restart, needs_restart, "{source}: {both:?}");
                    assert!(got.config == config, "{source}: {both:?}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 4000, "{checked} pairs checked");
}
