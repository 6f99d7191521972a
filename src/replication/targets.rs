//! Where a shard's replication goes: the DCs its records are queued for, and the Coopr server
//! that holds its clusters (local, or the standby of an adopted shard's home).

use super::Inner;

impl Inner {
    /// The DCs a shard's records go to: its owner and replicas, this DC excepted.
    pub(super) fn peers_of(&self, shard: u32) -> Vec<String> {
        let table = self.routes.load();
        let Some(s) = table.shard(shard) else {
            return Vec::new();
        };
        let mut out: Vec<String> = std::iter::once(s.owner)
            .chain(s.replicas.iter().copied())
            .filter(|&dc| dc != table.local)
            .map(|dc| table.dc_name(dc).to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The external API base URL of the Coopr server that holds `shard`'s clusters: the local
    /// one, or, for a shard this DC owns away from its home DC (adopted), this DC's standby
    /// server for that home (when one is configured).
    pub(super) fn coopr_base(&self, shard: u32) -> Option<String> {
        let table = self.routes.load();
        if let Some(s) = table.shard(shard)
            && s.owner == table.local
            && let Some(home) = s.home.filter(|&h| h != table.local)
            && let Some(base) = self.http.standby_base(home)
        {
            return Some(base);
        }
        self.http.local_base()
    }
}
