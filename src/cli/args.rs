//! The command line's shape (clap): `Cli` and its top-level `Command`s; each subcommand's own
//! operations are in `ops.rs`.

use super::ops::{CatalogOp, CertsOp, OwnershipOp};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "coopr-router",
    version,
    about = "Routes Coopr requests to the DC that owns each cluster"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ops::parse_ids;

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
