//! Shared-database mode: every DC serves every cluster, so a request goes to the local Coopr
//! servers while one is healthy, and otherwise to the next healthy DC.

use super::ctx::{Ctx, Outcome};
use super::local::to_local;
use super::peer::send_peer;
use super::respond::replayable;
use crate::body::ProxyBody;
use crate::error::{ErrorKind, ProxyError};
use crate::headers;
use crate::routing::{Route, RoutingTable, Target, shared_candidates};
use http::Response;

/// Shared-database mode: local while a local Coopr server is healthy, else the next healthy
/// DC. Only a request that could not connect anywhere moves on (its body is buffered up to the
/// inspection limit for that); one that failed after it was sent is never replayed, since
/// Coopr's create is not idempotent.
pub(super) async fn serve_shared(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    body: ProxyBody,
    out: &mut Outcome,
) -> Result<Response<ProxyBody>, ProxyError> {
    let rt = cx.rt;
    let shard = cx.class.cluster.map(|id| table.shard_of(id));
    out.shard = shard;
    let candidates =
        shared_candidates(table, cx.class.api, cx.origin, rt.backends.any_up(), |dc| {
            rt.peers.is_up(dc)
        });
    let body = if candidates.len() > 1 {
        replayable(rt, body).await?
    } else {
        body
    };
    let replayable = body.try_clone().is_some();
    let mut body = Some(body);
    let mut last = ProxyError::BackendUnreachable("no DC could be reached".into());
    for target in candidates {
        let attempt = if replayable {
            body.as_ref().and_then(ProxyBody::try_clone)
        } else {
            body.take()
        };
        let Some(attempt) = attempt else { break };
        let route = Route {
            target,
            shard,
            epoch: 0,
        };
        let result = match target {
            Target::Standby(_) => Err(ProxyError::BackendUnreachable(
                "no standby in shared mode".into(),
            )),
            Target::Local(api) => {
                out.route = Some("local");
                out.dc = None;
                to_local(cx, attempt, route, api).await
            }
            Target::Peer(dc) => {
                out.route = Some("forwarded");
                out.dc = Some(table.dc_name(dc).to_string());
                send_peer(cx, table, attempt, route, dc).await
            }
        };
        match result {
            Err(e @ (ProxyError::BackendUnreachable(_) | ProxyError::PeerUnreachable { .. })) => {
                tracing::warn!(error = %e, "could not connect; trying the next DC");
                if let ProxyError::PeerUnreachable { dc, .. } = &e
                    && let Some(i) = table.dc_index(dc)
                    && let Some(h) = rt.peers.0.get(i)
                {
                    h.observe(false, &rt.config.raw.health);
                }
                last = e;
            }
            // The peer could not connect to its own servers either: nothing was sent.
            Ok(resp)
                if matches!(target, Target::Peer(_))
                    && resp
                        .headers()
                        .get(headers::ERROR)
                        .and_then(|v| ErrorKind::parse(v.as_bytes()))
                        == Some(ErrorKind::BackendUnreachable) =>
            {
                last = ProxyError::BackendUnreachable(format!(
                    "DC {} could not reach its Coopr servers",
                    out.dc.as_deref().unwrap_or("?")
                ));
            }
            other => return other,
        }
    }
    Err(last)
}
