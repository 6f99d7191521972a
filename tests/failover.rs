//! Automatic failover against a real etcd: a DC whose router dies loses its shards to their first
//! live replica within TTL + grace (+1 s), writes and reads follow to the new owner's standby server
//! (a simulator started from a copy of the dead DC's database), the
//! DC stays a non-owner when it returns and its creates go elsewhere; two controllers racing for
//! one move produce one winner and one history record; an owner cut off from etcd refuses writes
//! before anything could move; a write sent while the owner's router is down is held and lands
//! at the new owner exactly once. Many shards move in one transaction, all or none; the alive
//! keys and the heartbeats are read in one request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::ops;
use http::StatusCode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::etcd::EtcdServer;
use support::relay::{Mode, Relay};
use support::*;

const PREFIX: &str = "/fo/";
const WAIT: Duration = Duration::from_secs(20);
const TTL_MS: u64 = 2_000;
const GRACE_MS: u64 = 500;

struct World {
    etcd: EtcdServer,
    d: Deployment,
    relays: Vec<Relay>,
    /// dc2's standby server for dc1's shards: bound now, served (from a copy of dc1's
    /// simulator data, standing in for a replicated database) once dc1 is dead.
    standby: Option<tokio::net::TcpListener>,
    dir: tempfile::TempDir,
}

