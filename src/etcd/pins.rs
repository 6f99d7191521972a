//! Pins in etcd (`pins/{lo}`): list, pin and unpin. Like every ownership change, a pin write is
//! one transaction that compares the key's `mod_revision` (or its absence) and writes a history
//! record (`history/pins/{lo}/{previous epoch}`). Writing a pin that already holds is a no-op, so
//! `adopt` run twice changes nothing the second time.

use super::{EtcdError, Settings, now_ms};
use crate::ownership::keyspace::{self, HistoryRecord, Key, PinValue};
use crate::routing::pins::first_overlap;
use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};

/// One pin as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRow {
    pub lo: u64,
    pub hi: u64,
    pub dc: String,
    pub epoch: i64,
    pub by: String,
    pub reason: String,
}

/// What a pin write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinWrite {
    /// Written at this revision.
    Written(i64),
    /// The same pin was already there.
    Unchanged,
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// Every pin, by `lo`.
pub async fn list(s: &Settings) -> Result<Vec<PinRow>, EtcdError> {
    let mut client = s.connect().await?;
    list_with(s, &mut client).await
}

async fn list_with(
    s: &Settings,
    client: &mut etcd_client::Client,
) -> Result<Vec<PinRow>, EtcdError> {
    let resp = s
        .within(client.get(
            keyspace::pins_prefix(&s.prefix),
            Some(GetOptions::new().with_prefix()),
        ))
        .await?;
    let mut rows = Vec::new();
    for kv in resp.kvs() {
        if let Key::Pin(lo) = keyspace::parse_key(&s.prefix, kv.key()) {
            let v: PinValue = serde_json::from_slice(kv.value())
                .map_err(|e| EtcdError::Refused(format!("pin {lo} has a bad value: {e}")))?;
            rows.push(PinRow {
                lo,
                hi: v.hi,
                dc: v.dc,
                epoch: kv.mod_revision(),
                by: v.by,
                reason: v.reason,
            });
        }
    }
    rows.sort_by_key(|r| r.lo);
    Ok(rows)
}

/// Pins ids `lo..=hi` to `dc`. Refuses a range that overlaps another pin (unpin it first); a pin
/// at the same `lo` is replaced (compared by its `mod_revision`), an identical one left alone.
pub async fn pin(
    s: &Settings,
    (lo, hi): (u64, u64),
    dc: &str,
    by: &str,
    reason: &str,
) -> Result<PinWrite, EtcdError> {
    let mut client = s.connect().await?;
    pin_with(s, &mut client, (lo, hi), dc, by, reason).await
}

/// [`pin`] on an open client.
pub async fn pin_with(
    s: &Settings,
    client: &mut etcd_client::Client,
    (lo, hi): (u64, u64),
    dc: &str,
    by: &str,
    reason: &str,
) -> Result<PinWrite, EtcdError> {
    if hi < lo || hi > i64::MAX as u64 {
        return Err(EtcdError::Refused(format!(
            "{lo}..={hi} is not a range of Coopr ids"
        )));
    }
    let p = &s.prefix;
    known_dc(s, client, dc).await?;
    let rows = list_with(s, client).await?;
    let same = rows.iter().find(|r| r.lo == lo);
    if same.is_some_and(|r| r.hi == hi && r.dc == dc) {
        return Ok(PinWrite::Unchanged);
    }
    let mut ranges: Vec<(u64, u64)> = rows
        .iter()
        .filter(|r| r.lo != lo)
        .map(|r| (r.lo, r.hi))
        .collect();
    ranges.push((lo, hi));
    if let Some((a, b)) = first_overlap(&ranges) {
        return Err(EtcdError::Refused(format!(
            "pin {lo}..={hi} overlaps an existing pin ({}..={} / {}..={}); unpin it first",
            a.0, a.1, b.0, b.1
        )));
    }
    let key = keyspace::pin_key(p, lo);
    let prev = same.map_or(0, |r| r.epoch);
    let at_ms = now_ms();
    let value = PinValue {
        hi,
        dc: dc.to_string(),
        by: by.into(),
        reason: reason.into(),
        at_ms,
    };
    let record = HistoryRecord {
        shard: None,
        from: same.map(|r| r.dc.clone()),
        to: Some(dc.to_string()),
        prev_epoch: prev,
        by: by.into(),
        reason: format!("pin {lo}..={hi} to {dc}: {reason}"),
        at_ms,
    };
    let guard = match same {
        Some(r) => Compare::mod_revision(key.as_bytes(), CompareOp::Equal, r.epoch),
        None => Compare::version(key.as_bytes(), CompareOp::Equal, 0),
    };
    let txn = Txn::new().when([guard]).and_then([
        TxnOp::put(key.as_bytes(), json(&value), None),
        TxnOp::put(keyspace::pin_history_key(p, lo, prev), json(&record), None),
    ]);
    let resp = s.within(client.txn(txn)).await?;
    if !resp.succeeded() {
        return Err(EtcdError::Refused(format!(
            "pin {lo} changed concurrently; look again and retry"
        )));
    }
    Ok(PinWrite::Written(resp.header().map_or(0, |h| h.revision())))
}

