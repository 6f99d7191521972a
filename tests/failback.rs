//! Automatic failback against a real etcd: dc1's router stops, its shards move to dc2 by
//! failover; a shard an operator then hands off to dc3 stays there; dc1 comes back and, once it
//! has been up for `failback_after_ms`, its other shards return home through the planned
//! handoff, one at a time, each with a history record by `failback`; `/admin/routes` says why
//! the operator's shard waits. With `failback = "manual"` nothing returns. A failback request is
//! refused while any other handoff is pending, and when the shard's epoch changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::{failback, handoff, liveness, ops};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;
use support::*;

const PREFIX: &str = "/fb/";
const WAIT: Duration = Duration::from_secs(30);
const AFTER_MS: u64 = 1_500;
const DC1_HOME: [usize; 4] = [1, 4, 7, 10];

async fn world(mode: &str) -> (EtcdServer, Deployment, tempfile::TempDir) {
    let etcd = EtcdServer::start().await;
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&etcd.settings(PREFIX), &dcs, 12, false)
        .await
        .expect("init");
    let dir = tempfile::tempdir().unwrap();
    let url = etcd.url();
    let d = start_with(Duration::from_millis(50), |i| {
        format!(
            "[ownership]\nsource = \"etcd\"\nendpoints = [\"{url}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = 1000\nstate_file = \"{}\"\n\n\
             [failover]\nlease_ttl_ms = 2000\ngrace_ms = 500\nmin_interval_ms = 1000\nfailback = \"{mode}\"\nfailback_after_ms = {AFTER_MS}\n\n\
             [health]\ninterval_ms = 100\ntimeout_ms = 300\nrise = 1\nfall = 2\n",
            dir.path().join(format!("dc{}.json", i + 1)).display()
        )
    })
    .await;
    let s = etcd.settings(PREFIX);
    eventually(WAIT, "every DC alive", || async {
        let mut c = s.connect().await.ok()?;
        (liveness::alive_dcs(&s, &mut c).await.ok()?.len() == 3).then_some(())
    })
    .await;
    (etcd, d, dir)
}

/// dc1's router stops; waits until its home shards are dc2's.
async fn fail_dc1(etcd: &EtcdServer, d: &mut Deployment) {
    let s = etcd.settings(PREFIX);
    d.dcs[0].stop_router().await;
    eventually(WAIT, "dc1's shards moved by failover", || async {
        let map = ops::show(&s).await.ok()?;
        DC1_HOME
            .iter()
            .all(|&n| map[n].owner == "dc2")
            .then_some(())
    })
    .await;
}

