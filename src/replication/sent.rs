//! The owner side of convergence, in the store: what this router last queued for each cluster
//! (`LAST`, with its sweep [`Mark`] in `MARKS`), the peers owed a full state (`resync/{peer}`),
//! the owners this replica still has to ask for one (`ask/{dc}`), and the next sequence number.
//! (`resend.rs` queues states again from here.)
//!
//! Why the sequence numbers of a new store start at its `seq_base` (its creation time, in ms,
//! times 2^20): a replica ignores a record not newer by (epoch, sequence) than its copy, and a
//! wiped owner store would otherwise number from 1 again, so its replicas would ignore it (the
//! static map's epoch never moves) until it overtook the old numbers. A store created later
//! starts above every number an earlier store of that DC handed out, as long as that store made
//! fewer than 2^20 records per shard per millisecond of its life and the wall clock did not go
//! back between the two creations. Stores made before this rule have a base of 0 and keep
//! counting from where they are.

use super::record::Finished;
use super::store::{LAST, MARKS, META, ReplError, SEQ_BASE, Store, counter};
use super::sweep::Mark;
use redb::{ReadableDatabase, ReadableTable};
use std::collections::{BTreeMap, BTreeSet};

/// The next sequence number of `shard`: above the last one and above the store's base.
pub(super) fn next_seq(meta: &mut redb::Table<&str, u64>, shard: u32) -> Result<u64, ReplError> {
    let key = format!("seq/{shard}");
    let next = counter(meta, &key)?.max(counter(meta, SEQ_BASE)?) + 1;
    meta.insert(key.as_str(), next)?;
    Ok(next)
}

/// Records `f` as the last state queued for its cluster (in the caller's transaction).
pub(super) fn note_last(tx: &redb::WriteTransaction, f: &Finished) -> Result<(), ReplError> {
    let Ok(id) = f.cluster.parse::<u64>() else {
        return Ok(());
    };
    tx.open_table(LAST)?
        .insert(id, serde_json::to_vec(f)?.as_slice())?;
    let mark = Mark::of_details(&f.details);
    tx.open_table(MARKS)?
        .insert(id, serde_json::to_vec(&mark)?.as_slice())?;
    Ok(())
}

/// Marks `peers` as owed the full state (a record for them was dropped).
pub(super) fn owe(meta: &mut redb::Table<&str, u64>, peers: &[String]) -> Result<(), ReplError> {
    for p in peers {
        meta.insert(format!("resync/{p}").as_str(), 1)?;
    }
    Ok(())
}

impl Store {
    /// The mark of the last state queued for each cluster.
    pub fn marks(&self) -> Result<BTreeMap<u64, Mark>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(MARKS)?;
        let mut out = BTreeMap::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.insert(k.value(), serde_json::from_slice(v.value())?);
        }
        Ok(out)
    }

    /// The clusters with an operation open at this owner (their trackers replicate them).
    pub fn open_clusters(&self) -> Result<BTreeSet<u64>, ReplError> {
        Ok(self
            .open_ops()?
            .iter()
            .filter_map(|i| i.cluster.parse().ok())
            .collect())
    }

    /// The peers owed the full state.
    pub fn owed(&self) -> Result<Vec<String>, ReplError> {
        flags(self, "resync/")
    }

    /// Records that `peer` is owed the full state (it asked).
    pub fn want_resync(&self, peer: &str) -> Result<(), ReplError> {
        let tx = self.db()?.begin_write()?;
        owe(&mut tx.open_table(META)?, &[peer.to_string()])?;
        tx.commit()?;
        Ok(())
    }

    /// Records that this (new) replica store must ask each of `dcs` for its full state.
    pub fn ask_all(&self, dcs: &[String]) -> Result<(), ReplError> {
        let tx = self.db()?.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            for dc in dcs {
                meta.insert(format!("ask/{dc}").as_str(), 1)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The DCs this replica still has to ask for their full state.
    pub fn to_ask(&self) -> Result<Vec<String>, ReplError> {
        flags(self, "ask/")
    }

    /// DC `dc` acknowledged this replica's request for its full state.
    pub fn asked(&self, dc: &str) -> Result<(), ReplError> {
        let tx = self.db()?.begin_write()?;
        tx.open_table(META)?.remove(format!("ask/{dc}").as_str())?;
        tx.commit()?;
        Ok(())
    }
}

/// The names under a `META` prefix whose flag is set.
fn flags(store: &Store, prefix: &str) -> Result<Vec<String>, ReplError> {
    let tx = store.db()?.begin_read()?;
    let meta = tx.open_table(META)?;
    let mut out = Vec::new();
    for row in meta.range(prefix..)? {
        let (k, v) = row?;
        let Some(name) = k.value().strip_prefix(prefix).map(str::to_string) else {
            break;
        };
        if v.value() > 0 {
            out.push(name);
        }
    }
    Ok(out)
}
