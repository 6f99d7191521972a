//! What a reload swaps as one value: the validated config with everything built from it (the
//! local Coopr servers, peer health, the upstream client, TLS material). Readers load it once
//! per request or per round; `reload` is its one writer.

use crate::config::Config;
use crate::routing::Origin;
use crate::tls::Material;
use crate::tls::server::TlsSource;
use crate::upstream::{Backends, PeerHealth, Upstream};
use arc_swap::ArcSwap;
use http::HeaderValue;
use std::sync::Arc;

/// What a reload may change: the config, and the backend pool and client built from it.
pub struct Runtime {
    pub config: Arc<Config>,
    pub backends: Backends,
    /// Health of the other DCs' routers.
    pub peers: PeerHealth,
    pub upstream: Upstream,
    /// TLS built from `config` (listener configs, the outgoing client's trust).
    pub tls: Arc<Material>,
    /// `Authorization: Bearer <coopr.token_file>` for the router's own requests to Coopr
    /// (marked sensitive: its `Debug` says only "Sensitive").
    pub coopr_auth: Option<HeaderValue>,
    /// This DC's name as a header value.
    pub dc_header: HeaderValue,
}

impl Runtime {
    /// Keeps what health checks learned across a reload: servers by URL, peers by DC name.
    pub fn inherit_health(&self, old: &Runtime) {
        for b in self.backends.iter() {
            if let Some(o) = old.backends.iter().find(|o| o.url == b.url) {
                b.health.copy_from(&o.health);
            }
        }
        for (i, d) in self.config.dcs.iter().enumerate() {
            if let (Some(j), Some(h)) = (
                old.config.dcs.iter().position(|o| o.name == d.name),
                self.peers.0.get(i),
            ) && let Some(o) = old.peers.0.get(j)
            {
                h.copy_from(o);
            }
        }
    }

    pub fn new(config: Arc<Config>, tls: Arc<Material>) -> Self {
        let dc = &config.dcs[config.local].name;
        Runtime {
            backends: Backends::from_config(&config),
            peers: PeerHealth::new(config.dcs.len()),
            upstream: Upstream::new(&config.raw.timeouts, &tls)
                .with_peer_links(config.raw.limits.peer_h2_streams),
            tls,
            coopr_auth: coopr_auth(&config),
            // DC names are validated to [a-z0-9_-], always a valid header value.
            dc_header: HeaderValue::from_str(dc).unwrap_or(HeaderValue::from_static("unknown")),
            config,
        }
    }
}

/// The TLS source of the client or peer listener: the server config in the runtime snapshot
/// at the time of each handshake. None when the listener starts plain.
pub fn tls_source(runtime: &Arc<ArcSwap<Runtime>>, origin: Origin) -> Option<TlsSource> {
    let pick = move |m: &Material| match origin {
        Origin::Client => m.client.clone(),
        Origin::Peer => m.peer.clone(),
        Origin::Provisioner => m.provisioner.clone(),
    };
    let now = runtime.load();
    pick(&now.tls)?;
    let rt = runtime.clone();
    Some(TlsSource {
        config: Arc::new(move || pick(&rt.load().tls)),
        handshake_timeout: now.tls.handshake_timeout,
    })
}

/// The service credential's header value; a file that became unreadable since validation
/// leaves the router without one (logged, without the token).
fn coopr_auth(config: &Config) -> Option<HeaderValue> {
    match config.raw.coopr.resolve_token() {
        Ok(t) => {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t?)).ok()?;
            v.set_sensitive(true);
            Some(v)
        }
        Err(e) => {
            tracing::error!(error = %e, "Coopr service token unavailable; the router's own requests to Coopr go without it");
            None
        }
    }
}

impl Runtime {
    /// Adds the service credential (if any) to a request the router sends Coopr on its own.
    pub fn authorize(&self, headers: &mut http::HeaderMap) {
        if let Some(v) = &self.coopr_auth {
            headers.insert(http::header::AUTHORIZATION, v.clone());
        }
    }
}
