//! The ownership map as read from etcd (or the state file), and the pure step from it to a
//! [`RoutingTable`]: every shard present, every DC known to the config. A map that fails these
//! checks is never published; the router keeps the last good one (and fences when it ages).
//!
//! A watch response that changes only shard and handoff keys is built from the previous table
//! by replacing those shards' entries ([`RawMap::rebuild`], O(shards touched)); anything else is
//! built whole ([`RawMap::build`]). Both give the same table (`map_tests.rs`, property-tested).

use super::keyspace::{
    CatalogHomeValue, DcValue, HandoffValue, Key, Meta, PinValue, ShardValue, parse_key,
};
use super::shard_map::ShardMap;
use crate::config::Config;
use crate::routing::{DcEntry, Pin, Pins, RoutingTable, ShardEntry};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The keyspace's current contents, with each shard's `mod_revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMap {
    /// The etcd revision this map is complete at.
    pub revision: i64,
    pub meta: Option<Meta>,
    pub dcs: BTreeMap<String, DcValue>,
    /// shard -> (value, mod_revision); a clone shares the unchanged chunks.
    pub shards: ShardMap,
    /// shard -> a pending planned handoff (absent from state files written before handoffs).
    #[serde(default)]
    pub handoffs: BTreeMap<u32, HandoffValue>,
    /// lo -> (pin, mod_revision) (absent from state files written before pins); a clone
    /// shares it until a pin changes.
    #[serde(default)]
    pub pins: Arc<BTreeMap<u64, (PinValue, i64)>>,
    /// The catalog's home set in etcd, with its `mod_revision` (absent from older state files).
    #[serde(default)]
    pub catalog_home: Option<(CatalogHomeValue, i64)>,
}

/// Why a map cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("etcd says shard_count is {etcd}, the config says {config}")]
    ShardCount { etcd: u32, config: u32 },
    #[error("shard {0} has no entry in the map (run `coopr-router ownership init`)")]
    MissingShard(u32),
    #[error("shard {shard} names DC {dc:?}, which is not in this router's [dcs]")]
    UnknownDc { shard: u32, dc: String },
    #[error("pin {lo} names DC {dc:?}, which is not in this router's [dcs]")]
    PinDc { lo: u64, dc: String },
    #[error("catalog/home names DC {0:?}, which is not in this router's [dcs]")]
    CatalogHomeDc(String),
    #[error("key {key}: {reason}")]
    BadValue { key: String, reason: String },
}

impl RawMap {
    /// Applies a put. A value that does not parse is refused (the previous value stays).
    pub fn put(
        &mut self,
        prefix: &str,
        key: &[u8],
        value: &[u8],
        mod_revision: i64,
    ) -> Result<(), MapError> {
        let bad = |reason: String| MapError::BadValue {
            key: String::from_utf8_lossy(key).into_owned(),
            reason,
        };
        match parse_key(prefix, key) {
            Key::Shard(n) => {
                let v: ShardValue =
                    serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
                self.shards.insert(n, (v, mod_revision));
            }
            Key::Dc(dc) => {
                let v: DcValue = serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
                self.dcs.insert(dc.to_string(), v);
            }
            Key::Meta => {
                self.meta = Some(serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?)
            }
            Key::Handoff(n) => {
                let v: HandoffValue =
                    serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
                self.handoffs.insert(n, v);
            }
            Key::Pin(lo) => {
                let v: PinValue = serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
                if v.hi < lo {
                    return Err(bad(format!("hi {} is below lo {lo}", v.hi)));
                }
                Arc::make_mut(&mut self.pins).insert(lo, (v, mod_revision));
            }
            Key::CatalogHome => {
                let v: CatalogHomeValue =
                    serde_json::from_slice(value).map_err(|e| bad(e.to_string()))?;
                self.catalog_home = Some((v, mod_revision));
            }
            Key::History | Key::Alive(_) | Key::Other => {}
        }
        Ok(())
    }

    /// Applies a delete.
    pub fn delete(&mut self, prefix: &str, key: &[u8]) {
        match parse_key(prefix, key) {
            Key::Shard(n) => {
                self.shards.remove(&n);
            }
            Key::Dc(dc) => {
                self.dcs.remove(dc);
            }
            Key::Meta => self.meta = None,
            Key::Handoff(n) => {
                self.handoffs.remove(&n);
            }
            Key::Pin(lo) => {
                if self.pins.contains_key(&lo) {
                    Arc::make_mut(&mut self.pins).remove(&lo);
                }
            }
            Key::CatalogHome => self.catalog_home = None,
            Key::History | Key::Alive(_) | Key::Other => {}
        }
    }

    /// The routing table this map gives under `cfg` (pure).
    pub fn build(&self, cfg: &Config) -> Result<RoutingTable, MapError> {
        let count = cfg.raw.shard_count;
        if let Some(m) = self.meta
            && m.shard_count != count
        {
            return Err(MapError::ShardCount {
                etcd: m.shard_count,
                config: count,
            });
        }
        let mut shards = Vec::with_capacity(count as usize);
        for n in 0..count {
            shards.push(self.shard_entry(n, cfg)?);
        }
        let dcs = cfg
            .dcs
            .iter()
            .map(|d| {
                let peer_url = self
                    .dcs
                    .get(&d.name)
                    .and_then(|v| v.peer_url.as_deref())
                    .and_then(|u| u.parse().ok())
                    .unwrap_or_else(|| d.peer_url.clone());
                DcEntry {
                    name: d.name.clone(),
                    peer_url,
                    id_start: d.id_start,
                    id_increment: d.id_increment,
                }
            })
            .collect();
        let pins =
            self.pins
                .iter()
                .map(|(&lo, (v, epoch))| {
                    let dc = cfg.dcs.iter().position(|d| d.name == v.dc).ok_or_else(|| {
                        MapError::PinDc {
                            lo,
                            dc: v.dc.clone(),
                        }
                    })?;
                    Ok(Pin {
                        lo,
                        hi: v.hi,
                        dc,
                        epoch: (*epoch).max(0) as u64,
                    })
                })
                .collect::<Result<Vec<_>, MapError>>()?;
        // etcd's pins replace the config's, as etcd's shards replace the config's map.
        let pins = Pins::new(pins);
        let catalog_home = match &self.catalog_home {
            Some((v, epoch)) => Some((
                cfg.dcs
                    .iter()
                    .position(|d| d.name == v.dc)
                    .ok_or_else(|| MapError::CatalogHomeDc(v.dc.clone()))?,
                (*epoch).max(0) as u64,
            )),
            None => None,
        };
        Ok(
            RoutingTable::new(self.revision.max(0) as u64, cfg.local, dcs, shards)
                .with_standby(cfg)
                .with_pins(pins)
                .with_catalog_home(catalog_home),
        )
    }

    /// Shard `n`'s entry under `cfg` (its home left for the table to derive).
    fn shard_entry(&self, n: u32, cfg: &Config) -> Result<ShardEntry, MapError> {
        let index = |dc: &str| {
            cfg.dcs
                .iter()
                .position(|d| d.name == dc)
                .ok_or_else(|| MapError::UnknownDc {
                    shard: n,
                    dc: dc.to_string(),
                })
        };
        let (v, epoch) = self.shards.get(&n).ok_or(MapError::MissingShard(n))?;
        let owner = index(&v.owner)?;
        let replicas = v
            .replicas
            .iter()
            .map(|r| index(r))
            .collect::<Result<Vec<_>, _>>()?;
        // A handoff counts only at the epoch it was requested for, to a DC we know: a stale
        // or unknown one must not hold writes.
        let handoff = self
            .handoffs
            .get(&n)
            .filter(|h| h.epoch == *epoch && h.to != v.owner)
            .and_then(|h| cfg.dcs.iter().position(|d| d.name == h.to));
        Ok(ShardEntry {
            owner,
            replicas,
            epoch: (*epoch).max(0) as u64,
            home: None,
            handoff,
        })
    }

    /// The routing table this map gives under `cfg`, from `prev`: the table this map built
    /// (under the same `cfg`) before the changes `touched` describes. When they touched only
    /// shard and handoff keys, only those shards' entries are rebuilt, in place of `prev`'s
    /// (O(shards touched)); otherwise the map is built whole. Either way the result is what
    /// [`RawMap::build`] gives, errors included: an untouched shard built in `prev`, so the
    /// first touched shard that fails is the first shard that fails.
    pub fn rebuild(
        &self,
        cfg: &Config,
        prev: &RoutingTable,
        touched: &Touched,
    ) -> Result<RoutingTable, MapError> {
        let count = cfg.raw.shard_count;
        let Some(shards) = touched.shards_only() else {
            return self.build(cfg);
        };
        if prev.shard_count() != count {
            return self.build(cfg);
        }
        let mut changes = Vec::with_capacity(shards.len());
        for &n in shards.range(..count) {
            changes.push((n, self.shard_entry(n, cfg)?));
        }
        Ok(prev.with_shards_replaced(self.revision.max(0) as u64, changes))
    }
}

/// What a batch of changes (one watch response) did to the map, as far as its table goes: the
/// shards whose `shards/{n}` or `handoff/{n}` key changed, or something else that shapes the
/// table (meta, a DC, a pin, the catalog home, or a whole new listing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    shards: BTreeSet<u32>,
    whole: bool,
}

impl Touched {
    /// Everything: the map must be built whole (a listing, a restart).
    pub fn whole() -> Self {
        Touched {
            shards: BTreeSet::new(),
            whole: true,
        }
    }

    /// Notes a changed key (put or delete); keys that do not shape the map are ignored.
    pub fn note(&mut self, key: &Key<'_>) {
        match key {
            Key::Shard(n) | Key::Handoff(n) => {
                self.shards.insert(*n);
            }
            Key::History | Key::Alive(_) | Key::Other => {}
            Key::Meta | Key::Dc(_) | Key::Pin(_) | Key::CatalogHome => self.whole = true,
        }
    }

    /// The touched shards, when nothing else was touched.
    pub fn shards_only(&self) -> Option<&BTreeSet<u32>> {
        (!self.whole).then_some(&self.shards)
    }

    /// Whether anything that shapes the table was touched.
    pub fn any(&self) -> bool {
        self.whole || !self.shards.is_empty()
    }
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;
