//! The demo's controls: each DC's processes (its router and its coopr-sim listeners) that can be
//! killed and brought back, and the commands that do it, typed on the demo's terminal or posted
//! to its control endpoint (`POST /demo`, the command line as the body): `kill dcN`,
//! `start dcN`, `handoff SHARD dcN`, `map`, `get dcN PATH`, `help`. Each answers with what
//! happened; ownership changes in etcd are printed as they happen by `watch_map`.

use super::{DCS, DemoError, port};
use crate::app::{self, Listeners, RouterHandle};
use crate::body::ProxyBody;
use crate::config::Config;
use crate::etcd::{Settings, handoff, ops};
use crate::routing::Routes;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::sim::Sim;
use crate::upstream::Upstream;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// One DC of the demo: its simulator (its state outlives a kill, as a database would), the
/// router's config, and what runs now.
pub(super) struct Dc {
    pub(super) sim: Sim,
    pub(super) config: Config,
    /// Sharded DCs serve the external and the tasks API on two ports; shared mode one.
    pub(super) two_ports: bool,
    pub(super) router: Option<RouterHandle>,
    sim_stop: Option<ShutdownTrigger>,
    sim_tasks: Vec<JoinHandle<std::io::Result<()>>>,
}

impl Dc {
    pub(super) fn new(sim: Sim, config: Config, two_ports: bool) -> Dc {
        Dc {
            sim,
            config,
            two_ports,
            router: None,
            sim_stop: None,
            sim_tasks: Vec::new(),
        }
    }

    fn running(&self) -> bool {
        self.router.is_some()
    }
}

/// Everything the controls reach.
pub struct Demo {
    pub(super) base: u16,
    pub(super) dcs: Vec<Dc>,
    pub(super) etcd: Option<Settings>,
    pub(super) tables: Tables,
}

/// The commands, for `help`.
pub const HELP: &str =
    "commands: kill dcN | start dcN | handoff SHARD dcN | map | get dcN PATH | help";

impl Demo {
    /// Starts DC `i`'s simulator listeners, then its router.
    pub(super) async fn start_dc(&mut self, i: usize) -> Result<(), DemoError> {
        let base = self.base;
        let dc = &mut self.dcs[i];
        if dc.running() {
            return Ok(());
        }
        let (trigger, shutdown) = app::shutdown_pair();
        let external = TcpListener::bind(("127.0.0.1", port(base, i, 3))).await?;
        if dc.two_ports {
            let tasks = TcpListener::bind(("127.0.0.1", port(base, i, 4))).await?;
            dc.sim_tasks.push(tokio::spawn(
                dc.sim
                    .clone()
                    .serve_external(external, Shutdown::wait(shutdown.clone())),
            ));
            dc.sim_tasks.push(tokio::spawn(
                dc.sim.clone().serve_tasks(tasks, Shutdown::wait(shutdown)),
            ));
        } else {
            dc.sim_tasks.push(tokio::spawn(
                dc.sim.clone().serve(external, Shutdown::wait(shutdown)),
            ));
        }
        dc.sim_stop = Some(trigger);
        let listeners = Listeners::bind(&dc.config).await?;
        let router = app::start(dc.config.clone(), listeners)?;
        if let Ok(mut t) = self.tables.lock() {
            t[i] = Some(router.routes.clone());
        }
        dc.router = Some(router);
        Ok(())
    }

