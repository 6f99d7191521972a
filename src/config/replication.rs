//! The `[replication]` section: its shape, defaults and validation (kept apart from the other
//! sections so the replication feature's keys live in one place).

use super::ConfigError;
use http::Uri;
use serde::{Deserialize, Serialize};

/// Replication of finished-operation state to the other DCs (docs/design.md, "Replication").
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// Off by default: without it, remote reads go to the owner DC as before.
    pub enabled: bool,
    /// The store file (redb). Default: `{dc}.replication.redb` in the working directory.
    pub path: Option<String>,
    /// Records queued per peer DC, at most. Past it, new records for that peer are dropped,
    /// logged and counted (`coopr_router_replication_dropped_total`).
    pub outbox_max_records: u64,
    /// Records per batch sent to a peer.
    pub batch_max_records: usize,
    /// The largest batch body the peer endpoint (`POST /replication/v1/batch`) accepts; a
    /// larger declared `Content-Length` is refused with 413 before the body is read. Senders
    /// split their batches to fit it (a single record larger than it cannot be sent: it is
    /// dropped, logged and counted). Every router of a deployment should use the same value.
    pub batch_body_bytes: usize,
    /// Polling of an open operation's status: first and longest interval.
    pub poll_min_ms: u64,
    pub poll_max_ms: u64,
    /// Retries of a batch a peer did not acknowledge: first and longest delay (with jitter).
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// Biggest local `GET /v2/clusters` answer the router merges replicas into; a larger one
    /// passes through unmerged.
    pub list_body_bytes: usize,
    /// Where interrupted operations are delivered (POST, the intent as JSON), e.g.
    /// `http://127.0.0.1:9000/restart`. None: they are only listed.
    pub restart_hook: Option<String>,
    /// Delivery attempts per interrupted operation before it is recorded as failed.
    pub hook_max_attempts: u32,
    /// A replicated cluster terminated longer ago than this (by its capture time) leaves the
    /// replica store, but for a small tombstone that keeps older records from bringing it back.
    /// 0: kept forever.
    pub retain_terminated_ms: u64,
    /// How often each owner compares its Coopr's clusters (of the shards it owns) with what it
    /// last replicated, and replicates every difference (anti-entropy); also when peers owed the
    /// full state get it. 0: never. Hot: read before each sweep.
    pub sweep_ms: u64,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        ReplicationConfig {
            enabled: false,
            path: None,
            outbox_max_records: 1_000_000,
            batch_max_records: 256,
            // 256 records of 16 KiB (a captured cluster state is a few KiB).
            batch_body_bytes: 4 * 1024 * 1024,
            poll_min_ms: 250,
            poll_max_ms: 5_000,
            retry_min_ms: 100,
            retry_max_ms: 10_000,
            list_body_bytes: 8 * 1024 * 1024,
            restart_hook: None,
            hook_max_attempts: 10,
            retain_terminated_ms: 7 * 24 * 3_600_000,
            sweep_ms: 60_000,
        }
    }
}

/// Checks the section; errors name the key.
pub fn validate(r: &ReplicationConfig, mode: super::OwnershipMode) -> Result<(), ConfigError> {
    let err = |key: &str, message: &str| ConfigError {
        key: format!("replication.{key}"),
        line: None,
        message: message.to_string(),
    };
    if r.enabled && mode == super::OwnershipMode::Shared {
        return Err(err(
            "enabled",
            "replication is for sharded mode: with one shared database every DC already sees every cluster",
        ));
    }
    if r.outbox_max_records == 0 {
        return Err(err("outbox_max_records", "must be at least 1"));
    }
    if r.batch_max_records == 0 || r.batch_max_records > 10_000 {
        return Err(err("batch_max_records", "must be between 1 and 10000"));
    }
    if !(64 * 1024..=256 * 1024 * 1024).contains(&r.batch_body_bytes) {
        return Err(err(
            "batch_body_bytes",
            "must be between 65536 (64 KiB) and 268435456 (256 MiB)",
        ));
    }
    if r.poll_min_ms == 0 || r.poll_max_ms < r.poll_min_ms {
        return Err(err(
            "poll_max_ms",
            "poll_min_ms must be at least 1 and poll_max_ms at least poll_min_ms",
        ));
    }
    if r.retry_min_ms == 0 || r.retry_max_ms < r.retry_min_ms {
        return Err(err(
            "retry_max_ms",
            "retry_min_ms must be at least 1 and retry_max_ms at least retry_min_ms",
        ));
    }
    if r.list_body_bytes < 1024 {
        return Err(err("list_body_bytes", "must be at least 1024"));
    }
    if r.sweep_ms != 0 && r.sweep_ms < 100 {
        return Err(err("sweep_ms", "must be 0 (off) or at least 100"));
    }
    if r.hook_max_attempts == 0 {
        return Err(err("hook_max_attempts", "must be at least 1"));
    }
    if let Some(h) = &r.restart_hook {
        parse_hook_url("replication.restart_hook", h)?;
    }
    Ok(())
}

/// Parses an `http://host:port/path` URL (a path is allowed; no user info).
fn parse_hook_url(key: &str, text: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = text
        .parse()
        .map_err(|e| hook_err(key, format!("{text:?} is not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(hook_err(
            key,
            format!("{text:?} must be an http://host:port/... URL"),
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(hook_err(key, "user info is not allowed in the URL"));
    }
    Ok(uri)
}

fn hook_err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        line: None,
        message: message.into(),
    }
}
