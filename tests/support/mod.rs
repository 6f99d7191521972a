//! Test support: three DCs in-process on ephemeral loopback ports (a coopr-sim and a router
//! each, static map), a small HTTP client, generated and channel-fed request bodies, and
//! polling with a deadline; a spawned binary killed if its test fails (`child`).

#![allow(dead_code)]
// Test helpers may unwrap, expect and panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod child;
pub mod etcd;
pub mod relay;
pub mod repl;
pub mod tls;

use bytes::Bytes;
use coopr_router::app::{self, Listeners, RouterHandle};
use coopr_router::config;
use coopr_router::shutdown::{Shutdown, ShutdownTrigger};
use coopr_router::sim::{LogEntry, Sim, SimConfig};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub const ADMIN: [(&str, &str); 2] = [("Coopr-UserID", "admin"), ("Coopr-TenantID", "superadmin")];

/// One DC of the test deployment.
pub struct Dc {
    pub name: String,
    pub sim: Sim,
    pub sim_addr: SocketAddr,
    pub router: Option<RouterHandle>,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    pub admin: SocketAddr,
    pub config_text: String,
    /// Dropping or triggering it stops this DC's simulator.
    sim_stop: Option<ShutdownTrigger>,
}

impl Dc {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.client)
    }
    pub fn peer_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.peer)
    }
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
    pub fn sim_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.sim_addr)
    }
    /// Writes this DC's simulator accepted.
    pub fn log(&self) -> Vec<LogEntry> {
        self.sim.log()
    }
    pub fn log_has(&self, method: &str, path: &str) -> bool {
        self.log()
            .iter()
            .any(|e| e.method == method && e.path == path)
    }
    /// Stops the simulator (it stops accepting; open connections finish).
    pub fn stop_sim(&mut self) {
        if let Some(t) = self.sim_stop.take() {
            t.trigger();
        }
    }
    /// Stops the router and waits for it.
    pub async fn stop_router(&mut self) {
        if let Some(r) = self.router.take() {
            r.shutdown();
            r.wait().await;
        }
    }
    /// Starts the router again on the same addresses with the same config.
    pub async fn restart_router(&mut self) {
        assert!(self.router.is_none(), "stop the router first");
        let cfg = config::parse(&self.config_text).expect("config");
        let bind = |a: SocketAddr| async move {
            // The old sockets are closed; the ports are free again (SO_REUSEADDR).
            TcpListener::bind(a).await.expect("rebind a router port")
        };
        let l = Listeners {
            client: bind(self.client).await,
            peer: bind(self.peer).await,
            admin: bind(self.admin).await,
            provisioner: None,
        };
        self.router = Some(app::start(cfg, l).expect("router restarts"));
    }
}

/// Three DCs: dc1, dc2, dc3 with Coopr ids start 1/2/3, increment 3, and 12 shards.
pub struct Deployment {
    pub dcs: Vec<Dc>,
    /// Relays between routers' peer ports: ((from, to), relay), see [`start_relayed`].
    pub relays: Vec<((usize, usize), relay::Relay)>,
}

impl Deployment {
    /// The relay DC `from` reaches DC `to`'s peer port through.
    pub fn relay(&self, from: usize, to: usize) -> &relay::Relay {
        &self
            .relays
            .iter()
            .find(|(k, _)| *k == (from, to))
            .expect("no such relay")
            .1
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for dc in &mut self.dcs {
            dc.stop_sim();
            if let Some(r) = &dc.router {
                r.shutdown();
            }
        }
    }
}

/// A loopback listener on a port below Linux's ephemeral range (32768-60999 by default): an
/// outgoing connection of the tests cannot take such a port while a router restarting on it
/// (`Dc::restart_router`) or a restarted etcd has let it go, which made a rebind fail with
/// "Address already in use". Ports are tried in turn from a per-process starting point.
pub fn std_listener() -> std::net::TcpListener {
    use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    for _ in 0..SPAN {
        let port = LOW + (start + NEXT.fetch_add(1, Relaxed)) % SPAN;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port as u16)) {
            return l;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")
}

async fn bind() -> TcpListener {
    let l = std_listener();
    l.set_nonblocking(true).expect("non-blocking listener");
    TcpListener::from_std(l).expect("listener into tokio")
}

/// Put this in a DC's extra config text to give it no standby servers.
pub const NO_STANDBY: &str = "# test: no standby servers\n";

/// The TOML of DC `i` given every DC's addresses; `extra` is appended (more keys or tables).
pub fn config_text(
    i: usize,
    addrs: &[(SocketAddr, SocketAddr, SocketAddr, SocketAddr)],
    extra: &str,
) -> String {
    let peers: Vec<SocketAddr> = addrs.iter().map(|a| a.1).collect();
    config_text_via(i, addrs, &peers, extra)
}

