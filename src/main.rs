//! The `coopr-router` command line: `run`, `check-config`, `demo`, `certs dev`, and the etcd
//! operator commands `ownership`, `handoff` and `failover`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use coopr_router::etcd::{Settings, handoff, manual, ops};
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
    /// Three DCs on loopback, each a Coopr simulator and a router, with a static map (or the
    /// map in etcd, with --etcd); no replication.
    Demo {
        /// DC i takes BASE+100*(i-1) (client), +1 (peer), +2 (admin), +3 (simulator).
        #[arg(long, default_value_t = 7000)]
        base_port: u16,
        /// How long a simulated operation stays pending.
        #[arg(long, default_value_t = 2000)]
        op_delay_ms: u64,
        /// Use this etcd (client URL) for ownership instead of the static map; the map is
        /// initialised if absent.
        #[arg(long)]
        etcd: Option<String>,
        /// `sharded` (each DC its own database; the default) or `shared` (one database).
        #[arg(long, default_value = "sharded", value_parser = ["sharded", "shared"])]
        mode: String,
        /// TLS on the client ports and mutual TLS between the routers, with development
        /// certificates in this folder (made there if it has no ca.pem).
        #[arg(long)]
        tls: Option<PathBuf>,
    },
    /// Read or change the ownership map in etcd.
    Ownership {
        /// etcd client URLs, comma-separated (before or after `show`/`init`/`set`).
        #[arg(
            long,
            global = true,
            default_value = "http://127.0.0.1:2379",
            value_delimiter = ','
        )]
        etcd: Vec<String>,
        #[arg(long, global = true, default_value = "/coopr-router/")]
        prefix: String,
        #[command(subcommand)]
        op: OwnershipOp,
    },
    /// Hand shards to another DC without losing a write (failback, maintenance): the owner holds
    /// their new writes, lets in-flight ones finish, moves them, then releases the held writes.
    Handoff {
        #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
        etcd: Vec<String>,
        #[arg(long, default_value = "/coopr-router/")]
        prefix: String,
        /// One shard...
        #[arg(long, required_unless_present = "from")]
        shard: Option<u32>,
        /// ...or every shard this DC owns.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "planned handoff")]
        reason: String,
        /// How long to wait for the moves before withdrawing what has not moved.
        #[arg(long, default_value_t = 15_000)]
        timeout_ms: u64,
    },
    /// Move every shard of a dead DC to another DC now (for `[failover] mode = "manual"`, or
    /// before the automatic failover would).
    Failover {
        #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
        etcd: Vec<String>,
        #[arg(long, default_value = "/coopr-router/")]
        prefix: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Print what would move, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Move even while `from` still holds its alive/ key (or `to` has none): waits until
        /// `from`'s routers have lost their etcd leases, and refuses if they keep them.
        #[arg(long)]
        force: bool,
    },
    /// Certificates.
    Certs {
        #[command(subcommand)]
        op: CertsOp,
    },
}

#[derive(Subcommand)]
enum CertsOp {
    /// Development certificates: a dev CA (`ca.pem`, `ca.key`) and per DC `{dc}/server.pem`
    /// (client port; localhost, 127.0.0.1, ::1 and --hosts) and `{dc}/peer.pem` (names
    /// `{dc}.peer.coopr-router`), each with its `.key`. Never for a real deployment.
    Dev {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_delimiter = ',', required = true)]
        dcs: Vec<String>,
        /// Extra host names or addresses for the client-port certificates.
        #[arg(long, value_delimiter = ',')]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum OwnershipOp {
    /// Write a fresh map: each shard owned by its home DC (DCs listed in Coopr id order:
    /// the k-th has server.ids.start.num = k), replicas the DCs after it.
    Init {
        #[arg(long, value_delimiter = ',', required = true)]
        dcs: Vec<String>,
        #[arg(long)]
        shards: u32,
        /// Overwrite an existing map.
        #[arg(long)]
        force: bool,
    },
    /// Print the map: shard, owner, replicas, epoch.
    Show,
    /// Move one shard to a new owner (compare-and-swap on its epoch; recorded in history/). A
    /// live owner is asked for a handoff (its consent); a dead one's leases are waited out.
    Set {
        #[arg(long)]
        shard: u32,
        #[arg(long)]
        owner: String,
        #[arg(long, default_value = "manual change")]
        reason: String,
    },
}

