//! The router's configuration: the TOML file's shape, its defaults, and loading it into a
//! validated [`Config`]. Every error names the key and the line (see `locate`). Validation rules
//! live in `validate`; the static ownership map is expanded in `ownership`.

mod catalog;
mod locate;
mod replication;
pub mod tls;
mod validate;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use catalog::CatalogConfig;
pub use replication::ReplicationConfig;
pub use tls::{TlsConfig, insecure_peer_port};
pub use validate::ValidConfig as Config;

/// A configuration error, with the key and the line where it could be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// Dotted key path (`dcs.dc2.id_start`), empty when the whole file is at fault.
    pub key: String,
    /// 1-based line number, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        match (self.key.is_empty(), self.line) {
            (true, Some(line)) => format!("line {line}: {}", self.message),
            (true, None) => self.message.clone(),
            (false, Some(line)) => format!("line {line}: key `{}`: {}", self.key, self.message),
            (false, None) => format!("key `{}`: {}", self.key, self.message),
        }
    }
}

/// The file as written. Unknown keys are refused everywhere.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// This DC's name; must be a key of `dcs`.
    pub dc: String,
    /// Number of shards; a multiple of every DC's `id_increment`.
    pub shard_count: u32,
    /// The classification rule set. Only `coopr` is built in.
    #[serde(default = "default_rules")]
    pub rules: String,
    pub listen: Listen,
    /// The local Coopr servers, tried round robin.
    pub backends: Vec<BackendConfig>,
    /// Every DC of the deployment, this one included.
    pub dcs: BTreeMap<String, DcConfig>,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub ownership: OwnershipConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    /// Standby Coopr servers, by home DC: a Coopr server in this DC whose database is a replica
    /// of that DC's (kept by the operator's database replication). Writes for shards this DC
    /// adopted from that home DC go there.
    #[serde(default)]
    pub standby: BTreeMap<String, StandbyConfig>,
    #[serde(default)]
    pub failover: FailoverConfig,
    #[serde(default)]
    pub replication: ReplicationConfig,
    /// The shared catalog's home DC (`[catalog]`).
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// TLS on the client port, mutual TLS between DCs, TLS to Coopr servers (`config/tls.rs`).
    #[serde(default)]
    pub tls: TlsConfig,
    /// How the router authenticates its own requests to Coopr (security mode).
    #[serde(default)]
    pub coopr: CooprConfig,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailoverMode {
    /// A dead DC's shards move to their first live replica by themselves.
    #[default]
    Automatic,
    /// Only an operator moves shards.
    Manual,
}

/// Liveness and automatic failover (etcd source only).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverConfig {
    pub mode: FailoverMode,
    /// TTL of the lease that keeps `alive/{dc}` (whole seconds at etcd; rounded up).
    pub lease_ttl_ms: u64,
    /// How long `alive/{dc}` must be absent (and probes failing) before its shards move.
    pub grace_ms: u64,
    /// The fence's margin: a router accepts writes for its shards while the send time of its
    /// last acknowledged lease keepalive + the lease TTL - this margin is ahead of now, and so is
    /// its last acknowledged heartbeat's + [`FailoverConfig::beat_window`] - this margin.
    pub fence_margin_ms: u64,
    /// At most one move of a shard per this long.
    pub min_interval_ms: u64,
    /// During a planned handoff, how long the owner holds a shard's new writes before answering
    /// 503 + `Retry-After`.
    pub max_hold_ms: u64,
    /// How long a write whose owner DC cannot be reached at all (nothing was sent) is held for
    /// the shard's next owner; 0: not held.
    pub buffer_max_ms: u64,
    /// At most this many writes held at once (more fail as before).
    pub buffer_max_requests: u64,
    /// At most this many bytes of held bodies at once (each at most `limits.inspect_body_bytes`).
    pub buffer_max_bytes: u64,
    /// Whether a DC that comes back gets the shards it lost by automatic failover back by
    /// itself (a planned handoff per shard, one at a time).
    pub failback: FailbackMode,
    /// How long a DC's `alive/` key must have been present (and its health checks passing)
    /// before its shards are handed back.
    pub failback_after_ms: u64,
}

impl FailoverConfig {
    /// The lease TTL as etcd keeps it (whole seconds, rounded up).
    pub fn lease_ttl(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.lease_ttl_ms.div_ceil(1000) * 1000)
    }

    /// How long an acknowledged heartbeat (a router's member key rewritten) proves the router
    /// alive, and how long a controller must see a DC's member keys unchanged before it may take
    /// the DC's shards without waiting for their leases: lease TTL + grace.
    pub fn beat_window(&self) -> std::time::Duration {
        self.lease_ttl() + std::time::Duration::from_millis(self.grace_ms)
    }
}

