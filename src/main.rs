//! The `coopr-router` command line: `run`, `check-config`, `demo`, `certs dev`, and the etcd
//! operator commands `ownership`, `handoff` and `failover`; `status` reads routers' admin ports.

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
    /// Three DCs on loopback, each a Coopr simulator and a router, replication on; ownership in
    /// the demo's own three-member etcd when `etcd` is on PATH (else the static map); prints
    /// each DC's status page URL.
    Demo {
        /// DC i takes BASE+100*(i-1) (client), +1 (peer), +2 (admin), +3/+4 (simulator),
        /// +5 (provisioner listener), +6/+7 (its etcd member); BASE+9 is the control endpoint.
        #[arg(long, default_value_t = 7000)]
        base_port: u16,
        /// How long a simulated operation stays pending.
        #[arg(long, default_value_t = 2000)]
        op_delay_ms: u64,
        /// Use this etcd (client URLs, comma-separated) for ownership instead of the demo's
        /// own; the map is initialised if absent.
        #[arg(long, conflicts_with = "static_map")]
        etcd: Option<String>,
        /// The embedded static map, even when `etcd` is on PATH (no failover).
        #[arg(long)]
        static_map: bool,
        /// Do not read commands from the terminal (the control endpoint still takes them).
        #[arg(long)]
        no_terminal: bool,
        /// `sharded` (each DC its own database; the default) or `shared` (one database).
        #[arg(long, default_value = "sharded", value_parser = ["sharded", "shared"])]
        mode: String,
        /// TLS on the client ports and mutual TLS between the routers, with development
        /// certificates in this folder (made there if it has no ca.pem).
        #[arg(long)]
        tls: Option<PathBuf>,
    },
    /// Print the status of one router or several (the status page's view, from their admin
    /// ports): shards and owners, DC health, replication queues, operations, last changes.
    /// Exits 1 when an admin port could not be read.
    Status {
        /// Admin URL of a router (`http://127.0.0.1:7002`); repeat for several DCs.
        #[arg(long)]
        admin: Vec<String>,
        /// A router's config file: its `listen.admin` and admin token.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The admin token (else `COOPR_ROUTER_ADMIN_TOKEN`, else the config's).
        #[arg(long)]
        token: Option<String>,
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
    /// Put the router in front of Coopr installations that already hold clusters: list every
    /// cluster in every DC, pin each where it lives (etcd source), report ids found in two DCs,
    /// and print the Coopr id settings and counter each DC needs (docs/runbook-adopt.md).
    Adopt {
        /// A router config naming every DC (id settings, shard_count, etcd, coopr.token_file).
        #[arg(long, short)]
        config: PathBuf,
        /// Each DC's Coopr external API: `--coopr dc1=http://10.1.0.10:55054` (repeat, or
        /// comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        coopr: Vec<String>,
        /// Coopr-UserID of the tenants' admin.
        #[arg(long, default_value = "admin")]
        user: String,
        /// Tenant names to list (default: every tenant, listed as the superadmin).
        #[arg(long, value_delimiter = ',')]
        tenant: Vec<String>,
        /// Print the plan and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The shared catalog (`[catalog] home`), through the admin port of the router whose config
    /// this is (a router of the catalog's home DC): `diff` prints each DC's differences from
    /// the home's catalog (exit 1 when there are any); `sync --to dcN` repairs DC dcN from it.
    Catalog {
        #[arg(long, short, global = true, default_value = "coopr-router.toml")]
        config: PathBuf,
        #[command(subcommand)]
        op: CatalogOp,
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
enum CatalogOp {
    /// Compare every other DC's catalog with the home DC's now, and print the differences.
    Diff,
    /// Queue the writes that make DC `--to`'s catalog equal to the home DC's.
    Sync {
        #[arg(long)]
        to: String,
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
    /// Print the pins: ids that live in a DC whatever their shard.
    Pins,
    /// Pin ids to the DC whose Coopr holds them (`--ids 1..=5000` or `--ids 42`); they win over
    /// the shard map and move with that DC's shards (compare-and-swap; recorded in history/).
    Pin {
        #[arg(long, value_parser = parse_ids)]
        ids: (u64, u64),
        #[arg(long)]
        dc: String,
        #[arg(long, default_value = "manual pin")]
        reason: String,
    },
    /// Remove the pin that starts at `--lo`.
    Unpin {
        #[arg(long)]
        lo: u64,
        #[arg(long, default_value = "manual unpin")]
        reason: String,
    },
    /// Show the catalog's home DC held in etcd, or move it (`--dc`): global writes are applied
    /// there first; it wins over `catalog.home` in the routers' configs.
    CatalogHome {
        #[arg(long)]
        dc: Option<String>,
        #[arg(long, default_value = "manual move of the catalog home")]
        reason: String,
    },
}

/// `1..=5000`, `1..5001` or `42`.
fn parse_ids(text: &str) -> Result<(u64, u64), String> {
    let num = |t: &str| t.trim().parse::<u64>().map_err(|e| format!("{t:?}: {e}"));
    let (lo, hi) = if let Some((a, b)) = text.split_once("..=") {
        (num(a)?, num(b)?)
    } else if let Some((a, b)) = text.split_once("..") {
        let hi = num(b)?.checked_sub(1).ok_or("empty range")?;
        (num(a)?, hi)
    } else {
        let n = num(text)?;
        (n, n)
    };
    match lo <= hi {
        true => Ok((lo, hi)),
        false => Err(format!("{text:?} is an empty range")),
    }
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
            static_map,
            no_terminal,
            mode,
            tls,
        } => demo(demo::Options {
            base: base_port,
            op_delay: Duration::from_millis(op_delay_ms),
            ownership: match (etcd, static_map) {
                (Some(url), _) => demo::OwnershipChoice::Etcd(url),
                (None, true) => demo::OwnershipChoice::Static,
                (None, false) => demo::OwnershipChoice::Auto,
            },
            shared: mode == "shared",
            tls,
            terminal: !no_terminal,
        }),
        Command::Status {
            admin,
            config,
            token,
        } => status(admin, config, token),
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
        Command::Adopt {
            config,
            coopr,
            user,
            tenant,
            dry_run,
        } => runtime().and_then(|rt| rt.block_on(adopt(config, coopr, user, tenant, dry_run))),
        Command::Catalog { config, op } => {
            match runtime().and_then(|rt| rt.block_on(catalog(config, op))) {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `catalog diff` / `catalog sync`: asks the admin port of the router `path` configures.
/// Returns whether the catalogs agree (diff) or the repair was queued (sync).
async fn catalog(path: PathBuf, op: CatalogOp) -> anyhow::Result<bool> {
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
            println!("{to}: {} writes queued", body["queued"]);
            for w in body["writes"].as_array().into_iter().flatten() {
                println!("  {}", w.as_str().unwrap_or_default());
            }
            Ok(true)
        }
        CatalogOp::Diff => {
            let mut same = true;
            for (dc, v) in body["dcs"].as_object().into_iter().flatten() {
                if let Some(e) = v["error"].as_str() {
                    println!("{dc}: not read: {e}");
                    same = false;
                    continue;
                }
                let drift = v["drift"].as_array().cloned().unwrap_or_default();
                println!(
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
                    println!("  {} {} {}{at}", s("what"), s("kind"), s("name"));
                }
                same &= drift.is_empty();
            }
            Ok(same)
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

fn demo(opts: demo::Options) -> anyhow::Result<()> {
    if opts.base > 65535 - 300 {
        anyhow::bail!("--base-port must leave room for three DCs (at most 65235)");
    }
    init_logging(false);
    runtime()?.block_on(demo::run(opts, app::signal()))?;
    Ok(())
}

fn status(
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
    println!("{}", texts.join("\n"));
    if let Some(r) = reads.iter().find(|r| r.status.is_err()) {
        anyhow::bail!("{} could not be read", r.admin);
    }
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
            OwnershipOp::Pins => {
                println!(
                    "{:>20} {:>20}  {:<10} {:>10}  by",
                    "lo", "hi", "dc", "epoch"
                );
                for r in coopr_router::etcd::pins::list(&settings).await? {
                    println!(
                        "{:>20} {:>20}  {:<10} {:>10}  {} ({})",
                        r.lo, r.hi, r.dc, r.epoch, r.by, r.reason
                    );
                }
            }
            OwnershipOp::Pin { ids, dc, reason } => {
                use coopr_router::etcd::pins::{PinWrite, pin};
                match pin(&settings, ids, &dc, "cli", &reason).await? {
                    PinWrite::Written(rev) => {
                        println!("pinned {}..={} to {dc} at revision {rev}", ids.0, ids.1)
                    }
                    PinWrite::Unchanged => {
                        println!("{}..={} is already pinned to {dc}", ids.0, ids.1)
                    }
                }
            }
            OwnershipOp::Unpin { lo, reason } => {
                match coopr_router::etcd::pins::unpin(&settings, lo, "cli", &reason).await? {
                    true => println!("unpinned the pin at {lo}"),
                    false => println!("no pin starts at {lo}"),
                }
            }
            OwnershipOp::CatalogHome { dc: None, .. } => {
                match coopr_router::etcd::catalog_home::get(&settings).await? {
                    Some(h) => println!("catalog home: {} (epoch {})", h.dc, h.epoch),
                    None => println!(
                        "no catalog home in etcd: each router uses catalog.home from its config"
                    ),
                }
            }
            OwnershipOp::CatalogHome {
                dc: Some(dc),
                reason,
            } => {
                use coopr_router::etcd::catalog_home::{HomeWrite, set};
                match set(&settings, &dc, "cli", &reason).await? {
                    HomeWrite::Unchanged => println!("{dc} is the catalog home already"),
                    HomeWrite::Moved { from, epoch } => println!(
                        "catalog home: {} -> {dc} (epoch {epoch})",
                        from.as_deref().unwrap_or("(config)")
                    ),
                }
            }
        }
        Ok(())
    })
}

async fn adopt(
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
    print!("{}", coopr_router::adopt::render(&report));
    if !report.clean() {
        anyhow::bail!("adoption is not complete: see the refused pins and duplicate ids above");
    }
    Ok(())
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

    #[test]
    fn pin_ids_are_a_range_or_one_id() {
        assert_eq!(parse_ids("1..=5000"), Ok((1, 5000)));
        assert_eq!(parse_ids("1..5001"), Ok((1, 5000)));
        assert_eq!(parse_ids("42"), Ok((42, 42)));
        assert!(parse_ids("5..=4").is_err());
        assert!(parse_ids("5..5").is_err());
        assert!(parse_ids("1..0").is_err());
        assert!(parse_ids("x").is_err());
        let Cli {
            command:
                Command::Ownership {
                    op: OwnershipOp::Pin { ids, dc, .. },
                    ..
                },
        } = Cli::try_parse_from([
            "coopr-router",
            "ownership",
            "pin",
            "--ids",
            "7..=9",
            "--dc",
            "dc2",
        ])
        .unwrap()
        else {
            panic!("the pin command");
        };
        assert_eq!((ids, dc.as_str()), ((7, 9), "dc2"));
        let Cli {
            command: Command::Adopt { coopr, dry_run, .. },
        } = Cli::try_parse_from([
            "coopr-router",
            "adopt",
            "-c",
            "r.toml",
            "--coopr",
            "dc1=http://a:1,dc2=http://b:2",
            "--dry-run",
        ])
        .unwrap()
        else {
            panic!("the adopt command");
        };
        assert_eq!(coopr.len(), 2);
        assert!(dry_run);
    }
}
