//! The process-wide recorder (installed once, with its upkeep thread), the cached handles of the
//! series the request path records (per DC, per label value), and the text `/metrics` serves.

use super::labels::{CLASSES, ROUTES, SLOTS};
use super::names::{
    DURATION_BUCKETS, FENCED, OPEN_CONNECTIONS, OWNERSHIP_FLIPS, PARKED_CONNECTIONS, RELOADS,
    REPL_LAG, REQUEST_DURATION, UPSTREAM_ERRORS, describe,
};
use ::metrics::{Counter, Gauge, Histogram};
use arc_swap::ArcSwap;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub(super) const NEVER: u64 = u64::MAX;

/// The request counters of one DC label, created on first use.
pub(super) struct DcSlots {
    pub(super) dc: Box<str>,
    pub(super) counters: [OnceLock<Counter>; SLOTS],
}

/// Handles for a small set of `&'static str` label values, created on first use.
pub(super) struct ByLabel<T> {
    name: &'static str,
    label: &'static str,
    list: ArcSwap<Vec<(&'static str, T)>>,
}

impl<T: Clone> ByLabel<T> {
    pub(super) fn new(name: &'static str, label: &'static str) -> Self {
        ByLabel {
            name,
            label,
            list: ArcSwap::from_pointee(Vec::new()),
        }
    }

    pub(super) fn get(
        &self,
        value: &'static str,
        make: fn(&'static str, &'static str, &'static str) -> T,
    ) -> T {
        if let Some((_, h)) = self.list.load().iter().find(|(v, _)| *v == value) {
            return h.clone();
        }
        let h = make(self.name, self.label, value);
        self.list.rcu(|list| {
            let mut list = (**list).clone();
            if !list.iter().any(|(v, _)| *v == value) {
                list.push((value, h.clone()));
            }
            list
        });
        h
    }
}

pub(super) struct State {
    pub(super) handle: Option<PrometheusHandle>,
    pub(super) epoch: Instant,
    /// Milliseconds since `epoch` of the last map publish, or `NEVER`.
    pub(super) published_ms: AtomicU64,
    /// `(revision, age)`, registered at the first publish (no map, no series).
    pub(super) map: OnceLock<(Gauge, Gauge)>,
    pub(super) flips: Counter,
    pub(super) fenced: Gauge,
    /// `[failed, ok]`
    pub(super) reloads: [Counter; 2],
    pub(super) durations: [OnceLock<Histogram>; ROUTES.len() * CLASSES.len()],
    pub(super) dcs: ArcSwap<Vec<Arc<DcSlots>>>,
    pub(super) errors: ByLabel<Counter>,
    pub(super) connections: ByLabel<Gauge>,
    pub(super) parked: ByLabel<Gauge>,
    /// The serving threads running now: their pool lane, gauge and runtime (read at scrape).
    pub(super) serving: std::sync::Mutex<Vec<(u32, Gauge, tokio::runtime::Handle)>>,
}

static STATE: OnceLock<State> = OnceLock::new();

pub(super) fn state() -> &'static State {
    STATE.get_or_init(State::init)
}

impl State {
    fn init() -> State {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(REPL_LAG.into()), &DURATION_BUCKETS)
            })
            .and_then(PrometheusBuilder::install_recorder);
        let handle = match handle {
            Ok(h) => {
                // Histogram samples are drained into buckets at render time or here: without
                // scrapes they must not pile up.
                let upkeep = h.clone();
                let spawned = std::thread::Builder::new()
                    .name("metrics-upkeep".into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
                }
                Some(h)
            }
            Err(e) => {
                // Another recorder is installed (an embedding program's): record into it.
                tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                None
            }
        };
        describe();
        let s = State {
            handle,
            epoch: Instant::now(),
            published_ms: AtomicU64::new(NEVER),
            map: OnceLock::new(),
            flips: ::metrics::counter!(OWNERSHIP_FLIPS),
            fenced: ::metrics::gauge!(FENCED),
            reloads: [
                ::metrics::counter!(RELOADS, "result" => "failed"),
                ::metrics::counter!(RELOADS, "result" => "ok"),
            ],
            durations: std::array::from_fn(|_| OnceLock::new()),
            dcs: ArcSwap::from_pointee(Vec::new()),
            errors: ByLabel::new(UPSTREAM_ERRORS, "kind"),
            connections: ByLabel::new(OPEN_CONNECTIONS, "listener"),
            parked: ByLabel::new(PARKED_CONNECTIONS, "listener"),
            serving: std::sync::Mutex::new(Vec::new()),
        };
        // Series without dynamic labels exist from the start, at zero.
        s.flips.increment(0);
        s.fenced.set(0.0);
        for r in &s.reloads {
            r.increment(0);
        }
        s
    }

    /// Runs `f` on the request counters of `dc`, adding them on first use.
    pub(super) fn with_dc(&self, dc: &str, f: impl FnOnce(&DcSlots)) {
        if let Some(slots) = self.dcs.load().iter().find(|s| &*s.dc == dc) {
            return f(slots);
        }
        let new = Arc::new(DcSlots {
            dc: dc.into(),
            counters: std::array::from_fn(|_| OnceLock::new()),
        });
        self.dcs.rcu(|list| {
            let mut list = (**list).clone();
            if !list.iter().any(|s| &*s.dc == dc) {
                list.push(new.clone());
            }
            list
        });
        if let Some(slots) = self.dcs.load().iter().find(|s| &*s.dc == dc) {
            f(slots);
        }
    }
}

/// Installs the process-wide recorder. Idempotent and cheap after the first call; every other
/// function here calls it too.
pub fn install() {
    state();
}

/// The Prometheus text exposition of every metric recorded so far.
pub fn render() -> String {
    let s = state();
    for (_, gauge, rt) in s
        .serving
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        gauge.set(rt.metrics().num_alive_tasks() as f64);
    }
    let published = s.published_ms.load(Ordering::Acquire);
    if published != NEVER
        && let Some((_, age)) = s.map.get()
    {
        let now = s.epoch.elapsed().as_millis() as u64;
        age.set(now.saturating_sub(published) as f64 / 1000.0);
    }
    s.handle
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}
