//! `coopr-router run`, `check-config` and `demo`: a router (or the demo's three) from a config.

use super::{init_logging, runtime};
use anyhow::Context;
use coopr_router::{app, config, demo};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn run(path: PathBuf) -> anyhow::Result<()> {
    let cfg = config::load(&path).with_context(|| format!("config {}", path.display()))?;
    init_logging(cfg.raw.log.format == config::LogFormat::Json);
    runtime()?.block_on(async move {
        let listeners = app::Listeners::bind(&cfg).await?;
        let router = app::start_with_file(cfg, Some(path), listeners)?;
        tokio::select! {
            _ = app::signal() => tracing::info!("signal received: stopping (in-flight requests may finish)"),
            _ = router.stopping() => tracing::info!("drained: stopping"),
        }
        router.shutdown();
        router.wait().await;
        tracing::info!("stopped");
        Ok(())
    })
}

pub fn demo(opts: demo::Options) -> anyhow::Result<()> {
    if opts.base > 65535 - 300 {
        anyhow::bail!("--base-port must leave room for three DCs (at most 65235)");
    }
    init_logging(false);
    runtime()?.block_on(demo::run(opts, app::signal()))?;
    Ok(())
}

/// `check-config`: the config and its TLS material load; exits non-zero with the key and line on
/// error.
pub fn check_config(file: &Path) -> ExitCode {
    match config::load(file) {
        Ok(cfg) if let Err(e) = coopr_router::tls::Material::load(&cfg) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
        Ok(cfg) => {
            outln!(
                "{}: ok (dc {}, {} DCs, {} shards, {} backends)",
                file.display(),
                cfg.raw.dc,
                cfg.dcs.len(),
                cfg.shards.len(),
                cfg.backends.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}