async fn world() -> World {
    let etcd = EtcdServer::start().await;
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&etcd.settings(PREFIX), &dcs, 12, false)
        .await
        .expect("init");
    let target: SocketAddr = ([127, 0, 0, 1], etcd.client_port).into();
    let mut relays = Vec::new();
    for _ in 0..3 {
        relays.push(Relay::start(target).await);
    }
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let standby = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let standby_addr = standby.local_addr().unwrap();
    let d = start_with_data(Duration::from_millis(100), Some(dir.path()), |i| {
        let own_standby = match i {
            1 => format!("[standby.dc1]\nurl = \"http://{standby_addr}\"\n\n"),
            _ => String::new(),
        };
        format!(
            "{own_standby}[ownership]\nsource = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = 1000\nstate_file = \"{}\"\n\n\
             [failover]\nlease_ttl_ms = {TTL_MS}\ngrace_ms = {GRACE_MS}\n\n[health]\ninterval_ms = 100\ntimeout_ms = 300\nrise = 1\nfall = 2\n",
            relays[i].url(),
            dir.path().join(format!("router-dc{}.json", i + 1)).display()
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
    World {
        etcd,
        d,
        relays,
        standby: Some(standby),
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_dc_loses_its_shards_and_stays_a_non_owner_when_it_returns() {
    let mut w = world().await;
    let s = w.etcd.settings(PREFIX);
    // Every router keeps its DC alive.
    eventually(WAIT, "alive keys", || async {
        let mut c = s.connect().await.ok()?;
        let alive = coopr_router::etcd::liveness::alive_dcs(&s, &mut c)
            .await
            .ok()?;
        (alive.len() == 3).then_some(())
    })
    .await;
    let config_dc1 = w.d.dcs[0].config_text.clone();
    // A cluster of dc1's (in one of its home shards), in dc1's database.
    let cid = create_active(&w.d.dcs[0], "before-failover").await;
    // dc1's router and simulator die (the lease is not revoked, as with kill -9).
    let killed = Instant::now();
    w.d.dcs[0].stop_router().await;
    w.d.dcs[0].stop_sim();
    // A write for dc1's cluster sent now cannot reach dc1 at all (connection refused): it is
    // held until the failover names dc2, then lands there once.
    let held_write = {
        let dc3 = w.d.dcs[2].client;
        let n: u64 = cid.parse().unwrap();
        tokio::spawn(async move {
            let sent = Instant::now();
            let body = format!("{{\"id\":\"held-across\",\"clusterId\":\"{n:08}\"}}");
            let r = call(
                http::Method::POST,
                &format!("http://{dc3}/v2/nodes"),
                &[ADMIN[0], ADMIN[1], ("x-request-id", "held-across")],
                &body,
            )
            .await;
            (r, sent.elapsed())
        })
    };
    // dc2's standby server for dc1 comes up from a copy of dc1's database.
    let copy = w.dir.path().join("standby-dc1.json");
    std::fs::copy(w.dir.path().join("dc1.json"), &copy).unwrap();
    let standby = coopr_router::sim::Sim::new(coopr_router::sim::SimConfig {
        id_start: 1,
        id_increment: 3,
        data: Some(copy),
        name: "standby-dc1".into(),
        ..Default::default()
    })
    .unwrap();
    let (_stop_standby, standby_shutdown) = coopr_router::shutdown::ShutdownTrigger::new();
    tokio::spawn(standby.clone().serve(
        w.standby.take().unwrap(),
        coopr_router::shutdown::Shutdown::wait(standby_shutdown),
    ));
    eventually(WAIT, "dc1's shards moved", || async {
        let map = ops::show(&s).await.ok()?;
        [1usize, 4, 7, 10]
            .iter()
            .all(|&n| map[n].owner == "dc2")
            .then_some(())
    })
    .await;
    let took = killed.elapsed();
    eprintln!("failover took {took:?} (TTL {TTL_MS} ms + grace {GRACE_MS} ms)");
    assert!(
        took <= Duration::from_millis(TTL_MS + GRACE_MS + 1_000 + 1_000),
        "failover took {took:?}"
    );
    // Exactly one move per shard, each with a history record.
    for n in [1, 4, 7, 10] {
        assert_eq!(ops::history_count(&s, n).await.unwrap(), 1, "shard {n}");
    }
    let (held, waited) = held_write.await.unwrap();
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text());
    assert_eq!(held.header("x-coopr-router-dc"), "dc2");
    // The answer says it was held, and for how long (at least the failover's grace).
    let held_ms: u64 = held.header("x-coopr-router-held-ms").parse().unwrap();
    assert!(
        held_ms > 0 && held_ms <= waited.as_millis() as u64,
        "{held_ms} vs {waited:?}"
    );
    eprintln!("the held write waited {waited:?}");
    let landed = standby
        .log()
        .into_iter()
        .filter(|e| e.request_id.as_deref() == Some("held-across"))
        .count();
    assert_eq!(landed, 1, "applied exactly once, at the new owner");
    let m = get(&w.d.dcs[2].admin_url("/metrics")).await.text();
    assert!(
        m.lines()
            .any(|l| l.starts_with("coopr_router_held_writes_total{outcome=\"released\"}")),
        "{m}"
    );
    assert_eq!(routes(&w.d.dcs[2]).await["held"]["requests"], 0);
    // Writes for dc1's clusters now go to dc2, which serves them from its standby server.
    let (dc2, dc3) = (&w.d.dcs[1], &w.d.dcs[2]);
    eventually(WAIT, "dc3 routes to dc2", || async {
        (routes(dc3).await["shards"][1]["owner"] == "dc2").then_some(())
    })
    .await;
    let n: u64 = cid.parse().unwrap();
    let r = node_write(dc3, "after-failover", n).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("x-coopr-router-dc"), "dc2");
    let entry = standby
        .log()
        .into_iter()
        .find(|e| e.request_id.as_deref() == Some("after-failover"))
        .expect("at dc2's standby server for dc1");
    let shard = ops::show(&s).await.unwrap()[(n % 12) as usize].clone();
    assert_eq!(shard.owner, "dc2");
    assert_eq!(entry.epoch, Some(shard.epoch.to_string()));
    assert!(
        dc2.log()
            .iter()
            .all(|e| e.request_id.as_deref() != Some("after-failover"))
    );
    // Its reads go there too: the standby has dc1's cluster, which dc2's own server never saw.
    let r = call(
        http::Method::GET,
        &dc3.url(&format!("/v2/clusters/{cid}")),
        &ADMIN,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["name"], "before-failover");
    // dc1 comes back: it stays a non-owner (no automatic failback), and its creates go elsewhere.
    let l = coopr_router::app::Listeners {
        client: tokio::net::TcpListener::bind(w.d.dcs[0].client)
            .await
            .unwrap(),
        peer: tokio::net::TcpListener::bind(w.d.dcs[0].peer)
            .await
            .unwrap(),
        admin: tokio::net::TcpListener::bind(w.d.dcs[0].admin)
            .await
            .unwrap(),
        provisioner: None,
    };
    let router =
        coopr_router::app::start(coopr_router::config::parse(&config_dc1).unwrap(), l).unwrap();
    w.d.dcs[0].router = Some(router);
    let dc1 = &w.d.dcs[0];
    eventually(WAIT, "dc1 fresh again", || async {
        let r = routes(dc1).await;
        (r["stale"] == false && r["fenced"] == false).then_some(())
    })
    .await;
    assert_eq!(
        routes(dc1).await["shards"][1]["owner"],
        "dc2",
        "no automatic failback"
    );
    let r = post(
        &dc1.url("/v2/clusters"),
        "{\"name\":\"elsewhere\",\"clusterTemplate\":\"demo\",\"numMachines\":1}",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_ne!(
        r.header("x-coopr-router-dc"),
        "dc1",
        "dc1 does not own its home shards: the create goes to a DC that does"
    );
    let _ = &w.relays;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_racing_for_one_move_produce_one_winner() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 6, false).await.unwrap();
    let epoch = ops::show(&s).await.unwrap()[1].epoch;
    let race = |to: &'static str| {
        let s = s.clone();
        async move {
            let mut c = s.connect().await.unwrap();
            ops::move_if_dead(&s, &mut c, 1, ("dc1", to), epoch, ops::Guard::Dead)
                .await
                .unwrap()
        }
    };
    let (a, b) = tokio::join!(race("dc2"), race("dc3"));
    assert_eq!(
        a.is_some() as u8 + b.is_some() as u8,
        1,
        "exactly one winner: {a:?} {b:?}"
    );
    assert_eq!(ops::history_count(&s, 1).await.unwrap(), 1);
    // A DC whose alive key exists is never moved.
    let mut c = s.connect().await.unwrap();
    let e2 = ops::show(&s).await.unwrap()[2].epoch;
    let (_keep, lease) = keep_alive(&s, "dc2").await;
    assert_eq!(
        ops::move_if_dead(&s, &mut c, 2, ("dc2", "dc3"), e2, ops::Guard::Dead)
            .await
            .unwrap(),
        None
    );
    lease.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cut_off_from_etcd_refuses_writes_before_its_shards_can_move() {
    let w = world().await;
    let dc1 = &w.d.dcs[0];
    let s = w.etcd.settings(PREFIX);
    let r = node_write(dc1, "before", 1).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let cut = Instant::now();
    w.relays[0].set(Mode::Blackhole);
    eventually(WAIT, "fenced", || async {
        (node_write(dc1, "fenced", 1).await.status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
    })
    .await;
    let fenced_after = cut.elapsed();
    // At that moment etcd still names dc1 the owner: the fence came first.
    assert_eq!(ops::show(&s).await.unwrap()[1].owner, "dc1");
    assert!(
        fenced_after < Duration::from_millis(TTL_MS),
        "fenced after {fenced_after:?}, lease TTL {TTL_MS} ms"
    );
    eprintln!("fenced {fenced_after:?} after the cut");
}

/// A DC cut off together with etcd's leader keeps its lease for seconds after the cut (the new
/// leader extends every lease by its election timeout): here the test keeps dc1's lease alive
/// itself after dc1's router is gone. Its heartbeats stopped, so the controllers move its shards
/// once its member keys have stayed unchanged for TTL + grace, although `alive/dc1` is still
/// there; the move deletes dc1's member and alive keys with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_whose_heartbeats_stopped_loses_its_shards_while_etcd_keeps_its_lease() {
    let mut w = world().await;
    let s = w.etcd.settings(PREFIX);
    let mut c = s.connect().await.unwrap();
    let alive_key = format!("{PREFIX}alive/dc1");
    let lease: i64 = eventually(WAIT, "alive/dc1", || {
        let (s, key) = (s.clone(), alive_key.clone());
        async move {
            let mut c = s.connect().await.ok()?;
            let r = c.get(key, None).await.ok()?;
            r.kvs().first().map(|kv| kv.lease())
        }
    })
    .await;
    w.d.dcs[0].stop_router().await;
    w.d.dcs[0].stop_sim();
    let stopped = Instant::now();
    // etcd keeps the lease (as a new leader would, extended): nothing expires.
    let (mut keeper, mut acks) = c.lease_keep_alive(lease).await.unwrap();
    let keep = tokio::spawn(async move {
        loop {
            if keeper.keep_alive().await.is_err() || acks.message().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let moved_at = eventually(WAIT, "dc1's shards moved", || async {
        let map = ops::show(&s).await.ok()?;
        [1usize, 4, 7, 10]
            .iter()
            .all(|&n| map[n].owner != "dc1")
            .then(|| stopped.elapsed())
    })
    .await;
    let window = Duration::from_millis(TTL_MS + GRACE_MS);
    assert!(
        moved_at >= window - Duration::from_millis(500),
        "moved {moved_at:?} after the last heartbeat could have been sent; window {window:?}"
    );
    assert!(moved_at < window + Duration::from_secs(3), "{moved_at:?}");
    // The lease is still alive at etcd; the DC's keys went with the move.
    let ttl = c.lease_time_to_live(lease, None).await.unwrap().ttl();
    assert!(ttl > 0, "the test kept the lease alive");
    let members = c
        .get(
            coopr_router::ownership::keyspace::members_prefix(PREFIX, "dc1"),
            Some(etcd_client::GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    assert!(members.kvs().is_empty(), "dc1's member keys deleted");
    assert!(c.get(alive_key, None).await.unwrap().kvs().is_empty());
    keep.abort();
    eprintln!("moved {moved_at:?} after dc1's router stopped (window {window:?})");
}

/// Many shards of a dead DC in one transaction: all move with a history record each and one
/// new epoch; a batch with one shard another controller moved first moves none (the driver then
/// moves the rest one by one); a live DC's batch never moves; more than a transaction holds is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_moves_is_all_or_nothing() {
    use coopr_router::etcd::moves::{SHARDS_PER_TXN, move_all_if_dead};
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 600, false).await.unwrap();
    let rows = ops::show(&s).await.unwrap();
    let dc1: Vec<(u32, i64)> = rows
        .iter()
        .filter(|r| r.owner == "dc1")
        .map(|r| (r.shard, r.epoch))
        .collect();
    assert_eq!(dc1.len(), 200);
    let mut c = s.connect().await.unwrap();
    // A whole batch moves at one revision.
    let first = &dc1[..SHARDS_PER_TXN];
    let rev = move_all_if_dead(&s, &mut c, first, ("dc1", "dc2"), ops::Guard::Dead)
        .await
        .unwrap()
        .expect("moved");
    let map = ops::show(&s).await.unwrap();
    for &(n, _) in first {
        assert_eq!(map[n as usize].owner, "dc2", "shard {n}");
        assert_eq!(map[n as usize].epoch, rev);
        assert_eq!(ops::history_count(&s, n).await.unwrap(), 1);
    }
    // The same batch again (its epochs are old now): nothing moves.
    assert_eq!(
        move_all_if_dead(&s, &mut c, first, ("dc1", "dc3"), ops::Guard::Dead)
            .await
            .unwrap(),
        None
    );
    // One shard of the next batch moved by another controller first: none of it moves.
    let next = &dc1[SHARDS_PER_TXN..2 * SHARDS_PER_TXN];
    let (n0, e0) = next[7];
    ops::move_if_dead(&s, &mut c, n0, ("dc1", "dc3"), e0, ops::Guard::Dead)
        .await
        .unwrap()
        .expect("one shard moved alone");
    assert_eq!(
        move_all_if_dead(&s, &mut c, next, ("dc1", "dc2"), ops::Guard::Dead)
            .await
            .unwrap(),
        None
    );
    let map = ops::show(&s).await.unwrap();
    for &(n, _) in next {
        let want = if n == n0 { "dc3" } else { "dc1" };
        assert_eq!(map[n as usize].owner, want, "shard {n}");
    }
    // Too many for one transaction: refused before etcd is asked.
    let all = &dc1[..SHARDS_PER_TXN + 1];
    assert!(
        move_all_if_dead(&s, &mut c, all, ("dc1", "dc2"), ops::Guard::Dead)
            .await
            .is_err()
    );
    // A live DC's shards never move.
    let (_keep, lease) = keep_alive(&s, "dc1").await;
    let last = &dc1[2 * SHARDS_PER_TXN..3 * SHARDS_PER_TXN];
    assert_eq!(
        move_all_if_dead(&s, &mut c, last, ("dc1", "dc2"), ops::Guard::Dead)
            .await
            .unwrap(),
        None
    );
    lease.abort();
}

/// What the failover driver reads every 100 ms, in one request: the DCs with an `alive/` key,
/// and each DC's newest member key revision (its routers' heartbeats).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alive_keys_and_heartbeats_are_read_together() {
    use coopr_router::etcd::liveness;
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let mut c = s.connect().await.unwrap();
    let (alive, members) = liveness::alive_and_members(&s, &mut c).await.unwrap();
    assert!(alive.is_empty() && members.is_empty());
    let (_keep, shutdown) = coopr_router::shutdown::ShutdownTrigger::new();
    let lease = tokio::spawn(liveness::run(
        s.clone(),
        "dc2".into(),
        "router-a".into(),
        Duration::from_secs(5),
        None,
        shutdown,
    ));
    let (alive, members) = eventually(WAIT, "dc2 alive with a heartbeat", || async {
        let mut c = s.connect().await.ok()?;
        let got = liveness::alive_and_members(&s, &mut c).await.ok()?;
        (!got.0.is_empty() && !got.1.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(alive, vec!["dc2".to_string()]);
    assert_eq!(members.len(), 1);
    assert!(members["dc2"] > 0);
    // The next heartbeat shows as a newer revision.
    let first = members["dc2"];
    eventually(WAIT, "a newer heartbeat", || async {
        let mut c = s.connect().await.ok()?;
        let (_, m) = liveness::alive_and_members(&s, &mut c).await.ok()?;
        (m.get("dc2").copied()? > first).then_some(())
    })
    .await;
    lease.abort();
}

/// Keeps `dc`'s `alive/` key (and a member key) as a router of it would, once it exists; the
/// lease ends with the returned trigger and task.
async fn keep_alive(
    s: &coopr_router::etcd::Settings,
    dc: &str,
) -> (
    coopr_router::shutdown::ShutdownTrigger,
    tokio::task::JoinHandle<()>,
) {
    let (keep, shutdown) = coopr_router::shutdown::ShutdownTrigger::new();
    let lease = tokio::spawn(coopr_router::etcd::liveness::run(
        s.clone(),
        dc.into(),
        "test-router".into(),
        Duration::from_secs(5),
        None,
        shutdown,
    ));
    eventually(WAIT, &format!("{dc} alive"), || async {
        let mut c = s.connect().await.ok()?;
        coopr_router::etcd::liveness::alive_dcs(s, &mut c)
            .await
            .ok()?
            .contains(&dc.to_string())
            .then_some(())
    })
    .await;
    (keep, lease)
}
