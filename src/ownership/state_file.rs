//! The last-known-good map on disk: every published etcd map is saved with its revision (temp
//! file, fsync, rename, fsync of the directory), so a router can start while etcd is down.

use super::map::RawMap;
use std::io::Write;
use std::path::Path;

/// Saves `map` atomically.
pub fn save(path: &Path, map: &RawMap) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(map).map_err(std::io::Error::other)?;
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Loads a saved map; `Ok(None)` when there is no file.
pub fn load(path: &Path) -> std::io::Result<Option<RawMap>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::keyspace::ShardValue;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/map.json");
        assert!(load(&path).unwrap().is_none());
        let mut m = RawMap {
            revision: 42,
            ..RawMap::default()
        };
        m.shards.insert(
            0,
            (
                ShardValue {
                    owner: "dc1".into(),
                    replicas: vec!["dc2".into()],
                },
                40,
            ),
        );
        save(&path, &m).unwrap();
        assert_eq!(load(&path).unwrap(), Some(m));
        std::fs::write(&path, b"{broken").unwrap();
        assert!(load(&path).is_err());
    }

    /// The file is what it was when `RawMap` held plain maps: a file written then loads, and
    /// saving it again writes the same bytes.
    #[test]
    fn the_format_is_the_plain_maps_one() {
        use crate::ownership::keyspace::*;
        use std::collections::BTreeMap;
        // `RawMap` as it was before its shards were chunked and its pins shared.
        #[derive(serde::Serialize)]
        struct Before {
            revision: i64,
            meta: Option<Meta>,
            dcs: BTreeMap<String, DcValue>,
            shards: BTreeMap<u32, (ShardValue, i64)>,
            handoffs: BTreeMap<u32, HandoffValue>,
            pins: BTreeMap<u64, (PinValue, i64)>,
            catalog_home: Option<(CatalogHomeValue, i64)>,
        }
        let shard = |o: &str| ShardValue {
            owner: o.into(),
            replicas: vec!["dc3".into()],
        };
        let before = Before {
            revision: 900,
            meta: Some(Meta { shard_count: 300 }),
            dcs: [("dc2".to_string(), DcValue::default())].into(),
            shards: (0..300)
                .map(|n| (n, (shard(["dc1", "dc2"][n as usize % 2]), 7 + i64::from(n))))
                .collect(),
            handoffs: [(
                5,
                HandoffValue {
                    to: "dc2".into(),
                    epoch: 12,
                    by: "cli".into(),
                    reason: "r".into(),
                    at_ms: 3,
                },
            )]
            .into(),
            pins: [(
                101,
                (
                    PinValue {
                        hi: 200,
                        dc: "dc3".into(),
                        by: "adopt".into(),
                        reason: String::new(),
                        at_ms: 1,
                    },
                    40,
                ),
            )]
            .into(),
            catalog_home: Some((
                CatalogHomeValue {
                    dc: "dc1".into(),
                    by: String::new(),
                    reason: String::new(),
                    at_ms: 0,
                },
                41,
            )),
        };
        let old = serde_json::to_vec_pretty(&before).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.json");
        std::fs::write(&path, &old).unwrap();
        let map = load(&path).unwrap().unwrap();
        assert_eq!(map.shards.len(), 300);
        assert_eq!(map.shards.get(&299).unwrap().1, 306);
        save(&path, &map).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), old, "the same bytes");
        // Older still: no handoffs, pins or catalog home.
        let mut v: serde_json::Value = serde_json::from_slice(&old).unwrap();
        for k in ["handoffs", "pins", "catalog_home"] {
            v.as_object_mut().unwrap().remove(k);
        }
        std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        let older = load(&path).unwrap().unwrap();
        assert_eq!(older.shards, map.shards);
        assert!(older.pins.is_empty() && older.handoffs.is_empty());
    }
}
