//! Catalog delivery (issue 24): a global write the catalog's home DC applied is queued, in the
//! same durable outbox as replication records (a queue of its own per DC, `catalog/{dc}`, so a
//! refused catalog write never holds up cluster records), and delivered in order to every other
//! DC's router, which applies it to its own Coopr. The request is delivered as the client made
//! it: method, path and query, the caller's `Coopr-UserID`/`Coopr-TenantID`, and the body.
//! Coopr keys every catalog entity and tenant by name and makes its own ids (tenant UUIDs) and
//! timestamps, so nothing per DC is copied. A DC that refuses (capacity, down, 5xx) is retried
//! with backoff, counted, and its last answer listed (`GET /admin/catalog`); the writes behind
//! it wait, so order is kept.

use super::Inner;
use super::outbox::enqueue_bytes;
use super::store::{META, ReplError, Store, now_ms};
use crate::backoff::Backoff;
use crate::headers;
use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// The caller headers a delivery carries (Coopr's `AbstractAuthHandler` reads these two; the
/// API key is a credential and stays home).
const CALLER_HEADERS: [&str; 2] = ["coopr-userid", "coopr-tenantid"];

/// How much of a DC's refusal is kept for `/admin/catalog`.
const ANSWER_CHARS: usize = 512;

/// One global write to deliver: the request as the client made it at the home DC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogRecord {
    /// The catalog's home DC, which applied it first.
    pub origin: String,
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The caller headers ([`CALLER_HEADERS`]), as sent.
    pub headers: Vec<(String, String)>,
    /// The body as text (Coopr's catalog bodies are JSON), or hex when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_hex: Option<String>,
    /// When the home DC answered it (ms since the epoch), and what it answered.
    pub time_ms: u64,
    pub home_status: u16,
}

impl CatalogRecord {
    /// The body to send.
    pub fn body_bytes(&self) -> Bytes {
        match (&self.body, &self.body_hex) {
            (Some(t), _) => Bytes::from(t.clone()),
            (None, Some(h)) => Bytes::from(unhex(h)),
            (None, None) => Bytes::new(),
        }
    }
}

/// What a DC's answer to a delivery means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Applied (2xx).
    Applied,
    /// The DC already had it: a create answered 409 "... already exists" (a delivery sent
    /// again after its answer was lost), or a delete answered 404.
    AlreadyThere,
    /// Refused or not reached: retried with backoff, the writes behind it wait.
    Refused,
}

/// Pure: the meaning of a DC's answer to a delivered write. Coopr answers a create of a name it
/// has with 409 "... already exists" (`AdminHandler`, `SuperadminHandler`: "Tenant x already
/// exists."); its other 409s (tenant capacity: "Not enough capacity to add tenant.") are
/// refusals.
pub fn outcome(method: &str, status: u16, body: &[u8]) -> Delivery {
    match status {
        200..=299 => Delivery::Applied,
        409 if method == "POST"
            && String::from_utf8_lossy(body)
                .to_ascii_lowercase()
                .contains("already exists") =>
        {
            Delivery::AlreadyThere
        }
        404 if method == "DELETE" => Delivery::AlreadyThere,
        _ => Delivery::Refused,
    }
}

/// The outbox queue of DC `dc`'s catalog deliveries.
pub fn queue(dc: &str) -> String {
    format!("catalog/{dc}")
}

/// A DC's deliveries as `/admin/catalog` shows them (in memory; the queue itself is on disk).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DcState {
    pub delivered: u64,
    pub refused: u64,
    /// Refusals in a row of the write at the head of the queue.
    pub attempts: u64,
    pub last_status: Option<u16>,
    pub last_answer: Option<String>,
    pub last_at_ms: Option<u64>,
    /// The write the last answer was for (`POST /v2/tenants`).
    pub last_write: Option<String>,
}

/// Every DC's delivery state.
#[derive(Default)]
pub struct States(Mutex<BTreeMap<String, DcState>>);

impl States {
    fn update(&self, dc: &str, f: impl FnOnce(&mut DcState)) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(dc.to_string()).or_default());
    }
    pub fn snapshot(&self) -> BTreeMap<String, DcState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Builds the record of a write the home DC accepted.
