//! The sender: one task per peer DC drains that peer's outbox queue in order, in batches, to
//! `POST /replication/v1/batch` on the peer's port; a batch leaves the outbox only once the
//! peer acknowledged it (200), and is retried with backoff and jitter until then. A peer that
//! is down for an hour loses nothing (up to the outbox cap).

use super::Inner;
use crate::backoff::Backoff;
use crate::proxy::BATCH_PATH;
use bytes::{BufMut, Bytes, BytesMut};
use http::Method;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends `peer`'s queue until the router stops.
pub(super) async fn run(inner: Arc<Inner>, peer: String, base: String) {
    let url = format!("{}{BATCH_PATH}", base.trim_end_matches('/'));
    let mut backoff = Backoff::new(
        Duration::from_millis(inner.cfg.retry_min_ms),
        Duration::from_millis(inner.cfg.retry_max_ms),
    );
    let wake = inner.wake_peer(&peer);
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    let max = inner.cfg.batch_max_records;
    loop {
        let p = peer.clone();
        let pending = match inner.store.run(move |s| s.peek(&p, max)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(peer = %peer, error = %e, "cannot read the replication outbox");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    _ = &mut stop => return,
                }
            }
        };
        if pending.keys.is_empty() {
            tokio::select! {
                _ = wake.notified() => continue,
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                _ = &mut stop => return,
            }
        }
        // As many records as fit the peer's batch body limit (at least one, if it fits alone).
        let limit = inner.cfg.batch_body_bytes;
        let fit = fitting(&inner.local, &pending.records, limit);
        if fit == 0 {
            // One record larger than any batch a peer accepts: it can never be sent, and it
            // must not block the queue behind it.
            let size = pending.records.first().map_or(0, Vec::len);
            let (p, keys) = (peer.clone(), pending.keys[..1].to_vec());
            if let Err(e) = inner.store.run(move |s| s.ack(&p, &keys)).await {
                tracing::error!(peer = %peer, error = %e, "cannot remove an oversized record");
            }
            crate::metrics::replication_dropped(&peer);
            tracing::error!(peer = %peer, bytes = size, limit, "a replication record is larger than replication.batch_body_bytes; dropped (raise the limit on every router)");
            continue;
        }
        let mut pending = pending;
        pending.keys.truncate(fit);
        pending.records.truncate(fit);
        let body = batch_body(&inner.local, &pending.records);
        let started = Instant::now();
        let sent = tokio::select! {
            s = inner.http.send(Method::POST, &url, &[], body) => s,
            _ = &mut stop => return,
        };
        match sent {
            Ok(r) if r.status == 200 => {
                let n = pending.keys.len();
                let (p, keys) = (peer.clone(), pending.keys);
                if let Err(e) = inner.store.run(move |s| s.ack(&p, &keys)).await {
                    // The peer applies idempotently: sending these again is harmless.
                    tracing::error!(peer = %peer, error = %e, "cannot remove acknowledged records");
                }
                crate::metrics::replication_sent(&peer, n, started.elapsed().as_secs_f64());
                backoff.reset();
                crate::metrics::replication_queued(&peer, pending_count(&inner, &peer).await);
                continue;
            }
            Ok(r) => {
                tracing::warn!(peer = %peer, status = r.status, body = %String::from_utf8_lossy(&r.body), "peer refused a replication batch; retrying")
            }
            Err(e) => {
                tracing::info!(peer = %peer, error = %e, "peer unreachable for replication; retrying")
            }
        }
        crate::metrics::replication_retry(&peer);
        crate::metrics::replication_queued(&peer, pending_count(&inner, &peer).await);
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = &mut stop => return,
        }
    }
}

/// Records queued for `peer` (0 if the store cannot say).
async fn pending_count(inner: &Inner, peer: &str) -> u64 {
    let p = peer.to_string();
    inner.store.run(move |s| s.queued(&p)).await.unwrap_or(0)
}

/// How many of `records`, from the first, fit in one batch body of at most `limit` bytes.
pub(super) fn fitting(from: &str, records: &[Vec<u8>], limit: usize) -> usize {
    let mut size = batch_body_size(from, &[]);
    for (i, r) in records.iter().enumerate() {
        size += r.len() + usize::from(i > 0);
        if size > limit {
            return i;
        }
    }
    records.len()
}

/// The exact length of [`batch_body`]'s output.
fn batch_body_size(from: &str, records: &[Vec<u8>]) -> usize {
    let from_json = serde_json::Value::from(from).to_string().len();
    let recs: usize = records.iter().map(Vec::len).sum::<usize>() + records.len().saturating_sub(1);
    b"{\"from\":".len() + from_json + b",\"records\":[".len() + recs + b"]}".len()
}

/// `{"from": "...", "records": [...]}` built from the stored JSON without re-encoding it.
pub(super) fn batch_body(from: &str, records: &[Vec<u8>]) -> Bytes {
    let size = records.iter().map(|r| r.len() + 1).sum::<usize>() + from.len() + 32;
    let mut b = BytesMut::with_capacity(size);
    b.put_slice(b"{\"from\":");
    b.put_slice(serde_json::Value::from(from).to_string().as_bytes());
    b.put_slice(b",\"records\":[");
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            b.put_u8(b',');
        }
        b.put_slice(r);
    }
    b.put_slice(b"]}");
    b.freeze()
}

#[cfg(test)]
mod tests {
    #[test]
    fn batch_body_is_the_batch_json() {
        let recs = vec![
            br#"{"seq":1,"record":{"kind":"intent"}}"#.to_vec(),
            br#"{"seq":2}"#.to_vec(),
        ];
        let b = super::batch_body("dc\"1", &recs);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["from"], "dc\"1");
        assert_eq!(v["records"][1]["seq"], 2);
        let empty: serde_json::Value =
            serde_json::from_slice(&super::batch_body("x", &[])).unwrap();
        assert_eq!(empty["records"], serde_json::json!([]));
    }

    #[test]
    fn batches_are_cut_to_the_body_limit() {
        let recs: Vec<Vec<u8>> = (0..10).map(|i| vec![b'1'; 100 + i]).collect();
        for n in 0..=recs.len() {
            let exact = super::batch_body("dc1", &recs[..n]).len();
            assert_eq!(super::batch_body_size("dc1", &recs[..n]), exact);
            assert_eq!(super::fitting("dc1", &recs, exact), n, "limit {exact}");
            if n > 0 {
                assert_eq!(super::fitting("dc1", &recs, exact - 1), n - 1);
            }
        }
        assert_eq!(super::fitting("dc1", &recs, 10), 0);
    }
}
