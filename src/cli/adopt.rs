//! `coopr-router adopt`: pins the clusters Coopr installations already hold, and prints the
//! report.

use anyhow::Context;
use coopr_router::config;
use std::path::PathBuf;

pub async fn adopt(
    path: PathBuf,
    coopr: Vec<String>,
    user: String,
    tenants: Vec<String>,
    dry_run: bool,
) -> anyhow::Result<()> {
    let cfg = config::load(&path).with_context(|| path.display().to_string())?;
    let coopr = coopr
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--coopr {kv:?}: give DC=URL"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = coopr_router::adopt::Options {
        coopr,
        user,
        tenants,
        dry_run,
    };
    let report = coopr_router::adopt::run(std::sync::Arc::new(cfg), &opts).await?;
    out!("{}", coopr_router::adopt::render(&report));
    if !report.clean() {
        anyhow::bail!("adoption is not complete: see the refused pins and duplicate ids above");
    }
    Ok(())
}
