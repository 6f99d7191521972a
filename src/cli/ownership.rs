//! `coopr-router ownership init / show / set / pins / pin / unpin / catalog-home`: the map,
//! pins and the catalog's home in etcd.

use super::ops::OwnershipOp;
use super::runtime;
use coopr_router::etcd::{Settings, ops};

pub fn ownership(settings: Settings, op: OwnershipOp) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match op {
            OwnershipOp::Init { dcs, shards, force } => {
                let rev = ops::init(&settings, &dcs, shards, force).await?;
                outln!(
                    "initialised {shards} shards over {} at revision {rev}",
                    dcs.join(",")
                );
            }
            OwnershipOp::Show => {
                outln!(
                    "{:>6}  {:<10} {:<24} {:>10}",
                    "shard",
                    "owner",
                    "replicas",
                    "epoch"
                );
                for r in ops::show(&settings).await? {
                    outln!(
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
                    outln!("shard {shard} is already owned by {owner} (epoch {old})");
                } else {
                    outln!("shard {shard} now owned by {owner}: epoch {old} -> {new}");
                }
            }
            OwnershipOp::Pins => {
                outln!(
                    "{:>20} {:>20}  {:<10} {:>10}  by",
                    "lo",
                    "hi",
                    "dc",
                    "epoch"
                );
                for r in coopr_router::etcd::pins::list(&settings).await? {
                    outln!(
                        "{:>20} {:>20}  {:<10} {:>10}  {} ({})",
                        r.lo,
                        r.hi,
                        r.dc,
                        r.epoch,
                        r.by,
                        r.reason
                    );
                }
            }
            OwnershipOp::Pin { ids, dc, reason } => {
                use coopr_router::etcd::pins::{PinWrite, pin};
                match pin(&settings, ids, &dc, "cli", &reason).await? {
                    PinWrite::Written(rev) => {
                        outln!("pinned {}..={} to {dc} at revision {rev}", ids.0, ids.1)
                    }
                    PinWrite::Unchanged => {
                        outln!("{}..={} is already pinned to {dc}", ids.0, ids.1)
                    }
                }
            }
            OwnershipOp::Unpin { lo, reason } => {
                match coopr_router::etcd::pins::unpin(&settings, lo, "cli", &reason).await? {
                    true => outln!("unpinned the pin at {lo}"),
                    false => outln!("no pin starts at {lo}"),
                }
            }
            OwnershipOp::CatalogHome { dc: None, .. } => {
                match coopr_router::etcd::catalog_home::get(&settings).await? {
                    Some(h) => outln!("catalog home: {} (epoch {})", h.dc, h.epoch),
                    None => outln!(
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
                    HomeWrite::Unchanged => outln!("{dc} is the catalog home already"),
                    HomeWrite::Moved { from, epoch } => outln!(
                        "catalog home: {} -> {dc} (epoch {epoch})",
                        from.as_deref().unwrap_or("(config)")
                    ),
                }
            }
        }
        Ok(())
    })
}
