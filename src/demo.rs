//! The three-DC demo on loopback: for each of dc1, dc2, dc3 a Coopr simulator (two ports, a
//! provisioner working through the router) and a router with the embedded static ownership map
//! (or etcd: its own three-member etcd when `etcd` is on `PATH` (`demo_etcd`), or `--etcd URL`)
//! and replication on. DC number i (1 to 3) takes base+100*(i-1) for
//! clients, +1 for its peer port, +2 for admin and +3 for its simulator. With `--tls DIR`, the
//! routers speak TLS to clients and mutual TLS to each other with development certificates
//! (made in DIR by `tls::dev` unless `DIR/ca.pem` exists).

use crate::app::{self, Listeners, RouterHandle};
use crate::config::{self, Config, ConfigError};
use crate::shutdown::Shutdown;
use crate::sim::{ProvisionerConfig, Sim, SimConfig, TaskMode};
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;

/// The demo's DCs.
pub const DCS: [&str; 3] = ["dc1", "dc2", "dc3"];
/// Shards in the demo map: a multiple of the id increment (3).
pub const SHARDS: u32 = 12;
/// The demo routers' admin token (loopback only): the status page and `/admin/operations`.
pub const ADMIN_TOKEN: &str = "demo-admin-token";

/// The URL of demo DC `i`'s status page, with the admin token in its fragment.
pub fn status_url(base: u16, i: usize) -> String {
    format!(
        "http://127.0.0.1:{}/admin/status#token={ADMIN_TOKEN}",
        port(base, i, 2)
    )
}

/// Port of DC `i` (0-based) for `offset` (0 client, 1 peer, 2 admin, 3 simulator, 4 the
/// simulator's tasks API, 5 the router's provisioner listener, 6 and 7 the demo's etcd member
/// `i`: clients and peers).
pub fn port(base: u16, i: usize, offset: u16) -> u16 {
    base + 100 * i as u16 + offset
}

/// The embedded configuration of demo DC `i` (0-based), as TOML.
pub fn config_text(base: u16, i: usize, etcd: Option<&str>, shared: bool) -> String {
    let mut dcs = String::new();
    for (k, name) in DCS.iter().enumerate() {
        dcs.push_str(&format!(
            "[dcs.{name}]\npeer_url = \"http://127.0.0.1:{}\"\nid_start = {}\nid_increment = 3\n\n",
            port(base, k, 1),
            k + 1
        ));
    }
    format!(
        "# Embedded demo configuration of {dc}.\ndc = \"{dc}\"\nshard_count = {SHARDS}\n\n\
         [listen]\nclient = \"127.0.0.1:{client}\"\npeer = \"127.0.0.1:{peer}\"\nadmin = \"127.0.0.1:{admin}\"\n{provisioner}\n\
         [[backends]]\nurl = \"http://127.0.0.1:{sim}\"\n{tasks}\n{dcs}\
         [timeouts]\nshutdown_grace_ms = 5000\n\n[log]\naccess_log = true\n\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{replication}{ownership}",
        // Sharded: replication on, so a read of another DC's cluster is answered here from
        // its replica (shared mode has one database and no replication).
        replication = if shared {
            String::new()
        } else {
            format!(
                "\n[replication]\nenabled = true\npath = \"{}\"\n",
                replica_store(base, i).display()
            )
        },
        ownership = match etcd {
            Some(urls) => format!(
                "\n[ownership]\nsource = \"etcd\"\nendpoints = [{}]\nstate_file = \"{}\"\n",
                urls.split(',')
                    .map(|u| format!("\"{}\"", u.trim()))
                    .collect::<Vec<_>>()
                    .join(", "),
                state_file(base, i).display()
            ),
            None if shared => "\n[ownership]\nmode = \"shared\"\n".to_string(),
            None => String::new(),
        },
        // Sharded: each DC's provisioner works through its router's provisioner listener,
        // which forwards Coopr's internal API to the simulator's tasks port.
        provisioner = if shared {
            String::new()
        } else {
            format!("provisioner = \"127.0.0.1:{}\"\n", port(base, i, 5))
        },
        tasks = if shared {
            String::new()
        } else {
            format!("tasks_url = \"http://127.0.0.1:{}\"\n", port(base, i, 4))
        },
        dc = DCS[i],
        client = port(base, i, 0),
        peer = port(base, i, 1),
        admin = port(base, i, 2),
        sim = port(base, i, 3),
    )
}