pub fn record(
    origin: &str,
    method: &str,
    target: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    status: u16,
) -> CatalogRecord {
    let headers = CALLER_HEADERS
        .iter()
        .filter_map(|&name| {
            let v = headers.get(name)?.to_str().ok()?;
            Some((name.to_string(), v.to_string()))
        })
        .collect();
    let (body, body_hex) = match std::str::from_utf8(body) {
        Ok("") => (None, None),
        Ok(t) => (Some(t.to_string()), None),
        Err(_) => (None, Some(hex(body))),
    };
    CatalogRecord {
        origin: origin.to_string(),
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body,
        body_hex,
        time_ms: now_ms(),
        home_status: status,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    s.as_bytes()
        .chunks(2)
        .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect()
}

impl Store {
    /// Queues a catalog record for `dcs` in one commit; returns the DCs whose queue was full.
    pub fn enqueue_catalog(
        &self,
        rec: &CatalogRecord,
        dcs: &[String],
        cap: u64,
    ) -> Result<Vec<String>, ReplError> {
        let bytes = serde_json::to_vec(rec)?;
        let queues: Vec<String> = dcs.iter().map(|d| queue(d)).collect();
        let tx = self.db()?.begin_write()?;
        let dropped = {
            let mut meta = tx.open_table(META)?;
            enqueue_bytes(&tx, &mut meta, &queues, &bytes, cap)?
        };
        tx.commit()?;
        Ok(dropped
            .into_iter()
            .map(|q| q.trim_start_matches("catalog/").to_string())
            .collect())
    }
}

/// Delivers DC `dc`'s catalog queue, oldest first, one write at a time, until the router stops.
pub(super) async fn run(inner: Arc<Inner>, dc: String, base: String) {
    let base = base.trim_end_matches('/').to_string();
    let q = queue(&dc);
    let mut backoff = Backoff::new(
        Duration::from_millis(inner.cfg.retry_min_ms),
        Duration::from_millis(inner.cfg.retry_max_ms),
    );
    let wake = inner.wake_peer(&q);
    let stop = inner.shutdown.clone().wait();
    tokio::pin!(stop);
    loop {
        let qq = q.clone();
        let head = inner.store.run(move |s| s.peek(&qq, 1)).await;
        let (key, rec) = match head {
            Ok(p) => match (p.keys.first(), p.records.first()) {
                (Some(&k), Some(r)) => (k, serde_json::from_slice::<CatalogRecord>(r)),
                _ => {
                    tokio::select! {
                        _ = wake.notified() => continue,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        _ = &mut stop => return,
                    }
                }
            },
            Err(e) => {
                tracing::error!(dc = %dc, error = %e, "cannot read the catalog outbox");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    _ = &mut stop => return,
                }
            }
        };
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                // Not a record this router can read: it can never be delivered.
                tracing::error!(dc = %dc, error = %e, "unreadable catalog record; dropped");
                crate::metrics::catalog_delivery(&dc, "dropped");
                ack(&inner, &q, key).await;
                continue;
            }
        };
        let write = format!("{} {}", rec.method, rec.target);
        let Ok(method) = Method::from_bytes(rec.method.as_bytes()) else {
            tracing::error!(dc = %dc, write = %write, "catalog record with a bad method; dropped");
            crate::metrics::catalog_delivery(&dc, "dropped");
            ack(&inner, &q, key).await;
            continue;
        };
        let mut hs: Vec<(&str, &str)> = rec
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let catalog_header = headers::CATALOG;
        hs.push((catalog_header.as_str(), rec.origin.as_str()));
        let url = format!("{base}{}", rec.target);
        let sent = tokio::select! {
            s = inner.http.send(method, &url, &hs, rec.body_bytes()) => s,
            _ = &mut stop => return,
        };
        let (status, answer) = match &sent {
            Ok(r) => (
                Some(r.status),
                String::from_utf8_lossy(&r.body).into_owned(),
            ),
            Err(e) => (None, e.clone()),
        };
        let result = match status {
            Some(s) => outcome(&rec.method, s, answer.as_bytes()),
            None => Delivery::Refused,
        };
        let answer: String = answer.chars().take(ANSWER_CHARS).collect();
        let now = now_ms();
        inner.catalog.update(&dc, |st| {
            st.last_status = status;
            st.last_answer = Some(answer.clone());
            st.last_at_ms = Some(now);
            st.last_write = Some(write.clone());
            match result {
                Delivery::Refused => {
                    st.refused += 1;
                    st.attempts += 1;
                }
                Delivery::Applied | Delivery::AlreadyThere => {
                    st.delivered += 1;
                    st.attempts = 0;
                }
            }
        });
        match result {
            Delivery::Applied | Delivery::AlreadyThere => {
                let label = if result == Delivery::Applied {
                    "applied"
                } else {
                    "already_there"
                };
                crate::metrics::catalog_delivery(&dc, label);
                crate::metrics::catalog_lag(now.saturating_sub(rec.time_ms) as f64 / 1000.0);
                tracing::debug!(dc = %dc, write = %write, status = ?status, "catalog write delivered");
                ack(&inner, &q, key).await;
                backoff.reset();
            }
            Delivery::Refused => {
                crate::metrics::catalog_delivery(&dc, "refused");
                tracing::warn!(dc = %dc, write = %write, status = ?status, answer = %answer, "DC refused a catalog write; retrying (the writes behind it wait)");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => {}
                    _ = &mut stop => return,
                }
            }
        }
        let qq = q.clone();
        let n = inner.store.run(move |s| s.queued(&qq)).await.unwrap_or(0);
        crate::metrics::catalog_queued(&dc, n);
    }
}

