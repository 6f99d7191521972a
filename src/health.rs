//! The prober: sends `GET /status` to every local Coopr server and every other DC's router each
//! `health.interval_ms`, and feeds the answers to their health state (`upstream::health`).

use crate::body::ProxyBody;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use arc_swap::ArcSwap;
use http::{Request, StatusCode, Uri};
use std::sync::Arc;
use std::time::Duration;

async fn probe(rt: &Runtime, base: &Uri, timeout: Duration) -> bool {
    let uri = format!(
        "{}status",
        base.to_string().trim_end_matches('/').to_string() + "/"
    );
    let Ok(req) = Request::get(uri).body(ProxyBody::Empty) else {
        return false;
    };
    matches!(rt.upstream.send(req, timeout).await, Ok(resp) if resp.status() == StatusCode::OK)
}

/// Probes every local Coopr server and every other DC's router each interval, until shutdown.
pub async fn run(runtime: Arc<ArcSwap<Runtime>>, shutdown: Shutdown) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let rt = runtime.load_full();
        let cfg = rt.config.raw.health.clone();
        let timeout = Duration::from_millis(cfg.timeout_ms);
        for (i, b) in rt.backends.iter().enumerate() {
            let ok = probe(&rt, &b.url, timeout).await;
            if let Some(up) = b.health.observe(ok, &cfg) {
                tracing::warn!(backend = %b.url, up, "local Coopr server health changed");
                if !up && !rt.backends.any_up() {
                    tracing::error!("every local Coopr server is down");
                }
            }
            crate::metrics::backend_health(&b.url.to_string(), b.health.is_up());
            let _ = i;
        }
        for (dc, spec) in rt.config.dcs.iter().enumerate() {
            if dc == rt.config.local {
                continue;
            }
            let ok = probe(&rt, &spec.peer_url, timeout).await;
            if let Some(h) = rt.peers.0.get(dc)
                && let Some(up) = h.observe(ok, &cfg)
            {
                tracing::warn!(dc = %spec.name, up, "peer DC health changed");
            }
            crate::metrics::peer_health(&spec.name, rt.peers.is_up(dc));
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_millis(cfg.interval_ms)) => {}
        }
    }
}
