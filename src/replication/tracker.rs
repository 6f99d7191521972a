//! The operation tracker: follows one open operation on the local Coopr server until it
//! finishes (`GET /v2/clusters/{id}/status` until `status` is no longer `pending`,
//! docs/coopr-api.md §5; backoff from `poll_min_ms` to `poll_max_ms`; a Coopr callback or a
//! write to the same cluster wakes it early), then captures the cluster's state (details,
//! status, config, services, latest plan; every `providerFields` removed) and queues it for the
//! shard's other DCs in the same commit that closes the operation. Open operations are in the
//! store, so a restarted router resumes them.

use super::Inner;
use super::record::{Finished, Intent, outcome_of};
use super::secrets;
use super::store::now_ms;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Follows `intent` until it is finished and queued, or the router stops.
pub(super) async fn track(inner: Arc<Inner>, intent: Intent) {
    let min = Duration::from_millis(inner.cfg.poll_min_ms);
    let max = Duration::from_millis(inner.cfg.poll_max_ms);
    let mut delay = min;
    let wake = inner.wake_cluster(&intent.cluster);
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = wake.notified() => {}
            _ = &mut stop => return,
        }
        // A poll waits on the local Coopr server: stopping must not wait for it.
        let polled = tokio::select! {
            p = poll(&inner, &intent) => p,
            _ = &mut stop => return,
        };
        match polled {
            Ok(Some(f)) => {
                let peers = inner.peers_of(f.shard);
                let cap = inner.cfg.outbox_max_records;
                let lag_from = f.captured_ms;
                match inner
                    .store
                    .run(move |s| s.finish(f, &peers, cap).map(|d| (d, peers)))
                    .await
                {
                    Ok((dropped, peers)) => {
                        inner.queued(&peers, &dropped);
                        tracing::debug!(cluster = %intent.cluster, op = intent.op, captured_ms = lag_from, "operation finished; state queued");
                        inner.release_cluster(&intent.cluster, wake);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(cluster = %intent.cluster, error = %e, "cannot record a finished operation; retrying")
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(cluster = %intent.cluster, error = %e, "operation status poll failed")
            }
        }
        delay = (delay * 2).min(max);
    }
}

/// One poll: `Some(state)` once the operation finished and its state was captured.
async fn poll(inner: &Inner, intent: &Intent) -> Result<Option<Finished>, String> {
    let status = inner.local_get(intent, "/status").await?;
    let s = status.get("status").and_then(Value::as_str).unwrap_or("");
    if s == "pending" || s.is_empty() {
        return Ok(None);
    }
    let details = inner.local_get(intent, "").await?;
    let config = inner.local_get(intent, "/config").await?;
    let services = inner.local_get(intent, "/services").await?;
    let plan = match details.get("latestJobId").and_then(Value::as_str) {
        Some(job) => inner.local_get(intent, &format!("/plans/{job}")).await.ok(),
        None => None,
    };
    // The cluster status in the details is the one readers see; a status that went back to
    // pending between the two reads means a new operation started: poll again.
    let final_status = details
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or(s)
        .to_string();
    if final_status == "pending" {
        return Ok(None);
    }
    let owner = details
        .pointer("/account/userId")
        .and_then(Value::as_str)
        .unwrap_or(&intent.user)
        .to_string();
    let mut f = Finished {
        op: intent.op,
        origin: intent.origin.clone(),
        cluster: intent.cluster.clone(),
        shard: intent.shard,
        epoch: intent.epoch,
        tenant: intent.tenant.clone(),
        owner,
        action: intent.action.clone(),
        outcome: outcome_of(&intent.action, &final_status),
        captured_ms: now_ms(),
        details,
        status,
        config,
        services,
        plan,
    };
    // Secrets stay home: only what replica reads need leaves this function (`secrets.rs`).
    f.details = secrets::details(f.details);
    f.status = secrets::part(f.status);
    f.config = secrets::part(f.config);
    f.services = secrets::part(f.services);
    f.plan = f.plan.map(secrets::part);
    Ok(Some(f))
}
