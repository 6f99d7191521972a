//! Checks a [`RawConfig`] and resolves it into a [`ValidConfig`]: URLs parsed, DCs indexed,
//! the static shard map expanded. Each rule refuses with the dotted key at fault.

use super::{ConfigError, RawConfig};
use http::Uri;

/// One DC, resolved. DCs are kept sorted by name; a DC's index is its position.
#[derive(Debug, Clone, PartialEq)]
pub struct DcSpec {
    pub name: String,
    pub peer_url: Uri,
    pub id_start: u64,
    pub id_increment: u64,
}

/// One local Coopr server.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendSpec {
    pub url: Uri,
    pub tasks_url: Uri,
}

/// One shard of the static map: owner and replicas as DC indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardSpec {
    pub owner: usize,
    pub replicas: Vec<usize>,
}

/// A configuration that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    /// The file as written.
    pub raw: RawConfig,
    /// Index of this DC in `dcs`.
    pub local: usize,
    pub dcs: Vec<DcSpec>,
    pub backends: Vec<BackendSpec>,
    /// The static map, one entry per shard.
    pub shards: Vec<ShardSpec>,
    /// Per DC index: the standby Coopr server for shards adopted from that home DC.
    pub standby: Vec<Option<Uri>>,
    /// Per DC index: that standby server's tasks API (the provisioner listener's
    /// `/standby/{home}/`).
    pub standby_tasks: Vec<Option<Uri>>,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        line: None,
        message: message.into(),
    }
}

