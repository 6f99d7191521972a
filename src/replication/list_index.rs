//! The replica store's list index: every replicated cluster's list item is also keyed by
//! (tenant, owner, cluster id), kept in the same transaction as the item, so a merged
//! `GET /v2/clusters` reads only the clusters its caller may see (a tenant's admin: the tenant's
//! range; anyone else: their own range) instead of every replicated cluster. The key layout and
//! the caller's range are pure ([`key`], [`range_of`]); what is in range is exactly what
//! `visibility` lets the caller see (property-tested below).

use super::store::{LIST_INDEX, ReplError, SUMMARY, Store};
use super::visibility::Caller;
use redb::ReadableTable;
use serde::Deserialize;

/// The `META` key set once the index holds every list item (stores written before the index
/// existed are indexed once, when opened).
const BUILT: &str = "list_index/built";

/// Appends `s` length-prefixed, so that no tenant (or owner) is a prefix of another's range.
fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The index key of a cluster: tenant, owner (each length-prefixed), then the id big-endian.
pub fn key(tenant: &str, owner: &str, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + tenant.len() + owner.len());
    push_str(&mut k, tenant);
    push_str(&mut k, owner);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The prefix of the keys `caller` may see: the tenant's for its admin (user `admin`), the
/// tenant's and user's otherwise; `None` when a header is missing (Coopr answers 401, nothing
/// replicated is listed).
pub fn range_of(caller: Caller<'_>) -> Option<Vec<u8>> {
    let (user, tenant) = (caller.user?, caller.tenant?);
    let mut p = Vec::with_capacity(8 + tenant.len() + user.len());
    push_str(&mut p, tenant);
    if user != "admin" {
        push_str(&mut p, user);
    }
    Some(p)
}

/// The id in an index key (its last 8 bytes).
pub fn id_of(key: &[u8]) -> Option<u64> {
    let tail = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(<[u8; 8]>::try_from(tail).ok()?))
}

/// What the index needs of a stored list item (`replica::ListItem`'s JSON).
#[derive(Deserialize)]
struct Who {
    cluster: String,
    tenant: String,
    owner: String,
}

/// The index key of a stored list item.
fn key_of(item: &[u8]) -> Option<Vec<u8>> {
    let w: Who = serde_json::from_slice(item).ok()?;
    Some(key(&w.tenant, &w.owner, w.cluster.parse().ok()?))
}

/// Stores `item` (a `ListItem` as JSON) as cluster `id`'s list item and moves its index key
/// (the old one is read from the item it replaces).
pub(super) fn put(
    summaries: &mut redb::Table<u64, &[u8]>,
    index: &mut redb::Table<&[u8], ()>,
    id: u64,
    item: &[u8],
) -> Result<(), ReplError> {
    remove(summaries, index, id)?;
    summaries.insert(id, item)?;
    if let Some(k) = key_of(item) {
        index.insert(k.as_slice(), ())?;
    }
    Ok(())
}

/// Drops cluster `id`'s list item and its index key.
pub(super) fn remove(
    summaries: &mut redb::Table<u64, &[u8]>,
    index: &mut redb::Table<&[u8], ()>,
    id: u64,
) -> Result<(), ReplError> {
    let old = summaries.remove(id)?.and_then(|v| key_of(v.value()));
    if let Some(k) = old {
        index.remove(k.as_slice())?;
    }
    Ok(())
}

