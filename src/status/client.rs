//! `coopr-router status`'s reads: one router's admin port (`/admin/status.json`, `/ready`,
//! `/admin/operations`) through the `upstream` client, into a [`term::Read`].

use super::term::Read;
use crate::body::ProxyBody;
use crate::config::Timeouts;
use crate::upstream::Upstream;
use http::{Request, header};
use std::time::Duration;

/// The largest admin answer read.
const MAX_BODY: usize = 16 << 20;

/// Everything `status` shows of the router whose admin port is `admin` (`http://host:port`).
pub async fn read(up: &Upstream, admin: &str, token: Option<&str>, timeout: Duration) -> Read {
    let base = admin.trim_end_matches('/');
    let get = |path: &str| {
        let uri = format!("{base}{path}");
        async move {
            let mut req = Request::get(&uri)
                .body(ProxyBody::Empty)
                .map_err(|e| format!("{uri}: {e}"))?;
            if let Some(t) = token
                && let Ok(v) = header::HeaderValue::from_str(&format!("Bearer {t}"))
            {
                req.headers_mut().insert(header::AUTHORIZATION, v);
            }
            let r = up.fetch(req, timeout, MAX_BODY).await?;
            let json = r.json().unwrap_or(serde_json::Value::Null);
            Ok::<_, String>((r.status, json))
        }
    };
    let refused = |status: u16, v: &serde_json::Value| match v["error"].as_str() {
        Some(e) => format!("HTTP {status}: {e}"),
        None => format!("HTTP {status}"),
    };
    let status = match get("/admin/status.json").await {
        Ok((200, v)) => Ok(v),
        Ok((s, v)) => Err(refused(s, &v)),
        Err(e) => Err(e),
    };
    let ready = get("/ready").await.map(|(s, v)| {
        let failed = v["failed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["check"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        (s == 200, failed)
    });
    let ops = |state: &'static str| {
        let get = &get;
        async move {
            match get(&format!("/admin/operations?state={state}")).await {
                Ok((200, v)) => Ok(v["operations"].as_array().map_or(0, Vec::len)),
                Ok((404, _)) => Err("replication is not enabled".to_string()),
                Ok((401 | 403, _)) => Err("needs the admin token (--token)".to_string()),
                Ok((s, v)) => Err(refused(s, &v)),
                Err(e) => Err(e),
            }
        }
    };
    Read {
        admin: base.to_string(),
        status,
        ready,
        open: ops("open").await,
        interrupted: ops("interrupted").await,
    }
}

/// A client for admin ports: plain HTTP, short connect timeout.
pub fn client(tls: &crate::tls::Material) -> Upstream {
    let t = Timeouts {
        connect_ms: 2_000,
        ..Timeouts::default()
    };
    Upstream::new(&t, tls)
}