/// Where demo DC `i` keeps its replication store (removed when the demo starts: the simulators
/// start empty, and so do the replicas).
pub fn replica_store(base: u16, i: usize) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("coopr-router-demo-{}-{}.redb", base, DCS[i]))
}

/// Where demo DC `i` keeps its last-known-good ownership map (etcd modes). Removed when the
/// demo starts its own etcd: that one starts empty, and a map from an earlier run must not be
/// served until it answers.
pub fn state_file(base: u16, i: usize) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("coopr-router-demo-{}-{}.json", base, DCS[i]))
}

/// The parsed demo configuration of DC `i`.
pub fn config(
    base: u16,
    i: usize,
    etcd: Option<&str>,
    shared: bool,
) -> Result<Config, ConfigError> {
    config::parse(&config_text(base, i, etcd, shared))
}

/// Where the demo's routers take ownership from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// The embedded static map.
    Static,
    /// An etcd the user runs (client URLs, comma-separated).
    Etcd(String),
    /// The demo's own three-member etcd when `etcd` is on `PATH`, else the static map.
    Own,
}

/// Demo failures.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo config: {0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("simulator: {0}")]
    Sim(String),
    #[error("{0}")]
    Etcd(#[from] crate::etcd::EtcdError),
    #[error("the demo's etcd did not form: {0}")]
    OwnEtcd(String),
}

/// Runs the demo until `stop` resolves, then shuts everything down cleanly.
pub async fn run(
    base: u16,
    op_delay: Duration,
    ownership: Ownership,
    shared: bool,
    tls: Option<std::path::PathBuf>,
    stop: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    let mut own = None;
    let etcd = match ownership {
        Ownership::Etcd(url) => Some(url),
        Ownership::Static => None,
        Ownership::Own if shared => None,
        Ownership::Own => match crate::demo_etcd::find() {
            Some(bin) => {
                let ports: Vec<(u16, u16)> = (0..DCS.len())
                    .map(|i| (port(base, i, 6), port(base, i, 7)))
                    .collect();
                for i in 0..DCS.len() {
                    let _ = std::fs::remove_file(state_file(base, i));
                }
                let cluster = crate::demo_etcd::start(&bin, base, &ports)?;
                let urls = cluster.urls.join(",");
                println!(
                    "started the demo's own etcd: three members at {urls} (data removed on exit)"
                );
                own = Some(cluster);
                Some(urls)
            }
            None => {
                println!(
                    "no `etcd` on PATH: running the static map (apt-get install etcd-server, or --etcd URL, for ownership in etcd with automatic failover)"
                );
                None
            }
        },
    };
    let result = run_with(base, op_delay, etcd, own.as_mut(), shared, tls, stop).await;
    if let Some(cluster) = own {
        cluster.stop().await;
    }
    result
}

