//! The routing snapshot: one immutable [`RoutingTable`] behind one `ArcSwap`, with exactly one
//! writer ([`Publisher`], not `Clone`) and any number of readers ([`Routes`]). A request loads the
//! snapshot once and routes by it to the end, so it sees the old map or the new one, never a mix.

mod decide;
pub mod pins;
pub mod shards;

pub use decide::{
    Decision, Origin, Route, Target, decide, decide_global, fans_out, shared_candidates,
};
pub use pins::{Pin, Pins};
pub use shards::Shards;

use crate::config::Config;
use crate::ids::ClusterId;
use arc_swap::ArcSwap;
use http::Uri;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// One DC as routing sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DcEntry {
    pub name: String,
    /// The DC router's peer port.
    pub peer_url: Uri,
    pub id_start: u64,
    pub id_increment: u64,
}

/// One shard: its owner, replicas, epoch and home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardEntry {
    pub owner: usize,
    pub replicas: Vec<usize>,
    /// The shard's epoch (etcd `mod_revision`; 0 for the static map).
    pub epoch: u64,
    /// The DC whose Coopr server creates ids in this shard, if any.
    pub home: Option<usize>,
    /// A planned handoff to this DC is under way: the owner holds the shard's writes.
    pub handoff: Option<usize>,
}

/// An immutable ownership map plus the facts routing derives from it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingTable {
    /// The ownership source's revision (0 for the static map).
    pub revision: u64,
    /// Index of this DC in `dcs`.
    pub local: usize,
    pub dcs: Vec<DcEntry>,
    /// Shard `n`'s entry at `n`, in chunks shared with the previous snapshot where unchanged.
    pub shards: Shards,
    /// Per DC: how many of its home shards another DC owns (0: it owns them all, so creates
    /// can land there). A count, so a snapshot built from the previous one by replacing a few
    /// shards keeps it in O(those shards).
    home_lost: Vec<u32>,
    /// Per DC: whether this router has a standby Coopr server for shards whose home it is.
    standby: Vec<bool>,
    /// Explicit placements that win over the shard map (`routing::pins`).
    pub pins: Pins,
    /// Per DC: its first home shard, by which its pinned ids are routed.
    home_shard: Vec<Option<u32>>,
    /// The catalog's home DC as the ownership source holds it (etcd `catalog/home`), with its
    /// epoch; it wins over `catalog.home` in the config.
    catalog_home: Option<(usize, u64)>,
}

impl RoutingTable {
    /// Builds a table from DCs and shards, deriving homes and create eligibility.
    pub fn new(
        revision: u64,
        local: usize,
        dcs: Vec<DcEntry>,
        mut shards: Vec<ShardEntry>,
    ) -> Self {
        for (n, s) in shards.iter_mut().enumerate() {
            s.home = dcs.iter().position(|d| {
                n as u64 % d.id_increment.max(1) == d.id_start % d.id_increment.max(1)
            });
        }
        let mut home_lost = vec![0u32; dcs.len()];
        for s in &shards {
            if let Some(h) = s.home
                && s.owner != h
                && let Some(c) = home_lost.get_mut(h)
            {
                *c += 1;
            }
        }
        let home_shard = (0..dcs.len())
            .map(|dc| {
                shards
                    .iter()
                    .position(|s| s.home == Some(dc))
                    .map(|n| n as u32)
            })
            .collect();
        RoutingTable {
            revision,
            local,
            dcs,
            shards: Shards::from(shards),
            home_lost,
            standby: Vec::new(),
            pins: Pins::default(),
            home_shard,
            catalog_home: None,
        }
    }

