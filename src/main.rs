//! The `coopr-router` command line: `run`, `check-config`, `demo`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use coopr_router::{app, config, demo};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "coopr-router",
    version,
    about = "Routes Coopr requests to the DC that owns each cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a router.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file; exits non-zero with the key and line on error.
    CheckConfig { file: PathBuf },
    /// Three DCs on loopback, each a Coopr simulator and a router, with a static map.
    Demo {
        /// DC i takes BASE+100*(i-1) (client), +1 (peer), +2 (admin), +3 (simulator).
        #[arg(long, default_value_t = 7000)]
        base_port: u16,
        /// How long a simulated operation stays pending.
        #[arg(long, default_value_t = 2000)]
        op_delay_ms: u64,
    },
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(cfg) => {
                println!(
                    "{}: ok (dc {}, {} DCs, {} shards, {} backends)",
                    file.display(),
                    cfg.raw.dc,
                    cfg.dcs.len(),
                    cfg.shards.len(),
                    cfg.backends.len()
                );
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::FAILURE;
            }
        },
        Command::Run { config } => run(config),
        Command::Demo {
            base_port,
            op_delay_ms,
        } => demo(base_port, op_delay_ms),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(path: PathBuf) -> anyhow::Result<()> {
    let cfg = config::load(&path).with_context(|| format!("config {}", path.display()))?;
    init_logging(cfg.raw.log.format == config::LogFormat::Json);
    runtime()?.block_on(async move {
        let listeners = app::Listeners::bind(&cfg).await?;
        let router = app::start(cfg, listeners)?;
        app::signal().await;
        tracing::info!("signal received: stopping (in-flight requests may finish)");
        router.shutdown();
        router.wait().await;
        tracing::info!("stopped");
        Ok(())
    })
}

fn demo(base_port: u16, op_delay_ms: u64) -> anyhow::Result<()> {
    if base_port > 65535 - 300 {
        anyhow::bail!("--base-port must leave room for three DCs (at most 65235)");
    }
    init_logging(false);
    runtime()?.block_on(demo::run(
        base_port,
        Duration::from_millis(op_delay_ms),
        app::signal(),
    ))?;
    Ok(())
}
