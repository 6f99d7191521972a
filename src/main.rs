//! The `coopr-router` binary's entry: the allocator, and which subcommand runs (`run`,
//! `check-config`, `demo`, `certs dev`, `status`, the etcd operator commands `ownership`,
//! `handoff` and `failover`, `adopt`, `catalog diff/sync`); each lives in `cli/`.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};
use cli::ops::CertsOp;
use cli::{adopt, catalog, certs, moves, ownership, router, runtime, status};
use coopr_router::demo;
use coopr_router::etcd::Settings;
use std::process::ExitCode;
use std::time::Duration;

/// mimalloc: less CPU per request than glibc's malloc, and size-segregated pages, so the small
/// long-lived allocations of idle connections do not pin the holes of freed request buffers
/// (load/README.md, issue 9). Its v2 (Cargo.toml's `v2` feature), not the crate's default v3:
/// v3 gives a 384-byte allocation aligned to 128 (a parked connection's tokio task) a 512-byte
/// block, v2 a 384-byte one, and the per-request cost measured the same.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CheckConfig { file } => return router::check_config(&file),
        Command::Run { config } => router::run(config),
        Command::Demo {
            base_port,
            op_delay_ms,
            etcd,
            static_map,
            no_terminal,
            mode,
            tls,
        } => router::demo(demo::Options {
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
        } => status::status(admin, config, token),
        Command::Ownership { etcd, prefix, op } => {
            ownership::ownership(Settings::new(etcd, prefix), op)
        }
        Command::Handoff {
            etcd,
            prefix,
            shard,
            from,
            to,
            reason,
            timeout_ms,
        } => runtime().and_then(|rt| {
            rt.block_on(moves::run_handoff(
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
            rt.block_on(moves::run_failover(
                Settings::new(etcd, prefix),
                &from,
                &to,
                dry_run,
                force,
            ))
        }),
        Command::Certs {
            op: CertsOp::Dev { out, dcs, hosts },
        } => certs::certs_dev(&out, &dcs, &hosts),
        Command::Adopt {
            config,
            coopr,
            user,
            tenant,
            dry_run,
        } => {
            runtime().and_then(|rt| rt.block_on(adopt::adopt(config, coopr, user, tenant, dry_run)))
        }
        Command::Catalog { config, op } => {
            match runtime().and_then(|rt| rt.block_on(catalog::catalog(config, op))) {
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
