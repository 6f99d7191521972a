//! What the proxy does to bodies and answers on their way through: reading a body whole up to
//! a limit (to inspect or to send again), and the router's headers on an upstream's answer.

use crate::body::ClientBody;
use crate::body::{BodyError, Inspected, ProxyBody, read_up_to};
use crate::error::ProxyError;
use crate::headers;
use crate::routing::{Decision, Route, RoutingTable, Target};
use crate::runtime::Runtime;
use bytes::Bytes;
use http::{HeaderValue, Response, header};

/// Reads at most `limit` bytes of a body, within the request-head timeout.
pub(super) async fn inspect(
    rt: &Runtime,
    body: ClientBody,
    limit: usize,
) -> Result<Inspected, ProxyError> {
    match tokio::time::timeout(
        rt.config.raw.timeouts.request_head(),
        read_up_to(body, limit),
    )
    .await
    {
        Err(_) => Err(ProxyError::BodyTimeout),
        Ok(Err(e)) => Err(ProxyError::BodyRead(e.to_string())),
        Ok(Ok(i)) => Ok(i),
    }
}

/// A body of which `prefix` was read and `rest` was not.
pub(super) fn prefixed(prefix: Bytes, rest: ProxyBody) -> ProxyBody {
    ProxyBody::Prefixed {
        prefix: Some(prefix),
        rest: Box::new(rest),
    }
}

/// Buffers a streamed body of at most the inspection limit, so it can be sent again (a retry
/// after a 421 or a refused connection); a larger one streams on and cannot be.
pub(super) async fn replayable(rt: &Runtime, body: ProxyBody) -> Result<ProxyBody, ProxyError> {
    Ok(match body {
        ProxyBody::Stream(s) => {
            match inspect(rt, s, rt.config.raw.limits.inspect_body_bytes).await? {
                Inspected::Whole(b) => ProxyBody::full(b),
                Inspected::TooLarge { prefix, rest } => prefixed(prefix, ProxyBody::Stream(rest)),
            }
        }
        other => other,
    })
}

/// Reads a body whole when it is at most `limit` bytes; returns its bytes (empty when larger)
/// and a body to pass on either way.
pub(super) async fn buffer(body: ProxyBody, limit: usize) -> Result<(Bytes, ProxyBody), BodyError> {
    match body {
        body @ (ProxyBody::Stream(_) | ProxyBody::Upstream(_)) => {
            match read_up_to(body, limit).await? {
                Inspected::Whole(b) => Ok((b.clone(), ProxyBody::full(b))),
                Inspected::TooLarge { prefix, rest } => Ok((Bytes::new(), prefixed(prefix, rest))),
            }
        }
        ProxyBody::Full(b) => {
            let b = b.unwrap_or_default();
            Ok((b.clone(), ProxyBody::full(b)))
        }
        other => Ok((Bytes::new(), other)),
    }
}

/// Strips hop-by-hop headers from an upstream response and adds the router's headers. An
/// answer to a peer router (`to_peer`) carries only the epoch: the peer names the DC, the route
/// and the shard itself (`peer.rs`), so the rest would be written and parsed for nothing.
pub(super) fn decorate(
    resp: Response<ProxyBody>,
    dc: HeaderValue,
    route: &'static str,
    r: Route,
    to_peer: bool,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    let h = &mut parts.headers;
    if !to_peer {
        h.insert(headers::DC, dc);
        h.insert(headers::ROUTE, HeaderValue::from_static(route));
        if let Some(shard) = r.shard {
            h.insert(headers::SHARD, headers::number(u64::from(shard)));
        }
    }
    // The epoch that served it: ours when our Coopr answered; a peer's answer keeps its own.
    if route == "local" || route == "standby" {
        if r.epoch > 0 {
            h.insert(headers::EPOCH, headers::number(r.epoch));
        } else {
            h.remove(headers::EPOCH);
        }
    }
    Response::from_parts(parts, body)
}

/// A 200 with a JSON body the router made.
pub(super) fn json_response(text: String) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The error for a decision that sends the request nowhere (`Go` has no error: it is mapped to
/// `owner_moved`, which only a caller that expected a refusal can reach).
pub(super) fn refusal(decision: Decision, table: &RoutingTable) -> ProxyError {
    match decision {
        Decision::Adopted { shard, home } => ProxyError::Adopted {
            dc: table.local_name().to_string(),
            shard,
            home: table.dc_name(home).to_string(),
        },
        Decision::Misdirected {
            shard,
            owner,
            epoch,
        } => ProxyError::Misdirected {
            dc: table.local_name().to_string(),
            shard,
            owner: owner.map(|o| table.dc_name(o).to_string()),
            epoch,
            revision: table.revision,
        },
        Decision::NoCreateTarget => ProxyError::NoCreateTarget,
        Decision::Fenced { shard } => ProxyError::Fenced {
            dc: table.local_name().to_string(),
            shard,
        },
        Decision::Go(route) => ProxyError::OwnerMoved {
            dc: match route.target {
                Target::Peer(dc) => table.dc_name(dc).to_string(),
                _ => table.local_name().to_string(),
            },
        },
    }
}
