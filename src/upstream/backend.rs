//! The local Coopr servers of this DC: round-robin choice, skipping for a while
//! (`backend_cooldown_ms`) a server that refused a connection.

use super::health::TargetHealth;
use crate::classify::Api;
use crate::config::Config;
use http::Uri;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One Coopr server.
#[derive(Debug)]
pub struct Backend {
    pub url: Uri,
    pub tasks_url: Uri,
    /// Milliseconds since the pool's start until which this server is skipped (0 = healthy).
    down_until_ms: AtomicU64,
    /// Active and passive health (rise/fall).
    pub health: TargetHealth,
}

impl Backend {
    pub fn base(&self, api: Api) -> &Uri {
        match api {
            Api::External => &self.url,
            Api::Tasks => &self.tasks_url,
        }
    }
}

/// The round-robin pool.
#[derive(Debug)]
pub struct Backends {
    list: Vec<Backend>,
    next: AtomicUsize,
    cooldown: Duration,
    start: Instant,
}

impl Backends {
    pub fn from_config(cfg: &Config) -> Self {
        let list = cfg
            .backends
            .iter()
            .map(|b| Backend {
                url: b.url.clone(),
                tasks_url: b.tasks_url.clone(),
                down_until_ms: AtomicU64::new(0),
                health: TargetHealth::default(),
            })
            .collect();
        Backends {
            list,
            next: AtomicUsize::new(0),
            cooldown: cfg.raw.timeouts.backend_cooldown(),
            start: Instant::now(),
        }
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn get(&self, i: usize) -> Option<&Backend> {
        self.list.get(i)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Backend> {
        self.list.iter()
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Whether server `i` is in its cool-down or failed its health checks.
    pub fn is_down(&self, i: usize) -> bool {
        self.list.get(i).is_some_and(|b| {
            !b.health.is_up() || b.down_until_ms.load(Ordering::Relaxed) > self.now_ms()
        })
    }

    /// Whether any server passes its health checks.
    pub fn any_up(&self) -> bool {
        self.list.iter().any(|b| b.health.is_up())
    }

    /// The next server to try, round robin, skipping `tried` and servers in cool-down. When
    /// every untried server is cooling down, the one whose cool-down ends first is tried anyway:
    /// better a likely failure than a certain one.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let n = self.list.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = self.now_ms();
        let mut fallback: Option<(u64, usize)> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if tried.contains(&i) {
                continue;
            }
            let until = self.list[i].down_until_ms.load(Ordering::Relaxed);
            let healthy = self.list[i].health.is_up();
            if until <= now && healthy {
                return Some(i);
            }
            // A server failing health checks ranks after every cooling one.
            let until = if healthy { until } else { until.max(now) + 1 };
            if fallback.is_none_or(|(u, _)| until < u) {
                fallback = Some((until, i));
            }
        }
        fallback.map(|(_, i)| i)
    }

    /// Skips server `i` for the cool-down.
    pub fn mark_down(&self, i: usize) {
        if let Some(b) = self.list.get(i) {
            let until = self.now_ms() + self.cooldown.as_millis() as u64;
            b.down_until_ms.store(until.max(1), Ordering::Relaxed);
        }
    }

    /// Server `i` answered: it is healthy again.
    pub fn mark_up(&self, i: usize) {
        if let Some(b) = self.list.get(i)
            && b.down_until_ms.load(Ordering::Relaxed) != 0
        {
            b.down_until_ms.store(0, Ordering::Relaxed);
        }
    }
}
