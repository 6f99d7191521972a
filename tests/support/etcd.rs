//! A real etcd (Debian's `etcd-server`) for tests: free loopback ports, data dir under
//! /dev/shm (fsync on these disks is slow), killed on drop, restartable on the same data.

use coopr_router::etcd::{Settings, ops};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct EtcdServer {
    pub client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// A free loopback port below the ephemeral range (etcd restarts on the same ports).
fn free_port() -> u16 {
    super::std_listener()
        .local_addr()
        .map(|a| a.port())
        .expect("free port")
}

impl EtcdServer {
    pub async fn start() -> EtcdServer {
        let dir = tempfile::Builder::new()
            .prefix("coopr-etcd-")
            .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
                "/dev/shm"
            } else {
                "/tmp"
            })
            .expect("etcd data dir");
        let mut e = EtcdServer {
            client_port: free_port(),
            peer_port: free_port(),
            dir,
            child: None,
        };
        e.spawn().await;
        e
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn settings(&self, prefix: &str) -> Settings {
        Settings::new(vec![self.url()], prefix)
    }

    /// Starts etcd and waits until it answers; false if it exited first.
    async fn spawn(&mut self) -> bool {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", "t0", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &format!("t0={peer}"),
                "--initial-cluster-state",
                "new",
            ])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("etcd runs (apt-get install etcd-server)");
        self.child = Some(child);
        let s = self.settings("/probe/");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if ops::show(&s).await.is_ok() {
                return true;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(_)) = c.try_wait()
            {
                return false;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd did not start: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }

    /// SIGKILL, and wait for the process to go.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same ports and data.
    pub async fn restart(&mut self) {
        self.kill();
        assert!(self.spawn().await, "etcd did not restart: {}", self.log());
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}