/// Like [`config_text`], with the address DC `i` uses for each DC's peer port.
pub fn config_text_via(
    i: usize,
    addrs: &[(SocketAddr, SocketAddr, SocketAddr, SocketAddr)],
    peers: &[SocketAddr],
    extra: &str,
) -> String {
    let (client, peer, admin, sim) = addrs[i];
    let mut t = format!(
        "dc = \"dc{}\"\nshard_count = 12\n\n[listen]\nclient = \"{client}\"\npeer = \"{peer}\"\nadmin = \"{admin}\"\n\n[[backends]]\nurl = \"http://{sim}\"\n\n",
        i + 1
    );
    for (k, peer) in peers.iter().enumerate().take(addrs.len()) {
        t.push_str(&format!(
            "[dcs.dc{}]\npeer_url = \"http://{}\"\nid_start = {}\nid_increment = 3\n\n",
            k + 1,
            peer,
            k + 1
        ));
    }
    t.push_str("[timeouts]\nconnect_ms = 500\nresponse_ms = 10000\nshutdown_grace_ms = 5000\n\n");
    // Each DC's simulator doubles as its standby server for the other DCs' shards (standing in
    // for a database replica), so writes to shards adopted after a move have somewhere to go;
    // unless `extra` names a standby server of its own.
    for k in 0..addrs.len() {
        if k != i
            && !extra.contains(NO_STANDBY)
            && !extra.contains(&format!("[standby.dc{}]", k + 1))
        {
            t.push_str(&format!(
                "[standby.dc{}]\nurl = \"http://{sim}\"\n\n",
                k + 1
            ));
        }
    }
    t.push_str(extra);
    t
}

/// Starts three DCs with simulated operations taking `op_delay`.
pub async fn start(op_delay: Duration) -> Deployment {
    start_with(op_delay, |_| String::new()).await
}

/// Like [`start`], with extra config text per DC index.
pub async fn start_with(op_delay: Duration, extra: impl Fn(usize) -> String) -> Deployment {
    start_full(op_delay, None, extra, |_, t| t, |_, _| None).await
}

/// Like [`start`], with each DC's whole config text passed through `edit` (DC index, text).
pub async fn start_with_text(
    op_delay: Duration,
    edit: impl Fn(usize, String) -> String,
) -> Deployment {
    start_full(op_delay, None, |_| String::new(), edit, |_, _| None).await
}

/// Like [`start_with`]; with `data`, simulator `dcN` persists its state to `data/dcN.json`.
pub async fn start_with_data(
    op_delay: Duration,
    data: Option<&std::path::Path>,
    extra: impl Fn(usize) -> String,
) -> Deployment {
    start_full(op_delay, data, extra, |_, t| t, |_, _| None).await
}

/// Like [`start_with`]; `relay(from, to)` puts a relay with those options between DC `from`'s
/// router and DC `to`'s peer port.
pub async fn start_relayed(
    op_delay: Duration,
    extra: impl Fn(usize) -> String,
    relay: impl Fn(usize, usize) -> Option<relay::Options>,
) -> Deployment {
    start_full(op_delay, None, extra, |_, t| t, relay).await
}

