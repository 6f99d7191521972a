//! The shard entries of one snapshot, in chunks of [`CHUNK`] consecutive shards behind `Arc`
//! (pure). A lookup is two indexings, O(1) like the plain vector it replaces; a snapshot that
//! differs from the previous one in a few shards shares every other chunk with it
//! ([`Shards::replaced`]: one chunk copied per chunk touched, one pointer per chunk otherwise),
//! so a publish costs what it changed, not the shard count.

use super::ShardEntry;
use std::sync::Arc;

const CHUNK_BITS: u32 = 6;
/// Shards per chunk.
pub const CHUNK: usize = 1 << CHUNK_BITS;

/// Every shard's entry, shard `n` at index `n`. Compared by content (chunks are cut at fixed
/// offsets, so two equal lists have the same chunks).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Shards {
    chunks: Vec<Arc<[ShardEntry]>>,
    len: usize,
}

impl Shards {
    /// Shard `n`'s entry.
    #[inline]
    pub fn get(&self, n: usize) -> Option<&ShardEntry> {
        self.chunks.get(n >> CHUNK_BITS)?.get(n & (CHUNK - 1))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry, shard 0 first.
    pub fn iter(&self) -> impl Iterator<Item = &ShardEntry> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// How many chunks hold the entries (what a clone copies: one pointer each).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The entries of shards `CHUNK * k ..` as a slice, with their first shard: for comparing two
    /// snapshots chunk by chunk ([`Shards::same_chunk`] skips the shared ones).
    pub fn chunks(&self) -> impl Iterator<Item = (usize, &[ShardEntry])> {
        self.chunks
            .iter()
            .enumerate()
            .map(|(k, c)| (k << CHUNK_BITS, &c[..]))
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
            let k = n >> CHUNK_BITS;
            if let Some(chunk) = out.chunks.get_mut(k) {
                let shared = self.chunks.get(k).is_some_and(|c| Arc::ptr_eq(c, chunk));
                if shared {
                    // First change in this chunk: copy it (once), then write in place.
                    *chunk = Arc::from(chunk.to_vec());
                }
                if let Some(slot) = Arc::get_mut(chunk).and_then(|c| c.get_mut(n & (CHUNK - 1))) {
                    *slot = entry;
                }
            }
        }
        out
    }
}

impl From<Vec<ShardEntry>> for Shards {
    fn from(entries: Vec<ShardEntry>) -> Self {
        let len = entries.len();
        let mut chunks = Vec::with_capacity(len.div_ceil(CHUNK));
        let mut it = entries.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<ShardEntry> = it.by_ref().take(CHUNK).collect();
            chunks.push(Arc::from(chunk));
        }
        Shards { chunks, len }
    }
}

impl std::ops::Index<usize> for Shards {
    type Output = ShardEntry;

    fn index(&self, n: usize) -> &ShardEntry {
        &self.chunks[n >> CHUNK_BITS][n & (CHUNK - 1)]
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