/// Whether shards lost by automatic failover return home by themselves.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FailbackMode {
    /// Once the home DC has stayed alive and healthy for `failback_after_ms`.
    #[default]
    Automatic,
    /// Only an operator hands shards back (`coopr-router handoff`).
    Manual,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        FailoverConfig {
            mode: FailoverMode::Automatic,
            lease_ttl_ms: 5_000,
            grace_ms: 2_000,
            fence_margin_ms: 1_000,
            min_interval_ms: 60_000,
            max_hold_ms: 5_000,
            buffer_max_ms: 10_000,
            buffer_max_requests: 1_000,
            buffer_max_bytes: 16 * 1024 * 1024,
            failback: FailbackMode::Automatic,
            failback_after_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StandbyConfig {
    /// The standby Coopr server's external API (`server.port`).
    pub url: String,
    /// Its internal tasks API (`server.tasks.port`), for the provisioners that serve it: they
    /// reach it on the provisioner listener under `/standby/{home}/` (required with
    /// `listen.provisioner`; defaults to `url`).
    #[serde(default)]
    pub tasks_url: Option<String>,
}

/// The admin API.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer token for endpoints that change something (reload, drain, log level). Without a
    /// token (here or in `token_file`) those endpoints answer 403.
    pub token: Option<String>,
    /// A file holding the token (first line), read at start and at every reload.
    pub token_file: Option<String>,
    /// Serve the read-only endpoints (`/metrics`, `/admin/routes`, `/admin/explain`) without the
    /// token. `/live` and `/ready` are always open: the load balancer polls them.
    pub open_reads: bool,
    /// After `POST /admin/drain`, readiness is false at once; the listeners close after this
    /// delay (time for the load balancer to notice), then in-flight requests get the grace period.
    pub drain_delay_ms: u64,
    /// How often the config file is checked for changes (0 turns the watch off).
    pub watch_config_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: None,
            token_file: None,
            open_reads: true,
            drain_delay_ms: 5_000,
            watch_config_ms: 1_000,
        }
    }
}

/// The router's own requests to Coopr (health checks, the replication tracker): with Coopr's
/// security mode on (`security.enabled=true`), they carry a service credential. A client's own
/// `Authorization` header always reaches Coopr untouched.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CooprConfig {
    /// A file whose first line is the token the router sends as `Authorization: Bearer
    /// <token>`; read at start and at every reload (a change to the file reloads). The token
    /// never appears in logs, `/admin` or metrics.
    pub token_file: Option<String>,
}

impl CooprConfig {
    /// The token in the file, if one is configured.
    pub fn resolve_token(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read coopr.token_file {path}: {e}"))?;
        match text.lines().next().map(str::trim) {
            Some(t) if !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(Some(t.to_string()))
            }
            _ => Err(format!(
                "coopr.token_file {path} must hold the token on its first line (printable, no spaces)"
            )),
        }
    }
}

impl AdminConfig {
    /// The token in force: `token`, else the first line of `token_file`.
    pub fn resolve_token(&self) -> Result<Option<String>, String> {
        if let Some(t) = &self.token {
            return Ok(Some(t.clone()));
        }
        match &self.token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read admin.token_file {path}: {e}"))?;
                match text.lines().next().map(str::trim) {
                    Some(t) if t.len() >= 16 => Ok(Some(t.to_string())),
                    _ => Err(format!(
                        "admin.token_file {path} must hold a token of at least 16 characters"
                    )),
                }
            }
            None => Ok(None),
        }
    }
}

/// Active health checks of the local Coopr servers (`GET /status`) and of the other DCs'
/// routers (`GET /status` on their peer port, answered by their local Coopr).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive successes that bring a down target back.
    pub rise: u32,
    /// Consecutive failures (probes, or refused connections of real requests) that take it down.
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: 1_000,
            timeout_ms: 1_000,
            rise: 2,
            fall: 3,
        }
    }
}

