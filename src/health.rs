//! The prober: sends `GET /status` to every local Coopr server and every other DC's router each
//! `health.interval_ms`, and feeds the answers to their health state (`upstream::health`).

use crate::body::ProxyBody;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use arc_swap::ArcSwap;
use http::{Request, StatusCode, Uri};
use std::sync::Arc;
use std::time::Duration;

/// `GET {base}/status`: the answer's status, or `None` when nothing answered in time. With
/// `authorize`, the request carries the Coopr service credential (local servers only: a peer
/// router's Coopr may well take another).
async fn probe(rt: &Runtime, base: &Uri, timeout: Duration, authorize: bool) -> Option<u16> {
    let uri = format!(
        "{}status",
        base.to_string().trim_end_matches('/').to_string() + "/"
    );
    let mut req = Request::get(uri).body(ProxyBody::Empty).ok()?;
    if authorize {
        rt.authorize(req.headers_mut());
    }
    let resp = rt.upstream.send(req, timeout).await.ok()?;
    Some(resp.status().as_u16())
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
            let status = probe(&rt, &b.url, timeout, true).await;
            if status == Some(401) {
                tracing::warn!(backend = %b.url, "Coopr server answered 401 to GET /status: the service token (coopr.token_file) is missing or wrong");
            }
            let ok = status == Some(StatusCode::OK.as_u16());
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
            // A 401 is the peer's Coopr refusing our credential: its router and Coopr answer.
            let ok = matches!(
                probe(&rt, &spec.peer_url, timeout, false).await,
                Some(200 | 401)
            );
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