/// Parses `http://host:port` or `https://host:port` (no path, query or userinfo); whether https
/// is allowed where it is used is `tls::validate`'s rule.
pub fn parse_base_url(key: &str, text: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = text
        .parse()
        .map_err(|e| err(key, format!("{text:?} is not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(err(
                key,
                format!("scheme {other:?} is not supported; use http or https"),
            ));
        }
        None => {
            return Err(err(
                key,
                format!("{text:?} has no scheme; write http://host:port"),
            ));
        }
    }
    let Some(authority) = uri.authority() else {
        return Err(err(key, format!("{text:?} has no host")));
    };
    if authority.as_str().contains('@') {
        return Err(err(key, "user info is not allowed in the URL"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(err(key, format!("{text:?} must not have a path or query")));
    }
    Ok(uri)
}

fn valid_dc_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Checks every rule and resolves the config.
pub fn validate(raw: RawConfig) -> Result<ValidConfig, ConfigError> {
    if raw.rules != "coopr" {
        return Err(err(
            "rules",
            format!(
                "unknown rule set {:?}; the built-in one is \"coopr\"",
                raw.rules
            ),
        ));
    }
    if raw.shard_count == 0 || raw.shard_count > 65_536 {
        return Err(err("shard_count", "must be between 1 and 65536"));
    }
    if raw.dcs.is_empty() {
        return Err(err("dcs", "at least one DC is needed"));
    }
    let mut dcs = Vec::with_capacity(raw.dcs.len());
    for (name, dc) in &raw.dcs {
        let key = format!("dcs.{name}");
        if !valid_dc_name(name) {
            return Err(err(
                &key,
                "a DC name is 1-63 characters of a-z, 0-9, '-' and '_'",
            ));
        }
        if dc.id_increment == 0 {
            return Err(err(format!("{key}.id_increment"), "must be at least 1"));
        }
        dcs.push(DcSpec {
            name: name.clone(),
            peer_url: parse_base_url(&format!("{key}.peer_url"), &dc.peer_url)?,
            id_start: dc.id_start,
            id_increment: dc.id_increment,
        });
    }
    let increment = dcs[0].id_increment;
    for dc in &dcs {
        let key = format!("dcs.{}.id_increment", dc.name);
        if dc.id_increment != increment {
            return Err(err(
                key,
                format!(
                    "every DC must use the same id_increment ({increment} in dcs.{})",
                    dcs[0].name
                ),
            ));
        }
        if (dcs.len() as u64) > increment {
            return Err(err(
                key,
                format!("must be at least the number of DCs ({})", dcs.len()),
            ));
        }
    }
    for (i, a) in dcs.iter().enumerate() {
        for b in &dcs[..i] {
            if a.id_start % increment == b.id_start % increment {
                return Err(err(
                    format!("dcs.{}.id_start", a.name),
                    format!(
                        "creates ids in the same partition as dcs.{} (id_start mod id_increment must differ)",
                        b.name
                    ),
                ));
            }
        }
    }
    if u64::from(raw.shard_count) % increment != 0 {
        return Err(err(
            "shard_count",
            format!("must be a multiple of id_increment ({increment})"),
        ));
    }
    let Some(local) = dcs.iter().position(|d| d.name == raw.dc) else {
        return Err(err(
            "dc",
            format!("{:?} is not one of the DCs under [dcs]", raw.dc),
        ));
    };
    let mut listens = vec![raw.listen.client, raw.listen.peer, raw.listen.admin];
    listens.extend(raw.listen.provisioner);
    let distinct: std::collections::HashSet<_> = listens.iter().collect();
    if distinct.len() != listens.len() {
        return Err(err(
            "listen",
            "client, peer, admin (and provisioner) must listen on different addresses",
        ));
    }
    if let Some(n) = raw.listen.threads
        && !(1..=super::MAX_SERVING_THREADS).contains(&n)
    {
        return Err(err(
            "listen.threads",
            format!(
                "{n} serving threads: give 1 to {} (or leave it out: one per CPU)",
                super::MAX_SERVING_THREADS
            ),
        ));
    }
    if raw.backends.is_empty() {
        return Err(err("backends", "at least one local Coopr server is needed"));
    }
    let mut backends = Vec::with_capacity(raw.backends.len());
    for (i, b) in raw.backends.iter().enumerate() {
        let url = parse_base_url(&format!("backends.{i}.url"), &b.url)?;
        let tasks_url = match &b.tasks_url {
            Some(t) => parse_base_url(&format!("backends.{i}.tasks_url"), t)?,
            None if raw.listen.provisioner.is_some() => {
                return Err(err(
                    format!("backends.{i}.tasks_url"),
                    "listen.provisioner forwards Coopr's internal API to each server's tasks port (server.tasks.port): name it",
                ));
            }
            None => url.clone(),
        };
        backends.push(BackendSpec { url, tasks_url });
    }
    let t = &raw.timeouts;
    for (name, v) in [
        ("connect_ms", t.connect_ms),
        ("response_ms", t.response_ms),
        ("request_head_ms", t.request_head_ms),
        ("backend_cooldown_ms", t.backend_cooldown_ms),
        ("upstream_idle_ms", t.upstream_idle_ms),
        ("body_idle_ms", t.body_idle_ms),
    ] {
        if v == 0 {
            return Err(err(format!("timeouts.{name}"), "must be greater than 0"));
        }
    }
    let l = &raw.limits;
    if l.inspect_body_bytes < 1024 {
        return Err(err("limits.inspect_body_bytes", "must be at least 1024"));
    }
    if l.max_connections == 0 {
        return Err(err("limits.max_connections", "must be greater than 0"));
    }
    if l.max_header_bytes < 8192 {
        return Err(err("limits.max_header_bytes", "must be at least 8192"));
    }
    if l.max_headers == 0 || l.max_headers > 10_000 {
        return Err(err("limits.max_headers", "must be between 1 and 10000"));
    }
    if l.max_uri_bytes < 256 || l.max_uri_bytes > l.max_header_bytes {
        return Err(err(
            "limits.max_uri_bytes",
            "must be at least 256 and at most limits.max_header_bytes",
        ));
    }
    if l.h2_max_concurrent_streams == 0 {
        return Err(err(
            "limits.h2_max_concurrent_streams",
            "must be greater than 0",
        ));
    }
    if l.upstream_per_connection == 0 {
        return Err(err(
            "limits.upstream_per_connection",
            "must be greater than 0",
        ));
    }
    if raw.admin.token.as_deref().is_some_and(|t| t.len() < 16) {
        return Err(err("admin.token", "must be at least 16 characters"));
    }
    if let Err(e) = raw.admin.resolve_token() {
        return Err(err("admin.token_file", e));
    }
    if let Err(e) = raw.coopr.resolve_token() {
        return Err(err("coopr.token_file", e));
    }
    for (home, sb) in &raw.standby {
        let key = format!("standby.{home}");
        if !dcs.iter().any(|d| &d.name == home) {
            return Err(err(
                &key,
                format!("{home:?} is not one of the DCs under [dcs]"),
            ));
        }
        if home == &raw.dc {
            return Err(err(&key, "a DC needs no standby for its own home shards"));
        }
        parse_base_url(&format!("{key}.url"), &sb.url)?;
        match &sb.tasks_url {
            Some(t) => {
                parse_base_url(&format!("{key}.tasks_url"), t)?;
            }
            None if raw.listen.provisioner.is_some() => {
                return Err(err(
                    format!("{key}.tasks_url"),
                    "listen.provisioner serves the standby's provisioners too (under /standby/{home}/): name its tasks port (server.tasks.port)",
                ));
            }
            None => {}
        }
    }
    let hc = &raw.health;
    if hc.interval_ms < 10 || hc.timeout_ms == 0 || hc.rise == 0 || hc.fall == 0 {
        return Err(err(
            "health",
            "interval_ms must be at least 10; timeout_ms, rise and fall at least 1",
        ));
    }
    let o = &raw.ownership;
    if o.source == super::OwnershipSource::Etcd {
        if o.endpoints.is_empty() {
            return Err(err(
                "ownership.endpoints",
                "the etcd source needs at least one endpoint",
            ));
        }
        for (i, e) in o.endpoints.iter().enumerate() {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(err(
                    format!("ownership.endpoints.{i}"),
                    format!("{e:?} must start with http:// or https://"),
                ));
            }
        }
        if !o.prefix.starts_with('/') || !o.prefix.ends_with('/') {
            return Err(err("ownership.prefix", "must start and end with '/'"));
        }
        if o.compact_every_ms != 0 && o.compact_every_ms < 1_000 {
            return Err(err(
                "ownership.compact_every_ms",
                "must be 0 (off) or at least 1000: each compaction keeps one interval of history for watches to resume from",
            ));
        }
        if o.fence_after_ms < 100 {
            return Err(err("ownership.fence_after_ms", "must be at least 100"));
        }
        if raw.failover.lease_ttl_ms < 1_000 {
            return Err(err(
                "failover.lease_ttl_ms",
                "must be at least 1000 (etcd leases count whole seconds)",
            ));
        }
        let margin = raw.failover.fence_margin_ms;
        if margin < 100 || margin.saturating_mul(2) > raw.failover.lease_ttl_ms {
            return Err(err(
                "failover.fence_margin_ms",
                format!(
                    "must be at least 100 and at most half of failover.lease_ttl_ms ({})",
                    raw.failover.lease_ttl_ms
                ),
            ));
        }
        if o.fence_after_ms >= raw.failover.lease_ttl_ms {
            return Err(err(
                "ownership.fence_after_ms",
                format!(
                    "must be below failover.lease_ttl_ms ({}): an isolated owner must stop writing before its lease can expire",
                    raw.failover.lease_ttl_ms
                ),
            ));
        }
        if o.connect_timeout_ms == 0 {
            return Err(err(
                "ownership.connect_timeout_ms",
                "must be greater than 0",
            ));
        }
        if o.username.is_some() != o.password.is_some() {
            return Err(err(
                "ownership.username",
                "username and password go together",
            ));
        }
        if o.tls_cert_file.is_some() != o.tls_key_file.is_some() {
            return Err(err(
                "ownership.tls_cert_file",
                "tls_cert_file and tls_key_file go together",
            ));
        }
    }
    super::replication::validate(&raw.replication, raw.ownership.mode)?;
    super::catalog::validate(&raw.catalog, &raw.dcs)?;
    super::tls::validate(&raw)?;
    let shards = static_shards(&raw, &dcs, increment)?;
    static_pins(&raw, &dcs)?;
    let standby = dcs
        .iter()
        .map(|d| raw.standby.get(&d.name).and_then(|s| s.url.parse().ok()))
        .collect();
    let standby_tasks = dcs
        .iter()
        .map(|d| {
            let s = raw.standby.get(&d.name)?;
            s.tasks_url.as_deref().unwrap_or(&s.url).parse().ok()
        })
        .collect();
    Ok(ValidConfig {
        raw,
        local,
        dcs,
        backends,
        shards,
        standby,
        standby_tasks,
    })
}