    /// This table at `revision` with the entries of `changes` (shard, entry) in place of the
    /// old ones, everything else as it is (DCs, pins, standby, catalog home): what
    /// [`RoutingTable::new`] + the same `with_*` would give for the changed shards, in
    /// O(changes + shards / `shards::CHUNK`). A changed entry keeps the shard's home (it
    /// depends on the DCs' id settings only); shards out of range are ignored.
    pub fn with_shards_replaced(
        &self,
        revision: u64,
        changes: impl IntoIterator<Item = (u32, ShardEntry)>,
    ) -> Self {
        let mut home_lost = self.home_lost.clone();
        let mut count = |home: Option<usize>, owner: usize, add: bool| {
            if let Some(h) = home
                && owner != h
                && let Some(c) = home_lost.get_mut(h)
            {
                *c = if add { *c + 1 } else { c.saturating_sub(1) };
            }
        };
        // A shard named twice: the last entry wins (the counts must see one old and one new).
        let changes: std::collections::BTreeMap<u32, ShardEntry> = changes.into_iter().collect();
        let mut entries = Vec::with_capacity(changes.len());
        for (n, mut e) in changes {
            let Some(old) = self.shards.get(n as usize) else {
                continue;
            };
            e.home = old.home;
            count(old.home, old.owner, false);
            count(e.home, e.owner, true);
            entries.push((n as usize, e));
        }
        RoutingTable {
            revision,
            local: self.local,
            dcs: self.dcs.clone(),
            shards: self.shards.replaced(entries),
            home_lost,
            standby: self.standby.clone(),
            pins: self.pins.clone(),
            home_shard: self.home_shard.clone(),
            catalog_home: self.catalog_home,
        }
    }

    /// Sets the catalog's home DC held by the ownership source (and its epoch).
    pub fn with_catalog_home(mut self, home: Option<(usize, u64)>) -> Self {
        self.catalog_home = home;
        self
    }

    /// The catalog's home DC and its epoch, when the ownership source holds one.
    pub fn catalog_home_entry(&self) -> Option<(usize, u64)> {
        self.catalog_home
    }

    /// The catalog's home DC in force: the ownership source's when it holds one, else
    /// `configured` (`catalog.home`), else none (catalog writes stay local).
    pub fn catalog_home(&self, configured: Option<&str>) -> Option<usize> {
        self.catalog_home
            .map(|(dc, _)| dc)
            .or_else(|| configured.and_then(|h| self.dc_index(h)))
    }

    /// Sets the pins (explicit placements of ids that win over the shard map).
    pub fn with_pins(mut self, pins: Pins) -> Self {
        self.pins = pins;
        self
    }

    /// The pin holding `id`, if any.
    pub fn pin_of(&self, id: ClusterId) -> Option<&Pin> {
        self.pins.find(id.get())
    }

    /// The first home shard of `dc`: its pinned ids are routed by this shard's entry, so they
    /// follow its owner through failover and handoff.
    pub fn home_shard(&self, dc: usize) -> Option<u32> {
        self.home_shard.get(dc).copied().flatten()
    }

    /// The shard an id falls in by its number alone (`id mod shard_count`), pins ignored.
    pub fn id_shard(&self, id: ClusterId) -> u32 {
        id.shard(self.shard_count())
    }

    /// Whether a cluster Coopr just created in this DC is misplaced: its id is pinned to another
    /// DC, or it is not pinned and its shard's home is not this DC. Its clusters would then be
    /// routed to a DC that has never seen it.
    pub fn misplaced(&self, id: ClusterId) -> bool {
        let lives = match self.pin_of(id) {
            Some(p) => Some(p.dc),
            None => self.shard(self.id_shard(id)).and_then(|s| s.home),
        };
        lives != Some(self.local)
    }

    /// Marks the home DCs this router has a standby Coopr server for.
    pub fn with_standby(mut self, cfg: &Config) -> Self {
        self.standby = cfg.standby.iter().map(Option::is_some).collect();
        self
    }

    /// Whether this router has a standby server for shards whose home is `dc`.
    pub fn has_standby(&self, dc: usize) -> bool {
        self.standby.get(dc).copied().unwrap_or(false)
    }

    /// The static map of a validated config.
    pub fn from_config(cfg: &Config) -> Self {
        let dcs = cfg
            .dcs
            .iter()
            .map(|d| DcEntry {
                name: d.name.clone(),
                peer_url: d.peer_url.clone(),
                id_start: d.id_start,
                id_increment: d.id_increment,
            })
            .collect();
        let shards = cfg
            .shards
            .iter()
            .map(|s| ShardEntry {
                owner: s.owner,
                replicas: s.replicas.clone(),
                epoch: 0,
                home: None,
                handoff: None,
            })
            .collect();
        RoutingTable::new(0, cfg.local, dcs, shards)
            .with_standby(cfg)
            .with_pins(static_pins(cfg))
    }

    pub fn shard_count(&self) -> u32 {
        self.shards.len() as u32
    }

