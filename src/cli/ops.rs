//! The operations of the subcommands that have their own (`certs`, `catalog`, `ownership`), and
//! `--ids`' parser.

use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum CertsOp {
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
pub enum CatalogOp {
    /// Compare every other DC's catalog with the home DC's now, and print the differences.
    Diff,
    /// Queue the writes that make DC `--to`'s catalog equal to the home DC's.
    Sync {
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
pub enum OwnershipOp {
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
pub fn parse_ids(text: &str) -> Result<(u64, u64), String> {
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
