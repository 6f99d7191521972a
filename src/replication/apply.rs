//! Replica side: applying a batch a peer sent (the sender checked against its certificate, the
//! map given a moment to catch up with a newer epoch, each record admitted), and a peer's
//! request for the full state; `ApplyError`, why a batch was not applied.

use super::record::{self, Batch};
use super::{Applied, ReplError, Replication, resync, store};
use bytes::Bytes;

impl Replication {
    /// Applies a batch a peer sent. `certified` is the DC the peer's client certificate names
    /// (mutual TLS), `None` without a certificate: then the batch's `from` is trusted, which
    /// validation allows only on a loopback peer port or with the `insecure_plaintext_peer`
    /// opt-out. Each record is then admitted against the ownership map ([`admit`]).
    pub async fn apply(&self, body: Bytes, certified: Option<&str>) -> Result<Applied, ApplyError> {
        let batch: Batch = serde_json::from_slice(&body).map_err(|_| ApplyError::Malformed)?;
        let from = batch.from.clone();
        let refuse_sender = |certified: &str| {
            crate::metrics::replication_refused("sender", 1);
            tracing::warn!(claimed = %from, certified_dc = %certified, records = batch.records.len(), "replication batch refused: its `from` is not the DC of the sender's certificate");
            ApplyError::Sender {
                claimed: from.clone(),
                certified: certified.to_string(),
            }
        };
        match certified {
            Some(dc) if dc != from => return Err(refuse_sender(dc)),
            Some(_) => {}
            // A mutual-TLS peer port whose certificate names no single DC speaks for none.
            None if self.inner.http.peer_tls() => return Err(refuse_sender("")),
            None => {}
        }
        let n = batch.records.len();
        let mut table = self.inner.routes.load();
        // A record from an epoch our map has not reached: let our watch catch up (briefly).
        if let Some(wait) = self.inner.epoch_wait
            && let Some(ahead) = batch
                .records
                .iter()
                .filter(|e| {
                    table
                        .shard(e.record.shard())
                        .is_some_and(|s| e.record.epoch() > s.epoch)
                })
                .map(|e| e.record.epoch())
                .max()
        {
            table = self.inner.routes.wait_for_revision(ahead, wait).await;
        }
        let captured: Vec<u64> = batch
            .records
            .iter()
            .filter_map(|e| match &e.record {
                record::Record::Finished(f) => Some(f.captured_ms),
                record::Record::Intent(_) => None,
            })
            .collect();
        let who = from.clone();
        let applied = self
            .inner
            .store
            .run(move |s| s.apply(&who, &table, &batch.records))
            .await
            .map_err(ApplyError::Store)?;
        for (reason, cluster, shard, epoch, seq) in &applied.refusals {
            crate::metrics::replication_refused(reason.reason(), 1);
            tracing::warn!(from = %from, cluster = %cluster, shard, epoch, seq, reason = reason.reason(), "replication record refused");
        }
        if let Some((shard, epoch, newest)) = applied.ahead {
            return Err(ApplyError::Ahead {
                shard,
                epoch,
                newest,
            });
        }
        crate::metrics::replication_applied(applied.applied, applied.ignored);
        let now = store::now_ms();
        for c in captured {
            crate::metrics::replication_lag(now.saturating_sub(c) as f64 / 1000.0);
        }
        tracing::debug!(from = %from, records = n, applied = applied.applied, refused = applied.refused, "replication batch applied");
        Ok(applied)
    }

    /// A peer asked for the full state of this DC's shards (`POST /replication/v1/resync`):
    /// recorded, then paid by the sweep. `certified` as for [`Replication::apply`].
    pub async fn resync_requested(
        &self,
        body: &[u8],
        certified: Option<&str>,
    ) -> Result<String, ApplyError> {
        resync::requested(&self.inner, body, certified).await
    }
}

/// Why a batch was not applied.
#[derive(Debug)]
pub enum ApplyError {
    /// Not a replication batch (400).
    Malformed,
    /// The store failed (503).
    Store(ReplError),
    /// `from` is not the DC of the sender's certificate (403).
    Sender { claimed: String, certified: String },
    /// A record's epoch is ahead of every map this router has seen for its shard; nothing was
    /// applied (503: the sender sends the batch again).
    Ahead { shard: u32, epoch: u64, newest: u64 },
}