    /// The shard a cluster id is routed by: for a pinned id, the first home shard of its pin's
    /// DC; otherwise `id mod shard_count`.
    pub fn shard_of(&self, id: ClusterId) -> u32 {
        self.pin_of(id)
            .and_then(|p| self.home_shard(p.dc))
            .unwrap_or_else(|| self.id_shard(id))
    }

    /// A shard's entry. Shards come from `shard_of`, so they are in range; a table with no
    /// shards cannot be built from a valid config.
    #[inline]
    pub fn shard(&self, shard: u32) -> Option<&ShardEntry> {
        self.shards.get(shard as usize)
    }

    /// Whether `dc` owns all of its home shards.
    pub fn owns_all_home(&self, dc: usize) -> bool {
        self.home_lost.get(dc).is_some_and(|&lost| lost == 0)
    }

    pub fn local_name(&self) -> &str {
        self.dc_name(self.local)
    }

    /// Whether this router must hold writes for `shard`: this DC owns it and is handing it off.
    pub fn holding(&self, shard: u32) -> bool {
        self.shard(shard)
            .is_some_and(|e| e.owner == self.local && e.handoff.is_some())
    }

    pub fn dc_name(&self, dc: usize) -> &str {
        self.dcs.get(dc).map(|d| d.name.as_str()).unwrap_or("?")
    }

    pub fn dc_index(&self, name: &str) -> Option<usize> {
        self.dcs.iter().position(|d| d.name == name)
    }
}

/// The `[[ownership.pins]]` of a validated config, DC names resolved (epoch 0).
pub fn static_pins(cfg: &Config) -> Pins {
    Pins::new(
        cfg.raw
            .ownership
            .pins
            .iter()
            .filter_map(|p| {
                Some(Pin {
                    lo: p.lo,
                    hi: p.hi(),
                    dc: cfg.dcs.iter().position(|d| d.name == p.dc)?,
                    epoch: 0,
                })
            })
            .collect(),
    )
}

/// Read access to the current snapshot. Cheap to clone.
#[derive(Clone)]
pub struct Routes {
    cell: Arc<ArcSwap<RoutingTable>>,
    /// The revision of each published snapshot, for the rare request that must wait for one.
    revisions: watch::Receiver<u64>,
}

impl Routes {
    /// Starts with `table`; returns the readers' handle and the one writer.
    pub fn new(table: RoutingTable) -> (Routes, Publisher) {
        let (tx, rx) = watch::channel(table.revision);
        let cell = Arc::new(ArcSwap::from_pointee(table));
        (
            Routes {
                cell: cell.clone(),
                revisions: rx,
            },
            Publisher {
                cell,
                revisions: tx,
            },
        )
    }

    /// The current snapshot. Hold it for the whole request.
    pub fn load(&self) -> Arc<RoutingTable> {
        self.cell.load_full()
    }

    /// Waits at most `timeout` for a snapshot for which `pred` holds, then returns the current
    /// one (for which it may still not hold). Used to hold writes during a planned handoff.
    pub async fn wait_until(
        &self,
        pred: impl Fn(&RoutingTable) -> bool,
        timeout: Duration,
    ) -> Arc<RoutingTable> {
        let mut rx = self.revisions.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|_| pred(&self.load()))).await;
        self.load()
    }

    /// Waits at most `timeout` for a snapshot at `revision` or later, then returns the current
    /// one (which may still be older). Used only by an owner receiving a forwarded write from a
    /// router whose map is newer than its own.
    pub async fn wait_for_revision(&self, revision: u64, timeout: Duration) -> Arc<RoutingTable> {
        let mut rx = self.revisions.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|&r| r >= revision)).await;
        self.load()
    }

    /// A receiver that changes at every publish (its value is the new revision): for a task
    /// that must see every map, e.g. replication's log of who owned a shard at which epoch.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.revisions.clone()
    }
}

/// The one writer of the snapshot. Deliberately not `Clone`.
pub struct Publisher {
    cell: Arc<ArcSwap<RoutingTable>>,
    revisions: watch::Sender<u64>,
}

impl Publisher {
    /// Replaces the snapshot atomically.
    pub fn publish(&self, table: RoutingTable) {
        let revision = table.revision;
        self.cell.store(Arc::new(table));
        self.revisions.send_replace(revision);
    }

    pub fn current(&self) -> Arc<RoutingTable> {
        self.cell.load_full()
    }
}
