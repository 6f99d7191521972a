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
}
