//! Forwarding to another DC's router (the owner of the shard), the 421 retry, and holding a
//! write whose owner DC cannot be reached until a new map names another (`held.rs`).

use super::ctx::Ctx;
use super::held::{Failure, HoldInput, Verdict, may_hold};
use super::local::{to_local, to_standby};
use super::replica::{replicates, to_local_replicated};
use super::respond::{decorate, refusal, replayable};
use crate::body::ProxyBody;
use crate::classify::Api;
use crate::error::ProxyError;
use crate::headers;
use crate::routing::{Decision, Origin, Route, RoutingTable, Target, decide};
use crate::upstream::{Hop, Outbound, RouterHeaders};
use crate::wire::Length;
use http::{HeaderValue, Response, StatusCode};

/// How many times one request may be routed again after 421s. Each retry needs the map to have
/// moved past the revision the previous attempt was routed by, so the bound only matters when
/// a shard keeps moving (a flip every few ms); it keeps a request from chasing it forever.
const MAX_REROUTES: u32 = 4;

/// Forwards to the owner DC's router. On 421 (the peer is not the owner) the request is
/// routed again, if its body can be sent again: after waiting (up to `epoch_wait_ms`) for
/// this router's map to reach the revision the peer decided by, and only while each new
/// decision is made on a newer map than the last one (a 421 on an unchanged map means the
/// maps disagree, and retrying would only repeat it).
pub(super) async fn to_peer(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    body: ProxyBody,
    route: Route,
    dc: usize,
) -> Result<Response<ProxyBody>, ProxyError> {
    // Buffer a small body so a 421 can be retried; a large one streams on.
    let body = replayable(cx.rt, body).await?;
    let replay = body.try_clone();
    // The rare turns (an owner that cannot be reached, a 421) are boxed apart: the common
    // forward keeps a small future.
    let sent = match send_peer(cx, table, body, route, dc).await {
        Ok(resp) if resp.status() != StatusCode::MISDIRECTED_REQUEST => return Ok(resp),
        Ok(resp) => Sent {
            resp,
            routed_by: table.revision,
            name: table.dc_name(dc).to_string(),
        },
        Err(e) => match Box::pin(when_unreachable(cx, table, dc, replay.as_ref(), e)).await? {
            Next::Answer(resp) => return Ok(resp),
            Next::Peer(sent) => sent,
        },
    };
    Box::pin(when_misdirected(cx, sent, replay)).await
}

/// A peer's answer, with the map revision the request was routed by and the peer's name.
struct Sent {
    resp: Response<ProxyBody>,
    routed_by: u64,
    name: String,
}

/// What a held write came to: an answer, or a peer's (which may still be a 421).
enum Next {
    Answer(Response<ProxyBody>),
    Peer(Sent),
}

/// The owner DC could not be reached at all: hold the write for its next owner (or for the
/// owner itself, should it come back first), as long as every try provably sent nothing.
async fn when_unreachable(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    dc: usize,
    replay: Option<&ProxyBody>,
    e: ProxyError,
) -> Result<Next, ProxyError> {
    let held_at = tokio::time::Instant::now();
    let deadline =
        held_at + std::time::Duration::from_millis(cx.rt.config.raw.failover.buffer_max_ms);
    let mark = held_mark(held_at);
    let (mut err, mut at, mut at_dc) = (e, None::<std::sync::Arc<RoutingTable>>, dc);
    loop {
        let current = at.as_deref().unwrap_or(table);
        let Some((fresh, again)) = hold(cx, current, at_dc, replay, &err, deadline).await else {
            return Err(err);
        };
        let r2 = match decide(&fresh, &cx.class, Origin::Client, cx.fenced()) {
            Decision::Go(r2) => r2,
            other => return Err(refusal(other, &fresh)),
        };
        let answer = match r2.target {
            Target::Local(api) if replicates(cx) => {
                to_local_replicated(cx, &fresh, again, r2, api, None).await
            }
            Target::Local(api) => to_local(cx, again, r2, api).await,
            Target::Standby(home) if replicates(cx) => {
                to_local_replicated(cx, &fresh, again, r2, Api::External, Some(home)).await
            }
            Target::Standby(home) => to_standby(cx, again, r2, home).await,
            Target::Peer(next) => match send_peer(cx, &fresh, again, r2, next).await {
                Ok(resp) => {
                    return Ok(Next::Peer(Sent {
                        resp: mark(resp),
                        routed_by: fresh.revision,
                        name: fresh.dc_name(next).to_string(),
                    }));
                }
                // Again nothing sent: hold on (until the deadline).
                Err(e2 @ ProxyError::PeerUnreachable { .. }) => {
                    err = e2;
                    at_dc = next;
                    at = Some(fresh);
                    continue;
                }
                Err(e2) => return Err(e2),
            },
        };
        return answer.map(|resp| Next::Answer(mark(resp)));
    }
}

