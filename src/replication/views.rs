//! What the admin port and the status page read of replication: each DC's catalog deliveries
//! (`/admin/catalog`), the catalog drift `/ready` warns about, each peer's outbox queue.

use super::{Replication, catalog, record, store};

impl Replication {
    /// `GET /admin/catalog`: per DC, the catalog writes queued for it (oldest first, at most
    /// `limit`), and its last answer.
    pub async fn catalog_view(&self, limit: usize) -> Result<serde_json::Value, String> {
        let table = self.inner.routes.load();
        let states = self.inner.catalog.snapshot();
        let mut dcs = serde_json::Map::new();
        for dc in (0..table.dcs.len()).filter(|&dc| dc != table.local) {
            let name = table.dc_name(dc).to_string();
            let q = catalog::queue(&name);
            let (pending, queued) = self
                .inner
                .store
                .run(move |s| Ok((s.peek(&q, limit)?, s.queued(&q)?)))
                .await
                .map_err(|e| e.to_string())?;
            let pending: Vec<serde_json::Value> = pending
                .records
                .iter()
                .filter_map(|r| serde_json::from_slice::<catalog::CatalogRecord>(r).ok())
                .map(|r| {
                    serde_json::json!({
                        "write": format!("{} {}", r.method, r.target),
                        "time_ms": r.time_ms,
                        "home_status": r.home_status,
                    })
                })
                .collect();
            let st = states.get(&name).cloned().unwrap_or_default();
            dcs.insert(
                name,
                serde_json::json!({
                    "queued": queued,
                    "pending": pending,
                    "delivered": st.delivered,
                    "refused": st.refused,
                    "attempts": st.attempts,
                    "last": {
                        "write": st.last_write,
                        "status": st.last_status,
                        "answer": st.last_answer,
                        "at_ms": st.last_at_ms,
                    },
                }),
            );
        }
        Ok(serde_json::json!({ "dc": self.inner.local, "dcs": dcs }))
    }

    /// The DCs whose catalog differed from the home DC's at the last comparison, with the
    /// number of differences (`/ready` warns, it does not fail).
    pub fn catalog_drift(&self) -> Vec<(String, usize)> {
        let m = self.inner.drift.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter_map(|(dc, n)| n.filter(|&n| n > 0).map(|n| (dc.clone(), n)))
            .collect()
    }

    /// Each peer's outbox queue (the status page): records not yet acknowledged and the age of
    /// the oldest of them, which is how far that peer is behind this DC.
    pub async fn peer_queues(&self) -> Vec<PeerQueue> {
        let table = self.inner.routes.load();
        let mut out = Vec::new();
        let (asking, owed) = self
            .inner
            .store
            .run(|s| Ok((s.to_ask()?, s.owed()?)))
            .await
            .unwrap_or_default();
        for (i, dc) in table.dcs.iter().enumerate() {
            if i == table.local {
                continue;
            }
            let p = dc.name.clone();
            let got = self
                .inner
                .store
                .run(move |s| Ok((s.queued(&p)?, s.peek(&p, 1)?)))
                .await;
            let (queued, oldest) = match got {
                Ok((n, pending)) => (Some(n), pending.records.first().cloned()),
                Err(e) => {
                    tracing::warn!(peer = %dc.name, error = %e, "cannot read the outbox queue");
                    (None, None)
                }
            };
            let oldest_age_ms = oldest.and_then(|r| {
                let env: record::Envelope = serde_json::from_slice(&r).ok()?;
                let at = match env.record {
                    record::Record::Intent(i) => i.time_ms,
                    record::Record::Finished(f) => f.captured_ms,
                };
                Some(store::now_ms().saturating_sub(at))
            });
            out.push(PeerQueue {
                peer: dc.name.clone(),
                queued,
                oldest_age_ms,
                asking: asking.contains(&dc.name),
                owed: owed.contains(&dc.name),
            });
        }
        out
    }
}

/// One peer's outbox queue, as [`Replication::peer_queues`] reads it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PeerQueue {
    pub peer: String,
    /// Records queued for the peer (`None`: the store could not say).
    pub queued: Option<u64>,
    /// Age of the oldest queued record (`None`: nothing queued).
    pub oldest_age_ms: Option<u64>,
    /// This replica's store is new and has not yet asked that DC for its full state.
    pub asking: bool,
    /// That peer is owed the full state of this DC's shards (a record for it was dropped, or it
    /// asked); the sweep queues it once the peer's queue has room.
    pub owed: bool,
}
