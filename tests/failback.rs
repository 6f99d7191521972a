//! Automatic failback against a real etcd: dc1's router stops, its shards move to dc2 by
//! failover; a shard an operator then hands off to dc3 stays there; dc1 comes back and, once it
//! has been up for `failback_after_ms`, its other shards return home through the planned
//! handoff, one at a time, each with a history record by `failback`; `/admin/routes` says why
//! the operator's shard waits. With `failback = "manual"` nothing returns. A failback request is
//! A DC that flaps (back, then gone again before `failback_after_ms`) gets nothing back
//! until it has stayed up that long. A failback request is
//! refused while any other handoff is pending, and when the shard's epoch changed. Writes sent
//! through all three DCs across a failback are all acknowledged and each applied exactly once,
//! at the epoch of the owner that applied it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::{failback, handoff, liveness, ops};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;
use support::*;

const PREFIX: &str = "/fb/";
const WAIT: Duration = Duration::from_secs(30);
const AFTER_MS: u64 = 1_500;
const DC1_HOME: [usize; 4] = [1, 4, 7, 10];

async fn world(mode: &str, after_ms: u64) -> (EtcdServer, Deployment, tempfile::TempDir) {
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
             [failover]\nlease_ttl_ms = 2000\ngrace_ms = 500\nmin_interval_ms = 1000\nfailback = \"{mode}\"\nfailback_after_ms = {after_ms}\n\n\
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
    let (etcd, mut d, _dir) = world("automatic", AFTER_MS).await;
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
    // The metrics registry is one per process (every router and test here shares it), so only
    // that the gauge and the counter are exported is checked.
    let m = get(&dc1.admin_url("/metrics")).await.text();
    for name in [
        "coopr_router_failback_waiting ",
        "coopr_router_failback_requested_total ",
    ] {
        assert!(m.lines().any(|l| l.starts_with(name)), "{name}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_failback_leaves_everything_where_it_is() {
    let (etcd, mut d, _dir) = world("manual", AFTER_MS).await;
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

/// Writes node records for cluster 1 (shard 1) through `url` until `stop`, retrying a 503 with
/// `Retry-After` (never applied) under the same request id. Returns (request id, status).
async fn writer(url: String, tag: String, stop: Arc<AtomicBool>) -> Vec<(String, StatusCode)> {
    let mut out = Vec::new();
    for i in 0..5_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let rid = format!("{tag}-{i}");
        let body = format!("{{\"id\":\"{rid}\",\"clusterId\":\"00000001\"}}");
        let started = Instant::now();
        loop {
            let r = call(
                http::Method::POST,
                &url,
                &[ADMIN[0], ADMIN[1], ("x-request-id", &rid)],
                &body,
            )
            .await;
            if r.status == StatusCode::SERVICE_UNAVAILABLE
                && !r.header("retry-after").is_empty()
                && started.elapsed() < Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            out.push((rid.clone(), r.status));
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_every_dc_across_a_failback_are_applied_exactly_once() {
    let (etcd, mut d, _dir) = world("automatic", 4_000).await;
    let s = etcd.settings(PREFIX);
    fail_dc1(&etcd, &mut d).await;
    let adopted_epoch = ops::show(&s).await.unwrap()[1].epoch;
    d.dcs[0].restart_router().await;
    eventually(WAIT, "dc1 fresh", || async {
        let r = routes(&d.dcs[0]).await;
        (r["stale"] == false && r["fenced"] == false).then_some(())
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (k, dc) in d.dcs.iter().enumerate() {
        for j in 0..2 {
            writers.push(tokio::spawn(writer(
                dc.url("/v2/nodes"),
                format!("fb-dc{}-{j}", k + 1),
                stop.clone(),
            )));
        }
    }
    let ours = |dc: &Dc| {
        dc.log()
            .into_iter()
            .filter(|e| {
                e.request_id
                    .as_deref()
                    .is_some_and(|r| r.starts_with("fb-"))
            })
            .count()
    };
    eventually(WAIT, "writes flowing at dc2", || async {
        (ours(&d.dcs[1]) >= 20).then_some(())
    })
    .await;
    eventually(WAIT, "shard 1 home", || async {
        (ops::show(&s).await.ok()?[1].owner == "dc1").then_some(())
    })
    .await;
    let new_epoch = ops::show(&s).await.unwrap()[1].epoch;
    assert_eq!(last_by(&s, 1).await, "failback");
    eventually(WAIT, "writes at dc1", || async {
        (ours(&d.dcs[0]) >= 20).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in writers {
        seen.extend(w.await.unwrap());
    }
    let failed: Vec<_> = seen
        .iter()
        .filter(|(_, st)| *st != StatusCode::CREATED)
        .collect();
    assert!(
        failed.is_empty(),
        "{} writes failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let mut applied: HashMap<String, Vec<(usize, Option<String>)>> = HashMap::new();
    for (k, dc) in d.dcs.iter().enumerate() {
        for e in dc.log() {
            if let Some(rid) = e.request_id.filter(|r| r.starts_with("fb-")) {
                applied.entry(rid).or_default().push((k, e.epoch));
            }
        }
    }
    assert_eq!(applied.len(), seen.len(), "applied vs acknowledged");
    for (rid, _) in &seen {
        let a = &applied[rid];
        assert_eq!(a.len(), 1, "{rid} applied {} times", a.len());
        let want = match a[0].0 {
            1 => adopted_epoch,
            0 => new_epoch,
            k => panic!(
                "{rid} applied by dc{}, which never owned shard 1 meanwhile",
                k + 1
            ),
        };
        assert_eq!(a[0].1, Some(want.to_string()), "{rid}");
    }
    eprintln!(
        "{} writes across the failback, none failed, each applied once",
        seen.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_dc_gets_nothing_back_until_it_stays_up() {
    const AFTER: u64 = 5_000;
    let (etcd, mut d, _dir) = world("automatic", AFTER).await;
    let s = etcd.settings(PREFIX);
    fail_dc1(&etcd, &mut d).await;
    // Up briefly, then gone again before failback_after_ms.
    d.dcs[0].restart_router().await;
    let first = Instant::now();
    eventually(WAIT, "dc1 fresh", || async {
        let r = routes(&d.dcs[0]).await;
        (r["stale"] == false && r["fenced"] == false).then_some(())
    })
    .await;
    // dc2 counts it up (and waits for it to stay up)...
    eventually(WAIT, "dc2 sees dc1 up", || async {
        let f = routes(&d.dcs[1]).await["failback"].as_array()?.clone();
        (f.len() == 4 && f.iter().all(|w| w["reason"] == "not_alive_long_enough")).then_some(())
    })
    .await;
    // ...and it goes again.
    d.dcs[0].stop_router().await;
    let flap = first.elapsed();
    assert!(
        flap < Duration::from_millis(AFTER),
        "the flap took {flap:?}: the test needs it shorter than {AFTER} ms"
    );
    // dc2 and dc3 see it down (their routes say why nothing returns).
    eventually(WAIT, "dc2 sees dc1 down", || async {
        let f = routes(&d.dcs[1]).await["failback"].as_array()?.clone();
        (f.len() == 4 && f.iter().all(|w| w["reason"] == "home_down")).then_some(())
    })
    .await;
    for n in DC1_HOME {
        assert_eq!(
            ops::history_count(&s, n as u32).await.unwrap(),
            1,
            "shard {n}"
        );
    }
    // Back for good: the count starts again from this restart.
    d.dcs[0].restart_router().await;
    let second = Instant::now();
    eventually(WAIT, "dc1's shards home", || async {
        let map = ops::show(&s).await.ok()?;
        DC1_HOME
            .iter()
            .all(|&n| map[n].owner == "dc1")
            .then_some(())
    })
    .await;
    let took = second.elapsed();
    eprintln!("flap {flap:?}; home {took:?} after the second restart");
    assert!(took >= Duration::from_millis(AFTER), "home after {took:?}");
    for n in DC1_HOME {
        assert_eq!(last_by(&s, n as u32).await, "failback", "shard {n}");
        assert_eq!(
            ops::history_count(&s, n as u32).await.unwrap(),
            2,
            "shard {n}"
        );
    }
}

/// The failback driver's first look after a failover reads the last move of many shards
/// together, in chunks of one transaction: the same answers as one read each, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_moves_of_many_shards_are_read_together_as_one_by_one() {
    use coopr_router::etcd::moves::{SHARDS_PER_TXN, move_all_if_dead};
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 300, false).await.unwrap();
    let dc1: Vec<(u32, i64)> = ops::show(&s)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.owner == "dc1")
        .map(|r| (r.shard, r.epoch))
        .collect();
    let mut c = s.connect().await.unwrap();
    // dc1 (never alive here) loses 70 shards in two batches.
    for batch in [&dc1[..SHARDS_PER_TXN], &dc1[SHARDS_PER_TXN..70]] {
        move_all_if_dead(&s, &mut c, batch, ("dc1", "dc2"), ops::Guard::Dead)
            .await
            .unwrap()
            .expect("moved");
    }
    let all: Vec<u32> = (0..300).collect();
    let together = failback::last_moves(&s, &mut c, &all).await.unwrap();
    assert_eq!(together.len(), 300);
    let moved: Vec<u32> = dc1[..70].iter().map(|&(n, _)| n).collect();
    for (&n, last) in all.iter().zip(&together) {
        let alone = failback::last_move(&s, &mut c, n).await.unwrap();
        assert_eq!(last, &alone, "shard {n}");
        assert_eq!(
            last.as_ref().map(|l| l.by.as_str()),
            moved.contains(&n).then_some("failover"),
            "shard {n}"
        );
    }
    assert!(
        failback::last_moves(&s, &mut c, &[])
            .await
            .unwrap()
            .is_empty()
    );
}
