//! Everything that talks to etcd: connecting ([`Settings`]), the ownership watcher (`watch`,
//! the one publisher of the routing snapshot in etcd mode), liveness and failover, planned
//! handoffs, and the operator commands (`ops`: `ownership init | show | set`). The only module
//! that imports `etcd_client`.

pub mod catalog_home;
pub mod compact;
pub mod failback;
pub mod failover;
pub mod handoff;
pub mod handoff_driver;
pub mod liveness;
pub mod manual;
pub mod moves;
pub mod ops;
pub mod outstanding;
pub mod pins;
pub mod watch;

use crate::config::OwnershipConfig;
use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, GetResponse, Identity, TlsOptions, Txn, TxnOp,
    TxnOpResponse,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// etcd's cap on the operations of one transaction (`--max-txn-ops`, 128 by default).
pub const MAX_TXN_OPS: usize = 128;

/// etcd failures, for the CLI and the logs.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd: {0}")]
    Client(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot read {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
}

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub connect_timeout: Duration,
    pub user: Option<(String, String)>,
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    /// The member [`Settings::connect`] found usable last (shared by the clones of these
    /// settings), where the next connection starts looking.
    preferred: Arc<AtomicUsize>,
}

impl Settings {
    pub fn from_config(o: &OwnershipConfig) -> Self {
        Settings {
            endpoints: o.endpoints.clone(),
            prefix: o.prefix.clone(),
            connect_timeout: Duration::from_millis(o.connect_timeout_ms),
            user: o.username.clone().zip(o.password.clone()),
            tls_ca_file: o.tls_ca_file.clone(),
            tls_cert_file: o.tls_cert_file.clone(),
            tls_key_file: o.tls_key_file.clone(),
            preferred: Arc::default(),
        }
    }

    /// Plain settings for the CLI and tests.
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> Self {
        Settings {
            endpoints,
            prefix: prefix.into(),
            connect_timeout: Duration::from_secs(2),
            user: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            preferred: Arc::default(),
        }
    }

    /// The same settings with only the `n`th endpoint (modulo their count): a connection that
    /// talks to one member, for the liveness task, which moves on to the next member when its
    /// member stops answering.
    pub fn one(&self, n: usize) -> Settings {
        let mut s = self.clone();
        if !self.endpoints.is_empty() {
            s.endpoints = vec![self.endpoints[n % self.endpoints.len()].clone()];
        }
        s
    }

    /// Connects to one member that answers, within the connect timeout for each member tried:
    /// the one that answered last first, then the next ones in order. A read of the prefix
    /// (count only) proves it answers; requests carry require-leader, so a member cut off from
    /// its cluster's leader answers with an error instead of stale data, and the next one is
    /// tried. (One client over every endpoint, etcd-client's balanced channel, sends some
    /// requests to a dead member and fails them: a watch over it kept restarting while one
    /// member of three was down.)
    pub async fn connect(&self) -> Result<Client, EtcdError> {
        let n = self.endpoints.len();
        if n <= 1 {
            return self.connect_all().await;
        }
        let start = self.preferred.load(Relaxed);
        let mut last = None;
        for k in 0..n {
            let i = (start + k) % n;
            match self.one(i).connect_and_probe().await {
                Ok(c) => {
                    self.preferred.store(i, Relaxed);
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(endpoint = %self.endpoints[i], error = %e, "etcd member unusable; trying the next one");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| EtcdError::Refused("no etcd endpoint".into())))
    }

    /// [`Settings::connect_all`], then one read that needs the member to answer (and to have a
    /// leader).
    async fn connect_and_probe(&self) -> Result<Client, EtcdError> {
        let mut client = self.connect_all().await?;
        self.revision(&mut client).await?;
        Ok(client)
    }

    /// etcd's current revision: a count-only read of the prefix, within the connect timeout.
    pub async fn revision(&self, client: &mut Client) -> Result<i64, EtcdError> {
        let resp = self
            .within(client.get(
                self.prefix.as_bytes(),
                Some(GetOptions::new().with_prefix().with_count_only()),
            ))
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// One client over every endpoint of these settings (one, for [`Settings::one`]'s).
    async fn connect_all(&self) -> Result<Client, EtcdError> {
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(self.connect_timeout)
            .with_keep_alive(Duration::from_secs(1), self.connect_timeout)
            .with_keep_alive_while_idle(true)
            .with_require_leader(true);
        if let Some((u, p)) = &self.user {
            opts = opts.with_user(u.clone(), p.clone());
        }
        if self.tls_ca_file.is_some() || self.tls_cert_file.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &self.tls_ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            opts = opts.with_tls(tls);
        }
        let connect = Client::connect(self.endpoints.clone(), Some(opts));
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Err(_) => Err(EtcdError::Timeout(self.connect_timeout)),
            Ok(r) => Ok(r?),
        }
    }

    /// Runs one etcd call within the connect timeout.
    pub async fn within<T>(
        &self,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(self.connect_timeout, call).await {
            Err(_) => Err(EtcdError::Timeout(self.connect_timeout)),
            Ok(r) => Ok(r?),
        }
    }

    /// Several reads in one round trip, all at one revision: a transaction with no comparison
    /// whose operations are the reads (`(key, options)` each), their answers in order. A step
    /// that needs several keys reads them with this rather than one request after another:
    /// each request to etcd is a round trip (~0.3 ms on loopback, and more as the keyspace
    /// grows), and one snapshot is also what the step means to look at.
    pub async fn read_together<const N: usize>(
        &self,
        client: &mut Client,
        reads: [(Vec<u8>, Option<GetOptions>); N],
    ) -> Result<[GetResponse; N], EtcdError> {
        let gets = self.read_all(client, reads.into()).await?;
        <[GetResponse; N]>::try_from(gets).map_err(|got| {
            EtcdError::Refused(format!(
                "etcd answered {} of {N} reads of one transaction",
                got.len()
            ))
        })
    }

    /// [`Settings::read_together`] for a number of reads known only at run time (at most
    /// [`MAX_TXN_OPS`]); the answers in order, one per read, or an error.
    pub async fn read_all(
        &self,
        client: &mut Client,
        reads: Vec<(Vec<u8>, Option<GetOptions>)>,
    ) -> Result<Vec<GetResponse>, EtcdError> {
        let asked = reads.len();
        let ops: Vec<TxnOp> = reads
            .into_iter()
            .map(|(key, opts)| TxnOp::get(key, opts))
            .collect();
        let resp = self.within(client.txn(Txn::new().and_then(ops))).await?;
        let gets: Vec<GetResponse> = resp
            .op_responses()
            .into_iter()
            .filter_map(|op| match op {
                TxnOpResponse::Get(g) => Some(g),
                _ => None,
            })
            .collect();
        if gets.len() != asked {
            return Err(EtcdError::Refused(format!(
                "etcd answered {} of {asked} reads of one transaction",
                gets.len()
            )));
        }
        Ok(gets)
    }
}

fn read(path: &str) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::File {
        path: path.to_string(),
        source,
    })
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