/// The peer answered 421 (it is not the owner): route again, if the body can be sent again,
/// after waiting (up to `epoch_wait_ms`) for this router's map to reach the revision the peer
/// decided by, and only while each new decision is made on a newer map than the last one.
async fn when_misdirected(
    cx: &Ctx<'_>,
    sent: Sent,
    replay: Option<ProxyBody>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Sent {
        mut resp,
        mut routed_by,
        mut name,
    } = sent;
    let wait = std::time::Duration::from_millis(cx.rt.config.raw.ownership.epoch_wait_ms);
    let deadline = tokio::time::Instant::now() + wait;
    for _ in 0..MAX_REROUTES {
        if resp.status() != StatusCode::MISDIRECTED_REQUEST {
            return Ok(resp);
        }
        let Some(again) = replay.as_ref().and_then(ProxyBody::try_clone) else {
            break;
        };
        // The peer's answer says which map revision it decided by. If that is newer than
        // ours, our watch has not delivered the change yet: wait for it (briefly).
        let theirs = misdirected_revision(resp).await;
        let want = theirs.unwrap_or(routed_by + 1).max(routed_by + 1);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let fresh = cx.proxy.routes.wait_for_revision(want, left).await;
        tracing::info!(peer = %name, theirs = ?theirs, ours = fresh.revision, "peer answered 421 (not the owner); routing again");
        if fresh.revision <= routed_by {
            return Err(ProxyError::OwnerMoved { dc: name });
        }
        routed_by = fresh.revision;
        let r2 = match decide(&fresh, &cx.class, Origin::Client, cx.fenced()) {
            Decision::Go(r2) => r2,
            // The new map refuses the request itself (fenced, adopted...): say so.
            other => return Err(refusal(other, &fresh)),
        };
        match r2.target {
            Target::Local(api) if replicates(cx) => {
                return to_local_replicated(cx, &fresh, again, r2, api, None).await;
            }
            Target::Local(api) => return to_local(cx, again, r2, api).await,
            Target::Standby(home) if replicates(cx) => {
                return to_local_replicated(cx, &fresh, again, r2, Api::External, Some(home)).await;
            }
            Target::Standby(home) => return to_standby(cx, again, r2, home).await,
            Target::Peer(next) => {
                name = fresh.dc_name(next).to_string();
                resp = send_peer(cx, &fresh, again, r2, next).await?;
            }
        }
    }
    if resp.status() != StatusCode::MISDIRECTED_REQUEST {
        return Ok(resp);
    }
    Err(ProxyError::OwnerMoved { dc: name })
}

/// Sends one request to a peer router and decorates its answer.
pub(super) async fn send_peer(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    body: ProxyBody,
    route: Route,
    dc: usize,
) -> Result<Response<ProxyBody>, ProxyError> {
    let rt = cx.rt;
    let Some(peer) = table.dcs.get(dc) else {
        return Err(ProxyError::PeerUnreachable {
            dc: format!("#{dc}"),
            reason: "unknown DC".into(),
        });
    };
    let router = RouterHeaders {
        hop: Some(rt.dc_header.clone()),
        epoch: route.epoch,
        carried: cx.carries_router_headers(),
    };
    let length = Length::of(&body);
    let out = Outbound::proxied(cx.parts, &peer.peer_url, None, cx.remote, &router, length);
    match rt
        .upstream
        .send_to_peer(out, body, rt.config.raw.timeouts.response())
        .await
    {
        Ok(resp) => {
            let dc_header = resp
                .headers()
                .get(headers::DC)
                .cloned()
                .or_else(|| HeaderValue::from_str(&peer.name).ok())
                .unwrap_or_else(|| rt.dc_header.clone());
            Ok(decorate(resp, dc_header, "forwarded", route, false))
        }
        Err(e) => Err(e.into_error(Hop::Peer(&peer.name))),
    }
}

