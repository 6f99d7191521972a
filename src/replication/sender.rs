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
}
