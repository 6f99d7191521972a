//! Hot reload of the config file: on SIGHUP, on `POST /admin/reload`, and when the file (or a TLS
//! certificate, key or CA file it names) changes
//! (polled; an editor's atomic rename is a change; debounced until the file is stable). Parse and
//! validate first; on success swap the runtime atomically (in-flight requests finish on the
//! config they started with) and, for the static source, publish the new map; on failure keep the
//! running config, log the error with its key and line, count it, and expose it.

use crate::config::{self, Config, OwnershipSource};
use crate::routing::{Publisher, RoutingTable};
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What a reload did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadReport {
    pub applied: bool,
    /// Settings that changed but only take effect after a restart.
    pub needs_restart: Vec<String>,
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Status {
    ok: u64,
    failed: u64,
    last_error: Option<String>,
    needs_restart: Vec<String>,
}

/// The one place a config change is applied. In static mode it is also the one writer of the
/// routing snapshot.
pub struct Reloader {
    path: Option<PathBuf>,
    runtime: Arc<ArcSwap<Runtime>>,
    publisher: Option<Publisher>,
    status: Mutex<Status>,
    /// Serialises reloads (SIGHUP, admin and the file watch may race).
    lock: tokio::sync::Mutex<()>,
}

impl Reloader {
    pub fn new(
        path: Option<PathBuf>,
        runtime: Arc<ArcSwap<Runtime>>,
        publisher: Option<Publisher>,
    ) -> Self {
        Reloader {
            path,
            runtime,
            publisher,
            status: Mutex::new(Status::default()),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The reload counters and the last error, for `/admin/routes`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::to_value(&*self.status.lock().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_default()
    }

    /// Reads the file again and applies it.
    pub async fn reload(&self) -> ReloadReport {
        let _serial = self.lock.lock().await;
        let Some(path) = &self.path else {
            return self.failed("this router was not started from a config file".into());
        };
        match config::load(path) {
            Ok(cfg) => self.apply(cfg),
            Err(e) => self.failed(format!("{}: {e}", path.display())),
        }
    }

    fn failed(&self, error: String) -> ReloadReport {
        tracing::error!(%error, "config reload failed; the running config stays in force");
        count_reload(false);
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.failed += 1;
        s.last_error = Some(error.clone());
        ReloadReport {
            applied: false,
            needs_restart: vec![],
            error: Some(error),
        }
    }

    /// Applies a validated config.
    pub fn apply(&self, mut cfg: Config) -> ReloadReport {
        let old = self.runtime.load_full().config.clone();
        if cfg.raw.dc != old.raw.dc {
            return self.failed(format!(
                "dc changed from {:?} to {:?}: that needs a restart",
                old.raw.dc, cfg.raw.dc
            ));
        }
        let mut restart = Vec::new();
        if cfg.raw.listen != old.raw.listen {
            restart.push("listen".to_string());
            cfg.raw.listen = old.raw.listen.clone();
        }
        // Read once per connection or at start: applied to new connections only after a restart.
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
        if cfg.raw.replication != old.raw.replication {
            // Read once at start (store, senders, tracker settings).
            restart.push("replication".to_string());
        }
        let (o, n) = (&old.raw.ownership, &cfg.raw.ownership);
        if o.source != n.source || o.mode != n.mode {
            restart.push("ownership.source/mode".to_string());
            cfg.raw.ownership = o.clone();
            // The kept shards index the old DC list: keep it (and our place in it) too.
            cfg.shards = old.shards.clone();
            cfg.raw.dcs = old.raw.dcs.clone();
            cfg.raw.shard_count = old.raw.shard_count;
            cfg.dcs = old.dcs.clone();
            cfg.local = old.local;
            cfg.standby = old.standby.clone();
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
            }
        }
        crate::tls::server::keep_listener_modes(&old, &mut cfg, &mut restart);
        let tls = match crate::tls::Material::load(&cfg) {
            Ok(t) => Arc::new(t),
            Err(e) => return self.failed(format!("TLS: {e}")),
        };
        let cfg = Arc::new(cfg);
        if cfg.raw.ownership.source == OwnershipSource::Static
            && let Some(p) = &self.publisher
        {
            p.publish(RoutingTable::from_config(&cfg));
            crate::metrics::map_published(0);
        }
        let old_rt = self.runtime.load_full();
        let new_rt = Runtime::new(cfg, tls);
        new_rt.inherit_health(&old_rt);
        self.runtime.store(Arc::new(new_rt));
        count_reload(true);
        if restart.is_empty() {
            tracing::info!("config reloaded");
        } else {
            tracing::warn!(needs_restart = ?restart, "config reloaded; some changes need a restart");
        }
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.ok += 1;
        s.last_error = None;
        s.needs_restart = restart.clone();
        ReloadReport {
            applied: true,
            needs_restart: restart,
            error: None,
        }
    }

    /// Polls the file every `admin.watch_config_ms` and reloads when it changed and then stayed
    /// the same for one more poll (debounce).
    pub async fn watch_file(self: Arc<Self>, shutdown: Shutdown) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let stamp = |p: &PathBuf| -> Option<(SystemTime, u64, u64)> {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len(), m.ino()))
        };
        // The config file and the TLS files it names: a renewed certificate reloads too.
        let stamps = |rt: &Runtime| -> Vec<Option<(SystemTime, u64, u64)>> {
            std::iter::once(path.clone())
                .chain(crate::tls::files(&rt.config).into_iter().map(PathBuf::from))
                .map(|p| stamp(&p))
                .collect()
        };
        let mut seen = stamps(&self.runtime.load());
        let mut pending: Option<Vec<Option<(SystemTime, u64, u64)>>> = None;
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            let every = self.runtime.load().config.raw.admin.watch_config_ms;
            if every == 0 {
                return;
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_millis(every)) => {}
            }
            let now = stamps(&self.runtime.load());
            match pending.take() {
                Some(prev) if prev == now => {
                    tracing::info!(path = %path.display(), "config or TLS file changed; reloading");
                    self.reload().await;
                    // The new config may name other TLS files: watch those from here on.
                    seen = stamps(&self.runtime.load());
                }
                _ if now != seen => pending = Some(now),
                _ => {}
            }
        }
    }

    /// Reloads on every SIGHUP.
    pub async fn on_sighup(self: Arc<Self>, shutdown: Shutdown) {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading the config");
                    self.reload().await;
                }
            }
        }
    }
}

/// Counts a reload in the metrics.
fn count_reload(ok: bool) {
    crate::metrics::reload(ok);
}
