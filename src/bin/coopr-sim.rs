//! `coopr-sim`: a simulated Coopr server (see `coopr_router::sim`). Serves one shared state on
//! one or more listeners until Ctrl-C or SIGTERM, then stops gracefully and exits 0. Without
//! `--tasks-listen` every listener serves both APIs; with it, `--listen` serves the external API
//! (`server.port`) and `--tasks-listen` the internal one (`server.tasks.port`), as Coopr does.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use coopr_router::sim::{Port, ProvisionerConfig, Sim, SimConfig, TaskMode};
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "coopr-sim",
    about = "A simulator of the Coopr REST API",
    after_help = "Planted secrets (never to leave the owner DC): provider.provisioner.api_password = \
                  sim-secret-api-password in cluster details; nodes[].provisionerResults.ssh-auth.password = \
                  sim-secret-ssh-password once a create is done."
)]
struct Args {
    /// Address of the external API (server.port); repeat for several listeners sharing one
    /// state. Without --tasks-listen each also serves the internal API.
    #[arg(long = "listen", default_value = "127.0.0.1:55054")]
    listen: Vec<String>,
    /// Address of the internal API (server.tasks.port: /v2/tasks/*, /v2/provisioners/{id},
    /// PUT /v2/plugins/{providertypes,automatortypes}/{id}, plugin resource downloads).
    #[arg(long)]
    tasks_listen: Option<String>,
    /// Require `Authorization: Bearer TOKEN` on every request, /status included (security.enabled).
    #[arg(long)]
    security_token: Option<String>,
    /// Stored value of the id counters at start (a Coopr that ran before); default: --id-start.
    #[arg(long)]
    id_counter_start: Option<u64>,
    /// Name jobs after the cluster id as the request wrote it, and compare it as a string on plan
    /// lookups, as Coopr does.
    #[arg(long)]
    job_ids_as_written: bool,
    /// Run a solve_layout job before cluster_create and add_services, as Coopr does.
    #[arg(long)]
    solve_layout: bool,
    /// All of Coopr's rules: --job-ids-as-written --solve-layout.
    #[arg(long)]
    like_coopr: bool,
    /// How operations advance: `timer` (after --op-delay-ms) or `external` (only as provisioners
    /// take and finish their tasks).
    #[arg(long, default_value = "timer", value_parser = ["timer", "external"])]
    tasks: String,
    /// Run a built-in provisioner against this tasks API base URL (e.g. a router's provisioner
    /// listener); `self` means this simulator's own tasks listener.
    #[arg(long)]
    provisioner: Option<String>,
    /// Tenant ids the built-in provisioner takes tasks for (repeatable; default superadmin).
    #[arg(long = "provisioner-tenant")]
    provisioner_tenants: Vec<String>,
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
    let provisioner = args.provisioner.as_ref().map(|url| {
        let mut p = ProvisionerConfig {
            url: (url != "self").then(|| url.clone()),
            ..ProvisionerConfig::default()
        };
        if !args.provisioner_tenants.is_empty() {
            p.tenants = args.provisioner_tenants.clone();
        }
        p
    });
    let cfg = SimConfig {
        id_start: args.id_start,
        id_increment: args.id_increment,
        op_delay: Duration::from_millis(args.op_delay_ms),
        failure_rate: args.failure_rate,
        seed: args.seed,
        data: args.data,
        name: args.name,
        id_counter_start: args.id_counter_start,
        security_token: args.security_token,
        job_ids_as_written: args.job_ids_as_written,
        solve_layout: args.solve_layout,
        tasks: if args.tasks == "external" {
            TaskMode::External
        } else {
            TaskMode::Timer
        },
        provisioner,
    };
    let cfg = if args.like_coopr {
        cfg.like_coopr()
    } else {
        cfg
    };
    let sim = Sim::new(cfg)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut servers = Vec::new();
    let external = if args.tasks_listen.is_some() {
        Port::External
    } else {
        Port::Both
    };
    let ports = args
        .listen
        .iter()
        .map(|a| (a, external))
        .chain(args.tasks_listen.iter().map(|a| (a, Port::Internal)));
    for (addr, port) in ports {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        servers.push(tokio::spawn(
            sim.clone().serve_port(port, listener, shutdown),
        ));
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
