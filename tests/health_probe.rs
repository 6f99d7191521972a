//! The health prober probes every target of a round at once: peers that accept a connection
//! and never answer (a partitioned DC) do not delay the probes of the others, so a round does
//! not grow with the number of DCs (load/SCALE.md, "DCs").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use coopr_router::app::{self, Listeners};
use coopr_router::config;
use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
use coopr_router::sim::{Sim, SimConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::eventually;
use support::relay::{Options, Relay};
use tokio::net::TcpListener;

/// A peer port that accepts connections and never answers; counts the connections.
async fn silent_peer() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    (addr, n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peers_do_not_delay_the_other_probes() {
    let sim = Sim::new(SimConfig {
        name: "dc1".into(),
        ..SimConfig::default()
    })
    .unwrap();
    let sl = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (_stop, sim_shutdown) = ShutdownTrigger::new();
    let sim_target = sl.local_addr().unwrap();
    tokio::spawn(sim.serve(sl, Shutdown::wait(sim_shutdown)));
    // The simulator logs no reads: a tapping relay in front of it counts the probes.
    let tap = Relay::start_with(
        sim_target,
        Options {
            tap: true,
            ..Options::default()
        },
    )
    .await;
    let sim_addr = tap.addr;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(silent_peer().await);
    }
    let l = Listeners {
        client: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        peer: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        admin: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        provisioner: None,
    };
    let peer = l.peer.local_addr().unwrap();
    let mut t = format!(
        "dc = \"dc1\"\nshard_count = 5\n\n[listen]\nclient = \"{}\"\npeer = \"{peer}\"\nadmin = \"{}\"\n\n[[backends]]\nurl = \"http://{sim_addr}\"\n\n[dcs.dc1]\npeer_url = \"http://{peer}\"\nid_start = 1\nid_increment = 5\n\n",
        l.client.local_addr().unwrap(),
        l.admin.local_addr().unwrap()
    );
    for (k, (addr, _)) in silent.iter().enumerate() {
        t.push_str(&format!(
            "[dcs.dc{}]\npeer_url = \"http://{addr}\"\nid_start = {}\nid_increment = 5\n\n",
            k + 2,
            k + 2
        ));
    }
    // A silent peer costs a probe 5 s: one after the other, four of them would hold the next
    // round (and the local server's next probe) back for 20 s.
    t.push_str("[health]\ninterval_ms = 100\ntimeout_ms = 5000\n");
    let router = app::start(config::parse(&t).unwrap(), l).unwrap();
    let probes = || {
        tap.tapped()
            .windows(b"GET /status ".len())
            .filter(|w| w == b"GET /status ")
            .count()
    };
    eventually(
        Duration::from_secs(4),
        "every silent peer probed",
        || async {
            silent
                .iter()
                .all(|(_, n)| n.load(Ordering::SeqCst) >= 1)
                .then_some(())
        },
    )
    .await;
    // The local server is probed every interval, while the silent peers' first probes still wait.
    eventually(
        Duration::from_secs(4),
        "three probes of the local server",
        || async { (probes() >= 3).then_some(()) },
    )
    .await;
    router.shutdown();
    router.wait().await;
}