async fn ack(inner: &Inner, q: &str, key: u64) {
    let q2 = q.to_string();
    if let Err(e) = inner.store.run(move |s| s.ack(&q2, &[key])).await {
        tracing::error!(queue = %q, error = %e, "cannot remove a delivered catalog write");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_mean_what_coopr_means() {
        use Delivery::*;
        let rows: &[(&str, u16, &str, Delivery)] = &[
            ("POST", 200, "", Applied),
            ("PUT", 204, "", Applied),
            ("DELETE", 200, "", Applied),
            // SuperadminHandler / AdminHandler: a create of a name the DC has.
            ("POST", 409, "Tenant acme already exists.", AlreadyThere),
            (
                "POST",
                409,
                "cluster template t already exists",
                AlreadyThere,
            ),
            // Tenant capacity (TenantProvisionerService): a refusal, retried.
            ("POST", 409, "Not enough capacity to add tenant.", Refused),
            ("PUT", 409, "Not enough capacity to update tenant.", Refused),
            // A PUT of something the DC lacks is not "already there".
            ("PUT", 404, "tenant acme not found", Refused),
            ("DELETE", 404, "", AlreadyThere),
            ("POST", 404, "Tenant does not exist.", Refused),
            ("POST", 502, "", Refused),
            ("POST", 503, "catalog_home_down", Refused),
            ("POST", 421, "", Refused),
            ("POST", 400, "bad", Refused),
        ];
        for &(m, status, body, want) in rows {
            assert_eq!(
                outcome(m, status, body.as_bytes()),
                want,
                "{m} {status} {body}"
            );
        }
    }

    #[test]
    fn records_carry_names_and_the_body_not_credentials() {
        let mut h = http::HeaderMap::new();
        h.insert("coopr-userid", "admin".parse().unwrap());
        h.insert("coopr-tenantid", "superadmin".parse().unwrap());
        h.insert("coopr-apikey", "secret-key".parse().unwrap());
        h.insert("authorization", "Bearer x".parse().unwrap());
        let r = record(
            "dc1",
            "POST",
            "/v2/tenants?x=1",
            &h,
            br#"{"name":"acme"}"#,
            200,
        );
        assert_eq!(
            r.headers,
            [
                ("coopr-userid".to_string(), "admin".to_string()),
                ("coopr-tenantid".to_string(), "superadmin".to_string())
            ]
        );
        assert_eq!(r.body_bytes(), Bytes::from_static(br#"{"name":"acme"}"#));
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("secret-key") && !text.contains("Bearer"));
        let bin = record("dc1", "POST", "/v2/plugins/x", &h, &[0, 159, 255, 10], 200);
        assert_eq!(bin.body, None);
        assert_eq!(bin.body_bytes(), Bytes::from_static(&[0, 159, 255, 10]));
        let back: CatalogRecord =
            serde_json::from_str(&serde_json::to_string(&bin).unwrap()).unwrap();
        assert_eq!(back, bin);
    }

    #[test]
    fn catalog_queues_keep_order_apart_from_replication_queues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let h = http::HeaderMap::new();
        let dcs = vec!["dc2".to_string(), "dc3".to_string()];
        {
            let s = Store::open(&path).unwrap();
            for n in 0..5 {
                let r = record("dc1", "PUT", &format!("/v2/services/s{n}"), &h, b"{}", 200);
                assert!(s.enqueue_catalog(&r, &dcs, 100).unwrap().is_empty());
            }
            assert_eq!(
                s.queued("dc2").unwrap(),
                0,
                "the replication queue is another"
            );
        }
        // Reopened, as after a restart: all five, in order.
        let s = Store::open(&path).unwrap();
        let p = s.peek(&queue("dc3"), 10).unwrap();
        let targets: Vec<String> = p
            .records
            .iter()
            .map(|r| serde_json::from_slice::<CatalogRecord>(r).unwrap().target)
            .collect();
        assert_eq!(
            targets,
            (0..5)
                .map(|n| format!("/v2/services/s{n}"))
                .collect::<Vec<_>>()
        );
        // A full queue drops the record for that DC only, and says which.
        let r = record("dc1", "PUT", "/v2/services/x", &h, b"{}", 200);
        assert_eq!(s.enqueue_catalog(&r, &dcs, 5).unwrap(), ["dc2", "dc3"]);
        s.ack(&queue("dc2"), &s.peek(&queue("dc2"), 10).unwrap().keys)
            .unwrap();
        assert!(s.enqueue_catalog(&r, &dcs, 5).unwrap() == ["dc3"]);
    }
}
