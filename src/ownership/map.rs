//! The ownership map as read from etcd (or the state file), and the pure step from it to a
//! [`RoutingTable`]: every shard present, every DC known to the config. A map that fails these
//! checks is never published; the router keeps the last good one (and fences when it ages).

use super::keyspace::{
    CatalogHomeValue, DcValue, HandoffValue, Key, Meta, PinValue, ShardValue, parse_key,
};
use crate::config::Config;
use crate::routing::{DcEntry, Pin, Pins, RoutingTable, ShardEntry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The keyspace's current contents, with each shard's `mod_revision`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawMap {
    /// The etcd revision this map is complete at.
    pub revision: i64,
    pub meta: Option<Meta>,
    pub dcs: BTreeMap<String, DcValue>,
    /// shard -> (value, mod_revision)
    pub shards: BTreeMap<u32, (ShardValue, i64)>,
    /// shard -> a pending planned handoff (absent from state files written before handoffs).
    #[serde(default)]
    pub handoffs: BTreeMap<u32, HandoffValue>,
    /// lo -> (pin, mod_revision) (absent from state files written before pins).
    #[serde(default)]
    pub pins: BTreeMap<u64, (PinValue, i64)>,
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
                self.pins.insert(lo, (v, mod_revision));
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
                self.pins.remove(&lo);
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
        let index = |shard: u32, dc: &str| {
            cfg.dcs
                .iter()
                .position(|d| d.name == dc)
                .ok_or_else(|| MapError::UnknownDc {
                    shard,
                    dc: dc.to_string(),
                })
        };
        let mut shards = Vec::with_capacity(count as usize);
        for n in 0..count {
            let (v, epoch) = self.shards.get(&n).ok_or(MapError::MissingShard(n))?;
            let owner = index(n, &v.owner)?;
            let replicas = v
                .replicas
                .iter()
                .map(|r| index(n, r))
                .collect::<Result<Vec<_>, _>>()?;
            // A handoff counts only at the epoch it was requested for, to a DC we know: a stale
            // or unknown one must not hold writes.
            let handoff = self
                .handoffs
                .get(&n)
                .filter(|h| h.epoch == *epoch && h.to != v.owner)
                .and_then(|h| cfg.dcs.iter().position(|d| d.name == h.to));
            shards.push(ShardEntry {
                owner,
                replicas,
                epoch: (*epoch).max(0) as u64,
                home: None,
                handoff,
            });
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_owned_by_dc1(handoff: &[u8]) -> RawMap {
        let mut m = RawMap::default();
        for n in 0..12u32 {
            let key = format!("/p/shards/{n}");
            m.put("/p/", key.as_bytes(), br#"{"owner":"dc1"}"#, 10)
                .unwrap();
        }
        m.put("/p/", b"/p/handoff/4", handoff, 11).unwrap();
        m
    }

    #[test]
    fn a_handoff_holds_its_shard_only_at_its_epoch_and_to_a_known_dc() {
        let cfg = crate::config::parse(include_str!("../../config/static.toml")).unwrap();
        let at = |epoch: i64, to: &str| {
            format!(r#"{{"to":"{to}","epoch":{epoch},"by":"cli","reason":"t","at_ms":1}}"#)
        };
        // At the shard's epoch, to another DC: held (dc1 is this router's DC and the owner).
        let t = map_owned_by_dc1(at(10, "dc2").as_bytes())
            .build(&cfg)
            .unwrap();
        assert_eq!(t.shard(4).unwrap().handoff, Some(1));
        assert!(t.holding(4));
        assert!(!t.holding(5));
        // Requested at an older epoch (the shard moved since), to the owner itself, or to an
        // unknown DC: ignored.
        for bad in [at(9, "dc2"), at(10, "dc1"), at(10, "dc9")] {
            let t = map_owned_by_dc1(bad.as_bytes()).build(&cfg).unwrap();
            assert!(!t.holding(4), "{bad}");
        }
        // Deleting the key (commit or withdrawal) releases it.
        let mut m = map_owned_by_dc1(at(10, "dc2").as_bytes());
        m.delete("/p/", b"/p/handoff/4");
        assert!(!m.build(&cfg).unwrap().holding(4));
        // A malformed value is refused like any other key's.
        let mut m = RawMap::default();
        assert!(m.put("/p/", b"/p/handoff/4", b"{}", 3).is_err());
    }
}