/// The `revision` a peer's 421 body reports (its map's), if it can be read.
async fn misdirected_revision(resp: Response<ProxyBody>) -> Option<u64> {
    use http_body_util::BodyExt;
    let body = http_body_util::Limited::new(resp.into_body(), 16 * 1024)
        .collect()
        .await
        .ok()?
        .to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body)
        .ok()?
        .get("revision")?
        .as_u64()
}

/// How often a held write checks whether its owner DC passes health checks again.
const RETRY_OWNER_EVERY: std::time::Duration = std::time::Duration::from_millis(1000);

/// Marks the answer to a held write with how long it waited (`x-coopr-router-held-ms`).
fn held_mark(since: tokio::time::Instant) -> impl Fn(Response<ProxyBody>) -> Response<ProxyBody> {
    move |mut resp| {
        let waited = since.elapsed().as_millis().to_string();
        if let Ok(v) = HeaderValue::from_str(&waited) {
            resp.headers_mut().insert(headers::HELD_MS, v);
        }
        resp
    }
}

/// Holds a write whose owner DC `dc` could not be reached (nothing was sent: `err` is
/// `PeerUnreachable`) until a map routes it elsewhere, or `dc` passes its health checks again
/// (tried at most once a second), at most until `deadline` (`failover.buffer_max_ms` after the
/// first failure). Returns the map to route it by and the body to send again, or None: fail
/// with `err` as before.
async fn hold(
    cx: &Ctx<'_>,
    table: &RoutingTable,
    dc: usize,
    replay: Option<&ProxyBody>,
    err: &ProxyError,
    deadline: tokio::time::Instant,
) -> Option<(std::sync::Arc<RoutingTable>, ProxyBody)> {
    let f = &cx.rt.config.raw.failover;
    let failure = match err {
        ProxyError::PeerUnreachable { .. } => Failure::NeverSent,
        _ => Failure::MaybeSent,
    };
    let held = &cx.proxy.held;
    let body_len = replay.map(|b| match b {
        ProxyBody::Full(Some(bytes)) => bytes.len() as u64,
        _ => 0,
    });
    let verdict = may_hold(&HoldInput {
        write: cx.is_write(),
        failure,
        body_len,
        held_requests: held.requests(),
        held_bytes: held.bytes(),
        max_requests: f.buffer_max_requests,
        max_bytes: f.buffer_max_bytes,
        max_ms: f.buffer_max_ms,
    });
    match verdict {
        Verdict::Hold => {}
        Verdict::Full => {
            held.refused_full();
            return None;
        }
        Verdict::NotHeld | Verdict::MaybeSent | Verdict::Streamed => return None,
    }
    let body = replay?;
    let slot = held.enter(body_len.unwrap_or(0));
    let name = table.dc_name(dc);
    tracing::info!(peer = %name, error = %err, "owner DC unreachable (nothing sent): holding the write for its next owner");
    let tried_at = tokio::time::Instant::now();
    let mut seen = table.revision;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            slot.expired();
            return None;
        }
        let fresh = cx
            .proxy
            .routes
            .wait_for_revision(seen + 1, left.min(RETRY_OWNER_EVERY))
            .await;
        if fresh.revision <= seen {
            // No new map: the owner itself, if it passes its health checks again.
            if tried_at.elapsed() >= RETRY_OWNER_EVERY && cx.rt.peers.is_up(dc) {
                tracing::info!(peer = %name, "the held write's owner DC answers health checks again: trying it once more");
                slot.returned();
                return Some((fresh, body.try_clone()?));
            }
            continue;
        }
        seen = fresh.revision;
        let elsewhere = match decide(&fresh, &cx.class, Origin::Client, cx.fenced()) {
            Decision::Go(r) => r.target != Target::Peer(dc),
            _ => false,
        };
        if elsewhere {
            tracing::info!(peer = %name, revision = fresh.revision, "a new map routes the held write elsewhere: sending it");
            slot.released();
            return Some((fresh, body.try_clone()?));
        }
    }
}
