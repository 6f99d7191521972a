//! The embedded crash-safe store (redb: copy-on-write B-trees, every commit fsynced before it
//! returns): opening it, its tables, and the counters kept in it. The owner side (`outbox.rs`)
//! and the replica side (`replica.rs`) each own their tables' transactions; this file owns the
//! file and the error type.

use arc_swap::ArcSwapOption;
use redb::{Database, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Counters: `op` (next operation number), `outbox` (next outbox key), `seq/{shard}` (next
/// sequence number of a shard), `count/{peer}` (records queued for a peer), `seq_base` (where
/// this store's sequence numbers start, `sent.rs`), `resync/{peer}` (1: the peer gets the full
/// state of this DC's shards at the next sweep), `ask/{dc}` (1: this replica still has to ask DC
/// `dc` for its full state).
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Open operations at the owner, by operation number: the intent, as JSON.
pub(super) const OPS: TableDefinition<u64, &[u8]> = TableDefinition::new("ops");
/// Records to send, by (peer DC, outbox key): an `Envelope`, as JSON.
pub(super) const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbox");
/// The replica store, by numeric cluster id: a `ReplicaEntry`, as JSON.
pub(super) const REPLICA: TableDefinition<u64, &[u8]> = TableDefinition::new("replica");
/// The replica store's list view, by cluster id: a `ListItem` (summary + visibility facts), so a
/// list merge reads no full captured states.
pub(super) const SUMMARY: TableDefinition<u64, &[u8]> = TableDefinition::new("summary");
/// The list view's index by (tenant, owner, cluster id) (`list_index.rs`): what a caller may see
/// is one range, so a list merge never reads every replicated cluster.
pub(super) const LIST_INDEX: TableDefinition<&[u8], ()> = TableDefinition::new("list_index");
/// Node id -> replicated cluster id (`node_index.rs`): `/v2/nodes/{id}` without a scan.
pub(super) const NODES: TableDefinition<&str, u64> = TableDefinition::new("nodes");
/// Replica side: every replicated cluster whose last state is `terminated`, by (capture time,
/// cluster id) (`retention.rs`), kept in the same transactions: a retention sweep reads the
/// clusters captured before its cut, not every replicated cluster.
pub(super) const RETIRING: TableDefinition<(u64, u64), ()> = TableDefinition::new("retiring");
/// Replica side: intents with no finish yet, by cluster id (the interrupted-operations view).
pub(super) const OPEN: TableDefinition<u64, &[u8]> = TableDefinition::new("open");
/// Replica side: the owners this router has seen in its maps, by (shard, epoch): the DC name.
/// Written when a map is published (and when a batch is applied), never changed (an epoch names
/// one ownership change); read to admit records from an owner of an older epoch.
pub(super) const OWNERS: TableDefinition<(u32, u64), &str> = TableDefinition::new("owners");
/// Owner side: the last finished state this router queued for each cluster, by cluster id (a
/// `Finished`, as JSON): what a peer that needs the full state gets again (`sent.rs`).
pub(super) const LAST: TableDefinition<u64, &[u8]> = TableDefinition::new("last");
/// Owner side: the [`Mark`](super::sweep::Mark) of each `LAST` state, by cluster id (JSON),
/// which the sweep compares with the local Coopr's list.
pub(super) const MARKS: TableDefinition<u64, &[u8]> = TableDefinition::new("marks");
/// Restart-hook deliveries, by `{origin}/{op}`: a `HookOutcome`, as JSON.
pub(super) const HOOK: TableDefinition<&str, &[u8]> = TableDefinition::new("hook");

/// What can go wrong with the store. Never a panic: callers log it and retry or refuse.
#[derive(Debug, thiserror::Error)]
pub enum ReplError {
    #[error("replication store: {0}")]
    Store(#[from] redb::Error),
    #[error("replication record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("replication store task failed: {0}")]
    Task(String),
    #[error("the replication store is closed (the router is stopping)")]
    Closed,
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for ReplError {
            fn from(e: $t) -> Self {
                ReplError::Store(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The store: one redb file per router. Cheap to clone. [`Store::close`] lets go of the file
/// (once in-flight work is done), so a router restarted in the same process can open it again.
#[derive(Clone)]
pub struct Store {
    db: Arc<ArcSwapOption<Database>>,
    /// Whether this open created the file's tables (a new or wiped store).
    fresh: bool,
}

impl Store {
    /// Opens (or creates) the file and makes sure every table exists (and the list, node and
    /// retirement indexes, for a file written before them).
    pub fn open(path: &Path) -> Result<Store, ReplError> {
        let db = Database::create(path)?;
        let tx = db.begin_write()?;
        let fresh = {
            let mut meta = tx.open_table(META)?;
            let fresh = meta.is_empty()?;
            if fresh {
                meta.insert(SEQ_BASE, seq_base(now_ms()))?;
            }
            fresh
        };
        tx.open_table(LAST)?;
        tx.open_table(MARKS)?;
        tx.open_table(OPS)?;
        tx.open_table(OUTBOX)?;
        tx.open_table(REPLICA)?;
        tx.open_table(SUMMARY)?;
        tx.open_table(LIST_INDEX)?;
        tx.open_table(NODES)?;
        tx.open_table(OPEN)?;
        tx.open_table(RETIRING)?;
        tx.open_table(HOOK)?;
        tx.open_table(OWNERS)?;
        tx.commit()?;
        let store = Store {
            db: Arc::new(ArcSwapOption::from_pointee(db)),
            fresh,
        };
        store.build_list_index()?;
        store.build_node_index()?;
        store.build_retiring_index()?;
        Ok(store)
    }

    /// Whether this store was created by this open (no earlier state: new, or wiped).
    pub fn fresh(&self) -> bool {
        self.fresh
    }

    /// Runs `fill` in one write transaction unless the `META` key `done` says it already ran
    /// on this store file, and sets that key in the same transaction: a one-time migration
    /// (an index built over a store written before it existed).
    pub(super) fn once(
        &self,
        done: &str,
        fill: impl FnOnce(&redb::WriteTransaction) -> Result<(), ReplError>,
    ) -> Result<(), ReplError> {
        use redb::ReadableTable;
        let tx = self.db()?.begin_write()?;
        let ran = tx.open_table(META)?.get(done)?.is_some();
        if ran {
            tx.abort()?;
            return Ok(());
        }
        fill(&tx)?;
        tx.open_table(META)?.insert(done, 1)?;
        tx.commit()?;
        Ok(())
    }

    /// The open database, for one piece of work.
    pub(super) fn db(&self) -> Result<Arc<Database>, ReplError> {
        self.db.load_full().ok_or(ReplError::Closed)
    }

    /// Refuses new work and waits (at most `limit`) until work in flight let go of the file.
    pub async fn close(&self, limit: Duration) {
        let Some(db) = self.db.swap(None) else {
            return;
        };
        let weak = Arc::downgrade(&db);
        drop(db);
        let deadline = tokio::time::Instant::now() + limit;
        while weak.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    "replication store still in use after {limit:?}; it closes when that work ends"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Runs blocking store work off the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, ReplError> + Send + 'static,
    ) -> Result<T, ReplError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| ReplError::Task(e.to_string()))?
    }
}

impl Store {
    /// Whole seconds since `captured_ms` (the `Age` of a replica answer).
    pub fn age_seconds(captured_ms: u64) -> u64 {
        now_ms().saturating_sub(captured_ms) / 1000
    }
}

/// Where the sequence numbers of a store created at `now_ms` start (pure): its creation
/// time in ms times 2^20 (why: `sent.rs`).
pub fn seq_base(now_ms: u64) -> u64 {
    now_ms.saturating_mul(1 << 20)
}

/// The `META` key of where this store's sequence numbers start.
pub(super) const SEQ_BASE: &str = "seq_base";

/// Reads a counter (0 when absent).
pub(super) fn counter(
    t: &impl redb::ReadableTable<&'static str, u64>,
    key: &str,
) -> Result<u64, ReplError> {
    Ok(t.get(key)?.map(|v| v.value()).unwrap_or(0))
}

/// Adds `delta` (which may be negative) to a counter, never below 0; returns the old value.
pub(super) fn bump(
    t: &mut redb::Table<&str, u64>,
    key: &str,
    delta: i64,
) -> Result<u64, ReplError> {
    let old = counter(t, key)?;
    let new = if delta >= 0 {
        old.saturating_add(delta as u64)
    } else {
        old.saturating_sub(delta.unsigned_abs())
    };
    t.insert(key, new)?;
    Ok(old)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
