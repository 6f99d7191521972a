//! The health of an upstream (a local Coopr server or another DC's router): the pure rise/fall
//! step and the state each target keeps, read by the request path with one atomic load. The
//! prober that feeds it lives in `crate::health`; refused connections of real requests count as
//! failures too (passive checks).

use crate::config::HealthConfig;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// A target's health: up with a count of consecutive failures, or down with a count of
/// consecutive successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Up { fails: u32 },
    Down { oks: u32 },
}

/// Pure: the state after one observation.
pub fn step(s: HealthState, ok: bool, rise: u32, fall: u32) -> HealthState {
    match (s, ok) {
        (HealthState::Up { .. }, true) => HealthState::Up { fails: 0 },
        (HealthState::Up { fails }, false) if fails + 1 >= fall => HealthState::Down { oks: 0 },
        (HealthState::Up { fails }, false) => HealthState::Up { fails: fails + 1 },
        (HealthState::Down { oks }, true) if oks + 1 >= rise => HealthState::Up { fails: 0 },
        (HealthState::Down { oks }, true) => HealthState::Down { oks: oks + 1 },
        (HealthState::Down { .. }, false) => HealthState::Down { oks: 0 },
    }
}

/// One target's health. Starts up.
#[derive(Debug)]
pub struct TargetHealth {
    up: AtomicBool,
    state: Mutex<HealthState>,
}

impl Default for TargetHealth {
    fn default() -> Self {
        TargetHealth {
            up: AtomicBool::new(true),
            state: Mutex::new(HealthState::Up { fails: 0 }),
        }
    }
}

impl TargetHealth {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Takes over another record's state (a reload keeps what checks learned).
    pub fn copy_from(&self, other: &TargetHealth) {
        let s = *other.state.lock().unwrap_or_else(|e| e.into_inner());
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
        self.up.store(other.is_up(), Ordering::Relaxed);
    }

    /// Records an observation; returns `Some(up)` when the target changed state.
    pub fn observe(&self, ok: bool, cfg: &HealthConfig) -> Option<bool> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let next = step(*s, ok, cfg.rise, cfg.fall);
        *s = next;
        let up = matches!(next, HealthState::Up { .. });
        (self.up.swap(up, Ordering::Relaxed) != up).then_some(up)
    }
}

/// Per-DC health of the other DCs' routers (index = DC index; this DC's entry is unused).
#[derive(Debug, Default)]
pub struct PeerHealth(pub Vec<TargetHealth>);

impl PeerHealth {
    pub fn new(n: usize) -> Self {
        PeerHealth((0..n).map(|_| TargetHealth::default()).collect())
    }
    pub fn is_up(&self, dc: usize) -> bool {
        self.0.get(dc).is_some_and(TargetHealth::is_up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthState::*;

    #[test]
    fn rise_and_fall() {
        let (rise, fall) = (2, 3);
        let mut s = Up { fails: 0 };
        let trace: Vec<HealthState> = [false, false, false, true, false, true, true, false]
            .iter()
            .map(|&ok| {
                s = step(s, ok, rise, fall);
                s
            })
            .collect();
        assert_eq!(
            trace,
            vec![
                Up { fails: 1 },
                Up { fails: 2 },
                Down { oks: 0 },
                Down { oks: 1 },
                Down { oks: 0 },
                Down { oks: 1 },
                Up { fails: 0 },
                Up { fails: 1 }
            ]
        );
    }

    #[test]
    fn observe_reports_transitions_once() {
        let h = TargetHealth::default();
        let cfg = HealthConfig {
            interval_ms: 10,
            timeout_ms: 10,
            rise: 1,
            fall: 2,
        };
        assert_eq!(h.observe(false, &cfg), None);
        assert_eq!(h.observe(false, &cfg), Some(false));
        assert!(!h.is_up());
        assert_eq!(h.observe(false, &cfg), None);
        assert_eq!(h.observe(true, &cfg), Some(true));
    }
}
