//! `coopr-router handoff` and `failover`: moving shards between DCs in etcd, and what moved.

use coopr_router::etcd::{Settings, handoff, manual};
use std::time::Duration;

pub async fn run_handoff(
    settings: Settings,
    (shard, from, to): (Option<u32>, Option<String>, String),
    reason: String,
    timeout: Duration,
) -> anyhow::Result<()> {
    let plans = handoff::plan(&settings, shard, from.as_deref(), &to).await?;
    handoff::request(&settings, &plans, &reason).await?;
    outln!(
        "requested: {} shard(s) to {to}; waiting up to {timeout:?}",
        plans.len()
    );
    let t = std::time::Instant::now();
    let outcomes = handoff::wait(&settings, &plans, timeout).await?;
    let mut failed = 0;
    for (p, o) in plans.iter().zip(&outcomes) {
        match o {
            handoff::Outcome::Moved { epoch } => outln!(
                "shard {:>5}: {} -> {}, epoch {} -> {epoch}",
                p.shard,
                p.from,
                p.to,
                p.epoch
            ),
            handoff::Outcome::TimedOut => {
                failed += 1;
                outln!(
                    "shard {:>5}: not moved in time; request withdrawn, {} keeps it",
                    p.shard,
                    p.from
                )
            }
            handoff::Outcome::Superseded { owner, epoch } => {
                failed += 1;
                outln!(
                    "shard {:>5}: changed meanwhile, now {owner} at epoch {epoch}",
                    p.shard
                )
            }
        }
    }
    outln!("done in {:?}", t.elapsed());
    if failed > 0 {
        anyhow::bail!("{failed} of {} shard(s) did not move", plans.len());
    }
    Ok(())
}

pub async fn run_failover(
    settings: Settings,
    from: &str,
    to: &str,
    dry_run: bool,
    force: bool,
) -> anyhow::Result<()> {
    let plan = manual::plan(&settings, from, to).await?;
    let state = |alive| if alive { "alive" } else { "not alive" };
    outln!(
        "{from} is {}, {to} is {}; {} shard(s) would move",
        state(plan.from_alive),
        state(plan.to_alive),
        plan.moves.len()
    );
    outln!("{:>6}  {:>10}  move", "shard", "epoch");
    for m in &plan.moves {
        outln!("{:>6}  {:>10}  {} -> {}", m.shard, m.epoch, m.from, m.to);
    }
    outln!(
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
            Ok(epoch) => outln!("shard {:>5}: moved to {to}, epoch {epoch}", m.shard),
            Err(why) => {
                failed += 1;
                outln!("shard {:>5}: not moved: {why}", m.shard)
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} shard(s) did not move", plan.moves.len());
    }
    Ok(())
}
