//! The failover decision as a pure state machine: `Controller::step(event, now) -> actions`. No
//! I/O and no clock: time comes in with each event, so every rule is tested by tables and by
//! seeded random event sequences with an invariant check after every step
//! (tests/failover_step.rs; tests/failover.rs runs the driver against a real etcd).
//!
//! A shard owned by DC X moves when X is dead: this DC's own probes of X fail, and either its
//! `alive/X` key has been absent for at least `grace`, or every `members/X/` key (each router's
//! heartbeat) has stayed unchanged for the heartbeat window (lease TTL + grace: every router of
//! X has fenced by then, even if etcd still keeps its lease). It moves to its first replica whose
//! `alive/` key is present, at most once per `min_interval`, and only in automatic mode. The move
//! itself is a compare-and-swap in etcd (epoch unchanged, and `alive/X` still absent with no
//! member left, or no member key written since the revision seen), so many controllers may
//! propose it and exactly one wins.

/// Tuning, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    pub automatic: bool,
    pub grace_ms: u64,
    pub min_interval_ms: u64,
    /// How long a DC's member keys must stay unchanged before it counts as dead whatever its
    /// leases (the heartbeat window); 0: never.
    pub stale_after_ms: u64,
}

/// One shard as the published map has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardView {
    pub owner: usize,
    pub replicas: Vec<usize>,
    pub epoch: u64,
}

/// What the controller learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `alive/{dc}` appeared or disappeared.
    Alive { dc: usize, present: bool },
    /// The newest revision among `members/{dc}/` keys (each router's heartbeat), read
    /// linearizably; `None` when there is none. The time that comes with it must be taken after
    /// the read answered.
    Members { dc: usize, rev: Option<u64> },
    /// This DC's probe of `dc`'s router and Coopr server.
    Probe { dc: usize, ok: bool },
    /// A new map was published.
    Map(Vec<ShardView>),
    /// A proposed move was decided by etcd (won or lost the compare-and-swap).
    MoveDone { shard: usize, won: bool },
    /// The proposed move's transaction got no answer (etcd unreachable through the member the
    /// client used, a timeout): nothing is known to have happened, so the shard's min_interval
    /// does not start; it is proposed again after [`RETRY_MS`].
    MoveFailed { shard: usize },
    /// Time passed.
    Tick,
}

/// What the controller asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Move `shard` from `from` to `to` if its epoch is still `epoch` and, with `members`
    /// `None`, `alive/from` is absent and no member of `from` is left; with `Some(rev)`, no
    /// member key of `from` was written after `rev` (the keys are then deleted with the move).
    Move {
        shard: usize,
        from: usize,
        to: usize,
        epoch: u64,
        members: Option<u64>,
    },
}

/// The controller's state.
#[derive(Debug, Clone)]
pub struct Controller {
    params: Params,
    alive: Vec<bool>,
    absent_since: Vec<Option<u64>>,
    probe_ok: Vec<bool>,
    /// Per DC: the newest member-key revision seen and since when (this controller's clock).
    members: Vec<Option<(u64, u64)>>,
    shards: Vec<ShardView>,
    last_move: Vec<Option<u64>>,
    /// `last_move` before the proposal in flight, restored when it fails.
    before_proposal: Vec<Option<u64>>,
    /// No proposal for the shard before this time (after a failed one).
    not_before: Vec<u64>,
    in_flight: Vec<bool>,
}

/// How long after a failed move transaction the move is proposed again.
pub const RETRY_MS: u64 = 500;

impl Controller {
    /// Starts with every DC presumed alive and probing fine (nothing moves until evidence).
    pub fn new(params: Params, dcs: usize, shards: Vec<ShardView>) -> Self {
        let n = shards.len();
        Controller {
            params,
            alive: vec![true; dcs],
            absent_since: vec![None; dcs],
            probe_ok: vec![true; dcs],
            members: vec![None; dcs],
            shards,
            last_move: vec![None; n],
            before_proposal: vec![None; n],
            not_before: vec![0; n],
            in_flight: vec![false; n],
        }
    }

    pub fn shards(&self) -> &[ShardView] {
        &self.shards
    }

