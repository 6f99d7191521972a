//! The catalog's home DC in etcd (`catalog/home`): read it, and move it. A move is one
//! transaction that compares the key's `mod_revision` (or its absence) and writes a history
//! record (`history/catalog-home/{previous epoch}`), like every ownership change; the key's
//! `mod_revision` is the home's epoch. Routers follow it through their watch; it wins over
//! `catalog.home` in their config.

use super::{EtcdError, Settings, now_ms};
use crate::ownership::keyspace::{self, CatalogHomeValue, HistoryRecord};
use etcd_client::{Compare, CompareOp, Txn, TxnOp};

/// The home as stored: its DC and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeRow {
    pub dc: String,
    pub epoch: i64,
}

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeWrite {
    /// Moved (or set) at this epoch, from the previous home if any.
    Moved { from: Option<String>, epoch: i64 },
    /// It was already there.
    Unchanged,
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The catalog's home in etcd, if one was set.
pub async fn get(s: &Settings) -> Result<Option<HomeRow>, EtcdError> {
    let mut client = s.connect().await?;
    get_with(s, &mut client).await
}

async fn get_with(
    s: &Settings,
    client: &mut etcd_client::Client,
) -> Result<Option<HomeRow>, EtcdError> {
    let resp = s
        .within(client.get(keyspace::catalog_home_key(&s.prefix), None))
        .await?;
    match resp.kvs().first() {
        None => Ok(None),
        Some(kv) => {
            let v: CatalogHomeValue = serde_json::from_slice(kv.value())
                .map_err(|e| EtcdError::Refused(format!("catalog/home has a bad value: {e}")))?;
            Ok(Some(HomeRow {
                dc: v.dc,
                epoch: kv.mod_revision(),
            }))
        }
    }
}

/// Makes `dc` the catalog's home. Refuses a DC the map does not know; a no-op when it is the
/// home already.
pub async fn set(s: &Settings, dc: &str, by: &str, reason: &str) -> Result<HomeWrite, EtcdError> {
    let mut client = s.connect().await?;
    super::pins::known_dc(s, &mut client, dc).await?;
    let old = get_with(s, &mut client).await?;
    if old.as_ref().is_some_and(|o| o.dc == dc) {
        return Ok(HomeWrite::Unchanged);
    }
    let key = keyspace::catalog_home_key(&s.prefix);
    let prev = old.as_ref().map_or(0, |o| o.epoch);
    let at_ms = now_ms();
    let value = CatalogHomeValue {
        dc: dc.to_string(),
        by: by.into(),
        reason: reason.into(),
        at_ms,
    };
    let record = HistoryRecord {
        shard: None,
        from: old.as_ref().map(|o| o.dc.clone()),
        to: Some(dc.to_string()),
        prev_epoch: prev,
        by: by.into(),
        reason: format!("catalog home to {dc}: {reason}"),
        at_ms,
    };
    let guard = match &old {
        Some(o) => Compare::mod_revision(key.as_bytes(), CompareOp::Equal, o.epoch),
        None => Compare::version(key.as_bytes(), CompareOp::Equal, 0),
    };
    let txn = Txn::new().when([guard]).and_then([
        TxnOp::put(key.as_bytes(), json(&value), None),
        TxnOp::put(
            keyspace::catalog_home_history_key(&s.prefix, prev),
            json(&record),
            None,
        ),
    ]);
    let resp = s.within(client.txn(txn)).await?;
    if !resp.succeeded() {
        return Err(EtcdError::Refused(
            "catalog/home changed concurrently; look again and retry".into(),
        ));
    }
    Ok(HomeWrite::Moved {
        from: old.map(|o| o.dc),
        epoch: resp.header().map_or(0, |h| h.revision()),
    })
}