/// Every option of the above: `extra` is appended to DC i's config text, then the whole text
/// goes through `edit`.
pub async fn start_full(
    op_delay: Duration,
    data: Option<&std::path::Path>,
    extra: impl Fn(usize) -> String,
    edit: impl Fn(usize, String) -> String,
    relay: impl Fn(usize, usize) -> Option<relay::Options>,
) -> Deployment {
    let mut sims = Vec::new();
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for i in 0..3 {
        let sim = Sim::new(SimConfig {
            id_start: i as u64 + 1,
            id_increment: 3,
            op_delay,
            name: format!("dc{}", i + 1),
            data: data.map(|d| d.join(format!("dc{}.json", i + 1))),
            ..SimConfig::default()
        })
        .expect("simulator starts");
        let sl = bind().await;
        let sim_addr = sl.local_addr().unwrap();
        let (sim_stop, sim_shutdown) = ShutdownTrigger::new();
        tokio::spawn(sim.clone().serve(sl, Shutdown::wait(sim_shutdown)));
        let (c, p, a) = (bind().await, bind().await, bind().await);
        addrs.push((
            c.local_addr().unwrap(),
            p.local_addr().unwrap(),
            a.local_addr().unwrap(),
            sim_addr,
        ));
        listeners.push(Listeners {
            client: c,
            peer: p,
            admin: a,
            provisioner: None,
        });
        sims.push((sim, sim_addr, sim_stop));
    }
    let mut relays = Vec::new();
    for from in 0..3 {
        for (to, a) in addrs.iter().enumerate() {
            if from != to
                && let Some(o) = relay(from, to)
            {
                relays.push(((from, to), relay::Relay::start_with(a.1, o).await));
            }
        }
    }
    let mut dcs = Vec::new();
    for (i, (l, (sim, sim_addr, sim_stop))) in listeners.into_iter().zip(sims).enumerate() {
        let peers: Vec<SocketAddr> = (0..3)
            .map(|k| {
                relays
                    .iter()
                    .find(|(key, _)| *key == (i, k))
                    .map_or(addrs[k].1, |(_, r)| r.addr)
            })
            .collect();
        let text = edit(i, config_text_via(i, &addrs, &peers, &extra(i)));
        let cfg = config::parse(&text)
            .unwrap_or_else(|e| panic!("test config of dc{}: {e}\n{text}", i + 1));
        let router = app::start(cfg, l).expect("router starts");
        dcs.push(Dc {
            name: format!("dc{}", i + 1),
            sim,
            sim_addr,
            client: addrs[i].0,
            peer: addrs[i].1,
            admin: addrs[i].2,
            router: Some(router),
            config_text: text,
            sim_stop: Some(sim_stop),
        });
    }
    Deployment { dcs, relays }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request with a buffered body.
pub async fn call(method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    send(
        method,
        url,
        headers,
        Full::new(Bytes::from(body.to_string())),
    )
    .await
}

/// GET with the superadmin headers.
pub async fn get(url: &str) -> Reply {
    call(Method::GET, url, &ADMIN, "").await
}

/// POST with the superadmin headers.
pub async fn post(url: &str, body: &str) -> Reply {
    call(Method::POST, url, &ADMIN, body).await
}

/// Sends a request with any body, over a fresh HTTP/1.1 client.
pub async fn send<B>(method: Method, url: &str, headers: &[(&str, &str)], body: B) -> Reply
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let client: Client<HttpConnector, B> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(body).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e:?}"));
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates a cluster through `dc` and waits until it is active; returns its id.
pub async fn create_active(dc: &Dc, name: &str) -> String {
    let r = post(
        &dc.url("/v2/clusters"),
        &format!("{{\"name\":\"{name}\",\"clusterTemplate\":\"demo\",\"numMachines\":1}}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "create: {}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_string();
    let url = dc.url(&format!("/v2/clusters/{id}/status"));
    eventually(Duration::from_secs(10), "cluster active", || async {
        let r = get(&url).await;
        (r.status == StatusCode::OK && r.json()["status"] == "active").then_some(())
    })
    .await;
    id
}

/// A body of `len` generated bytes (byte i = i % 251), sent in 64 KiB chunks, never held whole.
pub struct GenBody {
    pub remaining: u64,
    pub offset: u64,
}

impl GenBody {
    pub fn new(len: u64) -> Self {
        GenBody {
            remaining: len,
            offset: 0,
        }
    }
}

impl Body for GenBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(64 * 1024);
        let start = self.offset;
        let chunk: Vec<u8> = (start..start + n).map(|i| (i % 251) as u8).collect();
        self.remaining -= n;
        self.offset += n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A body fed by a channel: the test decides when each chunk goes and when it ends.
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// Peak resident set of this process, in KiB (VmHWM).
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Whether this machine has an established TCP connection to `addr` (IPv4), from /proc/net/tcp.
pub fn tcp_established_to(addr: SocketAddr) -> bool {
    let SocketAddr::V4(v4) = addr else {
        return false;
    };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        // local_address rem_address st ...; st 01 = ESTABLISHED
        cols.len() > 3 && cols[2] == want && cols[3] == "01"
    })
}

/// A router's `/admin/routes` snapshot (its admin port is open in tests: no token).
pub async fn routes(dc: &Dc) -> serde_json::Value {
    call(Method::GET, &dc.admin_url("/admin/routes"), &[], "")
        .await
        .json()
}

/// `POST /v2/nodes` for cluster `cid`, as admin, with `x-request-id: node` (so the simulator's
/// log names it).
pub async fn node_write(dc: &Dc, node: &str, cid: u64) -> Reply {
    let body = format!("{{\"id\":\"{node}\",\"clusterId\":\"{cid:08}\"}}");
    call(
        Method::POST,
        &dc.url("/v2/nodes"),
        &[ADMIN[0], ADMIN[1], ("x-request-id", node)],
        &body,
    )
    .await
}
