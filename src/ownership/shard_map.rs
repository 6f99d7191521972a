//! The raw map's shards (`shards/{n}`: value and `mod_revision`), in chunks of 64 consecutive
//! shard numbers behind `Arc` (pure). A clone shares every chunk (one pointer each), and a change
//! copies only its own chunk, once, while a clone holds it: the watcher hands the state-file
//! writer a copy of the map at every publish without copying 4,095 shards' strings. On disk and
//! in `Debug` it is the plain `{shard: [value, mod_revision]}` map it replaces.

use super::keyspace::ShardValue;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::sync::Arc;

const CHUNK_BITS: u32 = 6;

/// A shard's value and its `mod_revision` (the shard's epoch).
pub type Entry = (ShardValue, i64);

/// shard -> (value, mod_revision), ordered by shard. Chunk `k` holds shards `64k .. 64k+63`; no
/// chunk is empty.
#[derive(Clone, Default)]
pub struct ShardMap {
    chunks: BTreeMap<u32, Arc<BTreeMap<u32, Entry>>>,
    len: usize,
}

impl ShardMap {
    pub fn get(&self, n: &u32) -> Option<&Entry> {
        self.chunks.get(&(n >> CHUNK_BITS))?.get(n)
    }

    /// Sets shard `n` (its chunk copied first if a clone shares it); returns the old entry.
    pub fn insert(&mut self, n: u32, entry: Entry) -> Option<Entry> {
        let chunk = self.chunks.entry(n >> CHUNK_BITS).or_default();
        let old = Arc::make_mut(chunk).insert(n, entry);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes shard `n` (its chunk copied first if a clone shares it; dropped once empty).
    pub fn remove(&mut self, n: &u32) -> Option<Entry> {
        let k = n >> CHUNK_BITS;
        let chunk = self.chunks.get_mut(&k)?;
        if !chunk.contains_key(n) {
            return None;
        }
        let old = Arc::make_mut(chunk).remove(n);
        if chunk.is_empty() {
            self.chunks.remove(&k);
        }
        self.len -= 1;
        old
    }

    /// Every shard, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&u32, &Entry)> {
        self.chunks.values().flat_map(|c| c.iter())
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl FromIterator<(u32, Entry)> for ShardMap {
    fn from_iter<I: IntoIterator<Item = (u32, Entry)>>(iter: I) -> Self {
        let mut m = ShardMap::default();
        for (n, e) in iter {
            m.insert(n, e);
        }
        m
    }
}

impl PartialEq for ShardMap {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for ShardMap {}

impl std::fmt::Debug for ShardMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for ShardMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for ShardMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<u32, Entry>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(owner: &str, rev: i64) -> Entry {
        (
            ShardValue {
                owner: owner.into(),
                replicas: vec!["dc2".into()],
            },
            rev,
        )
    }

    #[test]
    fn behaves_as_the_btreemap_it_replaces() {
        let mut m = ShardMap::default();
        let mut b = BTreeMap::new();
        // Inserts, overwrites and removes across chunk boundaries (63/64, 127/128), far shards.
        let ops: [(u32, Option<i64>); 12] = [
            (0, Some(1)),
            (63, Some(2)),
            (64, Some(3)),
            (4094, Some(4)),
            (u32::MAX, Some(5)),
            (64, Some(6)),
            (63, None),
            (63, None),
            (128, Some(7)),
            (0, None),
            (128, None),
            (9, None),
        ];
        for (n, op) in ops {
            match op {
                Some(r) => assert_eq!(m.insert(n, v("dc1", r)), b.insert(n, v("dc1", r))),
                None => assert_eq!(m.remove(&n), b.remove(&n)),
            }
            assert_eq!(m.len(), b.len());
            assert_eq!(m.is_empty(), b.is_empty());
            assert!(m.iter().eq(b.iter()));
            assert_eq!(m.get(&n), b.get(&n));
            assert!(m.chunks.values().all(|c| !c.is_empty()), "no empty chunk");
        }
        // The same JSON as the map it replaces, both ways.
        let json = serde_json::to_string_pretty(&m).unwrap();
        assert_eq!(json, serde_json::to_string_pretty(&b).unwrap());
        assert_eq!(serde_json::from_str::<ShardMap>(&json).unwrap(), m);
        assert_eq!(format!("{m:?}"), format!("{b:?}"));
    }

    #[test]
    fn a_clone_shares_its_chunks_until_one_changes() {
        let mut m: ShardMap = (0..4095).map(|n| (n, v("dc1", 10))).collect();
        let copy = m.clone();
        let shared = |a: &ShardMap, b: &ShardMap| {
            a.chunks
                .iter()
                .filter(|(k, c)| b.chunks.get(k).is_some_and(|d| Arc::ptr_eq(c, d)))
                .count()
        };
        assert_eq!(shared(&m, &copy), 64);
        m.insert(70, v("dc2", 11));
        assert_eq!(shared(&m, &copy), 63, "only shard 70's chunk copied");
        assert_eq!(
            copy.get(&70),
            Some(&v("dc1", 10)),
            "the clone keeps the old value"
        );
        assert_eq!(m.get(&70), Some(&v("dc2", 11)));
    }
}
