//! The fence on the lease, against a real etcd: a router that keeps its lease keeps accepting
//! writes through an etcd restart (its watch lost, no progress for seconds); `ownership set` of
//! a live owner's shard goes through the owner's consent (a handoff) or refuses, and moves a
//! shard directly only once every router of the old owner has lost its lease; the failover's
//! move waits for the same.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::etcd::{handoff, ops};
use coopr_router::ownership::keyspace;
use etcd_client::{GetOptions, PutOptions};
use http::StatusCode;
use std::net::SocketAddr;
use std::time::Duration;
use support::etcd::EtcdServer;
use support::relay::Relay;
use support::*;

const PREFIX: &str = "/fence/";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_keeps_its_lease_writes_through_an_etcd_restart() {
    let mut etcd = EtcdServer::start().await;
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&etcd.settings(PREFIX), &dcs, 12, false)
        .await
        .unwrap();
    let target: SocketAddr = ([127, 0, 0, 1], etcd.client_port).into();
    let relay = Relay::start(target).await;
    let dir = tempfile::tempdir().unwrap();
    // A 10 s lease (fenced 9 s after the last acknowledged keepalive): room for a restart of
    // etcd on a loaded test machine, the way etcd's own election takes a few seconds.
    let d = start_with(Duration::from_millis(10), |i| {
        format!(
            "[ownership]\nsource = \"etcd\"\nendpoints = [\"{}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = 600\nstate_file = \"{}\"\n\n[failover]\nlease_ttl_ms = 10000\n",
            relay.url(),
            dir.path().join(format!("dc{}.json", i + 1)).display()
        )
    })
    .await;
    let dc1 = &d.dcs[0];
    eventually(WAIT, "dc1 fresh", || async {
        let r = routes(dc1).await;
        (r["fenced"] == false && r["stale"] == false).then_some(())
    })
    .await;
    assert_eq!(write(dc1, 0).await.status, StatusCode::CREATED);
    etcd.kill();
    // The watch is lost (stale), and no progress arrives; the lease was acknowledged before.
    let mut saw_stale = false;
    let mut n = 1;
    let down = tokio::time::Instant::now();
    while down.elapsed() < Duration::from_millis(1500) || !saw_stale {
        let r = write(dc1, n).await;
        assert_eq!(r.status, StatusCode::CREATED, "write {n}: {}", r.text());
        saw_stale |= routes(dc1).await["stale"] == true;
        n += 1;
        assert!(
            down.elapsed() < WAIT,
            "the watch never noticed etcd was gone"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    etcd.restart().await;
    // etcd extends every lease when it elects a leader: the same lease is kept alive again, so
    // the proof never lapses and no write is refused.
    loop {
        let r = write(dc1, n).await;
        assert_eq!(r.status, StatusCode::CREATED, "write {n}: {}", r.text());
        n += 1;
        if routes(dc1).await["stale"] == false {
            break;
        }
        assert!(down.elapsed() < WAIT, "the watch never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = routes(dc1).await;
    assert_eq!(r["fenced"], false, "{r}");
    assert!(r["lease_left_ms"].as_u64().unwrap() > 0, "{r}");
}

async fn write(dc: &Dc, n: usize) -> Reply {
    let body = format!("{{\"id\":\"ride-{n}\",\"clusterId\":\"00000001\"}}");
    post(&dc.url("/v2/nodes"), &body).await
}

/// A router of `dc` as etcd sees it: `members/{dc}/{name}` on a lease of its own.
async fn fake_member(s: &coopr_router::etcd::Settings, dc: &str, name: &str) -> i64 {
    let mut c = s.connect().await.unwrap();
    let lease = c.lease_grant(30, None).await.unwrap().id();
    c.put(
        keyspace::member_key(&s.prefix, dc, name),
        dc,
        Some(PutOptions::new().with_lease(lease)),
    )
    .await
    .unwrap();
    lease
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_set_needs_the_owners_consent_or_its_leases_gone() {
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 12, false).await.unwrap();
    let mut c = s.connect().await.unwrap();
    let lease = fake_member(&s, "dc1", "r1").await;
    assert!(ops::dc_has_members(&s, &mut c, "dc1").await.unwrap());
    assert!(!ops::dc_has_members(&s, &mut c, "dc2").await.unwrap());

    // dc1 is live and nobody commits: refused after the wait, the request withdrawn, no move.
    let e = ops::set_owner_within(&s, 1, "dc2", ("test", "raw"), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is live"), "{e}");
    let h = c.get(keyspace::handoff_key(PREFIX, 1), None).await.unwrap();
    assert!(h.kvs().is_empty(), "the handoff request was withdrawn");
    assert_eq!(ops::show(&s).await.unwrap()[1].owner, "dc1");

    // Nor can the failover's move (or a forced one) take it while the member's lease lives,
    // even with alive/dc1 absent.
    let e1 = ops::show(&s).await.unwrap()[1].epoch;
    assert_eq!(
        ops::move_if_dead(&s, &mut c, 1, ("dc1", "dc2"), e1, ops::Guard::Dead)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        ops::move_shard(
            &s,
            &mut c,
            1,
            ("dc1", "dc2"),
            e1,
            ("t", "t"),
            ops::Guard::NoMember
        )
        .await
        .unwrap(),
        None
    );

    // With consent: the owner's router acknowledges and commits the requested handoff.
    let owner = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut c = s.connect().await.unwrap();
            loop {
                let h = c.get(keyspace::handoff_key(PREFIX, 1), None).await.unwrap();
                if !h.kvs().is_empty() {
                    let epoch = ops::show(&s).await.unwrap()[1].epoch;
                    handoff::ack(&s, &mut c, 1, "r1", epoch as u64)
                        .await
                        .unwrap();
                    return handoff::commit(&s, &mut c, 1, "dc1", epoch).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let (old, new) = ops::set_owner(&s, 1, "dc2", "test", "with consent")
        .await
        .unwrap();
    assert!(new > old);
    assert_eq!(owner.await.unwrap(), handoff::Commit::Moved(new));
    assert_eq!(ops::show(&s).await.unwrap()[1].owner, "dc2");

    // Without a live router: a direct move, once the lease is gone.
    let dc2 = fake_member(&s, "dc2", "r2").await;
    let waiting = {
        let s = s.clone();
        tokio::spawn(async move { ops::set_owner(&s, 1, "dc3", "test", "dead owner").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "a live owner's shard does not move");
    c.lease_revoke(dc2).await.unwrap();
    let (_, moved) = waiting.await.unwrap().unwrap();
    let rows = ops::show(&s).await.unwrap();
    assert_eq!((rows[1].owner.as_str(), rows[1].epoch), ("dc3", moved));
    let hist = c
        .get(
            format!("{PREFIX}history/00001/"),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let last = hist.kvs().last().unwrap();
    assert!(
        String::from_utf8_lossy(last.value()).contains("dc2 had no live router"),
        "{:?}",
        String::from_utf8_lossy(last.value())
    );
    c.lease_revoke(lease).await.unwrap();
}

/// The liveness task talks to one etcd member at a time and moves on to the next endpoint when
/// its member does not answer: a dead first endpoint (the DC's own member, down) does not keep
/// the router from proving its lease, and the proof goes on when the member it uses dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_is_kept_through_the_next_member_when_one_is_dead() {
    let etcd = EtcdServer::start().await;
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&etcd.settings(PREFIX), &dcs, 12, false)
        .await
        .unwrap();
    // A port nobody listens on: connections to it are refused.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let target: SocketAddr = ([127, 0, 0, 1], etcd.client_port).into();
    let relay = Relay::start(target).await;
    let dir = tempfile::tempdir().unwrap();
    let d = start_with(Duration::from_millis(10), |i| {
        format!(
            "[ownership]\nsource = \"etcd\"\nendpoints = [\"http://{dead}\", \"{}\", \"{}\"]\nprefix = \"{PREFIX}\"\nfence_after_ms = 600\nstate_file = \"{}\"\n",
            relay.url(),
            etcd.url(),
            dir.path().join(format!("dc{}.json", i + 1)).display()
        )
    })
    .await;
    let dc1 = &d.dcs[0];
    eventually(WAIT, "dc1 fresh with its first endpoint dead", || async {
        let r = routes(dc1).await;
        (r["fenced"] == false && r["stale"] == false).then_some(())
    })
    .await;
    assert_eq!(write(dc1, 0).await.status, StatusCode::CREATED);
    // The relay (the second endpoint: the one the liveness task moved to after the dead first
    // one) goes silent, like a member cut off by a partition: bytes vanish, no connection
    // closes. The task moves on to the direct endpoint before the proof (4 s with the default
    // 5 s lease) lapses.
    relay.set(support::relay::Mode::Blackhole);
    let cut = tokio::time::Instant::now();
    let mut n = 1;
    while cut.elapsed() < Duration::from_secs(8) {
        let r = write(dc1, n).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "write {n} {:?} after the cut: {}",
            cut.elapsed(),
            r.text()
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = routes(dc1).await;
    assert_eq!(r["fenced"], false, "{r}");
}

/// The heartbeat against a real etcd: a router rewrites its member key, so a stale-heartbeat move
/// that names an older revision fails; one that names the current revision (a controller that saw
/// the key unchanged for the window) deletes the key, and the router then gives its lease up:
/// fenced at once, back on a new lease and member key, and fenced until the map is proven current
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_whose_member_key_was_taken_over_starts_over_fenced() {
    use coopr_router::etcd::liveness;
    use coopr_router::ownership::Freshness;
    let etcd = EtcdServer::start().await;
    let s = etcd.settings(PREFIX);
    let dcs: Vec<String> = ["dc1", "dc2", "dc3"].map(String::from).to_vec();
    ops::init(&s, &dcs, 12, false).await.unwrap();
    let ttl = Duration::from_secs(2);
    let fence = std::sync::Arc::new(Freshness::live(
        Duration::from_millis(600),
        Duration::from_millis(500),
        ttl + Duration::from_millis(500),
    ));
    let (trigger, shutdown) = coopr_router::shutdown::ShutdownTrigger::new();
    tokio::spawn(liveness::run(
        s.clone(),
        "dc1".into(),
        "r1".into(),
        ttl,
        Some(fence.clone()),
        shutdown,
    ));
    let mut c = s.connect().await.unwrap();
    let member = keyspace::member_key(PREFIX, "dc1", "r1");
    let key_now = |c: &mut etcd_client::Client| {
        let (mut c, member) = (c.clone(), member.clone());
        async move {
            let r = c.get(member, None).await.ok()?;
            r.kvs().first().map(|kv| (kv.mod_revision(), kv.lease()))
        }
    };
    let (first_rev, first_lease) = eventually(WAIT, "member key", || key_now(&mut c)).await;
    let prove = || {
        fence.progress();
        fence.read_ok(tokio::time::Instant::now());
    };
    eventually(WAIT, "fence open", || async {
        prove();
        (!fence.is_fenced()).then_some(())
    })
    .await;
    // Heartbeats rewrite the key.
    let beat_rev = eventually(WAIT, "a heartbeat", || async {
        key_now(&mut c.clone())
            .await
            .and_then(|(r, _)| (r > first_rev).then_some(r))
    })
    .await;
    // A heartbeat committed whose answer was lost (here: written by the test on the router's
    // own lease): the next compare fails, and the router sees the key is still its own.
    let lost = c
        .put(
            member.clone(),
            "dc1",
            Some(PutOptions::new().with_lease(first_lease)),
        )
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    eventually(WAIT, "a heartbeat after the lost one", || async {
        key_now(&mut c.clone())
            .await
            .and_then(|(r, l)| (r > lost && l == first_lease).then_some(()))
    })
    .await;
    assert!(!fence.is_fenced(), "a lost answer is not a takeover");
    let epoch = ops::show(&s).await.unwrap()[1].epoch;
    assert_eq!(
        ops::move_if_dead(
            &s,
            &mut c,
            1,
            ("dc1", "dc2"),
            epoch,
            ops::Guard::Stale(first_rev)
        )
        .await
        .unwrap(),
        None,
        "a heartbeat after the revision seen: no move"
    );
    assert_eq!(ops::show(&s).await.unwrap()[1].owner, "dc1");
    // A controller that saw the current revision unchanged for the window (here: the test says
    // so, racing the next heartbeat until it wins).
    let moved = eventually(WAIT, "the stale move", || {
        let (s, mut c) = (s.clone(), c.clone());
        let key = key_now(&mut c);
        async move {
            let (rev, _) = key.await?;
            let epoch = ops::show(&s).await.ok()?[1].epoch;
            ops::move_if_dead(&s, &mut c, 1, ("dc1", "dc2"), epoch, ops::Guard::Stale(rev))
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    assert!(moved > beat_rev);
    assert_eq!(ops::show(&s).await.unwrap()[1].owner, "dc2");
    // The router's next heartbeat fails its compare: fenced, with nothing else changed.
    eventually(WAIT, "fenced", || async { fence.is_fenced().then_some(()) }).await;
    // It comes back on a new lease and a new member key, fenced until the map is proven again.
    let (_, lease) = eventually(WAIT, "a new member key", || async {
        key_now(&mut c.clone())
            .await
            .filter(|&(r, l)| r > moved && l != first_lease)
    })
    .await;
    assert_ne!(lease, first_lease);
    eventually(WAIT, "the new lease acknowledged", || async {
        fence.lease_left_ms().is_some().then_some(())
    })
    .await;
    assert!(fence.is_fenced(), "the map was proven before the new lease");
    eventually(WAIT, "fence open again", || async {
        prove();
        (!fence.is_fenced()).then_some(())
    })
    .await;
    drop(trigger);
}

/// With one member of the list dead, every request of a client from `Settings::connect` is
/// answered: the client talks to a member that answered, not to every endpoint at once (a
/// balanced channel over all of them fails some requests with "tcp connect error", and a watch
/// over it kept restarting).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_in_the_list_fails_no_request() {
    let etcd = EtcdServer::start().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for endpoints in [
        vec![format!("http://{dead}"), etcd.url()],
        vec![etcd.url(), format!("http://{dead}")],
    ] {
        let s = coopr_router::etcd::Settings::new(endpoints.clone(), PREFIX);
        for round in 0..3 {
            let mut c = s.connect().await.unwrap();
            for i in 0..40 {
                if let Err(e) = c.get(PREFIX, None).await {
                    panic!("{endpoints:?}, connection {round}, request {i}: {e}");
                }
            }
        }
    }
}