    /// Whether `dc` counts as dead at `now`.
    pub fn is_dead(&self, dc: usize, now: u64) -> bool {
        let absent_long = match self.absent_since.get(dc).copied().flatten() {
            Some(since) => !self.alive[dc] && now.saturating_sub(since) >= self.params.grace_ms,
            None => false,
        };
        (absent_long || self.stale_members(dc, now).is_some())
            && !self.probe_ok.get(dc).copied().unwrap_or(true)
    }

    /// The member-key revision `dc`'s routers have not written past for the heartbeat window,
    /// if so.
    pub fn stale_members(&self, dc: usize, now: u64) -> Option<u64> {
        let (rev, since) = self.members.get(dc).copied().flatten()?;
        (self.params.stale_after_ms > 0 && now.saturating_sub(since) >= self.params.stale_after_ms)
            .then_some(rev)
    }

    /// Applies one event; returns the moves to propose.
    pub fn step(&mut self, event: Event, now: u64) -> Vec<Action> {
        match event {
            Event::Alive { dc, present } if dc < self.alive.len() => {
                if present {
                    self.absent_since[dc] = None;
                } else if self.alive[dc] || self.absent_since[dc].is_none() {
                    self.absent_since[dc] = Some(now);
                }
                self.alive[dc] = present;
            }
            Event::Probe { dc, ok } if dc < self.probe_ok.len() => self.probe_ok[dc] = ok,
            Event::Members { dc, rev } if dc < self.members.len() => {
                self.members[dc] = match (rev, self.members[dc]) {
                    (None, _) => None,
                    (Some(r), Some((seen, since))) if r == seen => Some((seen, since)),
                    (Some(r), _) => Some((r, now)),
                };
            }
            Event::Map(shards) => {
                self.last_move.resize(shards.len(), None);
                self.before_proposal.resize(shards.len(), None);
                self.not_before.resize(shards.len(), 0);
                self.in_flight.resize(shards.len(), false);
                for (i, s) in shards.iter().enumerate() {
                    if self.shards.get(i).is_some_and(|old| old.owner != s.owner) {
                        // A move by any controller (or an operator) starts the shard's
                        // min_interval here too, so two controllers cannot move it twice.
                        self.in_flight[i] = false;
                        self.last_move[i] = Some(now);
                    } else if self.shards.get(i).is_some_and(|old| old.epoch != s.epoch) {
                        self.in_flight[i] = false;
                    }
                }
                self.shards = shards;
            }
            Event::MoveDone { shard, .. } => {
                if let Some(f) = self.in_flight.get_mut(shard) {
                    *f = false;
                }
            }
            Event::MoveFailed { shard } if shard < self.in_flight.len() => {
                if self.in_flight[shard] {
                    self.last_move[shard] = self.before_proposal[shard];
                }
                self.in_flight[shard] = false;
                self.not_before[shard] = now.saturating_add(RETRY_MS);
            }
            Event::MoveFailed { .. } => {}
            Event::Alive { .. } | Event::Probe { .. } | Event::Members { .. } | Event::Tick => {}
        }
        self.decide(now)
    }

    fn decide(&mut self, now: u64) -> Vec<Action> {
        if !self.params.automatic {
            return Vec::new();
        }
        let mut actions = Vec::new();
        for (i, s) in self.shards.iter().enumerate() {
            if self.in_flight[i] || !self.is_dead(s.owner, now) || now < self.not_before[i] {
                continue;
            }
            if self.last_move[i]
                .is_some_and(|t| now.saturating_sub(t) < self.params.min_interval_ms)
            {
                continue;
            }
            let target = s
                .replicas
                .iter()
                .copied()
                .find(|&r| r != s.owner && self.alive.get(r).copied().unwrap_or(false));
            if let Some(to) = target {
                actions.push(Action::Move {
                    shard: i,
                    from: s.owner,
                    to,
                    epoch: s.epoch,
                    members: self.stale_members(s.owner, now),
                });
            }
        }
        for a in &actions {
            let Action::Move { shard, .. } = a;
            self.in_flight[*shard] = true;
            self.before_proposal[*shard] = self.last_move[*shard];
            self.last_move[*shard] = Some(now);
        }
        actions
    }
}