/// Removes the pin starting at `lo` (compared by its `mod_revision`), with a history record.
/// Returns whether there was one.
pub async fn unpin(s: &Settings, lo: u64, by: &str, reason: &str) -> Result<bool, EtcdError> {
    let p = &s.prefix;
    let mut client = s.connect().await?;
    let rows = list_with(s, &mut client).await?;
    let Some(old) = rows.iter().find(|r| r.lo == lo) else {
        return Ok(false);
    };
    let key = keyspace::pin_key(p, lo);
    let at_ms = now_ms();
    let record = HistoryRecord {
        shard: None,
        from: Some(old.dc.clone()),
        to: None,
        prev_epoch: old.epoch,
        by: by.into(),
        reason: format!("unpin {lo}..={}: {reason}", old.hi),
        at_ms,
    };
    let txn = Txn::new()
        .when([Compare::mod_revision(
            key.as_bytes(),
            CompareOp::Equal,
            old.epoch,
        )])
        .and_then([
            TxnOp::delete(key.as_bytes(), None),
            TxnOp::put(
                keyspace::pin_history_key(p, lo, old.epoch),
                json(&record),
                None,
            ),
        ]);
    let resp = s.within(client.txn(txn)).await?;
    if !resp.succeeded() {
        return Err(EtcdError::Refused(format!(
            "pin {lo} changed concurrently; look again and retry"
        )));
    }
    Ok(true)
}

/// Refuses a DC the map does not list under `dcs/` (when it lists any).
pub(super) async fn known_dc(
    s: &Settings,
    client: &mut etcd_client::Client,
    dc: &str,
) -> Result<(), EtcdError> {
    let resp = s
        .within(client.get(
            keyspace::dc_key(&s.prefix, ""),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ))
        .await?;
    let known: Vec<String> = resp
        .kvs()
        .iter()
        .filter_map(|kv| match keyspace::parse_key(&s.prefix, kv.key()) {
            Key::Dc(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    match known.is_empty() || known.iter().any(|d| d == dc) {
        true => Ok(()),
        false => Err(EtcdError::Refused(format!(
            "unknown DC {dc:?}; the map knows {}",
            known.join(", ")
        ))),
    }
}

/// How many history records pin `lo` has (tests and operators).
pub async fn history_count(s: &Settings, lo: u64) -> Result<usize, EtcdError> {
    let mut client = s.connect().await?;
    let prefix = format!("{}history/pins/{lo:020}/", s.prefix);
    let resp = s
        .within(client.get(
            prefix.as_bytes(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ))
        .await?;
    Ok(resp.kvs().len())
}

/// The pinner in etcd mode: pins each misplaced id to the DC that created it, retrying with
/// backoff while etcd is unreachable; a refusal (the id is pinned elsewhere meanwhile, or a
/// range overlaps) is logged and dropped.
pub async fn pinner(
    s: Settings,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<crate::ownership::misplaced::PinRequest>,
    shutdown: crate::shutdown::Shutdown,
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let req = tokio::select! {
            _ = &mut stop => return,
            req = rx.recv() => match req { Some(r) => r, None => return },
        };
        let id = req.id.get();
        let mut backoff = crate::backoff::Backoff::new(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_secs(5),
        );
        loop {
            let reason = format!("created by {}'s Coopr outside its home shards", req.dc);
            match pin(&s, (id, id), &req.dc, "misplaced", &reason).await {
                Ok(w) => {
                    tracing::warn!(cluster = %req.id, dc = %req.dc, write = ?w, "pinned a misplaced cluster id to the DC that holds it");
                    break;
                }
                Err(EtcdError::Refused(why)) => {
                    tracing::error!(cluster = %req.id, dc = %req.dc, %why, "could not pin a misplaced cluster id");
                    break;
                }
                Err(e) => {
                    tracing::warn!(cluster = %req.id, error = %e, "pinning a misplaced id failed; retrying");
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                    }
                }
            }
        }
    }
}
