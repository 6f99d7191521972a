//! The three-DC demo on loopback: for each of dc1, dc2, dc3 a Coopr simulator (two ports, a
//! provisioner working through the router) and a router with replication on. Ownership comes
//! from the demo's own three-member etcd when Debian's `etcd` is on `PATH` (automatic failover
//! on), from `--etcd URL`, or else from the embedded static map. DC number i (1 to 3) takes
//! base+100*(i-1) for clients, +1 for its peer port, +2 for admin, +3 and +4 for its simulator,
//! +5 for its provisioner listener, +6 and +7 for its etcd member; base+9 is the control
//! endpoint. With `--tls DIR`, the routers speak TLS to clients and mutual TLS to each other
//! with development certificates (made in DIR by `tls::dev` unless `DIR/ca.pem` exists).

mod control;
mod etcd;

pub use control::{Demo, HELP};

use crate::config::{self, Config, ConfigError};
use crate::sim::{ProvisionerConfig, Sim, SimConfig, TaskMode};
use std::future::Future;
use std::sync::Arc;
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
/// simulator's tasks API, 5 the router's provisioner listener).
pub fn port(base: u16, i: usize, offset: u16) -> u16 {
    base + 100 * i as u16 + offset
}

/// The embedded configuration of demo DC `i` (0-based), as TOML.
pub fn config_text(base: u16, i: usize, etcd: Option<&[String]>, shared: bool) -> String {
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
        // With etcd: failover tuned to be seen within seconds (lease 4 s, grace 1 s).
        ownership = match etcd {
            Some(urls) => format!(
                "\n[ownership]\nsource = \"etcd\"\nendpoints = [{}]\nstate_file = \"{}\"\n\n\
                 [failover]\nlease_ttl_ms = 4000\ngrace_ms = 1000\nmin_interval_ms = 5000\n",
                urls.iter()
                    .map(|u| format!("\"{u}\""))
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

/// Where demo DC `i` keeps its last-known ownership map (with etcd; removed at start).
pub fn state_file(base: u16, i: usize) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("coopr-router-demo-{}-{}.json", base, DCS[i]))
}

/// The parsed demo configuration of DC `i`.
pub fn config(
    base: u16,
    i: usize,
    etcd: Option<&[String]>,
    shared: bool,
) -> Result<Config, ConfigError> {
    config::parse(&config_text(base, i, etcd, shared))
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
}

/// Where ownership comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnershipChoice {
    /// The demo's own three-member etcd when `etcd` is on `PATH`, else the static map.
    Auto,
    /// The embedded static map.
    Static,
    /// An etcd the user runs (client URLs, comma-separated); the map is initialised if absent.
    Etcd(String),
}

/// What `demo` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub base: u16,
    pub op_delay: Duration,
    pub ownership: OwnershipChoice,
    pub shared: bool,
    pub tls: Option<std::path::PathBuf>,
    /// Read commands from standard input.
    pub terminal: bool,
}

