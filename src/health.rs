//! The prober: sends `GET /status` to every local Coopr server and every other DC's router each
//! `health.interval_ms`, each target on its own (one probe in flight per target, so a silent one
//! delays no other), and feeds the answers to their health state (`upstream::health`).

use crate::body::ProxyBody;
use crate::runtime::Runtime;
use crate::shutdown::Shutdown;
use arc_swap::ArcSwap;
use http::{Request, StatusCode, Uri};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

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

/// What a probe was sent to: a local server (by URL) or a peer DC (by name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Backend(String),
    Peer(String),
}

/// A finished probe: the runtime it was sent for (a reload may have swapped it since), the
/// target's index there, and the answer.
type Done = (Arc<Runtime>, Target, usize, Option<u16>);

/// Probes every local Coopr server and every other DC's router each interval, until shutdown.
/// Every target has its own probe in flight: each interval, a probe goes to every target whose
/// last one has finished, and an answer is taken when it comes. A target that does not answer
/// holds up only its own next probe (for at most `health.timeout_ms`), never the others', so
/// probing stays at one interval per target however many DCs are silent (load/SCALE.md, "DCs").
pub async fn run(runtime: Arc<ArcSwap<Runtime>>, shutdown: Shutdown) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut flying: JoinSet<Done> = JoinSet::new();
    let mut busy: HashSet<Target> = HashSet::new();
    loop {
        let rt = runtime.load_full();
        let cfg = rt.config.raw.health.clone();
        let timeout = Duration::from_millis(cfg.timeout_ms);
        for (i, b) in rt.backends.iter().enumerate() {
            let target = Target::Backend(b.url.to_string());
            if busy.insert(target.clone()) {
                let (rt, url) = (rt.clone(), b.url.clone());
                flying.spawn(async move {
                    let status = probe(&rt, &url, timeout, true).await;
                    (rt, target, i, status)
                });
            }
        }
        for (dc, spec) in rt.config.dcs.iter().enumerate() {
            let target = Target::Peer(spec.name.clone());
            if dc == rt.config.local || !busy.insert(target.clone()) {
                continue;
            }
            let (rt, url) = (rt.clone(), spec.peer_url.clone());
            flying.spawn(async move {
                let status = probe(&rt, &url, timeout, false).await;
                (rt, target, dc, status)
            });
        }
        let next = tokio::time::sleep(Duration::from_millis(cfg.interval_ms));
        tokio::pin!(next);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = &mut next => break,
                Some(done) = flying.join_next() => {
                    let Ok((rt, target, i, status)) = done else { continue };
                    busy.remove(&target);
                    observe(&rt, &target, i, status);
                }
            }
        }
    }
}

/// Feeds one probe's answer to its target's health state (and logs and counts a change).
fn observe(rt: &Runtime, target: &Target, i: usize, status: Option<u16>) {
    let cfg = &rt.config.raw.health;
    match target {
        Target::Backend(url) => {
            let Some(b) = rt.backends.get(i) else { return };
            if status == Some(401) {
                tracing::warn!(backend = %url, "Coopr server answered 401 to GET /status: the service token (coopr.token_file) is missing or wrong");
            }
            let ok = status == Some(StatusCode::OK.as_u16());
            if let Some(up) = b.health.observe(ok, cfg) {
                tracing::warn!(backend = %url, up, "local Coopr server health changed");
                if !up && !rt.backends.any_up() {
                    tracing::error!("every local Coopr server is down");
                }
            }
            crate::metrics::backend_health(url, b.health.is_up());
        }
        Target::Peer(name) => {
            // A 401 is the peer's Coopr refusing our credential: its router and Coopr answer.
            let ok = matches!(status, Some(200 | 401));
            if let Some(h) = rt.peers.0.get(i)
                && let Some(up) = h.observe(ok, cfg)
            {
                tracing::warn!(dc = %name, up, "peer DC health changed");
            }
            crate::metrics::peer_health(name, rt.peers.is_up(i));
        }
    }
}
