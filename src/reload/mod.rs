//! Hot reload of the config file: on SIGHUP, on `POST /admin/reload`, and when the file (or a TLS
//! certificate, key or CA file it names) changes
//! (polled; an editor's atomic rename is a change; debounced until the file is stable). Parse and
//! validate first; then [`plan`] (pure, in `plan.rs`) decides what applies now and what needs a
//! restart; on success swap the runtime atomically (in-flight requests finish on the
//! config they started with) and, for the static source, publish the new map; on failure keep the
//! running config, log the error with its key and line, count it, and expose it.

mod plan;

pub use plan::{Class, KEYS, Plan, plan};

use crate::config::{self, Config, OwnershipSource};
use crate::ids::ClusterId;
use crate::routing::{Pin, Pins, Publisher, RoutingTable};
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
    /// Static source: pins this router added at run time (misplaced creates), kept across
    /// reloads on top of the config's `[[ownership.pins]]`. Its lock also orders publishes.
    runtime_pins: Mutex<Vec<Pin>>,
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
            runtime_pins: Mutex::new(Vec::new()),
        }
    }

    /// Static source: pins `id` to DC `dc` in the published snapshot (a cluster this DC's Coopr
    /// created outside its home shards) until the router stops. Returns whether it was
    /// published (there is a static map to publish, and the id is not pinned already).
    pub fn pin_here(&self, id: ClusterId, dc: &str) -> bool {
        let Some(p) = &self.publisher else {
            return false;
        };
        let mut extra = self.runtime_pins.lock().unwrap_or_else(|e| e.into_inner());
        let cfg = self.runtime.load().config.clone();
        let Some(dc) = cfg.dcs.iter().position(|d| d.name == dc) else {
            return false;
        };
        if RoutingTable::from_config(&cfg)
            .with_pins(merged(&cfg, &extra))
            .pin_of(id)
            .is_some()
        {
            return false;
        }
        extra.push(Pin {
            lo: id.get(),
            hi: id.get(),
            dc,
            epoch: 0,
        });
        p.publish(RoutingTable::from_config(&cfg).with_pins(merged(&cfg, &extra)));
        true
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

    /// Applies a validated config: what [`plan`] keeps of it, in one swap of the runtime.
    pub fn apply(&self, cfg: Config) -> ReloadReport {
        let old = self.runtime.load_full().config.clone();
        if cfg.raw.dc != old.raw.dc {
            return self.failed(format!(
                "dc changed from {:?} to {:?}: that needs a restart",
                old.raw.dc, cfg.raw.dc
            ));
        }
        let Plan {
            config: cfg,
            needs_restart: restart,
        } = plan(&old, cfg);
        let tls = match crate::tls::Material::load(&cfg) {
            Ok(t) => Arc::new(t),
            Err(e) => return self.failed(format!("TLS: {e}")),
        };
        let cfg = Arc::new(cfg);
        let extra = self.runtime_pins.lock().unwrap_or_else(|e| e.into_inner());
        if cfg.raw.ownership.source == OwnershipSource::Static
            && let Some(p) = &self.publisher
        {
            p.publish(RoutingTable::from_config(&cfg).with_pins(merged(&cfg, &extra)));
            crate::metrics::map_published(0);
        }
        let old_rt = self.runtime.load_full();
        let new_rt = Runtime::new(cfg, tls);
        new_rt.inherit_health(&old_rt);
        self.runtime.store(Arc::new(new_rt));
        drop(extra);
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
                .chain(rt.config.raw.coopr.token_file.iter().map(PathBuf::from))
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

/// The config's pins plus the run-time ones that overlap none of them.
fn merged(cfg: &Config, extra: &[Pin]) -> Pins {
    let base = crate::routing::static_pins(cfg);
    let mut all: Vec<Pin> = base.iter().copied().collect();
    all.extend(extra.iter().filter(|p| base.find(p.lo).is_none()));
    Pins::new(all)
}

/// Counts a reload in the metrics.
fn count_reload(ok: bool) {
    crate::metrics::reload(ok);
}
