//! Pins: explicit placements of cluster ids that win over the shard map. A pin says "the
//! clusters with ids `lo..=hi` live in DC `dc`'s database" (clusters created before the router,
//! or by a Coopr whose id settings put them outside its home shards). Pure: no I/O.
//!
//! A pinned id is routed as if it were in the first home shard of its DC: whoever owns that
//! shard (the DC itself, or after a failover or handoff the DC that took its shards and its
//! standby) serves it, so a DC's pins move with its shards by construction.

/// One pin: ids `lo..=hi` live in DC `dc` (an index into the table's DCs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub lo: u64,
    pub hi: u64,
    pub dc: usize,
    /// The pin's epoch (etcd `mod_revision` of `pins/{lo}`; 0 in the static config).
    pub epoch: u64,
}

impl Pin {
    pub fn contains(&self, id: u64) -> bool {
        self.lo <= id && id <= self.hi
    }
}

/// The pins of one snapshot, sorted by `lo`; shared by the snapshots that have the same pins
/// (a clone is one pointer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pins(std::sync::Arc<[Pin]>);

impl Pins {
    /// Sorts the pins by `lo` (then `hi`). Overlapping pins are the config's and the CLI's to
    /// refuse; if some slip in through raw etcd writes, an id is matched against the pin with
    /// the greatest `lo` not above it only.
    pub fn new(mut pins: Vec<Pin>) -> Self {
        pins.sort_by_key(|p| (p.lo, p.hi));
        Pins(pins.into())
    }

    /// The pin holding `id`, if any (binary search).
    pub fn find(&self, id: u64) -> Option<&Pin> {
        let n = self.0.partition_point(|p| p.lo <= id);
        self.0[..n].last().filter(|p| p.contains(id))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Pin> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The first pair of overlapping ranges among `ranges` (`(lo, hi)`), if any.
pub fn first_overlap(ranges: &[(u64, u64)]) -> Option<((u64, u64), (u64, u64))> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    sorted
        .windows(2)
        .find(|w| w[1].0 <= w[0].1)
        .map(|w| (w[0], w[1]))
}

/// Compresses `(id, dc)` placements into ranges `(lo, hi, dc)` where consecutive ids live in the
/// same DC. Input in any order; duplicates of the same placement collapse.
pub fn compress<D: Clone + PartialEq + Ord>(placements: &[(u64, D)]) -> Vec<(u64, u64, D)> {
    let mut sorted = placements.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<(u64, u64, D)> = Vec::new();
    for (id, dc) in sorted {
        match out.last_mut() {
            Some((_, hi, d)) if *d == dc && hi.checked_add(1) == Some(id) => *hi = id,
            _ => out.push((id, id, dc)),
        }
    }
    out
}

/// The value to store in Coopr's id counter (ZooKeeper `/ids/clusters`) so that the next id is
/// above `after` and in the partition of `start`/`increment` (Coopr's `server.ids.start.num`
/// and `server.ids.increment.by`): the least `v > after` with `v ≡ start (mod increment)`.
/// `IdService` hands out the stored counter and adds `increment` to it, so the settings alone
/// never move an existing counter.
pub fn next_counter(after: u64, start: u64, increment: u64) -> u64 {
    let inc = increment.max(1);
    let want = start % inc;
    let base = after.saturating_add(1);
    let have = base % inc;
    base.saturating_add((want + inc - have) % inc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(lo: u64, hi: u64, dc: usize) -> Pin {
        Pin {
            lo,
            hi,
            dc,
            epoch: 0,
        }
    }

    #[test]
    fn find_by_range() {
        let p = Pins::new(vec![pin(10, 20, 1), pin(1, 5, 0), pin(30, 30, 2)]);
        let got: Vec<Option<usize>> = [0, 1, 5, 6, 9, 10, 20, 21, 30, 31, u64::MAX]
            .iter()
            .map(|&id| p.find(id).map(|p| p.dc))
            .collect();
        assert_eq!(
            got,
            [
                None,
                Some(0),
                Some(0),
                None,
                None,
                Some(1),
                Some(1),
                None,
                Some(2),
                None,
                None
            ]
        );
        assert!(Pins::default().find(1).is_none());
    }

    #[test]
    fn compress_runs() {
        let got = compress(&[(3, "a"), (1, "a"), (2, "a"), (5, "a"), (6, "b"), (7, "b")]);
        assert_eq!(got, vec![(1, 3, "a"), (5, 5, "a"), (6, 7, "b")]);
        assert_eq!(compress::<u8>(&[]), vec![]);
        assert_eq!(compress(&[(4, 1u8), (4, 1)]), vec![(4, 4, 1)]);
    }

    #[test]
    fn overlaps() {
        assert_eq!(first_overlap(&[(1, 5), (6, 9)]), None);
        assert_eq!(first_overlap(&[(6, 9), (1, 6)]), Some(((1, 6), (6, 9))));
        assert_eq!(first_overlap(&[(1, 9), (3, 3)]), Some(((1, 9), (3, 3))));
    }

    #[test]
    fn next_counter_lands_in_the_partition() {
        // (after, start, increment) -> next counter
        let cases = [
            ((0, 1, 1), 1),
            ((41, 1, 1), 42),
            ((41, 1, 3), 43), // 43 mod 3 == 1
            ((42, 1, 3), 43),
            ((43, 1, 3), 46),
            ((41, 3, 3), 42), // 42 mod 3 == 0 == 3 mod 3
            ((5000, 2, 3), 5003),
            ((7, 5, 0), 8), // increment 0 behaves as 1
        ];
        for ((after, start, inc), want) in cases {
            let got = next_counter(after, start, inc);
            assert_eq!(got, want, "after {after} start {start} inc {inc}");
            assert!(got > after);
            assert_eq!(got % inc.max(1), start % inc.max(1));
        }
    }
}
