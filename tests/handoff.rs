//! Planned handoff and manual failover against a real etcd: a handoff under a steady write load
//! loses nothing and applies nothing twice (every acknowledged write is in exactly one
//! simulator's log, at the epoch of the owner that applied it, and the old owner applied nothing
//! after the new one started); a handoff is refused for a dead owner, which `failover` moves
//! instead (dry run first; refused while the DC is alive). Many handoff requests go out
//! together and a refusal says how many were made; a manual failover of many shards answers for
//! each in plan order.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::{handoff, manual, ops};
use http::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;
use support::*;
use tokio::sync::mpsc;

const PREFIX: &str = "/ho/";
const WAIT: Duration = Duration::from_secs(20);

async fn world(failover_mode: &str) -> (EtcdServer, Deployment, tempfile::TempDir) {
    let etcd = EtcdServer::start().await;
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&etcd.settings(PREFIX), &dcs, 12, false)
        .await
        .expect("init");
    let dir = tempfile::tempdir().unwrap();
    let url = etcd.url();
    let d = start_with(Duration::from_millis(100), |i| {
        format!(
            "[ownership]\nsource = \"etcd\"\nendpoints = [\"{url}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = 1000\nstate_file = \"{}\"\n\n\
             [failover]\nmode = \"{failover_mode}\"\nlease_ttl_ms = 2000\ngrace_ms = 500\n\n[health]\ninterval_ms = 100\ntimeout_ms = 300\nrise = 1\nfall = 2\n",
            dir.path().join(format!("dc{}.json", i + 1)).display()
        )
    })
    .await;
    for dc in &d.dcs {
        eventually(WAIT, "router fresh", || async {
            let r = routes(dc).await;
            (r["stale"] == false && r["fenced"] == false).then_some(())
        })
        .await;
    }
    let s = etcd.settings(PREFIX);
    eventually(WAIT, "every DC alive", || async {
        let mut c = s.connect().await.ok()?;
        let alive = coopr_router::etcd::liveness::alive_dcs(&s, &mut c)
            .await
            .ok()?;
        (alive.len() == 3).then_some(())
    })
    .await;
    (etcd, d, dir)
}

async fn wait_owner(d: &Deployment, shard: usize, owner: &str) {
    for dc in &d.dcs {
        if dc.router.is_none() {
            continue;
        }
        eventually(WAIT, "every router sees the owner", || async {
            (routes(dc).await["shards"][shard]["owner"] == owner).then_some(())
        })
        .await;
    }
}

/// One client write, as the client saw it.
struct Seen {
    rid: String,
    status: StatusCode,
    started: Instant,
    took: Duration,
}

