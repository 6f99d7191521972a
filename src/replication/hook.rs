//! Interrupted operations: intents that arrived from another DC with no finish, in shards this
//! DC owns now (after a failover). They are listed (`GET /admin/operations?state=interrupted`)
//! and, when `replication.restart_hook` is set, each is POSTed there as JSON, retried with
//! backoff up to `hook_max_attempts`, and the outcome is recorded in the store.

use super::Inner;
use super::record::Intent;
use super::store::{HOOK, ReplError, Store, now_ms};
use http::Method;
use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// What happened when an interrupted operation was handed to the restart hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookOutcome {
    pub attempts: u32,
    pub delivered: bool,
    /// The hook's last HTTP status, or the last error.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub last_ms: u64,
    /// No more attempts (delivered, or `hook_max_attempts` reached).
    pub done: bool,
}

fn hook_key(i: &Intent) -> String {
    format!("{}/{}", i.origin, i.op)
}

impl Store {
    fn hook_outcome(&self, key: &str) -> Result<Option<HookOutcome>, ReplError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(HOOK)?;
        Ok(match t.get(key)? {
            Some(v) => Some(serde_json::from_slice(v.value())?),
            None => None,
        })
    }

    fn record_hook(&self, key: &str, o: &HookOutcome) -> Result<(), ReplError> {
        let tx = self.db()?.begin_write()?;
        tx.open_table(HOOK)?
            .insert(key, serde_json::to_vec(o)?.as_slice())?;
        tx.commit()?;
        Ok(())
    }
}

/// Intents with no finish in shards this DC owns now but whose operation another DC opened.
async fn interrupted(inner: &Inner) -> Result<Vec<Intent>, ReplError> {
    let table = inner.routes.load();
    let local = table.local;
    let open = inner
        .store
        .run(move |s| {
            s.open_intents(move |shard| table.shard(shard).is_some_and(|e| e.owner == local))
        })
        .await?;
    Ok(open
        .into_iter()
        .filter(|i| i.origin != inner.local)
        .collect())
}

/// An operation as `GET /admin/operations` shows it: ids, action, timing, never the request
/// body (it can hold whatever users put in a cluster's config) nor its path or query.
fn summary(i: &Intent) -> Value {
    json!({
        "op": i.op,
        "origin": i.origin,
        "cluster": i.cluster,
        "shard": i.shard,
        "epoch": i.epoch,
        "tenant": i.tenant,
        "user": i.user,
        "method": i.method,
        "action": i.action,
        "time_ms": i.time_ms,
        "has_body": i.body.is_some(),
    })
}

/// `GET /admin/operations?state=interrupted|open`.
pub(super) async fn operations(inner: &Inner, state: &str) -> Result<Value, String> {
    match state {
        "interrupted" => {
            let list = interrupted(inner).await.map_err(|e| e.to_string())?;
            let mut out = Vec::with_capacity(list.len());
            for i in list {
                let key = hook_key(&i);
                let hook = inner
                    .store
                    .run(move |s| s.hook_outcome(&key))
                    .await
                    .map_err(|e| e.to_string())?;
                out.push(json!({ "intent": summary(&i), "hook": hook }));
            }
            Ok(json!({ "state": "interrupted", "operations": out }))
        }
        "open" => {
            let ops = inner
                .store
                .run(|s| s.open_ops())
                .await
                .map_err(|e| e.to_string())?;
            let ops: Vec<Value> = ops.iter().map(summary).collect();
            Ok(json!({ "state": "open", "operations": ops }))
        }
        other => Err(format!(
            "unknown state {other:?}; use state=interrupted or state=open"
        )),
    }
}

/// Delivers interrupted operations to the restart hook until the router stops.
pub(super) async fn run(inner: Arc<Inner>) {
    let Some(url) = inner.cfg.restart_hook.clone() else {
        return;
    };
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut stop => return,
        }
        let list = match interrupted(&inner).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list interrupted operations");
                continue;
            }
        };
        for intent in list {
            tokio::select! {
                _ = deliver(&inner, &url, &intent) => {}
                _ = &mut stop => return,
            }
        }
    }
}

/// One delivery attempt, if one is due.
async fn deliver(inner: &Inner, url: &str, intent: &Intent) {
    let key = hook_key(intent);
    let k = key.clone();
    let prev = match inner.store.run(move |s| s.hook_outcome(&k)).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a restart-hook outcome");
            return;
        }
    };
    let mut o = prev.unwrap_or(HookOutcome {
        attempts: 0,
        delivered: false,
        last_status: None,
        last_error: None,
        last_ms: 0,
        done: false,
    });
    // Backoff: 1 s, 2 s, 4 s ... at most 60 s between attempts.
    let wait_ms = (1000u64 << o.attempts.min(6)).min(60_000);
    if o.done || (o.attempts > 0 && now_ms() < o.last_ms + wait_ms) {
        return;
    }
    let body = match serde_json::to_vec(intent) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an interrupted operation");
            return;
        }
    };
    let r = inner.http.send(Method::POST, url, &[], body.into()).await;
    o.attempts += 1;
    o.last_ms = now_ms();
    match r {
        Ok(r) => {
            o.last_status = Some(r.status);
            o.last_error = None;
            o.delivered = r.ok();
        }
        Err(e) => {
            o.last_status = None;
            o.last_error = Some(e);
        }
    }
    o.done = o.delivered || o.attempts >= inner.cfg.hook_max_attempts;
    if o.delivered {
        tracing::info!(cluster = %intent.cluster, op = intent.op, origin = %intent.origin, "interrupted operation delivered to the restart hook");
    } else if o.done {
        tracing::error!(cluster = %intent.cluster, op = intent.op, attempts = o.attempts, "restart hook never accepted an interrupted operation; giving up (see GET /admin/operations?state=interrupted)");
    } else {
        tracing::warn!(cluster = %intent.cluster, attempts = o.attempts, status = ?o.last_status, error = ?o.last_error, "restart hook delivery failed; will retry");
    }
    if let Err(e) = inner.store.run(move |s| s.record_hook(&key, &o)).await {
        tracing::warn!(error = %e, "cannot record a restart-hook outcome");
    }
}
