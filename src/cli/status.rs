//! `coopr-router status`: reads one router's admin port or several and prints their status.

use super::runtime;
use anyhow::Context;
use coopr_router::config;
use std::path::PathBuf;
use std::time::Duration;

pub fn status(
    mut admins: Vec<String>,
    config: Option<PathBuf>,
    token: Option<String>,
) -> anyhow::Result<()> {
    let mut token = token.or_else(|| std::env::var("COOPR_ROUTER_ADMIN_TOKEN").ok());
    if let Some(path) = &config {
        let cfg = config::load(path).with_context(|| format!("config {}", path.display()))?;
        let mut addr = cfg.raw.listen.admin;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        admins.insert(0, format!("http://{addr}"));
        if token.is_none() {
            token = cfg.raw.admin.resolve_token().map_err(anyhow::Error::msg)?;
        }
    }
    if admins.is_empty() {
        anyhow::bail!("give --admin URL (repeat it for several DCs) or --config FILE");
    }
    let tls = coopr_router::tls::Material::plain()?;
    let reads = runtime()?.block_on(async {
        let up = coopr_router::status::client::client(&tls);
        let mut reads = Vec::new();
        for a in &admins {
            reads.push(
                coopr_router::status::client::read(
                    &up,
                    a,
                    token.as_deref(),
                    Duration::from_secs(5),
                )
                .await,
            );
        }
        reads
    });
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let texts: Vec<String> = reads
        .iter()
        .map(|r| coopr_router::status::term::render(r, now_ms))
        .collect();
    outln!("{}", texts.join("\n"));
    if let Some(r) = reads.iter().find(|r| r.status.is_err()) {
        anyhow::bail!("{} could not be read", r.admin);
    }
    Ok(())
}
