//! `coopr-router catalog diff / sync`: asks the admin port of the router the config names, and
//! prints the answer.

use super::ops::CatalogOp;
use anyhow::Context;
use coopr_router::config;
use std::path::PathBuf;
use std::time::Duration;

/// `catalog diff` / `catalog sync`: asks the admin port of the router `path` configures.
/// Returns whether the catalogs agree (diff) or the repair was queued (sync).
pub async fn catalog(path: PathBuf, op: CatalogOp) -> anyhow::Result<bool> {
    use coopr_router::body::ProxyBody;
    let cfg = config::load(&path).with_context(|| format!("config {}", path.display()))?;
    let tls = coopr_router::tls::Material::load(&cfg).context("TLS material")?;
    let token = cfg
        .raw
        .admin
        .resolve_token()
        .map_err(anyhow::Error::msg)?
        .context("the catalog endpoints need admin.token (or admin.token_file)")?;
    let mut admin = cfg.raw.listen.admin;
    if admin.ip().is_unspecified() {
        admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let (method, target) = match &op {
        CatalogOp::Diff => (http::Method::GET, "/admin/catalog/diff".to_string()),
        CatalogOp::Sync { to } => (http::Method::POST, format!("/admin/catalog/sync?to={to}")),
    };
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{admin}{target}"))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(ProxyBody::Empty)?;
    let rt =
        coopr_router::runtime::Runtime::new(std::sync::Arc::new(cfg), std::sync::Arc::new(tls));
    let reply = rt
        .upstream
        .fetch(req, Duration::from_secs(60), 64 * 1024 * 1024)
        .await
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("admin port {admin}"))?;
    let body: serde_json::Value = serde_json::from_slice(&reply.body).with_context(|| {
        format!(
            "answer {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )
    })?;
    if !reply.ok() {
        anyhow::bail!(
            "{}: {}",
            reply.status,
            body["error"].as_str().unwrap_or_default()
        );
    }
    match op {
        CatalogOp::Sync { to } => {
            outln!("{to}: {} writes queued", body["queued"]);
            for w in body["writes"].as_array().into_iter().flatten() {
                outln!("  {}", w.as_str().unwrap_or_default());
            }
            Ok(true)
        }
        CatalogOp::Diff => {
            let mut same = true;
            for (dc, v) in body["dcs"].as_object().into_iter().flatten() {
                if let Some(e) = v["error"].as_str() {
                    outln!("{dc}: not read: {e}");
                    same = false;
                    continue;
                }
                let drift = v["drift"].as_array().cloned().unwrap_or_default();
                outln!(
                    "{dc}: {} differences from {}",
                    drift.len(),
                    body["home"].as_str().unwrap_or("the home")
                );
                for d in &drift {
                    let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
                    let tenant = s("tenant");
                    let at = if tenant.is_empty() {
                        String::new()
                    } else {
                        format!(" (tenant {tenant})")
                    };
                    outln!("  {} {} {}{at}", s("what"), s("kind"), s("name"));
                }
                same &= drift.is_empty();
            }
            Ok(same)
        }
    }
}