/// Initialises the map in etcd, retrying while the demo's own cluster forms (at most 30 s).
async fn init_map(
    settings: &crate::etcd::Settings,
    own: Option<&mut crate::demo_etcd::Cluster>,
) -> Result<(), DemoError> {
    let dcs: Vec<String> = DCS.iter().map(|s| s.to_string()).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut own = own;
    loop {
        match crate::etcd::ops::init(settings, &dcs, SHARDS, false).await {
            Ok(rev) => {
                println!("initialised the ownership map in etcd at revision {rev}");
                return Ok(());
            }
            Err(crate::etcd::EtcdError::Refused(msg)) => {
                println!("using the existing map in etcd ({msg})");
                return Ok(());
            }
            Err(e) => {
                let Some(cluster) = own.as_deref_mut() else {
                    return Err(e.into());
                };
                if let Some(why) = cluster.exited() {
                    return Err(DemoError::OwnEtcd(why));
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(DemoError::OwnEtcd(e.to_string()));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn run_with(
    base: u16,
    op_delay: Duration,
    etcd: Option<String>,
    own: Option<&mut crate::demo_etcd::Cluster>,
    shared: bool,
    tls: Option<std::path::PathBuf>,
    stop: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    if let Some(dir) = &tls
        && !dir.join("ca.pem").exists()
    {
        let dcs: Vec<String> = DCS.iter().map(|s| s.to_string()).collect();
        crate::tls::dev::write_dev_set(dir, &dcs, &[])?;
        println!("wrote development certificates under {}", dir.display());
    }
    if shared && etcd.is_some() {
        return Err(DemoError::Sim(
            "--mode shared has no shard owners; it does not use etcd".into(),
        ));
    }
    if let Some(urls) = &etcd {
        let endpoints = urls.split(',').map(|u| u.trim().to_string()).collect();
        let settings = crate::etcd::Settings::new(endpoints, "/coopr-router/");
        init_map(&settings, own).await?;
    }
    let (trigger, shutdown) = app::shutdown_pair();
    let mut sims = Vec::new();
    let mut routers: Vec<RouterHandle> = Vec::new();
    // Sharded: one simulator per DC, each in its own id partition. Shared: one simulator state
    // (one database, one id counter) behind three listeners.
    let shared_sim = if shared {
        let cfg = SimConfig {
            op_delay,
            name: "shared".to_string(),
            ..SimConfig::default()
        };
        Some(Sim::new(cfg).map_err(|e| DemoError::Sim(e.to_string()))?)
    } else {
        None
    };
    for (i, name) in DCS.iter().enumerate() {
        let sim = match &shared_sim {
            Some(s) => s.clone(),
            None => {
                // Operations advance as a provisioner takes and finishes their tasks; the
                // provisioner goes through this DC's router (its provisioner listener).
                let cfg = SimConfig {
                    id_start: i as u64 + 1,
                    id_increment: 3,
                    op_delay,
                    name: name.to_string(),
                    tasks: TaskMode::External,
                    provisioner: Some(ProvisionerConfig {
                        url: Some(format!("http://127.0.0.1:{}", port(base, i, 5))),
                        id: format!("demo-provisioner-{name}"),
                        poll: op_delay.min(Duration::from_millis(200)),
                        ..ProvisionerConfig::default()
                    }),
                    ..SimConfig::default()
                };
                Sim::new(cfg).map_err(|e| DemoError::Sim(e.to_string()))?
            }
        };
        let listener = TcpListener::bind(("127.0.0.1", port(base, i, 3))).await?;
        if shared {
            sims.push(tokio::spawn(
                sim.serve(listener, Shutdown::wait(shutdown.clone())),
            ));
        } else {
            let tasks = TcpListener::bind(("127.0.0.1", port(base, i, 4))).await?;
            sims.push(tokio::spawn(
                sim.clone()
                    .serve_external(listener, Shutdown::wait(shutdown.clone())),
            ));
            sims.push(tokio::spawn(
                sim.serve_tasks(tasks, Shutdown::wait(shutdown.clone())),
            ));
        }
    }
    for (i, name) in DCS.iter().enumerate() {
        let _ = std::fs::remove_file(replica_store(base, i));
        let cfg = match &tls {
            None => config(base, i, etcd.as_deref(), shared)?,
            Some(dir) => config::parse(&crate::tls::dev::enable_in(
                &config_text(base, i, etcd.as_deref(), shared),
                dir,
                name,
            ))?,
        };
        let listeners = Listeners::bind(&cfg).await?;
        routers.push(app::start(cfg, listeners)?);
    }
    print_banner(base, etcd.as_deref(), shared);
    if let Some(dir) = &tls {
        println!(
            "TLS: use https:// on the client ports with `--cacert {}` (peer ports need a DC's peer certificate)",
            dir.join("ca.pem").display()
        );
    }
    stop.await;
    println!("\nstopping the demo...");
    for r in &routers {
        r.shutdown();
    }
    trigger.trigger();
    for r in routers {
        r.wait().await;
    }
    for s in sims {
        let _ = s.await;
    }
    println!("demo stopped");
    Ok(())
}

fn print_banner(base: u16, etcd: Option<&str>, shared: bool) {
    let h = "-H 'Coopr-UserID: admin' -H 'Coopr-TenantID: superadmin'";
    let source = match etcd {
        _ if shared => "shared mode (one database: every DC serves every cluster)".to_string(),
        Some(u) => format!("ownership from etcd at {u}"),
        None => "static ownership map".to_string(),
    };
    println!("\ncoopr-router demo: three DCs on loopback, {source}, {SHARDS} shards\n");
    for (i, name) in DCS.iter().enumerate() {
        println!(
            "  {name}: router http://127.0.0.1:{}  peer :{}  admin http://127.0.0.1:{}  coopr-sim http://127.0.0.1:{}",
            port(base, i, 0),
            port(base, i, 1),
            port(base, i, 2),
            port(base, i, 3)
        );
        if !shared {
            println!(
                "       provisioners -> router http://127.0.0.1:{} (Coopr's internal API) -> coopr-sim tasks :{}",
                port(base, i, 5),
                port(base, i, 4)
            );
        }
    }
    println!("\nStatus pages (open in a browser; they refresh themselves):");
    for (i, name) in DCS.iter().enumerate() {
        println!("  {name}: {}", status_url(base, i));
    }
    println!(
        "  in the terminal: coopr-router status --token {ADMIN_TOKEN} {}",
        (0..DCS.len())
            .map(|i| format!("--admin http://127.0.0.1:{}", port(base, i, 2)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let (c1, c2) = (port(base, 0, 0), port(base, 1, 0));
    println!("\nTry:");
    println!("  # create a cluster in dc1 (ids from dc1's Coopr: 00000001, 00000004, ...)");
    println!(
        "  curl -si -XPOST http://127.0.0.1:{c1}/v2/clusters {h} -d '{{\"name\":\"demo\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}'"
    );
    println!("  # read it in dc1 (answered locally)");
    println!("  curl -si http://127.0.0.1:{c1}/v2/clusters/00000001/status {h}");
    println!(
        "  # once it is active, write to it through dc2: the write is forwarded to dc1, its owner"
    );
    println!("  curl -si -XPOST http://127.0.0.1:{c2}/v2/clusters/00000001/services/restart {h}");
    if !shared {
        println!(
            "  # read it through dc2: answered from dc2's replica (x-coopr-router-route: replica)"
        );
        println!("  curl -si http://127.0.0.1:{c2}/v2/clusters/00000001 {h}");
    }
    println!("  # see where writes landed");
    println!("  curl -s http://127.0.0.1:{}/sim/log", port(base, 0, 3));
    println!("  # ask a router what it would do, and why");
    println!(
        "  curl -s 'http://127.0.0.1:{}/admin/explain?method=POST&path=/v2/clusters/00000001/services/restart'",
        port(base, 1, 2)
    );
    if shared {
        println!("  # every DC sees the cluster: read it through dc3 (answered by dc3's server)");
        println!(
            "  curl -si http://127.0.0.1:{}/v2/clusters/00000001 {h}",
            port(base, 2, 0)
        );
    }
    if let Some(url) = etcd {
        println!("  # move shard 1 to dc2 and watch every router follow");
        println!("  coopr-router ownership --etcd {url} set --shard 1 --owner dc2");
    }
    println!("\nCtrl-C stops everything.");
}