/// The home DC of a shard: the DC whose Coopr creates ids in it.
pub fn home_of(dcs: &[DcSpec], shard: u32) -> Option<usize> {
    dcs.iter()
        .position(|d| u64::from(shard) % d.id_increment == d.id_start % d.id_increment)
}

/// Pins name a DC of the list, have `lo <= hi`, no id past `i64::MAX`, and do not overlap.
fn static_pins(raw: &RawConfig, dcs: &[DcSpec]) -> Result<(), ConfigError> {
    let mut ranges = Vec::with_capacity(raw.ownership.pins.len());
    for (i, p) in raw.ownership.pins.iter().enumerate() {
        let key = format!("ownership.pins.{i}");
        if !dcs.iter().any(|d| d.name == p.dc) {
            return Err(err(format!("{key}.dc"), format!("unknown DC {:?}", p.dc)));
        }
        if p.hi() < p.lo {
            return Err(err(format!("{key}.hi"), "hi must not be below lo"));
        }
        if p.hi() > i64::MAX as u64 {
            return Err(err(
                format!("{key}.hi"),
                "ids past i64::MAX do not exist in Coopr",
            ));
        }
        ranges.push((p.lo, p.hi()));
    }
    let mut sorted = ranges.clone();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[1].0 <= w[0].1) {
        let i = ranges.iter().rposition(|r| *r == w[1]).unwrap_or(0);
        return Err(err(
            format!("ownership.pins.{i}.lo"),
            format!(
                "pin {}..={} overlaps pin {}..={}",
                w[1].0, w[1].1, w[0].0, w[0].1
            ),
        ));
    }
    Ok(())
}