    /// Stops DC `i`'s router and simulator listeners and waits until they are gone.
    pub(super) async fn stop_dc(&mut self, i: usize) {
        if let Ok(mut t) = self.tables.lock() {
            t[i] = None;
        }
        let dc = &mut self.dcs[i];
        if let Some(r) = dc.router.take() {
            r.shutdown();
            r.wait().await;
        }
        if let Some(t) = dc.sim_stop.take() {
            t.trigger();
        }
        for t in dc.sim_tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Runs one command line and returns what to print.
    pub async fn command(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => String::new(),
            ["help"] => HELP.to_string(),
            ["kill", dc] => match self.dc_index(dc) {
                Ok(i) => self.kill(i).await,
                Err(e) => e,
            },
            ["start", dc] => match self.dc_index(dc) {
                Ok(i) => match self.start_dc(i).await {
                    Ok(()) => format!(
                        "started {}: coopr-sim (same state as before) and router on :{}",
                        DCS[i],
                        port(self.base, i, 0)
                    ),
                    Err(e) => format!("could not start {}: {e}", DCS[i]),
                },
                Err(e) => e,
            },
            ["handoff", shard, to] => match (shard.parse::<u32>(), self.dc_index(to)) {
                (Ok(shard), Ok(i)) => self.handoff(shard, DCS[i]).await,
                (Err(_), _) => format!("not a shard number: {shard}"),
                (_, Err(e)) => e,
            },
            ["map"] => self.map().await,
            ["get", dc, path] => match self.dc_index(dc) {
                Ok(i) => get(&self.dcs[i], i, path).await,
                Err(e) => e,
            },
            _ => format!("unknown command {line:?}; {HELP}"),
        }
    }

    fn dc_index(&self, name: &str) -> Result<usize, String> {
        DCS.iter()
            .position(|d| *d == name)
            .ok_or_else(|| format!("unknown DC {name:?} (the demo has {})", DCS.join(", ")))
    }

    async fn kill(&mut self, i: usize) -> String {
        if !self.dcs[i].running() {
            return format!("{} is not running", DCS[i]);
        }
        self.stop_dc(i).await;
        let dc = DCS[i];
        match &self.etcd {
            Some(_) => {
                let f = &self.dcs[i].config.raw.failover;
                format!(
                    "killed {dc}: its router and coopr-sim are stopped. Its alive/ lease expires \
                     within {} ms; {} ms later its shards move to live DCs (printed below as they \
                     move). `start {dc}` brings it back as a non-owner; `handoff SHARD {dc}` \
                     gives a shard back.",
                    f.lease_ttl_ms, f.grace_ms
                )
            }
            None => format!(
                "killed {dc}: its router and coopr-sim are stopped. With the static map its \
                 shards stay its own: writes to them now fail (no failover without etcd)."
            ),
        }
    }