impl Store {
    /// Indexes every list item, once per store file (a store from before the index).
    pub(super) fn build_list_index(&self) -> Result<(), ReplError> {
        self.once(BUILT, |tx| {
            let summaries = tx.open_table(SUMMARY)?;
            let mut index = tx.open_table(LIST_INDEX)?;
            for row in summaries.iter()? {
                let (_, v) = row?;
                if let Some(k) = key_of(v.value()) {
                    index.insert(k.as_slice(), ())?;
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::fixtures::{dc1_owns_all, finished};
    use crate::replication::visibility::{Visibility, visibility};
    use proptest::prelude::*;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    fn name() -> impl Strategy<Value = String> {
        // Short names over a small alphabet (with "admin" and the empty name), so that
        // prefixes of one another and equal names are common.
        prop_oneof![
            Just("admin".to_string()),
            Just(String::new()),
            "[a\\x00b]{0,3}",
        ]
    }

    proptest! {
        /// A key is in the caller's range exactly when Coopr's rules let the caller see it.
        #[test]
        fn the_range_is_what_visibility_allows(
            tenant in name(),
            owner in name(),
            id in any::<u64>(),
            user in proptest::option::of(name()),
            caller_tenant in proptest::option::of(name()),
        ) {
            let caller = Caller { user: user.as_deref(), tenant: caller_tenant.as_deref() };
            let k = key(&tenant, &owner, id);
            let in_range = range_of(caller).is_some_and(|p| k.starts_with(&p));
            let visible = visibility(caller, &tenant, &owner) == Visibility::Visible;
            prop_assert_eq!(in_range, visible);
        }
    }

    #[test]
    fn keys_end_with_the_id_and_sort_by_tenant_then_owner() {
        let k = key("acme", "bob", 42);
        assert_eq!(k[k.len() - 8..], 42u64.to_be_bytes());
        assert_eq!(id_of(&k), Some(42));
        assert_eq!(id_of(b"short"), None);
        assert!(key("acme", "bob", 1) < key("acme", "bob", 2));
        assert_eq!(
            range_of(Caller {
                user: Some("admin"),
                tenant: Some("acme")
            }),
            Some(b"\0\0\0\x04acme".to_vec())
        );
        assert_eq!(
            range_of(Caller {
                user: None,
                tenant: Some("acme")
            }),
            None
        );
    }

    /// Clusters 1..=60 over three tenants and four owners, all of dc1's shards (this router
    /// is dc3); status `terminated` for every fifth.
    fn fin(id: u64, owner: &str, status: &str) -> crate::replication::record::Finished {
        let tenants = ["acme", "acmex", "other"];
        crate::replication::record::Finished {
            tenant: tenants[id as usize % 3 % tenants.len()].into(),
            owner: owner.into(),
            ..finished(id, status)
        }
    }

    /// For every caller: the index's answer is the full scan filtered by Coopr's rules.
    fn agrees_with_the_scan(s: &Store) -> usize {
        let users = [Some("admin"), Some("bob"), Some("eve"), Some(""), None];
        let tenants = [
            Some("acme"),
            Some("acmex"),
            Some("other"),
            Some("none"),
            None,
        ];
        let all = s.summaries(|_| true).unwrap();
        let mut seen = 0;
        for user in users {
            for tenant in tenants {
                let caller = Caller { user, tenant };
                let mut want: Vec<String> = all
                    .iter()
                    .filter(|i| visibility(caller, &i.tenant, &i.owner) == Visibility::Visible)
                    .filter(|i| i.shard != 2)
                    .map(|i| i.cluster.clone())
                    .collect();
                let mut got: Vec<String> = s
                    .visible_summaries(caller, |shard| shard != 2)
                    .unwrap()
                    .into_iter()
                    .map(|i| i.cluster)
                    .collect();
                want.sort();
                got.sort();
                assert_eq!(got, want, "{caller:?}");
                seen += got.len();
            }
        }
        seen
    }

    #[test]
    fn the_index_follows_applies_owner_changes_retirement_and_old_files() {
        use crate::replication::record::{Envelope, Record};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.redb");
        let s = Store::open(&path).unwrap();
        let t = dc1_owns_all();
        let owners = ["bob", "admin", "eve", ""];
        let batch: Vec<Envelope> = (1..=60u64)
            .map(|id| {
                let status = if id % 5 == 0 { "terminated" } else { "active" };
                Envelope {
                    seq: 1,
                    record: Record::Finished(fin(id, owners[id as usize % 4], status)),
                }
            })
            .collect();
        assert_eq!(s.apply("dc1", &t, &batch).unwrap().applied, 60);
        assert!(agrees_with_the_scan(&s) > 0);
        // A newer record names another owner: the key moves (no stale key left behind).
        let moved: Vec<Envelope> = (1..=12u64)
            .map(|id| Envelope {
                seq: 2,
                record: Record::Finished(fin(id, "eve", "active")),
            })
            .collect();
        assert_eq!(s.apply("dc1", &t, &moved).unwrap().applied, 12);
        agrees_with_the_scan(&s);
        let keys = |s: &Store| {
            let tx = s.db().unwrap().begin_read().unwrap();
            tx.open_table(LIST_INDEX).unwrap().len().unwrap()
        };
        assert_eq!(keys(&s), 60);
        // Retired clusters leave the index with their items.
        let swept = s.retire_terminated(u64::MAX, 1).unwrap();
        assert_eq!(
            swept.retired, 10,
            "every fifth, but 5 and 10 came back active"
        );
        assert_eq!(keys(&s), 60 - swept.retired);
        agrees_with_the_scan(&s);
        // A file written before the index (no index, no mark) is indexed when opened.
        {
            let tx = s.db().unwrap().begin_write().unwrap();
            tx.delete_table(LIST_INDEX).unwrap();
            tx.open_table(crate::replication::store::META)
                .unwrap()
                .remove(BUILT)
                .unwrap();
            tx.commit().unwrap();
        }
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(keys(&s), 60 - swept.retired);
        agrees_with_the_scan(&s);
    }
}
