//! The replica store's ownership log (`OWNERS`): who owned each shard at each epoch this router
//! has seen in its maps, written once per (shard, epoch) and never changed; `replica::admit`
//! reads it to accept records from an owner of an older epoch. A publish logs the shards it
//! moved ([`owners_to_note`], pure), reading only the chunks the new map does not share with the
//! last one logged; applying a batch logs the shards of its records.

use super::store::{OWNERS, ReplError, Store};
use crate::routing::RoutingTable;
use redb::ReadableTable;

/// Pure: the shards whose (owner, epoch) `new` logs for the first time after `old` (the last
/// map logged): every shard when there is none or the shard count changed, else those whose
/// epoch or owner moved, reading only the chunks `new` does not share with `old` (under the same
/// DCs). What a publish logs, and reads, follows what it changed, not the shard count.
pub fn owners_to_note(old: Option<&RoutingTable>, new: &RoutingTable) -> Vec<u32> {
    let Some(old) = old.filter(|o| o.shard_count() == new.shard_count()) else {
        return (0..new.shard_count()).collect();
    };
    // By name: a reload may renumber the DCs (then no chunk counts as unchanged).
    let same_dcs = old
        .dcs
        .iter()
        .map(|d| &d.name)
        .eq(new.dcs.iter().map(|d| &d.name));
    fn logged(t: &RoutingTable, n: u32) -> Option<(&str, u64)> {
        t.shard(n).map(|e| (t.dc_name(e.owner), e.epoch))
    }
    new.shards
        .chunks()
        .enumerate()
        .filter(|&(k, _)| !(same_dcs && new.shards.same_chunk(&old.shards, k)))
        .flat_map(|(_, (first, chunk))| first..first + chunk.len())
        .filter_map(|n| u32::try_from(n).ok())
        .filter(|&n| logged(old, n) != logged(new, n))
        .collect()
}

/// Logs the owner of each of `shards` at its epoch in `table`, unless that epoch is logged.
pub(super) fn note(
    owners: &mut redb::Table<(u32, u64), &str>,
    table: &RoutingTable,
    shards: impl IntoIterator<Item = u32>,
) -> Result<(), ReplError> {
    for shard in shards {
        let Some(e) = table.shard(shard) else {
            continue;
        };
        if owners.get((shard, e.epoch))?.is_none() {
            owners.insert((shard, e.epoch), table.dc_name(e.owner))?;
        }
    }
    Ok(())
}

impl Store {
    /// Logs who owns `shards` of `table` at their epochs (first writer wins: an epoch names one
    /// ownership change). Called for every published map, with [`owners_to_note`]'s shards; no
    /// transaction when there are none.
    pub fn note_owners(&self, table: &RoutingTable, shards: &[u32]) -> Result<(), ReplError> {
        if shards.is_empty() {
            return Ok(());
        }
        let tx = self.db()?.begin_write()?;
        {
            let mut owners = tx.open_table(OWNERS)?;
            note(&mut owners, table, shards.iter().copied())?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::fixtures::table;

    /// A publish logs the shards whose owner or epoch it moved; the first map, or one with another
    /// shard count, is logged whole.
    #[test]
    fn owners_to_note_by_table() {
        let t = table(3, &[0, 1, 2], &[5, 5, 5]);
        type Row<'a> = (Option<RoutingTable>, RoutingTable, &'a [u32]);
        let rows: [Row<'_>; 6] = [
            (None, t.clone(), &[0, 1, 2]),
            (Some(t.clone()), t.clone(), &[]),
            // Shard 1 handed to dc1 at epoch 9.
            (Some(t.clone()), table(3, &[0, 0, 2], &[5, 9, 5]), &[1]),
            // A new epoch for the same owner (a failback to it) is a new entry in the log.
            (Some(t.clone()), table(3, &[0, 1, 2], &[5, 5, 7]), &[2]),
            // The owner alone moved (a map that did not bump the epoch): logged too.
            (Some(t.clone()), table(3, &[2, 1, 2], &[5, 5, 5]), &[0]),
            (
                Some(t.clone()),
                table(6, &[0, 1, 2, 0, 1, 2], &[5; 6]),
                &[0, 1, 2, 3, 4, 5],
            ),
        ];
        for (old, new, want) in rows {
            assert_eq!(
                owners_to_note(old.as_ref(), &new),
                want,
                "{old:?} -> {new:?}"
            );
        }
    }

    /// Logging only what moved loses nothing: the log after a sequence of maps, each logged with
    /// `owners_to_note` against the previous, is the log of every map logged whole.
    #[test]
    fn logging_what_moved_logs_what_logging_everything_did() {
        use redb::{ReadableDatabase, ReadableTable};
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Store::open(&dir.path().join("a.redb")).unwrap(),
            Store::open(&dir.path().join("b.redb")).unwrap(),
        );
        let maps = [
            table(3, &[0, 1, 2], &[5, 5, 5]),
            table(3, &[0, 0, 2], &[5, 9, 5]),
            table(3, &[0, 0, 2], &[5, 9, 5]),
            table(3, &[1, 0, 2], &[11, 9, 5]),
            table(3, &[1, 0, 0], &[11, 9, 12]),
        ];
        let mut last: Option<&RoutingTable> = None;
        for m in &maps {
            a.note_owners(m, &owners_to_note(last, m)).unwrap();
            b.note_owners(m, &(0..m.shard_count()).collect::<Vec<_>>())
                .unwrap();
            last = Some(m);
        }
        let log = |s: &Store| -> Vec<((u32, u64), String)> {
            let tx = s.db().unwrap().begin_read().unwrap();
            let t = tx.open_table(OWNERS).unwrap();
            t.iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.value(), v.value().to_string())
                })
                .collect()
        };
        assert_eq!(log(&a), log(&b));
        assert_eq!(log(&a).len(), 3 + 1 + 1 + 1);
    }

    /// After a rebuild that shares untouched chunks (what the watcher publishes), the shards to log
    /// are the moved ones, found among the chunks replaced; a table built whole from the same
    /// entries (no chunk shared) gives the same list by comparing every shard.
    #[test]
    fn owners_to_note_reads_only_the_chunks_replaced() {
        let n = 200;
        let old = table(n, &vec![0; n as usize], &vec![5; n as usize]);
        let entry = |owner, epoch| crate::routing::ShardEntry {
            owner,
            replicas: vec![],
            epoch,
            home: None,
            handoff: None,
        };
        // Shard 70 handed to dc2 at 9; shard 71 rewritten as it was (same owner and epoch).
        let new = old.with_shards_replaced(2, [(70, entry(1, 9)), (71, entry(0, 5))]);
        assert_eq!(owners_to_note(Some(&old), &new), [70]);
        let mut owners = vec![0; n as usize];
        let mut epochs = vec![5; n as usize];
        (owners[70], epochs[70]) = (1, 9);
        let whole = table(n, &owners, &epochs);
        assert_eq!(owners_to_note(Some(&old), &whole), [70]);
    }
}