/// Writes node records for cluster 1 (shard 1) through `url` until `stop`, honouring
/// `Retry-After` on 503 (the same request id is retried: it was never applied).
async fn writer(url: String, tag: String, stop: Arc<AtomicBool>) -> Vec<Seen> {
    let mut out = Vec::new();
    for i in 0..2_000 {
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
            let retry = r.status == StatusCode::SERVICE_UNAVAILABLE
                && !r.header("retry-after").is_empty()
                && started.elapsed() < Duration::from_secs(10);
            if retry {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            out.push(Seen {
                rid: rid.clone(),
                status: r.status,
                started,
                took: started.elapsed(),
            });
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_under_steady_writes_loses_nothing_and_applies_nothing_twice() {
    let (etcd, d, _dir) = world("automatic").await;
    let s = etcd.settings(PREFIX);
    // Shard 1's home is dc1. Move it to dc2 first (as a failover would): dc2 then writes to its
    // standby server, and the handoff below is the failback.
    let (_, adopted_epoch) = ops::set_owner(&s, 1, "dc2", "cli", "test").await.unwrap();
    wait_owner(&d, 1, "dc2").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (k, dc) in d.dcs.iter().enumerate() {
        for j in 0..2 {
            writers.push(tokio::spawn(writer(
                dc.url("/v2/nodes"),
                format!("ho-dc{}-{j}", k + 1),
                stop.clone(),
            )));
        }
    }
    // Let the load settle, then hand the shard back to dc1.
    eventually(WAIT, "writes flowing", || async {
        (d.dcs[1].log().len() >= 50).then_some(())
    })
    .await;
    let plans = handoff::plan(&s, Some(1), None, "dc1").await.unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(
        (plans[0].from.as_str(), plans[0].epoch),
        ("dc2", adopted_epoch)
    );
    let asked = Instant::now();
    handoff::request(&s, &plans, "failback").await.unwrap();
    // A second request for the same shard is refused while the first is pending.
    assert!(handoff::request(&s, &plans, "again").await.is_err());
    let outcomes = handoff::wait(&s, &plans, Duration::from_secs(10))
        .await
        .unwrap();
    let handoff::Outcome::Moved { epoch: new_epoch } = outcomes[0] else {
        panic!("not moved: {:?}", outcomes[0]);
    };
    let committed = asked.elapsed();
    wait_owner(&d, 1, "dc1").await;
    eventually(WAIT, "writes at the new owner", || async {
        (d.dcs[0].log().len() >= 50).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for w in writers {
        seen.extend(w.await.unwrap());
    }
    // Every write was acknowledged (clients honour Retry-After).
    let failed: Vec<_> = seen
        .iter()
        .filter(|w| w.status != StatusCode::CREATED)
        .collect();
    assert!(
        failed.is_empty(),
        "{} writes failed, e.g. {}: {}",
        failed.len(),
        failed[0].rid,
        failed[0].status
    );
    // Every acknowledged write is in exactly one log, at the epoch of the DC that applied it.
    let mut applied: HashMap<String, Vec<(usize, Option<String>, u64)>> = HashMap::new();
    for (k, dc) in d.dcs.iter().enumerate() {
        for e in dc.log() {
            if let Some(rid) = e.request_id.filter(|r| r.starts_with("ho-")) {
                applied
                    .entry(rid)
                    .or_default()
                    .push((k, e.epoch, e.time_ms));
            }
        }
    }
    assert_eq!(
        applied.len(),
        seen.len(),
        "applied writes vs acknowledged writes"
    );
    let (mut last_old, mut first_new) = (0u64, u64::MAX);
    for w in &seen {
        let a = applied
            .get(&w.rid)
            .unwrap_or_else(|| panic!("{} acknowledged but not applied", w.rid));
        assert_eq!(a.len(), 1, "{} applied {} times", w.rid, a.len());
        let (dc, epoch, at) = a[0].clone();
        match dc {
            1 => {
                assert_eq!(epoch, Some(adopted_epoch.to_string()), "{}", w.rid);
                last_old = last_old.max(at);
            }
            0 => {
                assert_eq!(epoch, Some(new_epoch.to_string()), "{}", w.rid);
                first_new = first_new.min(at);
            }
            _ => panic!("{} applied by dc3, which never owned shard 1", w.rid),
        }
    }
    // No overlap: the old owner applied nothing after the new owner's first write.
    assert!(
        last_old <= first_new,
        "old owner at {last_old} ms, new owner from {first_new} ms"
    );
    assert_eq!(ops::history_count(&s, 1).await.unwrap(), 2);
    // Unavailability: the slowest write that overlapped the handoff.
    let worst = seen
        .iter()
        .filter(|w| w.started + w.took >= asked && w.started <= asked + committed)
        .map(|w| w.took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "handoff committed {committed:?} after the request; {} writes, slowest overlapping one {worst:?}",
        seen.len()
    );
    assert!(worst < Duration::from_secs(5), "a write waited {worst:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_owner_cannot_hand_off_and_manual_failover_moves_its_shards() {
    let (etcd, mut d, _dir) = world("manual").await;
    let s = etcd.settings(PREFIX);
    // While dc3 is alive, a manual failover away from it is refused without --force.
    let alive_plan = manual::plan(&s, "dc3", "dc1").await.unwrap();
    assert!(alive_plan.from_alive && alive_plan.to_alive);
    let err = manual::execute(&s, &alive_plan, false).await.err().unwrap();
    assert!(err.to_string().contains("handoff"), "{err}");
    // dc3's router dies; with automatic failover off, its shards stay.
    d.dcs[2].stop_router().await;
    eventually(WAIT, "alive/dc3 expires", || async {
        let mut c = s.connect().await.ok()?;
        let alive = coopr_router::etcd::liveness::alive_dcs(&s, &mut c)
            .await
            .ok()?;
        (!alive.contains(&"dc3".to_string())).then_some(())
    })
    .await;
    let owned: Vec<u32> = ops::show(&s)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.owner == "dc3")
        .map(|r| r.shard)
        .collect();
    assert_eq!(
        owned,
        vec![0, 3, 6, 9],
        "manual mode: nothing moved by itself"
    );
    // A handoff needs a live owner.
    let err = handoff::plan(&s, None, Some("dc3"), "dc1")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("failover --from dc3"), "{err}");
    // The dry run prints the moves and changes nothing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .args(["failover", "--etcd", &etcd.url(), "--prefix", PREFIX])
        .args(["--from", "dc3", "--to", "dc1", "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("dc3 is not alive, dc1 is alive; 4 shard(s) would move"),
        "{text}"
    );
    assert_eq!(text.matches("dc3 -> dc1").count(), 4, "{text}");
    assert_eq!(ops::history_count(&s, 0).await.unwrap(), 0);
    // The real run moves all four, each with one history record.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coopr-router"))
        .args(["failover", "--etcd", &etcd.url(), "--prefix", PREFIX])
        .args(["--from", "dc3", "--to", "dc1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let map = ops::show(&s).await.unwrap();
    for n in owned {
        assert_eq!(map[n as usize].owner, "dc1", "shard {n}");
        assert_eq!(ops::history_count(&s, n).await.unwrap(), 1, "shard {n}");
    }
    // Writes for dc3's clusters now go to dc1's standby server for dc3.
    wait_owner(&d, 0, "dc1").await;
    let r = call(
        http::Method::POST,
        &d.dcs[0].url("/v2/nodes"),
        &[ADMIN[0], ADMIN[1], ("x-request-id", "after-manual")],
        "{\"id\":\"after-manual\",\"clusterId\":\"00000003\"}",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc1");
    assert_eq!(r.header("x-coopr-router-route"), "standby");
}

/// The `handoff_ack/{shard}/` keys in etcd.
async fn acks(s: &coopr_router::etcd::Settings, shard: u32) -> usize {
    keys_under(s, &format!("{PREFIX}handoff_ack/{shard}/"))
        .await
        .len()
}

/// The keys under `prefix` in etcd.
async fn keys_under(s: &coopr_router::etcd::Settings, prefix: &str) -> Vec<String> {
    let mut c = s.connect().await.unwrap();
    let r = c
        .get(
            prefix,
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only(),
            ),
        )
        .await
        .unwrap();
    r.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_waits_for_every_router_of_the_owner_dc() {
    let (etcd, d, _dir) = world("automatic").await;
    let s = etcd.settings(PREFIX);
    let dc1 = &d.dcs[0];
    let id = create_active(dc1, "slow-config").await;
    let shard = id.parse::<u32>().unwrap() % 12;
    // A second router for dc1: the same config on its own ports and state file.
    let l = coopr_router::app::Listeners {
        client: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    };
    let b_client = l.client.local_addr().unwrap();
    let text = dc1
        .config_text
        .replace(
            &format!("client = \"{}\"", dc1.client),
            &format!("client = \"{b_client}\""),
        )
        .replace(
            &format!("peer = \"{}\"", dc1.peer),
            &format!("peer = \"{}\"", l.peer.local_addr().unwrap()),
        )
        .replace(
            &format!("admin = \"{}\"", dc1.admin),
            &format!("admin = \"{}\"", l.admin.local_addr().unwrap()),
        )
        .replace("dc1.json", "dc1-b.json");
    let b = coopr_router::app::start(coopr_router::config::parse(&text).unwrap(), l).unwrap();
    eventually(WAIT, "two members of dc1", || async {
        let mut c = s.connect().await.ok()?;
        let r = c
            .get(
                format!("{PREFIX}members/dc1/"),
                Some(etcd_client::GetOptions::new().with_prefix()),
            )
            .await
            .ok()?;
        (r.kvs().len() == 2 && !b.freshness.is_fenced()).then_some(())
    })
    .await;
    // A slow write through router B: its body is still streaming when the handoff starts.
    let url = format!("http://{b_client}/v2/clusters/{id}/config");
    let (tx, rx) = mpsc::channel::<bytes::Bytes>(1);
    let slow =
        tokio::spawn(async move { send(http::Method::PUT, &url, &ADMIN, ChannelBody(rx)).await });
    tx.send(bytes::Bytes::from_static(b"{\"config\":"))
        .await
        .unwrap();
    eventually(WAIT, "the slow write in flight at B", || async {
        (b.inflight.count(shard) == 1).then_some(())
    })
    .await;
    let plans = handoff::plan(&s, Some(shard), None, "dc2").await.unwrap();
    handoff::request(&s, &plans, "maintenance").await.unwrap();
    // Router A has nothing in flight: it acknowledges. B does not, so nothing moves.
    eventually(WAIT, "router A acknowledged", || async {
        (acks(&s, shard).await == 1).then_some(())
    })
    .await;
    assert_eq!(ops::show(&s).await.unwrap()[shard as usize].owner, "dc1");
    assert_eq!(b.inflight.count(shard), 1);
    // The slow write finishes at dc1; then B acknowledges and the shard moves.
    tx.send(bytes::Bytes::from_static(b"{\"k\":\"v\"}}"))
        .await
        .unwrap();
    drop(tx);
    let r = slow.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let outcomes = handoff::wait(&s, &plans, Duration::from_secs(10))
        .await
        .unwrap();
    let handoff::Outcome::Moved { epoch } = outcomes[0] else {
        panic!("not moved: {:?}", outcomes[0]);
    };
    // The write was applied by dc1 at the old epoch, before the move.
    let path = format!("/v2/clusters/{id}/config");
    let applied: Vec<_> = dc1
        .log()
        .into_iter()
        .filter(|e| e.method == "PUT" && e.path == path)
        .collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].epoch, Some(plans[0].epoch.to_string()));
    assert!(epoch > plans[0].epoch);
    // ...and the move was committed after it (the history record's clock and the simulator's
    // are this machine's).
    let mut c = s.connect().await.unwrap();
    let history = c
        .get(
            format!("{PREFIX}history/{shard:05}/"),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let record: Value = serde_json::from_slice(history.kvs()[0].value()).unwrap();
    assert_eq!(record["by"], "handoff");
    let committed_at = record["at_ms"].as_u64().unwrap();
    assert!(
        applied[0].time_ms <= committed_at,
        "applied at {} ms, moved at {committed_at} ms",
        applied[0].time_ms
    );
    assert_eq!(
        acks(&s, shard).await,
        0,
        "the commit removed the acknowledgements"
    );
    b.shutdown();
    b.wait().await;
}

/// `handoff::wait` reads etcd only: each planned shard ends moved (to its target), superseded
/// (moved elsewhere meanwhile) or timed out (its request withdrawn), whether the plan is read
/// key by key (up to 128 shards) or from the whole map (more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_tells_moved_superseded_and_timed_out_apart_for_few_and_many_shards() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 300, false).await.unwrap();
    let mut c = s.connect().await.unwrap();
    let rows = ops::show(&s).await.unwrap();
    let plan = |n: u32, to: &str| handoff::Plan {
        shard: n,
        from: rows[n as usize].owner.clone(),
        to: to.to_string(),
        epoch: rows[n as usize].epoch,
    };
    // Stand-in for what an owner's commit or a failover writes: the shard's value, a new epoch.
    async fn put_owner(c: &mut etcd_client::Client, n: u32, owner: &str) -> i64 {
        let key = coopr_router::ownership::keyspace::shard_key(PREFIX, n);
        let value = format!(r#"{{"owner":"{owner}","replicas":[]}}"#);
        let put = c.put(key, value, None).await.unwrap();
        put.header().unwrap().revision()
    }
    let (a, b, timed) = (plan(0, "dc2"), plan(1, "dc2"), plan(2, "dc1"));
    handoff::request(&s, std::slice::from_ref(&timed), "test")
        .await
        .unwrap();
    let moved_at = put_owner(&mut c, 0, "dc2").await;
    let superseded_at = put_owner(&mut c, 1, "dc3").await;
    let few = [a, b, timed];
    let out = handoff::wait(&s, &few, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(
        out,
        [
            handoff::Outcome::Moved { epoch: moved_at },
            handoff::Outcome::Superseded {
                owner: "dc3".into(),
                epoch: superseded_at
            },
            handoff::Outcome::TimedOut,
        ]
    );
    let pending = c
        .get(
            coopr_router::ownership::keyspace::handoff_key(PREFIX, 2),
            None,
        )
        .await
        .unwrap();
    assert!(
        pending.kvs().is_empty(),
        "the timed-out request is withdrawn"
    );

    // 200 shards: more than one transaction holds, so the whole map is read.
    let many: Vec<handoff::Plan> = (100..300).map(|n| plan(n, "dc3")).collect();
    let mut epochs = Vec::new();
    for p in &many[..199] {
        epochs.push(put_owner(&mut c, p.shard, "dc3").await);
    }
    let out = handoff::wait(&s, &many, Duration::from_millis(300))
        .await
        .unwrap();
    for (i, e) in epochs.iter().enumerate() {
        assert_eq!(
            out[i],
            handoff::Outcome::Moved { epoch: *e },
            "shard {}",
            many[i].shard
        );
    }
    assert_eq!(out[199], handoff::Outcome::TimedOut);
}

/// `handoff::request` sends many requests at once: every one is made, and a refused one (its
/// shard changed since the plan read it) stops the sending and says how many were made, which
/// are exactly the requests in etcd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_requests_go_out_together_and_a_refusal_says_how_many_were_made() {
    use coopr_router::ownership::keyspace;
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 600, false).await.unwrap();
    let rows = ops::show(&s).await.unwrap();
    let plan = |n: u32| handoff::Plan {
        shard: n,
        from: rows[n as usize].owner.clone(),
        to: "dc3".to_string(),
        epoch: rows[n as usize].epoch,
    };
    let mut c = s.connect().await.unwrap();
    let handoffs = keyspace::handoffs_prefix(PREFIX);

    // 300 plans, all current: all 300 requested.
    let all: Vec<handoff::Plan> = (0..300).map(plan).collect();
    handoff::request(&s, &all, "test").await.unwrap();
    let made = keys_under(&s, &handoffs).await;
    assert_eq!(made.len(), 300);
    for p in &all {
        assert!(made.contains(&keyspace::handoff_key(PREFIX, p.shard)));
    }

    // 300 more, of which shard 450 changed after the plan: refused, named, and the count of
    // requests the error gives is what etcd holds.
    let more: Vec<handoff::Plan> = (300..600).map(plan).collect();
    c.put(
        keyspace::shard_key(PREFIX, 450),
        r#"{"owner":"dc2","replicas":[]}"#,
        None,
    )
    .await
    .unwrap();
    let err = handoff::request(&s, &more, "test")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("shard(s) 450 changed"), "{err}");
    let made = keys_under(&s, &handoffs).await.len() - 300;
    assert!(
        (150..300).contains(&made),
        "the shards before 450 at least: {made}"
    );
    assert!(
        err.contains(&format!("; {made} of the 300 handoff(s) were requested")),
        "{err}, {made} in etcd"
    );
    assert!(
        !keys_under(&s, &handoffs)
            .await
            .contains(&keyspace::handoff_key(PREFIX, 450))
    );
}

/// A manual failover of many shards (they go out side by side): each result is in its plan's
/// place, a shard changed after the plan reports so, and every other one moved with one history
/// record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_of_many_shards_answers_for_each_in_plan_order() {
    use coopr_router::ownership::keyspace;
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 600, false).await.unwrap();
    // No router runs: nobody is alive, so only --force moves anything.
    let plan = manual::plan(&s, "dc3", "dc1").await.unwrap();
    assert!(!plan.from_alive && !plan.to_alive);
    assert_eq!(plan.moves.len(), 200);
    let changed = plan.moves[120].shard;
    let mut c = s.connect().await.unwrap();
    c.put(
        keyspace::shard_key(PREFIX, changed),
        r#"{"owner":"dc3","replicas":[]}"#,
        None,
    )
    .await
    .unwrap();
    let results = manual::execute(&s, &plan, true).await.unwrap();
    assert_eq!(results.len(), 200);
    let map = ops::show(&s).await.unwrap();
    for (m, r) in plan.moves.iter().zip(&results) {
        if m.shard == changed {
            let err = r.as_ref().unwrap_err();
            assert!(err.contains("changed meanwhile"), "{err}");
            assert_eq!(map[m.shard as usize].owner, "dc3");
            continue;
        }
        let epoch = *r
            .as_ref()
            .unwrap_or_else(|e| panic!("shard {}: {e}", m.shard));
        assert_eq!(map[m.shard as usize].owner, "dc1", "shard {}", m.shard);
        assert_eq!(map[m.shard as usize].epoch, epoch, "shard {}", m.shard);
        assert_eq!(ops::history_count(&s, m.shard).await.unwrap(), 1);
    }
}