fn init_logging(json: bool) {
    coopr_router::logging::init(json);
}

/// mimalloc: less CPU per request than glibc's malloc, and size-segregated pages, so the small
/// long-lived allocations of idle connections do not pin the holes of freed request buffers
/// (load/README.md, issue 9).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => match config::load(&file) {
            Ok(cfg) if let Err(e) = coopr_router::tls::Material::load(&cfg) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::FAILURE;
            }
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
            etcd,
            mode,
            tls,
        } => demo(base_port, op_delay_ms, etcd, mode == "shared", tls),
        Command::Ownership { etcd, prefix, op } => ownership(Settings::new(etcd, prefix), op),
        Command::Handoff {
            etcd,
            prefix,
            shard,
            from,
            to,
            reason,
            timeout_ms,
        } => runtime().and_then(|rt| {
            rt.block_on(run_handoff(
                Settings::new(etcd, prefix),
                (shard, from, to),
                reason,
                Duration::from_millis(timeout_ms),
            ))
        }),
        Command::Failover {
            etcd,
            prefix,
            from,
            to,
            dry_run,
            force,
        } => runtime().and_then(|rt| {
            rt.block_on(run_failover(
                Settings::new(etcd, prefix),
                &from,
                &to,
                dry_run,
                force,
            ))
        }),
        Command::Certs {
            op: CertsOp::Dev { out, dcs, hosts },
        } => certs_dev(&out, &dcs, &hosts),
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

fn demo(
    base_port: u16,
    op_delay_ms: u64,
    etcd: Option<String>,
    shared: bool,
    tls: Option<PathBuf>,
) -> anyhow::Result<()> {
    if base_port > 65535 - 300 {
        anyhow::bail!("--base-port must leave room for three DCs (at most 65235)");
    }
    init_logging(false);
    let delay = Duration::from_millis(op_delay_ms);
    runtime()?.block_on(demo::run(
        base_port,
        delay,
        etcd,
        shared,
        tls,
        app::signal(),
    ))?;
    Ok(())
}

fn certs_dev(out: &std::path::Path, dcs: &[String], hosts: &[String]) -> anyhow::Result<()> {
    let files = coopr_router::tls::dev::write_dev_set(out, dcs, hosts)
        .with_context(|| format!("writing certificates under {}", out.display()))?;
    for f in &files {
        println!("{}", f.display());
    }
    println!(
        "development certificates only: the keys are unprotected; see certs/README.md for a real CA"
    );
    Ok(())
}

fn ownership(settings: Settings, op: OwnershipOp) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match op {
            OwnershipOp::Init { dcs, shards, force } => {
                let rev = ops::init(&settings, &dcs, shards, force).await?;
                println!(
                    "initialised {shards} shards over {} at revision {rev}",
                    dcs.join(",")
                );
            }
            OwnershipOp::Show => {
                println!(
                    "{:>6}  {:<10} {:<24} {:>10}",
                    "shard", "owner", "replicas", "epoch"
                );
                for r in ops::show(&settings).await? {
                    println!(
                        "{:>6}  {:<10} {:<24} {:>10}",
                        r.shard,
                        r.owner,
                        r.replicas.join(","),
                        r.epoch
                    );
                }
            }
            OwnershipOp::Set {
                shard,
                owner,
                reason,
            } => {
                let (old, new) = ops::set_owner(&settings, shard, &owner, "cli", &reason).await?;
                if old == new {
                    println!("shard {shard} is already owned by {owner} (epoch {old})");
                } else {
                    println!("shard {shard} now owned by {owner}: epoch {old} -> {new}");
                }
            }
        }
        Ok(())
    })
}

