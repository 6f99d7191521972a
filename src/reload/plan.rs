//! What a reload applies now and what waits for a restart, decided by one pure function:
//! [`plan`] takes the running config and a new, validated one and returns the config to apply
//! (the new one, with every change that needs a restart reverted to the running value) and the
//! keys that changed but need a restart.
//!
//! Every field of every config struct is named here: each struct is taken apart and put back
//! together without `..`, so a new field does not compile until it is classified. [`KEYS`] is
//! the same classification as a table of dotted keys; the tests check that it names every key of
//! a full config and that [`plan`] does what it says.

use crate::config::tls::{BackendTls, CertKey, PeerTls, ProvisionerTls};
use crate::config::{
    AdminConfig, BackendConfig, CatalogConfig, Config, CooprConfig, DcConfig, FailoverConfig,
    HealthConfig, Limits, Listen, LogConfig, OwnershipConfig, OwnershipSource, PinConfig,
    RawConfig, ReplicationConfig, ShardConfig, StandbyConfig, Timeouts, TlsConfig,
};

/// What a reload does with a new config.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What to apply now: the new config, with every restart-only change reverted to the
    /// running value.
    pub config: Config,
    /// The keys that changed but need a restart, as reported (`ReloadReport::needs_restart`).
    pub needs_restart: Vec<String>,
}

