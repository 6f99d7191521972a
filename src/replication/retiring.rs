//! The replica store's retirement index: every replicated cluster whose last state is
//! `terminated`, by (capture time, cluster id), kept in the same transaction as the entry, so a
//! retention sweep (`retention.rs`) reads the clusters captured before its cut instead of every
//! replicated cluster (load/SCALE.md). Which key an entry has is pure ([`terminated_at`]);
//! [`reindex`] moves it.

use super::record::Finished;
use super::store::{REPLICA, RETIRING, ReplError, Store};
use redb::ReadableTable;
use serde::Deserialize;

/// The `META` key set once the index holds every terminated cluster (stores from before it are
/// indexed when opened).
pub(super) const BUILT: &str = "retiring/built";

/// What the index needs of a stored `ReplicaEntry`.
#[derive(Deserialize)]
struct Entry {
    state: Option<Finished>,
}

/// Pure: the capture time an entry whose last state is `state` is indexed by: that state's, when
/// it is `terminated` (whether an operation is open is checked by the sweep, which reads the
/// entry). Every entry `retention::retired` at some time has one.
pub fn terminated_at(state: Option<&Finished>) -> Option<u64> {
    let f = state?;
    (f.details.get("status").and_then(serde_json::Value::as_str) == Some("terminated"))
        .then_some(f.captured_ms)
}

/// Moves cluster `id`'s key from `old` to `new` (its [`terminated_at`] before and after a
/// change), in the change's transaction.
pub(super) fn reindex(
    index: &mut redb::Table<(u64, u64), ()>,
    id: u64,
    old: Option<u64>,
    new: Option<u64>,
) -> Result<(), ReplError> {
    if old != new {
        if let Some(at) = old {
            index.remove((at, id))?;
        }
        if let Some(at) = new {
            index.insert((at, id), ())?;
        }
    }
    Ok(())
}

impl Store {
    /// Indexes every terminated replicated cluster by capture time, once per store file.
    pub(super) fn build_retiring_index(&self) -> Result<(), ReplError> {
        self.once(BUILT, |tx| {
            let entries = tx.open_table(REPLICA)?;
            let mut index = tx.open_table(RETIRING)?;
            for row in entries.iter()? {
                let (k, v) = row?;
                let Ok(e) = serde_json::from_slice::<Entry>(v.value()) else {
                    continue;
                };
                reindex(&mut index, k.value(), None, terminated_at(e.state.as_ref()))?;
            }
            Ok(())
        })
    }
}