fn static_shards(
    raw: &RawConfig,
    dcs: &[DcSpec],
    _increment: u64,
) -> Result<Vec<ShardSpec>, ConfigError> {
    let index = |key: &str, name: &str| {
        dcs.iter()
            .position(|d| d.name == name)
            .ok_or_else(|| err(key, format!("unknown DC {name:?}")))
    };
    let mut shards: Vec<Option<ShardSpec>> = vec![None; raw.shard_count as usize];
    for (i, s) in raw.ownership.shards.iter().enumerate() {
        let key = format!("ownership.shards.{i}");
        let Some(slot) = shards.get_mut(s.shard as usize) else {
            return Err(err(
                format!("{key}.shard"),
                format!(
                    "shard {} is not below shard_count ({})",
                    s.shard, raw.shard_count
                ),
            ));
        };
        if slot.is_some() {
            return Err(err(
                format!("{key}.shard"),
                format!("shard {} is listed twice", s.shard),
            ));
        }
        let owner = index(&format!("{key}.owner"), &s.owner)?;
        let mut replicas = Vec::with_capacity(s.replicas.len());
        for (j, r) in s.replicas.iter().enumerate() {
            let rk = format!("{key}.replicas.{j}");
            let r = index(&rk, r)?;
            if r == owner || replicas.contains(&r) {
                return Err(err(
                    rk,
                    "a replica must not repeat the owner or another replica",
                ));
            }
            replicas.push(r);
        }
        *slot = Some(ShardSpec { owner, replicas });
    }
    let mut out = Vec::with_capacity(shards.len());
    for (n, slot) in shards.into_iter().enumerate() {
        match slot {
            Some(s) => out.push(s),
            None => {
                // Validated above: every shard has exactly one home DC.
                let owner = home_of(dcs, n as u32).unwrap_or(0);
                let replicas = (1..dcs.len()).map(|k| (owner + k) % dcs.len()).collect();
                out.push(ShardSpec { owner, replicas });
            }
        }
    }
    Ok(out)
}