/// How a change of one key is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Applied now.
    Hot,
    /// Needs a restart: the running value stays in force, the change is reported under this
    /// name.
    Restart(&'static str),
    /// Read at start by what was built then (listeners, tasks, clients), so the change is
    /// reported under this name as needing a restart; the new value is stored in the running
    /// config all the same, where per-request readers use it (`timeouts.request_head_ms` bounds
    /// body inspection, `failover.max_hold_ms` a handoff's hold).
    Noted(&'static str),
    /// [`Class::Restart`] with the etcd source (the running one), hot with the static source.
    EtcdRestart(&'static str),
    /// [`Class::Noted`] with the etcd source (the running one), hot with the static source.
    EtcdNoted(&'static str),
}

use Class::{EtcdNoted, EtcdRestart, Hot, Noted, Restart};

const LISTEN: &str = "listen";
const OWNERSHIP: &str = "ownership.source/mode";
const ETCD_CLIENT: &str = "ownership.endpoints/prefix/credentials";
const FENCE: &str = "ownership.fence_after_ms";
const TOPOLOGY: &str = "shard_count/dcs (etcd source)";
const FAILOVER: &str = "failover";
const REPLICATION: &str = "replication";
const TLS_CLIENT: &str = "tls.client (on/off)";
const TLS_PEER: &str = "tls.peer (on/off)";
const TLS_PROVISIONER: &str = "tls.provisioner (on/off)";
const HANDSHAKE: &str = "tls.handshake_timeout_ms";

/// Every key of the file and how its change is applied. `*` stands for one map key or array
/// index. A section key (`tls.client`) is the section's presence.
///
/// Some restart-only changes keep more than their own key: a changed ownership source or mode
/// keeps the whole `[ownership]` section; a changed ownership source or mode, `tls.peer` on/off,
/// a changed `dc`, or (etcd source) a changed `shard_count`/`dcs` keeps the topology (see
/// [`keep_topology`]).
pub const KEYS: &[(&str, Class)] = &[
    // Refused outright by `Reloader::apply` before planning; kept, should a plan see one.
    ("dc", Restart("dc")),
    ("shard_count", EtcdRestart(TOPOLOGY)),
    ("rules", Hot),
    // The listeners are bound at start.
    ("listen.*", Restart(LISTEN)),
    ("backends.*.url", Hot),
    ("backends.*.tasks_url", Hot),
    ("dcs.*.peer_url", EtcdRestart(TOPOLOGY)),
    ("dcs.*.id_start", EtcdRestart(TOPOLOGY)),
    ("dcs.*.id_increment", EtcdRestart(TOPOLOGY)),
    ("timeouts.connect_ms", Hot),
    ("timeouts.response_ms", Hot),
    (
        "timeouts.request_head_ms",
        Noted("timeouts.request_head_ms"),
    ),
    ("timeouts.backend_cooldown_ms", Hot),
    (
        "timeouts.shutdown_grace_ms",
        Noted("timeouts.shutdown_grace_ms"),
    ),
    ("timeouts.upstream_idle_ms", Hot),
    ("timeouts.idle_park_ms", Hot),
    ("timeouts.body_idle_ms", Hot),
    ("limits.inspect_body_bytes", Hot),
    ("limits.max_connections", Noted("limits.max_connections")),
    ("limits.max_header_bytes", Noted("limits.max_header_bytes")),
    (
        "limits.h2_max_concurrent_streams",
        Noted("limits.h2_max_concurrent_streams"),
    ),
    ("limits.max_headers", Hot),
    // The upstream client is made anew with the runtime a reload swaps in.
    ("limits.peer_h2_streams", Hot),
    ("limits.max_uri_bytes", Hot),
    (
        "limits.upstream_per_connection",
        Noted("limits.upstream_per_connection"),
    ),
    ("ownership.mode", Restart(OWNERSHIP)),
    ("ownership.source", Restart(OWNERSHIP)),
    ("ownership.shards.*.shard", Hot),
    ("ownership.shards.*.owner", Hot),
    ("ownership.shards.*.replicas.*", Hot),
    ("ownership.pins.*.lo", Hot),
    ("ownership.pins.*.hi", Hot),
    ("ownership.pins.*.dc", Hot),
    ("ownership.endpoints.*", EtcdRestart(ETCD_CLIENT)),
    ("ownership.prefix", EtcdRestart(ETCD_CLIENT)),
    ("ownership.fence_after_ms", EtcdRestart(FENCE)),
    ("ownership.epoch_wait_ms", Hot),
    ("ownership.compact_every_ms", Hot),
    ("ownership.state_file", Hot),
    ("ownership.connect_timeout_ms", Hot),
    ("ownership.username", EtcdNoted(ETCD_CLIENT)),
    ("ownership.password", EtcdNoted(ETCD_CLIENT)),
    ("ownership.tls_ca_file", EtcdNoted(ETCD_CLIENT)),
    ("ownership.tls_cert_file", EtcdNoted(ETCD_CLIENT)),
    ("ownership.tls_key_file", EtcdNoted(ETCD_CLIENT)),
    ("log.format", Hot),
    ("log.access_log", Hot),
    ("log.access_log_health", Hot),
    ("health.interval_ms", Hot),
    ("health.timeout_ms", Hot),
    ("health.rise", Hot),
    ("health.fall", Hot),
    ("admin.token", Hot),
    ("admin.token_file", Hot),
    ("coopr.token_file", Hot),
    ("admin.open_reads", Hot),
    ("admin.drain_delay_ms", Hot),
    ("admin.watch_config_ms", Hot),
    ("standby.*.url", Hot),
    ("standby.*.tasks_url", Hot),
    // Read once at start (liveness, failover and handoff tasks; the replication store, senders
    // and tracker).
    ("failover.*", Noted(FAILOVER)),
    // Read before each sweep.
    ("replication.sweep_ms", Hot),
    ("replication.*", Noted(REPLICATION)),
    // Read per request (where a catalog write goes, whether it is delivered).
    ("catalog.home", Hot),
    ("tls.handshake_timeout_ms", Noted(HANDSHAKE)),
    // A listener was bound plain or TLS; the files of a section that stays on apply to the
    // next handshakes.
    ("tls.client", Restart(TLS_CLIENT)),
    ("tls.client.cert_file", Hot),
    ("tls.client.key_file", Hot),
    ("tls.peer", Restart(TLS_PEER)),
    ("tls.peer.ca_file", Hot),
    ("tls.peer.cert_file", Hot),
    ("tls.peer.key_file", Hot),
    ("tls.provisioner", Restart(TLS_PROVISIONER)),
    ("tls.provisioner.cert_file", Hot),
    ("tls.provisioner.key_file", Hot),
    ("tls.provisioner.client_ca_file", Hot),
    ("tls.backend", Hot),
    ("tls.backend.ca_file", Hot),
];

/// The restart-only changes found so far, in report order.
#[derive(Default)]
struct Restarts(Vec<String>);

impl Restarts {
    /// Reports `name` when `changed`.
    fn note(&mut self, name: &str, changed: bool) {
        if changed {
            self.0.push(name.to_string());
        }
    }

    /// Keeps `old` (and reports `name`) when `new` differs from it.
    fn keep<T: PartialEq + Clone>(&mut self, name: &str, old: &T, new: T) -> T {
        if *old == new {
            new
        } else {
            self.0.push(name.to_string());
            old.clone()
        }
    }
}

/// What to apply of `new` while `old` runs, and what needs a restart. Pure: no I/O, no clock.
#[expect(
    clippy::map_identity,
    reason = "list and map entries are taken apart and put back to name every field"
)]
pub fn plan(old: &Config, new: Config) -> Plan {
    let Config {
        raw,
        local,
        dcs,
        backends,
        shards,
        standby,
        standby_tasks,
    } = new;
    let RawConfig {
        dc,
        shard_count,
        rules,
        listen,
        backends: raw_backends,
        dcs: raw_dcs,
        timeouts,
        limits,
        ownership,
        log,
        health,
        admin,
        standby: raw_standby,
        failover,
        replication,
        tls,
        coopr,
        catalog,
    } = raw;
    let CatalogConfig { home: catalog_home } = catalog;
    let catalog = CatalogConfig { home: catalog_home };
    // The service credential is read from its file by every runtime a reload builds: hot.
    let CooprConfig { token_file } = coopr;
    let coopr = CooprConfig { token_file };
    let o = &old.raw;
    let mut restart = Restarts::default();
    // `dc` is refused before planning; should it change here, our place in the DCs stays too.
    let mut keep_topo = dc != o.dc;
    let dc = restart.keep("dc", &o.dc, dc);

    let Listen {
        client,
        peer,
        admin: admin_addr,
        provisioner,
        insecure_plaintext_peer,
        threads,
    } = listen;
    let listen = restart.keep(
        LISTEN,
        &o.listen,
        Listen {
            client,
            peer,
            admin: admin_addr,
            provisioner,
            insecure_plaintext_peer,
            threads,
        },
    );

    let Limits {
        inspect_body_bytes,
        max_connections,
        max_header_bytes,
        h2_max_concurrent_streams,
        max_headers,
        max_uri_bytes,
        upstream_per_connection,
        peer_h2_streams,
    } = limits;
    let ol = &o.limits;
    restart.note(
        "limits.max_connections",
        max_connections != ol.max_connections,
    );
    restart.note(
        "limits.max_header_bytes",
        max_header_bytes != ol.max_header_bytes,
    );
    restart.note(
        "limits.h2_max_concurrent_streams",
        h2_max_concurrent_streams != ol.h2_max_concurrent_streams,
    );
    // Read by the listeners when they start (each connection's bound).
    restart.note(
        "limits.upstream_per_connection",
        upstream_per_connection != ol.upstream_per_connection,
    );
    let limits = Limits {
        inspect_body_bytes,
        max_connections,
        max_header_bytes,
        h2_max_concurrent_streams,
        max_headers,
        max_uri_bytes,
        upstream_per_connection,
        peer_h2_streams,
    };

    let Timeouts {
        connect_ms,
        response_ms,
        request_head_ms,
        backend_cooldown_ms,
        shutdown_grace_ms,
        upstream_idle_ms,
        idle_park_ms,
        body_idle_ms,
    } = timeouts;
    let ot = &o.timeouts;
    restart.note(
        "timeouts.request_head_ms",
        request_head_ms != ot.request_head_ms,
    );
    restart.note(
        "timeouts.shutdown_grace_ms",
        shutdown_grace_ms != ot.shutdown_grace_ms,
    );
    let timeouts = Timeouts {
        connect_ms,
        response_ms,
        request_head_ms,
        backend_cooldown_ms,
        shutdown_grace_ms,
        upstream_idle_ms,
        idle_park_ms,
        body_idle_ms,
    };

    let FailoverConfig {
        mode: failover_mode,
        lease_ttl_ms,
        grace_ms,
        fence_margin_ms,
        min_interval_ms,
        max_hold_ms,
        buffer_max_ms,
        buffer_max_requests,
        buffer_max_bytes,
        failback,
        failback_after_ms,
    } = failover;
    let failover = FailoverConfig {
        mode: failover_mode,
        lease_ttl_ms,
        grace_ms,
        fence_margin_ms,
        min_interval_ms,
        max_hold_ms,
        buffer_max_ms,
        buffer_max_requests,
        buffer_max_bytes,
        failback,
        failback_after_ms,
    };
    restart.note(FAILOVER, failover != o.failover);

    let ReplicationConfig {
        enabled,
        path,
        outbox_max_records,
        batch_max_records,
        poll_min_ms,
        poll_max_ms,
        retry_min_ms,
        retry_max_ms,
        list_body_bytes,
        restart_hook,
        hook_max_attempts,
        retain_terminated_ms,
        batch_body_bytes,
        sweep_ms,
    } = replication;
    let replication = ReplicationConfig {
        sweep_ms,
        batch_body_bytes,
        enabled,
        path,
        outbox_max_records,
        batch_max_records,
        poll_min_ms,
        poll_max_ms,
        retry_min_ms,
        retry_max_ms,
        list_body_bytes,
        restart_hook,
        hook_max_attempts,
        retain_terminated_ms,
    };
    restart.note(
        REPLICATION,
        ReplicationConfig {
            sweep_ms: o.replication.sweep_ms,
            ..replication.clone()
        } != o.replication,
    );

    let OwnershipConfig {
        mode,
        source,
        shards: map,
        pins,
        endpoints,
        prefix,
        fence_after_ms,
        epoch_wait_ms,
        compact_every_ms,
        state_file,
        connect_timeout_ms,
        username,
        password,
        tls_ca_file,
        tls_cert_file,
        tls_key_file,
    } = ownership;
    let pins: Vec<PinConfig> = pins
        .into_iter()
        .map(|PinConfig { lo, hi, dc }| PinConfig { lo, hi, dc })
        .collect();
    let map = map
        .into_iter()
        .map(
            |ShardConfig {
                 shard,
                 owner,
                 replicas,
             }| ShardConfig {
                shard,
                owner,
                replicas,
            },
        )
        .collect();
    let oo = &o.ownership;
    let ownership = if source != oo.source || mode != oo.mode {
        // The whole section stays, and the kept shards index the old DC list.
        restart.note(OWNERSHIP, true);
        keep_topo = true;
        oo.clone()
    } else if source == OwnershipSource::Etcd {
        restart.note(
            ETCD_CLIENT,
            endpoints != oo.endpoints
                || prefix != oo.prefix
                || username != oo.username
                || password != oo.password
                || tls_ca_file != oo.tls_ca_file
                || tls_cert_file != oo.tls_cert_file
                || tls_key_file != oo.tls_key_file,
        );
        restart.note(FENCE, fence_after_ms != oo.fence_after_ms);
        // The live map (and the state file) index the DCs the router started with.
        let topology = shard_count != o.shard_count || dcs != old.dcs;
        restart.note(TOPOLOGY, topology);
        keep_topo |= topology;
        OwnershipConfig {
            mode,
            source,
            shards: map,
            pins,
            endpoints: oo.endpoints.clone(),
            prefix: oo.prefix.clone(),
            fence_after_ms: oo.fence_after_ms,
            epoch_wait_ms,
            compact_every_ms,
            state_file,
            connect_timeout_ms,
            username,
            password,
            tls_ca_file,
            tls_cert_file,
            tls_key_file,
        }
    } else {
        OwnershipConfig {
            mode,
            source,
            shards: map,
            pins,
            endpoints,
            prefix,
            fence_after_ms,
            epoch_wait_ms,
            compact_every_ms,
            state_file,
            connect_timeout_ms,
            username,
            password,
            tls_ca_file,
            tls_cert_file,
            tls_key_file,
        }
    };

    let TlsConfig {
        handshake_timeout_ms,
        client: tls_client,
        peer: tls_peer,
        backend: tls_backend,
        provisioner: tls_provisioner,
    } = tls;
    let ot = &o.tls;
    let tls_client = match (tls_client, &ot.client) {
        (
            Some(CertKey {
                cert_file,
                key_file,
            }),
            Some(_),
        ) => Some(CertKey {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        (_, kept) => {
            restart.note(TLS_CLIENT, true);
            kept.clone()
        }
    };
    let tls_peer = match (tls_peer, &ot.peer) {
        (
            Some(PeerTls {
                ca_file,
                cert_file,
                key_file,
            }),
            Some(_),
        ) => Some(PeerTls {
            ca_file,
            cert_file,
            key_file,
        }),
        (None, None) => None,
        (_, kept) => {
            restart.note(TLS_PEER, true);
            // Peer URLs' schemes follow [tls.peer]: keep the DCs it was validated with.
            keep_topo = true;
            kept.clone()
        }
    };
    // Like the client port: files change at the next handshake, on/off needs a restart.
    let tls_provisioner = match (tls_provisioner, &ot.provisioner) {
        (
            Some(ProvisionerTls {
                cert_file,
                key_file,
                client_ca_file,
            }),
            Some(_),
        ) => Some(ProvisionerTls {
            cert_file,
            key_file,
            client_ca_file,
        }),
        (None, None) => None,
        (_, kept) => {
            restart.note(TLS_PROVISIONER, true);
            kept.clone()
        }
    };
    restart.note(HANDSHAKE, handshake_timeout_ms != ot.handshake_timeout_ms);
    let tls = TlsConfig {
        handshake_timeout_ms,
        client: tls_client,
        peer: tls_peer,
        backend: tls_backend.map(|BackendTls { ca_file }| BackendTls { ca_file }),
        provisioner: tls_provisioner,
    };

    let mut config = Config {
        raw: RawConfig {
            dc,
            shard_count,
            rules,
            listen,
            backends: raw_backends
                .into_iter()
                .map(|BackendConfig { url, tasks_url }| BackendConfig { url, tasks_url })
                .collect(),
            dcs: raw_dcs
                .into_iter()
                .map(
                    |(
                        name,
                        DcConfig {
                            peer_url,
                            id_start,
                            id_increment,
                        },
                    )| {
                        (
                            name,
                            DcConfig {
                                peer_url,
                                id_start,
                                id_increment,
                            },
                        )
                    },
                )
                .collect(),
            timeouts,
            limits,
            ownership,
            log: {
                let LogConfig {
                    format,
                    access_log,
                    access_log_health,
                } = log;
                LogConfig {
                    format,
                    access_log,
                    access_log_health,
                }
            },
            health: {
                let HealthConfig {
                    interval_ms,
                    timeout_ms,
                    rise,
                    fall,
                } = health;
                HealthConfig {
                    interval_ms,
                    timeout_ms,
                    rise,
                    fall,
                }
            },
            admin: {
                let AdminConfig {
                    token,
                    token_file,
                    open_reads,
                    drain_delay_ms,
                    watch_config_ms,
                } = admin;
                AdminConfig {
                    token,
                    token_file,
                    open_reads,
                    drain_delay_ms,
                    watch_config_ms,
                }
            },
            standby: raw_standby
                .into_iter()
                .map(|(home, StandbyConfig { url, tasks_url })| {
                    (home, StandbyConfig { url, tasks_url })
                })
                .collect(),
            failover,
            replication,
            tls,
            coopr,
            catalog,
        },
        local,
        dcs,
        backends,
        shards,
        standby,
        standby_tasks,
    };
    if keep_topo {
        keep_topology(old, &mut config);
    }
    Plan {
        config,
        needs_restart: restart.0,
    }
}

/// Keeps the running topology: the DC list (as written and resolved), `shard_count`, this DC's
/// place in the list, and what is indexed by it (the static map, the standby servers).
fn keep_topology(old: &Config, new: &mut Config) {
    new.raw.shard_count = old.raw.shard_count;
    new.raw.dcs = old.raw.dcs.clone();
    new.dcs = old.dcs.clone();
    new.local = old.local;
    new.shards = old.shards.clone();
    new.standby = old.standby.clone();
    new.standby_tasks = old.standby_tasks.clone();
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "plan_before_tests.rs"]
mod before_tests;
