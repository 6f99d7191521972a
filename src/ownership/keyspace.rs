//! The etcd keyspace (docs/design.md, "The etcd keyspace"; what differs is in ARCHITECTURE.md):
//! key names under the prefix and the JSON values stored there. Pure; the etcd module does the I/O.
//!
//! | key | value |
//! |---|---|
//! | `meta` | `{"shard_count": N}` |
//! | `dcs/{dc}` | `{"peer_url": "http://…"}` (optional override of the config's peer URL) |
//! | `shards/{n}` | `{"owner": "dc1", "replicas": ["dc2"]}`; its `mod_revision` is the epoch |
//! | `history/{shard:05}/{previous epoch:020}` | [`HistoryRecord`], written in the same transaction |
//! | `alive/{dc}` | liveness (the failover issue) |
//! | `handoff/{n}` | [`HandoffValue`]: a planned move the owner executes (hold, drain, move) |
//! | `members/{dc}/{router}` | one per running router of the DC, on its lease (value: the DC) |
//! | `handoff_ack/{n}/{router}` | the epoch at which that router has drained shard `n`'s writes |
//! | `pins/{lo:020}` | [`PinValue`]: ids `lo..=hi` live in a DC; its `mod_revision` is the epoch |
//! | `history/pins/{lo:020}/{previous epoch:020}` | [`HistoryRecord`] of a pin change |

use serde::{Deserialize, Serialize};

/// A shard's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardValue {
    pub owner: String,
    #[serde(default)]
    pub replicas: Vec<String>,
}

impl ShardValue {
    /// The value after a move to `to`: the old owner becomes the first replica, and `to` leaves
    /// the replica list.
    pub fn moved_to(&self, to: &str) -> ShardValue {
        let mut replicas = vec![self.owner.clone()];
        replicas.extend(
            self.replicas
                .iter()
                .filter(|r| *r != to && **r != self.owner)
                .cloned(),
        );
        ShardValue {
            owner: to.to_string(),
            replicas,
        }
    }
}

/// A DC descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DcValue {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_url: Option<String>,
}

/// Facts about the whole map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub shard_count: u32,
}

/// An audit record of one ownership change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The shard moved, or `None` for a whole-map write (`ownership init`).
    pub shard: Option<u32>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// The shard's epoch before the change (0 for init).
    pub prev_epoch: i64,
    /// Who made it: `cli`, `failover`, `handoff`, `failback` (a handoff home after a failover).
    pub by: String,
    pub reason: String,
    pub at_ms: u64,
}

/// A planned handoff of a shard, requested by `coopr-router handoff`. The shard's owner holds new
/// writes for it, waits for its in-flight writes, then moves the shard and deletes this key in
/// one transaction. Valid only while the shard's epoch is still `epoch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoffValue {
    pub to: String,
    /// The shard's epoch when the handoff was requested.
    pub epoch: i64,
    pub by: String,
    pub reason: String,
    pub at_ms: u64,
}

/// A pin's value: ids `lo..=hi` (`lo` is in the key) live in DC `dc`'s database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinValue {
    pub hi: u64,
    pub dc: String,
    /// Who wrote it: `cli`, `adopt`, `misplaced`.
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub at_ms: u64,
}

/// The catalog's home DC (`catalog/home`): where global writes are applied first. Its
/// `mod_revision` is its epoch; it wins over `catalog.home` in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogHomeValue {
    pub dc: String,
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub at_ms: u64,
}

/// What a key under the prefix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key<'a> {
    Meta,
    Dc(&'a str),
    Shard(u32),
    History,
    Alive(&'a str),
    Handoff(u32),
    /// `pins/{lo}`: a pin starting at id `lo`.
    Pin(u64),
    /// `catalog/home`: the catalog's home DC.
    CatalogHome,
    /// Under the prefix but not ours (or malformed): ignored.
    Other,
}

impl Key<'_> {
    /// Whether a change of this key can change the routing map (heartbeats, history records and
    /// acknowledgements cannot: the watcher does not rebuild the map for them).
    pub fn shapes_the_map(&self) -> bool {
        !matches!(self, Key::History | Key::Alive(_) | Key::Other)
    }
}

/// Classifies a key. Keys outside the prefix are `Other`.
pub fn parse_key<'a>(prefix: &str, key: &'a [u8]) -> Key<'a> {
    let Ok(key) = std::str::from_utf8(key) else {
        return Key::Other;
    };
    let Some(rest) = key.strip_prefix(prefix) else {
        return Key::Other;
    };
    if rest == "meta" {
        return Key::Meta;
    }
    if let Some(n) = rest.strip_prefix("shards/") {
        // Canonical decimal only, so one shard has one key.
        return match n.parse::<u32>() {
            Ok(v) if v.to_string() == n => Key::Shard(v),
            _ => Key::Other,
        };
    }
    if let Some(dc) = rest.strip_prefix("dcs/") {
        return Key::Dc(dc);
    }
    if let Some(dc) = rest.strip_prefix("alive/") {
        return Key::Alive(dc);
    }
    if let Some(n) = rest.strip_prefix("handoff/") {
        return match n.parse::<u32>() {
            Ok(v) if v.to_string() == n => Key::Handoff(v),
            _ => Key::Other,
        };
    }
    if let Some(n) = rest.strip_prefix("pins/") {
        // Exactly 20 digits, so one pin has one key and keys sort by id.
        return match n.parse::<u64>() {
            Ok(v) if n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()) => Key::Pin(v),
            _ => Key::Other,
        };
    }
    if rest == "catalog/home" {
        return Key::CatalogHome;
    }
    if rest.starts_with("history/") {
        return Key::History;
    }
    Key::Other
}