async fn last_by(s: &coopr_router::etcd::Settings, shard: u32) -> String {
    let mut c = s.connect().await.unwrap();
    failback::last_move(s, &mut c, shard)
        .await
        .unwrap()
        .map(|l| l.by)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_that_comes_back_gets_its_failed_over_shards_home_but_not_an_operators() {
    let (etcd, mut d, _dir) = world("automatic").await;
    let s = etcd.settings(PREFIX);
    fail_dc1(&etcd, &mut d).await;
    for n in DC1_HOME {
        assert_eq!(last_by(&s, n as u32).await, "failover", "shard {n}");
    }
    // An operator hands shard 4 on to dc3 after the failover: it stays there.
    let plans = handoff::plan(&s, Some(4), None, "dc3").await.unwrap();
    handoff::request(&s, &plans, "operator").await.unwrap();
    let out = handoff::wait(&s, &plans, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(matches!(out[0], handoff::Outcome::Moved { .. }), "{out:?}");
    assert_eq!(last_by(&s, 4).await, "handoff");
    // dc1 comes back.
    d.dcs[0].restart_router().await;
    let back = Instant::now();
    // Nothing returns before dc1 has been up for failback_after_ms; then 1, 7 and 10 do, one at
    // a time (never two handoffs pending at once).
    let max_pending = Arc::new(AtomicU64::new(0));
    let first_home = Arc::new(std::sync::Mutex::new(None::<Duration>));
    eventually(WAIT, "dc1's failed-over shards home", || {
        let (s, max_pending, first_home) = (s.clone(), max_pending.clone(), first_home.clone());
        async move {
            let mut c = s.connect().await.ok()?;
            let pending = c
                .get(
                    format!("{PREFIX}handoff/"),
                    Some(
                        etcd_client::GetOptions::new()
                            .with_prefix()
                            .with_count_only(),
                    ),
                )
                .await
                .ok()?
                .count();
            max_pending.fetch_max(pending as u64, Ordering::Relaxed);
            let map = ops::show(&s).await.ok()?;
            let home = [1usize, 7, 10]
                .iter()
                .filter(|&&n| map[n].owner == "dc1")
                .count();
            let mut f = first_home.lock().unwrap();
            if home > 0 && f.is_none() {
                *f = Some(back.elapsed());
            }
            (home == 3).then_some(())
        }
    })
    .await;
    let all_home = back.elapsed();
    let first = first_home.lock().unwrap().unwrap();
    eprintln!("first shard home {first:?}, all home {all_home:?} after dc1 restarted");
    assert!(
        first >= Duration::from_millis(AFTER_MS),
        "a shard went home {first:?} after dc1 came back, before failback_after_ms"
    );
    let max_pending = max_pending.load(Ordering::Relaxed);
    assert!(max_pending <= 1, "{max_pending} handoffs pending at once");
    for n in [1u32, 7, 10] {
        assert_eq!(last_by(&s, n).await, "failback", "shard {n}");
        // failover, then failback: two moves.
        assert_eq!(ops::history_count(&s, n).await.unwrap(), 2, "shard {n}");
    }
    let map = ops::show(&s).await.unwrap();
    assert_eq!(map[4].owner, "dc3", "the operator's shard stays");
    assert_eq!(last_by(&s, 4).await, "handoff");
    // /admin/routes says why shard 4 waits.
    let dc1 = &d.dcs[0];
    eventually(WAIT, "dc1 shows the waiting shard", || async {
        let r = routes(dc1).await;
        let f = r["failback"].as_array()?.clone();
        (f.len() == 1
            && f[0]["shard"] == 4
            && f[0]["reason"] == "not_failover"
            && f[0]["by"] == "handoff"
            && f[0]["home"] == "dc1"
            && f[0]["owner"] == "dc3")
            .then_some(())
    })
    .await;
    let m = get(&dc1.admin_url("/metrics")).await.text();
    assert!(
        m.lines().any(|l| l == "coopr_router_failback_waiting 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failback_leaves_everything_where_it_is() {
    let (etcd, mut d, _dir) = world("manual").await;
    let s = etcd.settings(PREFIX);
    fail_dc1(&etcd, &mut d).await;
    d.dcs[0].restart_router().await;
    let back = Instant::now();
    // dc1 has been up well past failback_after_ms, and every router says why nothing moves.
    for dc in &d.dcs {
        eventually(WAIT, "manual shown", || async {
            let r = routes(dc).await;
            let f = r["failback"].as_array()?.clone();
            (back.elapsed() >= Duration::from_millis(3 * AFTER_MS)
                && f.len() == 4
                && f.iter().all(|w| w["reason"] == "manual"))
            .then_some(())
        })
        .await;
    }
    let map = ops::show(&s).await.unwrap();
    for n in DC1_HOME {
        assert_eq!(map[n].owner, "dc2", "shard {n}");
        assert_eq!(ops::history_count(&s, n as u32).await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failback_request_is_refused_while_another_handoff_is_pending_or_the_epoch_moved() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 6, false).await.unwrap();
    let mut c = s.connect().await.unwrap();
    let map = ops::show(&s).await.unwrap();
    // A pending handoff of shard 2 blocks a failback of shard 1.
    handoff::request(
        &s,
        &[handoff::Plan {
            shard: 2,
            from: "dc2".into(),
            to: "dc3".into(),
            epoch: map[2].epoch,
        }],
        "operator",
    )
    .await
    .unwrap();
    assert!(
        !failback::request(&s, &mut c, (1, map[1].epoch), "dc2", "t")
            .await
            .unwrap()
    );
    handoff::cancel(&s, &mut c, 2).await.unwrap();
    // A stale epoch is refused; the current one is accepted, once.
    assert!(
        !failback::request(&s, &mut c, (1, map[1].epoch - 1), "dc2", "t")
            .await
            .unwrap()
    );
    let (a, b) = tokio::join!(
        async {
            let mut c = s.connect().await.unwrap();
            failback::request(&s, &mut c, (1, map[1].epoch), "dc2", "a")
                .await
                .unwrap()
        },
        async {
            let mut c = s.connect().await.unwrap();
            failback::request(&s, &mut c, (4, map[4].epoch), "dc2", "b")
                .await
                .unwrap()
        }
    );
    assert_eq!(a as u8 + b as u8, 1, "racing controllers: one request");
}