/// Runs the demo until `stop` resolves, then shuts everything down cleanly.
pub async fn run(opts: Options, stop: impl Future<Output = ()>) -> Result<(), DemoError> {
    let base = opts.base;
    let shared = opts.shared;
    if let Some(dir) = &opts.tls
        && !dir.join("ca.pem").exists()
    {
        let dcs: Vec<String> = DCS.iter().map(|s| s.to_string()).collect();
        crate::tls::dev::write_dev_set(dir, &dcs, &[])?;
        println!("wrote development certificates under {}", dir.display());
    }
    if shared && matches!(opts.ownership, OwnershipChoice::Etcd(_)) {
        return Err(DemoError::Sim(
            "--mode shared has no shard owners; it does not use etcd".into(),
        ));
    }
    // Ownership: the user's etcd, the demo's own, or the static map.
    let mut own_etcd = None;
    let endpoints: Option<Vec<String>> = match &opts.ownership {
        OwnershipChoice::Etcd(urls) => {
            Some(urls.split(',').map(|u| u.trim().to_string()).collect())
        }
        OwnershipChoice::Static => None,
        OwnershipChoice::Auto if shared => None,
        OwnershipChoice::Auto => match etcd::find_etcd() {
            Some(bin) => {
                println!(
                    "starting a three-member etcd on loopback ({})",
                    bin.display()
                );
                let cluster = etcd::EtcdCluster::start(&bin, base, Duration::from_secs(30))
                    .await
                    .map_err(|e| DemoError::Sim(format!("the demo's etcd: {e}")))?;
                let urls = cluster.endpoints.clone();
                own_etcd = Some(cluster);
                Some(urls)
            }
            None => {
                println!(
                    "no `etcd` on PATH: running the static map, without failover \
                     (apt-get install etcd-server, then run the demo again to see failover)"
                );
                None
            }
        },
    };
    let settings = endpoints
        .as_ref()
        .map(|urls| crate::etcd::Settings::new(urls.clone(), "/coopr-router/"));
    if let Some(settings) = &settings {
        let dcs: Vec<String> = DCS.iter().map(|s| s.to_string()).collect();
        match crate::etcd::ops::init(settings, &dcs, SHARDS, false).await {
            Ok(rev) => println!("initialised the ownership map in etcd at revision {rev}"),
            Err(crate::etcd::EtcdError::Refused(msg)) => {
                println!("using the existing map in etcd ({msg})")
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Sharded: one simulator per DC, each in its own id partition. Shared: one simulator state
    // (one database, one id counter) behind three listeners.
    let shared_sim = if shared {
        let cfg = SimConfig {
            op_delay: opts.op_delay,
            name: "shared".to_string(),
            ..SimConfig::default()
        };
        Some(Sim::new(cfg).map_err(|e| DemoError::Sim(e.to_string()))?)
    } else {
        None
    };
    let mut dcs = Vec::new();
    for (i, name) in DCS.iter().enumerate() {
        let sim = match &shared_sim {
            Some(s) => s.clone(),
            None => {
                // Operations advance as a provisioner takes and finishes their tasks; the
                // provisioner goes through this DC's router (its provisioner listener).
                let cfg = SimConfig {
                    id_start: i as u64 + 1,
                    id_increment: 3,
                    op_delay: opts.op_delay,
                    name: name.to_string(),
                    tasks: TaskMode::External,
                    provisioner: Some(ProvisionerConfig {
                        url: Some(format!("http://127.0.0.1:{}", port(base, i, 5))),
                        id: format!("demo-provisioner-{name}"),
                        poll: opts.op_delay.min(Duration::from_millis(200)),
                        ..ProvisionerConfig::default()
                    }),
                    ..SimConfig::default()
                };
                Sim::new(cfg).map_err(|e| DemoError::Sim(e.to_string()))?
            }
        };
        let _ = std::fs::remove_file(replica_store(base, i));
        let _ = std::fs::remove_file(state_file(base, i));
        let cfg = match &opts.tls {
            None => config(base, i, endpoints.as_deref(), shared)?,
            Some(dir) => config::parse(&crate::tls::dev::enable_in(
                &config_text(base, i, endpoints.as_deref(), shared),
                dir,
                name,
            ))?,
        };
        dcs.push(control::Dc::new(sim, cfg, !shared));
    }
    let tables: control::Tables = Arc::new(std::sync::Mutex::new(vec![None; DCS.len()]));
    let mut demo = Demo {
        base,
        dcs,
        etcd: settings.clone(),
        tables: tables.clone(),
    };
    for i in 0..DCS.len() {
        demo.start_dc(i).await?;
    }
    let control_port = port(base, 0, 9);
    let control_listener = TcpListener::bind(("127.0.0.1", control_port)).await?;
    print_banner(base, endpoints.as_deref(), shared, own_etcd.is_some());
    if let Some(dir) = &opts.tls {
        println!(
            "TLS: use https:// on the client ports with `--cacert {}` (peer ports need a DC's peer certificate)",
            dir.join("ca.pem").display()
        );
    }
    let demo = Arc::new(tokio::sync::Mutex::new(demo));
    let mut background = tokio::task::JoinSet::new();
    background.spawn(control::serve_control(control_listener, demo.clone()));
    if settings.is_some() {
        background.spawn(control::watch_map(tables));
    }
    if opts.terminal {
        background.spawn(control::read_terminal(demo.clone()));
    }
    stop.await;
    println!("\nstopping the demo...");
    background.abort_all();
    let mut demo = demo.lock().await;
    for i in 0..DCS.len() {
        demo.stop_dc(i).await;
    }
    if let Some(mut e) = own_etcd {
        e.stop();
    }
    println!("demo stopped");
    Ok(())
}

fn print_banner(base: u16, etcd: Option<&[String]>, shared: bool, own_etcd: bool) {
    let h = "-H 'Coopr-UserID: admin' -H 'Coopr-TenantID: superadmin'";
    let source = match etcd {
        _ if shared => "shared mode (one database: every DC serves every cluster)".to_string(),
        Some(_) if own_etcd => {
            "ownership from the demo's own three-member etcd, automatic failover".to_string()
        }
        Some(u) => format!("ownership from etcd at {}", u.join(",")),
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
    if let Some(urls) = etcd {
        let url = urls.first().map(String::as_str).unwrap_or_default();
        println!("  # the map in etcd, and where each shard is");
        println!("  coopr-router ownership show --etcd {url}");
    }
    println!(
        "\nType commands here (or POST them to http://127.0.0.1:{}/demo): {HELP}",
        port(base, 0, 9)
    );
    if etcd.is_some() {
        println!(
            "  kill dc1          # dc1's router and coopr-sim stop; its shards move to dc2/dc3"
        );
        println!("  get dc2 /v2/clusters/00000001   # who answers a cluster of dc1 now");
        println!("  start dc1         # back, as a non-owner");
        println!("  handoff 1 dc1     # give shard 1 back, without losing a write");
    }
    println!("\nCtrl-C stops everything.");
}