pub fn meta_key(prefix: &str) -> String {
    format!("{prefix}meta")
}
pub fn shard_key(prefix: &str, n: u32) -> String {
    format!("{prefix}shards/{n}")
}
pub fn shards_prefix(prefix: &str) -> String {
    format!("{prefix}shards/")
}
pub fn handoff_key(prefix: &str, n: u32) -> String {
    format!("{prefix}handoff/{n}")
}
/// Every pending handoff (`handoff/`; not `handoff_ack/`).
pub fn handoffs_prefix(prefix: &str) -> String {
    format!("{prefix}handoff/")
}
pub fn pin_key(prefix: &str, lo: u64) -> String {
    format!("{prefix}pins/{lo:020}")
}
pub fn catalog_home_key(prefix: &str) -> String {
    format!("{prefix}catalog/home")
}
pub fn catalog_home_history_key(prefix: &str, prev_epoch: i64) -> String {
    format!("{prefix}history/catalog-home/{prev_epoch:020}")
}
pub fn pins_prefix(prefix: &str) -> String {
    format!("{prefix}pins/")
}
pub fn pin_history_key(prefix: &str, lo: u64, prev_epoch: i64) -> String {
    format!("{prefix}history/pins/{lo:020}/{prev_epoch:020}")
}
/// Every DC's routers (`members/`).
pub fn members_root(prefix: &str) -> String {
    format!("{prefix}members/")
}
pub fn members_prefix(prefix: &str, dc: &str) -> String {
    format!("{prefix}members/{dc}/")
}
pub fn member_key(prefix: &str, dc: &str, router: &str) -> String {
    format!("{prefix}members/{dc}/{router}")
}
pub fn handoff_acks_prefix(prefix: &str, n: u32) -> String {
    format!("{prefix}handoff_ack/{n}/")
}
pub fn handoff_ack_key(prefix: &str, n: u32, router: &str) -> String {
    format!("{prefix}handoff_ack/{n}/{router}")
}

/// A name for this router process among its DC's routers: unique per start, so a restarted
/// router is a new member.
pub fn router_instance() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "{:x}-{:x}-{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
pub fn dc_key(prefix: &str, dc: &str) -> String {
    format!("{prefix}dcs/{dc}")
}
pub fn history_key(prefix: &str, shard: Option<u32>, prev_epoch: i64, at_ms: u64) -> String {
    match shard {
        Some(s) => format!("{prefix}history/{s:05}/{prev_epoch:020}"),
        None => format!("{prefix}history/init/{at_ms:020}"),
    }
}

/// The default owner and replicas of shard `n` for `dcs` listed in id order (DC k has Coopr
/// `id_start = k + 1` and `id_increment = dcs.len()`): the owner is the shard's home DC, the
/// replicas the DCs after it.
pub fn home_assignment(dcs: &[String], n: u32) -> ShardValue {
    let len = dcs.len().max(1);
    let owner = (n as usize + len - 1) % len;
    ShardValue {
        owner: dcs.get(owner).cloned().unwrap_or_default(),
        replicas: (1..len)
            .filter_map(|k| dcs.get((owner + k) % len).cloned())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let p = "/c/";
        assert_eq!(parse_key(p, b"/c/meta"), Key::Meta);
        assert_eq!(parse_key(p, b"/c/catalog/home"), Key::CatalogHome);
        assert_eq!(parse_key(p, b"/c/catalog/homes"), Key::Other);
        assert_eq!(catalog_home_key(p), "/c/catalog/home");
        assert_eq!(parse_key(p, b"/c/shards/7"), Key::Shard(7));
        assert_eq!(parse_key(p, b"/c/shards/07"), Key::Other);
        assert_eq!(parse_key(p, b"/c/shards/x"), Key::Other);
        assert_eq!(parse_key(p, b"/c/dcs/dc1"), Key::Dc("dc1"));
        assert_eq!(parse_key(p, b"/c/alive/dc2"), Key::Alive("dc2"));
        assert_eq!(
            parse_key(p, b"/c/history/00001/00000000000000000005"),
            Key::History
        );
        assert_eq!(parse_key(p, b"/d/shards/1"), Key::Other);
        assert_eq!(parse_key(p, pin_key(p, 42).as_bytes()), Key::Pin(42));
        assert_eq!(parse_key(p, b"/c/pins/42"), Key::Other);
        assert_eq!(parse_key(p, b"/c/pins/+0000000000000000042"), Key::Other);
        assert_eq!(
            parse_key(p, pin_history_key(p, 42, 7).as_bytes()),
            Key::History
        );
        assert_eq!(parse_key(p, &[0xff, 0xfe]), Key::Other);
    }

    #[test]
    fn home_assignment_matches_coopr_id_partitions() {
        let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
        // Shard 1 holds ids 1, 4, 7 (dc1's), shard 2 dc2's, shard 0 dc3's.
        assert_eq!(home_assignment(&dcs, 1).owner, "dc1");
        assert_eq!(home_assignment(&dcs, 2).owner, "dc2");
        assert_eq!(home_assignment(&dcs, 0).owner, "dc3");
        assert_eq!(home_assignment(&dcs, 0).replicas, vec!["dc1", "dc2"]);
    }
}
