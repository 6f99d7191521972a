//! `coopr-sim`: a simulated Coopr server (see `coopr_router::sim`). Serves one shared state on
//! one or more listeners until Ctrl-C or SIGTERM, then stops gracefully and exits 0.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use coopr_router::sim::{Sim, SimConfig};
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(name = "coopr-sim", about = "A simulator of the Coopr REST API")]
struct Args {
    /// Address to listen on; repeat for several listeners sharing one state.
    #[arg(long = "listen", default_value = "127.0.0.1:55054")]
    listen: Vec<String>,
    /// First value of the id counters (server.ids.start.num).
    #[arg(long, default_value_t = 1)]
    id_start: u64,
    /// Increment of the id counters (server.ids.increment.by).
    #[arg(long, default_value_t = 1)]
    id_increment: u64,
    /// How long an operation stays pending, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    op_delay_ms: u64,
    /// Chance (0.0..=1.0) that an operation fails.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Seed for failure draws and generated ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Persist the state to this JSON file and load it at start.
    #[arg(long)]
    data: Option<PathBuf>,
    /// A label for logs.
    #[arg(long, default_value = "sim")]
    name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    // Install the handlers first, so a signal that arrives during start-up still stops cleanly.
    let signal = tokio::spawn(wait_for_signal());
    let sim = Sim::new(SimConfig {
        id_start: args.id_start,
        id_increment: args.id_increment,
        op_delay: Duration::from_millis(args.op_delay_ms),
        failure_rate: args.failure_rate,
        seed: args.seed,
        data: args.data,
        name: args.name,
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    for addr in &args.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        servers.push(tokio::spawn(sim.clone().serve(listener, shutdown)));
    }
    signal.await.context("signal task failed")??;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    for server in servers {
        server.await.context("listener task failed")??;
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}