async fn run_handoff(
    settings: Settings,
    (shard, from, to): (Option<u32>, Option<String>, String),
    reason: String,
    timeout: Duration,
) -> anyhow::Result<()> {
    let plans = handoff::plan(&settings, shard, from.as_deref(), &to).await?;
    handoff::request(&settings, &plans, &reason).await?;
    println!(
        "requested: {} shard(s) to {to}; waiting up to {timeout:?}",
        plans.len()
    );
    let t = std::time::Instant::now();
    let outcomes = handoff::wait(&settings, &plans, timeout).await?;
    let mut failed = 0;
    for (p, o) in plans.iter().zip(&outcomes) {
        match o {
            handoff::Outcome::Moved { epoch } => println!(
                "shard {:>5}: {} -> {}, epoch {} -> {epoch}",
                p.shard, p.from, p.to, p.epoch
            ),
            handoff::Outcome::TimedOut => {
                failed += 1;
                println!(
                    "shard {:>5}: not moved in time; request withdrawn, {} keeps it",
                    p.shard, p.from
                )
            }
            handoff::Outcome::Superseded { owner, epoch } => {
                failed += 1;
                println!(
                    "shard {:>5}: changed meanwhile, now {owner} at epoch {epoch}",
                    p.shard
                )
            }
        }
    }
    println!("done in {:?}", t.elapsed());
    if failed > 0 {
        anyhow::bail!("{failed} of {} shard(s) did not move", plans.len());
    }
    Ok(())
}

async fn run_failover(
    settings: Settings,
    from: &str,
    to: &str,
    dry_run: bool,
    force: bool,
) -> anyhow::Result<()> {
    let plan = manual::plan(&settings, from, to).await?;
    let state = |alive| if alive { "alive" } else { "not alive" };
    println!(
        "{from} is {}, {to} is {}; {} shard(s) would move",
        state(plan.from_alive),
        state(plan.to_alive),
        plan.moves.len()
    );
    println!("{:>6}  {:>10}  move", "shard", "epoch");
    for m in &plan.moves {
        println!("{:>6}  {:>10}  {} -> {}", m.shard, m.epoch, m.from, m.to);
    }
    println!(
        "in-flight operations and replication lag: not checked here; with replication on, the new \
         owner lists operations left unfinished at GET /admin/operations?state=interrupted"
    );
    if dry_run {
        return Ok(());
    }
    let results = manual::execute(&settings, &plan, force).await?;
    let mut failed = 0;
    for (m, r) in plan.moves.iter().zip(results) {
        match r {
            Ok(epoch) => println!("shard {:>5}: moved to {to}, epoch {epoch}", m.shard),
            Err(why) => {
                failed += 1;
                println!("shard {:>5}: not moved: {why}", m.shard)
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} shard(s) did not move", plan.moves.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_and_prefix_go_before_or_after_the_ownership_command() {
        for args in [
            &[
                "coopr-router",
                "ownership",
                "--etcd",
                "http://10.9.0.1:2379",
                "--prefix",
                "/x/",
                "show",
            ][..],
            &[
                "coopr-router",
                "ownership",
                "show",
                "--etcd",
                "http://10.9.0.1:2379",
                "--prefix",
                "/x/",
            ][..],
        ] {
            let Cli {
                command: Command::Ownership { etcd, prefix, .. },
            } = Cli::try_parse_from(args).unwrap()
            else {
                panic!("{args:?} is the ownership command");
            };
            assert_eq!(etcd, vec!["http://10.9.0.1:2379".to_string()], "{args:?}");
            assert_eq!(prefix, "/x/", "{args:?}");
        }
    }
}