    async fn handoff(&self, shard: u32, to: &str) -> String {
        let Some(s) = &self.etcd else {
            return "handoff needs ownership in etcd (the demo runs the static map)".into();
        };
        let plans = match handoff::plan(s, Some(shard), None, to).await {
            Ok(p) => p,
            Err(e) => return format!("handoff of shard {shard} refused: {e}"),
        };
        if let Err(e) = handoff::request(s, &plans, "demo").await {
            return format!("handoff of shard {shard} not requested: {e}");
        }
        match handoff::wait(s, &plans, Duration::from_secs(15)).await {
            Ok(outcomes) => plans
                .iter()
                .zip(outcomes)
                .map(|(p, o)| match o {
                    handoff::Outcome::Moved { epoch } => format!(
                        "handoff: shard {} moved {} -> {}, epoch {} -> {epoch}",
                        p.shard, p.from, p.to, p.epoch
                    ),
                    handoff::Outcome::TimedOut => format!(
                        "handoff: shard {} not moved in time; withdrawn, {} keeps it",
                        p.shard, p.from
                    ),
                    handoff::Outcome::Superseded { owner, epoch } => format!(
                        "handoff: shard {} changed meanwhile: {owner} at epoch {epoch}",
                        p.shard
                    ),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("handoff of shard {shard}: {e}"),
        }
    }

    async fn map(&self) -> String {
        let mut out = Vec::new();
        for (i, dc) in self.dcs.iter().enumerate() {
            out.push(format!(
                "{}: {}",
                DCS[i],
                if dc.running() { "running" } else { "killed" }
            ));
        }
        match &self.etcd {
            Some(s) => match ops::show(s).await {
                Ok(rows) => {
                    for r in rows {
                        out.push(format!(
                            "shard {:>3}: {} (epoch {})",
                            r.shard, r.owner, r.epoch
                        ));
                    }
                }
                Err(e) => out.push(format!("etcd: {e}")),
            },
            None => out.push("static map: each DC owns its home shards".into()),
        }
        out.join("\n")
    }
}

/// `GET PATH` through DC `i`'s router as the demo's admin user; says who answered.
async fn get(dc: &Dc, i: usize, path: &str) -> String {
    let scheme = if dc.config.raw.tls.client.is_some() {
        "https"
    } else {
        "http"
    };
    let url = format!(
        "{scheme}://127.0.0.1:{}{path}",
        dc.config.raw.listen.client.port()
    );
    let upstream = match crate::tls::Material::load(&dc.config) {
        Ok(tls) => Upstream::new(&dc.config.raw.timeouts, &tls),
        Err(e) => return format!("{}'s TLS material: {e}", DCS[i]),
    };
    let req = match http::Request::get(&url)
        .header("Coopr-UserID", "admin")
        .header("Coopr-TenantID", "superadmin")
        .body(ProxyBody::Empty)
    {
        Ok(r) => r,
        Err(e) => return format!("bad path {path:?}: {e}"),
    };
    match upstream.send(req, Duration::from_secs(10)).await {
        Err(e) => format!("GET {url}: {e:?}"),
        Ok(resp) => {
            let status = resp.status().as_u16();
            let header = |n: &str| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string()
            };
            let (by, route) = (header("x-coopr-router-dc"), header("x-coopr-router-route"));
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let body = String::from_utf8_lossy(&body);
            let body: String = body.chars().take(300).collect();
            format!(
                "GET {path} via {}: {status}, answered by {by} (route {route})\n{body}",
                DCS[i]
            )
        }
    }
}

/// The routing snapshots of the DCs' running routers, for `watch_map`.
pub(super) type Tables = Arc<std::sync::Mutex<Vec<Option<Routes>>>>;

/// Prints every change of the ownership map as the routers see it (their routing snapshots, no
/// I/O), until aborted.
pub(super) async fn watch_map(tables: Tables) {
    let mut last: BTreeMap<u32, (String, u64)> = BTreeMap::new();
    loop {
        let table = tables
            .lock()
            .ok()
            .and_then(|t| t.iter().flatten().next().map(Routes::load));
        if let Some(table) = table {
            for n in 0..table.shard_count() {
                let Some(e) = table.shard(n) else { continue };
                let owner = table.dc_name(e.owner).to_string();
                match last.get(&n) {
                    // A router that lags behind another says nothing new.
                    Some((_, epoch)) if *epoch >= e.epoch => continue,
                    Some((was, epoch)) => println!(
                        "ownership: shard {n} {was} -> {owner} (epoch {epoch} -> {})",
                        e.epoch
                    ),
                    None => {}
                }
                last.insert(n, (owner, e.epoch));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads command lines from the terminal and prints their answers, until standard input ends.
pub(super) async fn read_terminal(demo: Arc<Mutex<Demo>>) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let out = demo.lock().await.command(&line).await;
        if !out.is_empty() {
            println!("{out}");
        }
    }
}

/// The control endpoint: `POST /demo` with a command line as the body answers what the
/// terminal would print; anything else gets the list of commands.
pub(super) async fn serve_control(listener: TcpListener, demo: Arc<Mutex<Demo>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let demo = demo.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let demo = demo.clone();
                    async move {
                        let post =
                            req.method() == http::Method::POST && req.uri().path() == "/demo";
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let text = if post {
                            let line = String::from_utf8_lossy(&body).into_owned();
                            println!("[control] {}", line.trim());
                            let out = demo.lock().await.command(&line).await;
                            println!("{out}");
                            out
                        } else {
                            format!("POST /demo with one command line as the body; {HELP}")
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(text + "\n"),
                        )))
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}
