//! The operation tracker: follows one open operation on the Coopr server that holds its shard
//! (the local one, or the standby server of an adopted shard's home DC) until it
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
    let Some(base) = inner.coopr_base(intent.shard) else {
        return Err("no Coopr server is configured".into());
    };
    let who = Who {
        base: &base,
        cluster: &intent.cluster,
        user: &intent.user,
        tenant: &intent.tenant,
    };
    let status = get(inner, &who, "/status").await?;
    let s = status.get("status").and_then(Value::as_str).unwrap_or("");
    if s == "pending" || s.is_empty() {
        return Ok(None);
    }
    let Some(c) = capture(inner, &who, Some(status)).await? else {
        return Ok(None);
    };
    let owner = c
        .details
        .pointer("/account/userId")
        .and_then(Value::as_str)
        .unwrap_or(&intent.user)
        .to_string();
    Ok(Some(seal(Finished {
        op: intent.op,
        origin: intent.origin.clone(),
        cluster: intent.cluster.clone(),
        shard: intent.shard,
        epoch: intent.epoch,
        tenant: intent.tenant.clone(),
        owner,
        action: intent.action.clone(),
        outcome: outcome_of(&intent.action, &c.final_status),
        captured_ms: now_ms(),
        details: c.details,
        status: c.status,
        config: c.config,
        services: c.services,
        plan: c.plan,
    })))
}

/// A cluster on a Coopr server, and as whom to read it.
pub(super) struct Who<'a> {
    /// The server's external API base URL, no trailing `/`.
    pub base: &'a str,
    /// 8 digits.
    pub cluster: &'a str,
    pub user: &'a str,
    pub tenant: &'a str,
}

/// A settled cluster's state as its Coopr server shows it (before [`seal`]).
pub(super) struct Captured {
    pub details: Value,
    pub status: Value,
    pub config: Value,
    pub services: Value,
    pub plan: Option<Value>,
    /// The status in the details (what readers see).
    pub final_status: String,
}

/// Reads a cluster's details, status (unless given), config, services and latest plan; `None`
/// when it is `pending` (an operation is running on it).
pub(super) async fn capture(
    inner: &Inner,
    who: &Who<'_>,
    status: Option<Value>,
) -> Result<Option<Captured>, String> {
    let status = match status {
        Some(s) => s,
        None => get(inner, who, "/status").await?,
    };
    let details = get(inner, who, "").await?;
    let config = get(inner, who, "/config").await?;
    let services = get(inner, who, "/services").await?;
    let plan = match details.get("latestJobId").and_then(Value::as_str) {
        Some(job) => get(inner, who, &format!("/plans/{job}")).await.ok(),
        None => None,
    };
    // The cluster status in the details is the one readers see; a status that went back to
    // pending between the reads means a new operation started: not settled.
    let final_status = details
        .get("status")
        .and_then(Value::as_str)
        .or_else(|| status.get("status").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    if final_status == "pending" || final_status.is_empty() {
        return Ok(None);
    }
    Ok(Some(Captured {
        details,
        status,
        config,
        services,
        plan,
        final_status,
    }))
}

/// Secrets stay home: only what replica reads need leaves this function (`secrets.rs`).
pub(super) fn seal(mut f: Finished) -> Finished {
    f.details = secrets::details(f.details);
    f.status = secrets::part(f.status);
    f.config = secrets::part(f.config);
    f.services = secrets::part(f.services);
    f.plan = f.plan.map(secrets::part);
    f
}

/// `GET {base}/v2/clusters/{id}{suffix}` as `who`'s user, with the service credential; the JSON
/// body of a 2xx.
async fn get(inner: &Inner, who: &Who<'_>, suffix: &str) -> Result<Value, String> {
    let url = format!("{}/v2/clusters/{}{suffix}", who.base, who.cluster);
    let headers = [("Coopr-UserID", who.user), ("Coopr-TenantID", who.tenant)];
    let r = inner.http.get_local(&url, &headers).await?;
    if !r.ok() {
        return Err(format!("{url}: status {}", r.status));
    }
    r.json().ok_or_else(|| format!("{url}: not JSON"))
}
