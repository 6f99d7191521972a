//! Phase `downloads`: one router under many concurrent long-running downloads, its memory per
//! stream. The router and a simulator run as child processes (the release binaries beside this
//! example); this process is the clients, raw TCP. Each stream holds two of the router's file
//! descriptors (the client's socket and the upstream one), so the open-files limit caps the
//! count: `--downloads` is cut to (limit - 200) / 2 (9,900 under this machine's hard limit of
//! 20,000, which an unprivileged container cannot raise). Each client sends `GET /v2/sim/blob?size=1GiB`
//! (the simulator generates it chunk by chunk, never held whole), reads the response head and
//! the first 256 KiB, then stops reading: a stalled download, the worst case for the router's
//! buffers (flow control must stop the simulator, not queue bytes in the router). With every
//! stream stalled, the router's RSS (`/proc/PID/status`) is read until it settles; per stream =
//! (RSS with N streams - RSS idle) / N. Then the clients close and the RSS after is read too.
//! Steps N = 1000, 3000, then `--downloads` (10000).

use super::common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SIZE: u64 = 1 << 30;
const READ_FIRST: usize = 256 * 1024;

/// Kills the child on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn bin_dir() -> PathBuf {
    // target/release/examples/scale -> target/release
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("target dir")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn proc_cpu_s(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

/// Waits until the RSS of `pid` changes by less than 1% over 1 s (at most 30 s).
async fn settled_rss(pid: u32) -> u64 {
    let mut last = status_kib(pid, "VmRSS:");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = status_kib(pid, "VmRSS:");
        if now.abs_diff(last) * 100 <= last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

async fn wait_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens one download and reads its head and first bytes; returns the open socket.
async fn open_download(addr: SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let req = format!(
        "GET /v2/sim/blob?size={SIZE} HTTP/1.1\r\nHost: scale\r\nCoopr-UserID: admin\r\nCoopr-TenantID: superadmin\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut got = 0usize;
    let mut head_ok = false;
    while got < READ_FIRST {
        let n = s.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if !head_ok {
            head_ok = buf.starts_with(b"HTTP/1.1 200");
            if !head_ok {
                return None;
            }
        }
        got += n;
    }
    Some(s)
}

/// This process's open-files limit (the children inherit it).
fn nofile() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse()
                .ok()
        })
        .unwrap_or(1024)
}

pub async fn run(asked: usize) -> (Value, String) {
    let limit = nofile();
    let max = asked.min(limit.saturating_sub(200) / 2);
    if max < asked {
        eprintln!("scale: downloads cut to {max} (open-files limit {limit}, two per stream)");
    }
    let dir = tempfile::tempdir().expect("dir");
    let bins = bin_dir();
    let (sim_port, client, peer, admin) = (free_port(), free_port(), free_port(), free_port());
    let sim = Proc(
        Command::new(bins.join("coopr-sim"))
            .args(["--listen", &format!("127.0.0.1:{sim_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("coopr-sim (cargo build --release --bins)"),
    );
    let cfg = format!(
        "dc = \"dc1\"\nshard_count = 3\n\n[listen]\nclient = \"127.0.0.1:{client}\"\npeer = \"127.0.0.1:{peer}\"\nadmin = \"127.0.0.1:{admin}\"\n\n[[backends]]\nurl = \"http://127.0.0.1:{sim_port}\"\n\n[dcs.dc1]\npeer_url = \"http://127.0.0.1:{peer}\"\nid_start = 1\nid_increment = 1\n\n[log]\naccess_log = false\n"
    );
    let cfg_path = dir.path().join("router.toml");
    std::fs::write(&cfg_path, cfg).expect("config");
    let router = Proc(
        Command::new(bins.join("coopr-router"))
            .arg("run")
            .arg("--config")
            .arg(&cfg_path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("router.log")).expect("log"),
            ))
            .spawn()
            .expect("coopr-router (cargo build --release --bins)"),
    );
    let client_addr: SocketAddr = format!("127.0.0.1:{client}").parse().unwrap();
    wait_port(format!("127.0.0.1:{sim_port}").parse().unwrap()).await;
    wait_port(client_addr).await;
    let pid = router.0.id();
    // Warm up: one download end to end, then idle.
    drop(open_download(client_addr).await.expect("a first download"));
    let idle = settled_rss(pid).await;
    let mut steps: Vec<usize> = [1000, 3000, max]
        .into_iter()
        .filter(|&n| n <= max)
        .collect();
    steps.dedup();
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for n in steps {
        let cpu0 = proc_cpu_s(pid);
        let t0 = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(256));
        for _ in 0..n {
            let sem = sem.clone();
            set.spawn(async move {
                let _p = sem.acquire().await.ok()?;
                tokio::time::timeout(Duration::from_secs(30), open_download(client_addr))
                    .await
                    .ok()
                    .flatten()
            });
        }
        let mut open = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(Some(s)) = r {
                open.push(s);
            }
        }
        let open_s = t0.elapsed().as_secs_f64();
        let rss = settled_rss(pid).await;
        let cpu_hold0 = proc_cpu_s(pid);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let hold_cpu = proc_cpu_s(pid) - cpu_hold0;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        let ok = open.len();
        drop(open);
        let after = settled_rss(pid).await;
        let per = (rss.saturating_sub(idle) as f64 * 1024.0) / ok.max(1) as f64;
        let load = loadavg();
        rows.push(vec![
            n.to_string(),
            ok.to_string(),
            fds.to_string(),
            format!("{:.1}", idle as f64 / 1024.0),
            format!("{:.1}", rss as f64 / 1024.0),
            format!("{:.1}", per / 1024.0),
            format!("{:.2}", hold_cpu / 3.0),
            format!("{:.1}", after as f64 / 1024.0),
            format!("{:.1}", open_s),
            format!("{load:.1}"),
        ]);
        out.push(json!({
            "streams": n, "open": ok, "router_fds": fds, "rss_idle_kib": idle,
            "rss_kib": rss, "bytes_per_stream": per, "router_cpu_cores_while_stalled": hold_cpu / 3.0,
            "rss_after_close_kib": after, "open_seconds": open_s,
            "router_cpu_s_total": proc_cpu_s(pid) - cpu0, "loadavg_1m": load,
        }));
        eprintln!("scale: downloads {n} done ({ok} open)");
    }
    drop(router);
    drop(sim);
    let md = format!(
        "### One router, N stalled 1 GiB downloads (router RSS; separate processes; open-files limit {limit})\n\n{}",
        table(
            &[
                "streams",
                "open",
                "router fds",
                "idle MiB",
                "with streams MiB",
                "KiB/stream",
                "CPU cores while stalled",
                "after close MiB",
                "open s",
                "load 1m",
            ],
            &rows
        )
    );
    (json!(out), md)
}
