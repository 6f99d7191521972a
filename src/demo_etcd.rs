//! The demo's own etcd: three members on loopback (the `etcd` binary on `PATH`, Debian's
//! `etcd-server`), their data in a temporary directory, stopped and removed with the demo.
//! The demo gives each member its client and peer port (`demo::port`, offsets 6 and 7).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The `etcd` binary on `PATH`, if there is one.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file())
}

/// A running three-member cluster; [`Cluster::stop`] (or dropping it) kills the members.
pub struct Cluster {
    members: Vec<Child>,
    dir: PathBuf,
    pub urls: Vec<String>,
}

/// Where the members keep their data: tmpfs when there is one (etcd fsyncs every write).
fn data_dir(base: u16) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let root = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    root.join(format!("coopr-router-demo-etcd-{base}"))
}

/// Starts one member per `(client port, peer port)` on loopback (fresh data; `base` names the
/// data directory) and returns once they are spawned; the caller waits for the cluster to
/// answer (its first write, initialising the map, does).
pub fn start(etcd: &Path, base: u16, ports: &[(u16, u16)]) -> std::io::Result<Cluster> {
    let dir = data_dir(base);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let peer = |i: usize| format!("http://127.0.0.1:{}", ports[i].1);
    let initial: Vec<String> = (0..ports.len())
        .map(|i| format!("m{}={}", i + 1, peer(i)))
        .collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|(c, _)| format!("http://127.0.0.1:{c}"))
        .collect();
    let mut members = Vec::new();
    for (i, client) in urls.iter().enumerate() {
        let log = std::fs::File::create(dir.join(format!("m{}.log", i + 1)))?;
        let child = Command::new(etcd)
            .arg("--name")
            .arg(format!("m{}", i + 1))
            .arg("--data-dir")
            .arg(dir.join(format!("m{}", i + 1)))
            .args([
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
            ])
            .args(["--listen-peer-urls", &peer(i)])
            .args(["--initial-advertise-peer-urls", &peer(i)])
            .args(["--initial-cluster", &initial.join(",")])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--initial-cluster-token",
                &format!("coopr-router-demo-{base}"),
            ])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()?;
        members.push(child);
    }
    Ok(Cluster { members, dir, urls })
}

impl Cluster {
    /// Whether a member has exited (then the cluster will not form: see its log).
    pub fn exited(&mut self) -> Option<String> {
        for (i, m) in self.members.iter_mut().enumerate() {
            if let Ok(Some(status)) = m.try_wait() {
                let log = self.dir.join(format!("m{}.log", i + 1));
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(3).collect::<Vec<_>>().join("\n");
                return Some(format!("etcd member m{} exited ({status}): {tail}", i + 1));
            }
        }
        None
    }

    /// Kills the members, waits for them and removes their data.
    pub async fn stop(mut self) {
        for m in &mut self.members {
            let _ = m.start_kill();
        }
        for m in &mut self.members {
            let _ = tokio::time::timeout(Duration::from_secs(5), m.wait()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