fn default_rules() -> String {
    "coopr".to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Clients and the load balancer (HTTP/1.1 and h2c).
    pub client: SocketAddr,
    /// Other DCs' routers: forwarded writes, read-through and replication batches. Must be a
    /// loopback address unless `[tls.peer]` (mutual TLS) is set, or the opt-out below.
    pub peer: SocketAddr,
    /// Opt-out: serve a peer port that is not on loopback without mutual TLS. Anyone who can
    /// reach it can then speak for any DC (forward writes, post replication records as any
    /// owner); logged at WARN on every start. Off by default.
    #[serde(default)]
    pub insecure_plaintext_peer: bool,
    /// Health, readiness and the admin API. Loopback by default.
    #[serde(default = "default_admin")]
    pub admin: SocketAddr,
    /// Coopr's internal API for this DC's provisioners (what Coopr serves on
    /// `server.tasks.port`), forwarded to the local servers' `tasks_url`. Off when absent:
    /// internal routes are refused on the client and peer ports either way.
    #[serde(default)]
    pub provisioner: Option<SocketAddr>,
    /// Threads that serve the client, peer and provisioner connections, each with an event
    /// loop of its own (a connection and its requests stay on one). Absent: one per CPU.
    #[serde(default)]
    pub threads: Option<usize>,
}

impl Listen {
    /// How many serving threads: `threads`, or one per CPU.
    pub fn serving_threads(&self) -> usize {
        self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

/// The most serving threads `listen.threads` may ask for.
pub const MAX_SERVING_THREADS: usize = 256;

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 55080))
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// The Coopr server's external API (`server.port`), e.g. `http://127.0.0.1:55054`.
    pub url: String,
    /// Its internal tasks API (`server.tasks.port`); defaults to `url`.
    #[serde(default)]
    pub tasks_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DcConfig {
    /// The DC router's peer port URL, e.g. `http://10.1.0.5:55081`.
    pub peer_url: String,
    /// That DC's Coopr `server.ids.start.num`.
    pub id_start: u64,
    /// That DC's Coopr `server.ids.increment.by` (the same in every DC).
    pub id_increment: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// Connecting to a Coopr server or a peer router.
    pub connect_ms: u64,
    /// From sending a request upstream to its response head.
    pub response_ms: u64,
    /// Reading a client's request head (slowloris guard). hyper also applies it to an idle
    /// keep-alive connection waiting for its next request, so it is the idle timeout too.
    pub request_head_ms: u64,
    /// How long a Coopr server that refused a connection is skipped.
    pub backend_cooldown_ms: u64,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_grace_ms: u64,
    /// Idle upstream keep-alive connections are closed after this.
    pub upstream_idle_ms: u64,
    /// An HTTP/1.1 client connection (plain or TLS) idle this long hands hyper's buffers back
    /// ("parks") and waits for its next request holding only the socket; 0 parks at once.
    pub idle_park_ms: u64,
    /// A request body streamed to Coopr or a peer that brings no new bytes for this long is
    /// cut off (408 if no response was sent yet; the upstream request is aborted).
    pub body_idle_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 2_000,
            response_ms: 60_000,
            request_head_ms: 60_000,
            backend_cooldown_ms: 5_000,
            shutdown_grace_ms: 30_000,
            upstream_idle_ms: 90_000,
            idle_park_ms: 50,
            body_idle_ms: 60_000,
        }
    }
}

