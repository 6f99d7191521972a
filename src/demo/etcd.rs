//! The demo's own etcd: three members on loopback (DC i's member takes its ports +6 for clients
//! and +7 for peers), each with a fresh data directory under the temp dir, started when Debian's
//! `etcd` is on `PATH` and stopped (killed, data removed) with the demo.

use super::{DCS, port};
use crate::etcd::{Settings, ops};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `etcd` binary on `PATH`, if any.
pub fn find_etcd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A running three-member etcd cluster; killed and its data removed on `stop` or drop.
pub struct EtcdCluster {
    members: Vec<Child>,
    dirs: Vec<PathBuf>,
    /// The members' client URLs.
    pub endpoints: Vec<String>,
}

/// Why the demo's etcd did not come up.
#[derive(Debug, thiserror::Error)]
pub enum EtcdStartError {
    #[error("starting {bin}: {source}")]
    Spawn { bin: String, source: std::io::Error },
    #[error("etcd member {member} exited at start; its log: {log}")]
    Exited { member: String, log: String },
    #[error("etcd did not answer within {0:?} (logs under {1})")]
    Timeout(Duration, String),
}

fn client_url(base: u16, i: usize) -> String {
    format!("http://127.0.0.1:{}", port(base, i, 6))
}

fn peer_url(base: u16, i: usize) -> String {
    format!("http://127.0.0.1:{}", port(base, i, 7))
}

/// The data directory of member `i` (removed before it starts and when it stops).
fn data_dir(base: u16, i: usize) -> PathBuf {
    std::env::temp_dir().join(format!("coopr-router-demo-{base}-etcd-{}", DCS[i]))
}

impl EtcdCluster {
    /// Starts the three members and waits (up to `within`) until the cluster answers.
    pub async fn start(
        bin: &Path,
        base: u16,
        within: Duration,
    ) -> Result<EtcdCluster, EtcdStartError> {
        let initial: Vec<String> = (0..DCS.len())
            .map(|i| format!("etcd-{}={}", DCS[i], peer_url(base, i)))
            .collect();
        let initial = initial.join(",");
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            dirs: Vec::new(),
            endpoints: (0..DCS.len()).map(|i| client_url(base, i)).collect(),
        };
        for (i, dc) in DCS.iter().enumerate() {
            let dir = data_dir(base, i);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|source| EtcdStartError::Spawn {
                bin: bin.display().to_string(),
                source,
            })?;
            let log = std::fs::File::create(dir.join("etcd.log")).map_err(|source| {
                EtcdStartError::Spawn {
                    bin: bin.display().to_string(),
                    source,
                }
            })?;
            let (client, peer) = (client_url(base, i), peer_url(base, i));
            // In the demo's process group: a Ctrl-C on its terminal reaches the members too.
            let child = Command::new(bin)
                .arg("--name")
                .arg(format!("etcd-{dc}"))
                .arg("--data-dir")
                .arg(dir.join("data"))
                .args(["--listen-client-urls", &client, "--advertise-client-urls"])
                .arg(&client)
                .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls"])
                .arg(&peer)
                .args(["--initial-cluster", &initial])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &format!("coopr-demo-{base}")])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()
                .map_err(|source| EtcdStartError::Spawn {
                    bin: bin.display().to_string(),
                    source,
                })?;
            cluster.members.push(child);
            cluster.dirs.push(dir);
        }
        let settings = cluster.settings();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if ops::show(&settings).await.is_ok() {
                return Ok(cluster);
            }
            for (i, m) in cluster.members.iter_mut().enumerate() {
                if let Ok(Some(_)) = m.try_wait() {
                    let log = std::fs::read_to_string(cluster.dirs[i].join("etcd.log"))
                        .unwrap_or_default();
                    return Err(EtcdStartError::Exited {
                        member: DCS[i].to_string(),
                        log: log.lines().last().unwrap_or("").to_string(),
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EtcdStartError::Timeout(
                    within,
                    std::env::temp_dir().display().to_string(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Settings that reach every member.
    pub fn settings(&self) -> Settings {
        Settings::new(self.endpoints.clone(), "/coopr-router/")
    }

    /// Kills every member and removes its data.
    pub fn stop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
        self.members.clear();
        for d in self.dirs.drain(..) {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
