//! The shard entries of one snapshot, in chunks of [`CHUNK`] consecutive shards behind `Arc`
//! (pure). A lookup is two indexings, O(1) like the plain vector it replaced; a snapshot that
//! differs from the previous one in a few shards shares every other chunk with it
//! ([`Shards::replaced`]: one chunk copied per chunk touched, one pointer per chunk otherwise),
//! so a publish costs what it changed, not the shard count.

use super::ShardEntry;
use std::sync::Arc;

const CHUNK_BITS: u32 = 6;
/// Shards per chunk.
pub const CHUNK: usize = 1 << CHUNK_BITS;

/// Every shard's entry, shard `n` at index `n`. Each chunk is a whole array (a thin pointer, no
/// length to check: a lookup costs about what a vector's does); the last one is padded with
/// entries past `len` that are never read.
#[derive(Clone, Default)]
pub struct Shards {
    chunks: Vec<Arc<[ShardEntry; CHUNK]>>,
    len: usize,
}

/// What pads the last chunk.
fn filler() -> ShardEntry {
    ShardEntry {
        owner: 0,
        replicas: Vec::new(),
        epoch: 0,
        home: None,
        handoff: None,
    }
}

impl Shards {
    /// Shard `n`'s entry.
    #[inline]
    pub fn get(&self, n: usize) -> Option<&ShardEntry> {
        if n >= self.len {
            return None;
        }
        Some(&self.chunks.get(n >> CHUNK_BITS)?[n & (CHUNK - 1)])
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, shard 0 first.
    pub fn iter(&self) -> impl Iterator<Item = &ShardEntry> {
        self.chunks().flat_map(|(_, c)| c.iter())
    }

    /// How many chunks hold the entries (what a clone copies: one pointer each).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The entries of each chunk as a slice, with the chunk's first shard: for comparing two
    /// snapshots chunk by chunk ([`Shards::same_chunk`] tells the shared ones).
    pub fn chunks(&self) -> impl Iterator<Item = (usize, &[ShardEntry])> {
        let len = self.len;
        self.chunks.iter().enumerate().map(move |(k, c)| {
            let first = k << CHUNK_BITS;
            (first, &c[..(len - first).min(CHUNK)])
        })
    }

    /// Whether chunk `k` is the very same allocation in both (so its entries are equal).
    pub fn same_chunk(&self, other: &Shards, k: usize) -> bool {
        match (self.chunks.get(k), other.chunks.get(k)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// How many shards have another owner in `new` than here (compared up to the shorter
    /// list); chunks `new` shares with this list are skipped, so after a
    /// [`Shards::replaced`] this costs the chunks replaced, not the shard count.
    pub fn owners_moved(&self, new: &Shards) -> usize {
        new.chunks()
            .enumerate()
            .filter(|&(k, _)| !new.same_chunk(self, k))
            .map(|(_, (first, chunk))| {
                chunk
                    .iter()
                    .enumerate()
                    .filter(|&(i, e)| self.get(first + i).is_some_and(|o| o.owner != e.owner))
                    .count()
            })
            .sum()
    }

    /// A copy with the entries of `changes` (shard, entry) in place of the old ones: the chunks
    /// they fall in are copied once, the others shared. Shards out of range are ignored; for a
    /// shard named twice the last entry wins.
    pub fn replaced(&self, changes: impl IntoIterator<Item = (usize, ShardEntry)>) -> Shards {
        let mut out = self.clone();
        for (n, entry) in changes {
            if n >= out.len {
                continue;
            }
            if let Some(chunk) = out.chunks.get_mut(n >> CHUNK_BITS) {
                // Copied on the first change in this chunk (shared with `self` until then).
                Arc::make_mut(chunk)[n & (CHUNK - 1)] = entry;
            }
        }
        out
    }
}

impl From<Vec<ShardEntry>> for Shards {
    fn from(entries: Vec<ShardEntry>) -> Self {
        let len = entries.len();
        let mut it = entries.into_iter();
        let chunks = (0..len.div_ceil(CHUNK))
            .map(|_| Arc::new(std::array::from_fn(|_| it.next().unwrap_or_else(filler))))
            .collect();
        Shards { chunks, len }
    }
}

impl PartialEq for Shards {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl Eq for Shards {}

impl std::ops::Index<usize> for Shards {
    type Output = ShardEntry;

    /// Panics out of range, as a vector's index does.
    fn index(&self, n: usize) -> &ShardEntry {
        let k = if n < self.len {
            n >> CHUNK_BITS
        } else {
            usize::MAX
        };
        &self.chunks[k][n & (CHUNK - 1)]
    }
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(owner: usize, epoch: u64) -> ShardEntry {
        ShardEntry {
            owner,
            replicas: vec![owner + 1],
            epoch,
            home: None,
            handoff: None,
        }
    }

    fn list(n: usize) -> Vec<ShardEntry> {
        (0..n).map(|s| entry(s % 3, s as u64)).collect()
    }

    #[test]
    fn lookups_match_the_vector_at_every_size() {
        for n in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
            let v = list(n);
            let s = Shards::from(v.clone());
            assert_eq!(s.len(), n);
            assert_eq!(s.is_empty(), n == 0);
            assert_eq!(s.iter().cloned().collect::<Vec<_>>(), v);
            for (i, e) in v.iter().enumerate() {
                assert_eq!(s.get(i), Some(e));
                assert_eq!(&s[i], e);
            }
            assert_eq!(s.get(n), None);
            assert_eq!(s.chunk_count(), n.div_ceil(CHUNK));
        }
    }

    #[test]
    fn a_replacement_copies_only_the_chunks_it_touches() {
        let n = 3 * CHUNK + 5;
        let old = Shards::from(list(n));
        let new = old.replaced([
            (1, entry(2, 99)),
            (2, entry(1, 98)),
            (1, entry(0, 97)),
            (n, entry(0, 1)),
        ]);
        let mut want = list(n);
        want[1] = entry(0, 97);
        want[2] = entry(1, 98);
        assert_eq!(new, Shards::from(want));
        assert!(!new.same_chunk(&old, 0));
        for k in 1..old.chunk_count() {
            assert!(new.same_chunk(&old, k), "chunk {k} shared");
        }
        assert_eq!(old, Shards::from(list(n)), "the old one is untouched");
        assert_eq!(old.owners_moved(&new), 2, "shards 1 and 2 have new owners");
        assert_eq!(new.owners_moved(&old), 2);
        assert_eq!(old.owners_moved(&old.clone()), 0);
        let mut others = list(n);
        others[2 * CHUNK].owner = (others[2 * CHUNK].owner + 1) % 3;
        others[n - 1].owner = 0;
        assert_eq!(old.owners_moved(&Shards::from(others.clone())), 2);
        assert_eq!(
            Shards::from(others[..CHUNK].to_vec()).owners_moved(&old),
            0,
            "shorter"
        );
        assert_eq!(old.replaced([]), old);
    }
}