impl Timeouts {
    pub fn connect(&self) -> Duration {
        Duration::from_millis(self.connect_ms)
    }
    pub fn response(&self) -> Duration {
        Duration::from_millis(self.response_ms)
    }
    pub fn request_head(&self) -> Duration {
        Duration::from_millis(self.request_head_ms)
    }
    pub fn backend_cooldown(&self) -> Duration {
        Duration::from_millis(self.backend_cooldown_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
    pub fn upstream_idle(&self) -> Duration {
        Duration::from_millis(self.upstream_idle_ms)
    }
    pub fn idle_park(&self) -> Duration {
        Duration::from_millis(self.idle_park_ms)
    }
    pub fn body_idle(&self) -> Duration {
        Duration::from_millis(self.body_idle_ms)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The most bytes of a body the router reads to find a cluster id; past it, 413.
    pub inspect_body_bytes: usize,
    /// Open client connections per listener; past it new connections are closed at once.
    pub max_connections: usize,
    /// Bytes of a request head (line + headers) per HTTP/1 connection.
    pub max_header_bytes: usize,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Requests of one client connection (HTTP/2 streams) served at once; more wait for a
    /// place. Bounds the upstream connections one client connection can hold.
    pub upstream_per_connection: usize,
    /// Requests forwarded at once to one peer router over one HTTP/2 connection (each serving
    /// thread keeps up to four per peer; a request with a streamed body, or one finding them
    /// full, goes over HTTP/1.1). 0: every forwarded request goes over HTTP/1.1.
    pub peer_h2_streams: u32,
    /// Header fields of an HTTP/1 request; past it 431.
    pub max_headers: usize,
    /// Bytes of a request target (path and query); past it 414.
    pub max_uri_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            inspect_body_bytes: 64 * 1024,
            max_connections: 20_000,
            max_header_bytes: 64 * 1024,
            h2_max_concurrent_streams: 256,
            upstream_per_connection: 32,
            peer_h2_streams: 128,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OwnershipSource {
    /// The map in this file (`[[ownership.shards]]`), or each shard owned by its home DC.
    #[default]
    Static,
    /// A live map in etcd (`shards/{n}` under `prefix`), loaded then watched.
    Etcd,
}

/// How the DCs' Coopr servers hold their data.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OwnershipMode {
    /// Each DC has its own database; shards have owner DCs (custom replication).
    #[default]
    Sharded,
    /// Every DC's Coopr servers share one synchronously replicated database: every request is
    /// served locally, and only when every local server is down does it go to another DC.
    Shared,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OwnershipConfig {
    pub mode: OwnershipMode,
    pub source: OwnershipSource,
    /// Explicit shard entries (static source); shards not listed are owned by their home DC,
    /// with the other DCs (in name order) as replicas. With etcd, the map used until etcd or the
    /// state file says otherwise (fenced meanwhile).
    pub shards: Vec<ShardConfig>,
    /// Pins: ids (`lo..=hi`, or one id) that live in a given DC whatever their shard (clusters
    /// made before the router). They win over the shard map. With etcd, used until etcd's
    /// `pins/` (or the state file) says otherwise.
    pub pins: Vec<PinConfig>,
    /// etcd client URLs, e.g. `["http://10.0.0.1:2379"]`.
    pub endpoints: Vec<String>,
    /// Key prefix of the keyspace.
    pub prefix: String,
    /// The watch asks etcd for progress every third of this, and reconnects after twice this
    /// without a message. (The fence itself rests on the lease: `failover.fence_margin_ms`.)
    pub fence_after_ms: u64,
    /// How long an owner waits for its map to reach the epoch a forwarded write carries.
    pub epoch_wait_ms: u64,
    /// Every this long, the router compacts etcd's history to the revision it read one
    /// interval earlier (`etcd/compact.rs`); 0: off (an etcd compacted by its owner).
    pub compact_every_ms: u64,
    /// The last-known-good map, rewritten (temp file, fsync, rename) at every change.
    pub state_file: Option<String>,
    pub connect_timeout_ms: u64,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to etcd: a CA to trust, and optionally a client certificate and key (PEM files).
    pub tls_ca_file: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
}

impl Default for OwnershipConfig {
    fn default() -> Self {
        OwnershipConfig {
            mode: OwnershipMode::Sharded,
            source: OwnershipSource::Static,
            shards: Vec::new(),
            pins: Vec::new(),
            endpoints: Vec::new(),
            prefix: "/coopr-router/".to_string(),
            fence_after_ms: 3_000,
            epoch_wait_ms: 500,
            compact_every_ms: 300_000,
            state_file: None,
            connect_timeout_ms: 2_000,
            username: None,
            password: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ShardConfig {
    pub shard: u32,
    pub owner: String,
    #[serde(default)]
    pub replicas: Vec<String>,
}

/// One `[[ownership.pins]]` entry: ids `lo..=hi` (`hi` defaults to `lo`) live in DC `dc`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PinConfig {
    pub lo: u64,
    #[serde(default)]
    pub hi: Option<u64>,
    pub dc: String,
}

impl PinConfig {
    /// The last id of the range.
    pub fn hi(&self) -> u64 {
        self.hi.unwrap_or(self.lo)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// One line per request at info level.
    #[serde(default)]
    pub access_log: bool,
    /// Also log health checks (`GET /status`: the load balancer's and the other DCs' probes,
    /// one per peer per second) in the access log.
    #[serde(default)]
    pub access_log_health: bool,
}

/// Parses and validates a configuration from TOML text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| locate::line_of_offset(text, s.start));
        let message = e.message().trim().to_string();
        // "unknown field `x`" already names the key; a type error does not, so name it.
        let key = match line {
            Some(l) if !message.contains('`') => locate::key_at_line(text, l),
            _ => String::new(),
        };
        ConfigError { key, line, message }
    })?;
    validate::validate(raw).map_err(|mut e| {
        e.line = locate::line_of_key(text, &e.key);
        e
    })
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        key: String::new(),
        line: None,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    parse(&text)
}
