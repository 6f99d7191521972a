//! Sending to this DC's Coopr: a local server (round robin, the next one after a refused
//! connection when the body can be sent again), or the standby server that serves another DC's
//! clusters after a failover.

use super::ctx::Ctx;
use super::respond::decorate;
use crate::body::ProxyBody;
use crate::classify::Api;
use crate::error::ProxyError;
use crate::routing::Route;
use crate::upstream::{Hop, Outbound, RouterHeaders, SendError};
use crate::wire::Length;
use crate::wire::Wire;
use http::Response;

/// Sends to a local Coopr server, trying the next one when a connection is refused and the
/// body can be sent again.
pub(super) async fn to_local(
    cx: &Ctx<'_>,
    mut body: ProxyBody,
    route: Route,
    api: Api,
) -> Result<Response<ProxyBody>, ProxyError> {
    const MAX_TRIES: usize = 4;
    let rt = cx.rt;
    let mut tried = [usize::MAX; MAX_TRIES];
    let mut n = 0;
    loop {
        // Checked again before every attempt: refused connections and connect timeouts can
        // take long enough for the fence to close meanwhile.
        if cx.fenced() {
            return Err(ProxyError::Fenced {
                dc: cx.dc().to_string(),
                shard: route.shard,
            });
        }
        let Some((i, backend)) = rt
            .backends
            .pick(&tried[..n])
            .and_then(|i| Some((i, rt.backends.get(i)?)))
        else {
            return Err(ProxyError::BackendUnreachable(
                "no Coopr server is configured".into(),
            ));
        };
        let replay = body.try_clone();
        let router = RouterHeaders {
            hop: None,
            epoch: if cx.is_write() { route.epoch } else { 0 },
            carried: cx.carries_router_headers(),
        };
        let out = Outbound::proxied(
            cx.parts,
            backend.base(api),
            None,
            cx.remote,
            &router,
            Length::of(&body),
        );
        match rt
            .upstream
            .send_outbound(out, body, rt.config.raw.timeouts.response())
            .await
        {
            Ok(resp) => {
                rt.backends.mark_up(i);
                return Ok(answered_here(cx, resp, "local", route));
            }
            Err(SendError::Connect(e)) => {
                tracing::warn!(backend = %backend.base(api), error = %e, "Coopr server refused the connection; skipping it for a while");
                rt.backends.mark_down(i);
                backend.health.observe(false, &rt.config.raw.health);
                tried[n] = i;
                n += 1;
                match replay {
                    Some(again) if n < MAX_TRIES.min(rt.backends.len()) => body = again,
                    _ => return Err(SendError::Connect(e).into_error(Hop::Local)),
                }
            }
            Err(e) => return Err(e.into_error(Hop::Local)),
        }
    }
}

/// Sends a request for an adopted shard to this DC's standby Coopr server for its home DC.
pub(super) async fn to_standby(
    cx: &Ctx<'_>,
    body: ProxyBody,
    route: Route,
    home: usize,
) -> Result<Response<ProxyBody>, ProxyError> {
    let rt = cx.rt;
    if cx.fenced() {
        return Err(ProxyError::Fenced {
            dc: cx.dc().to_string(),
            shard: route.shard,
        });
    }
    let Some(Some(base)) = rt.config.standby.get(home) else {
        return Err(ProxyError::BackendUnreachable(
            "no standby server is configured".into(),
        ));
    };
    let router = RouterHeaders {
        hop: None,
        epoch: route.epoch,
        carried: cx.carries_router_headers(),
    };
    let out = Outbound::proxied(cx.parts, base, None, cx.remote, &router, Length::of(&body));
    match rt
        .upstream
        .send_outbound(out, body, rt.config.raw.timeouts.response())
        .await
    {
        Ok(resp) => Ok(answered_here(cx, resp, "standby", route)),
        Err(e) => Err(e.into_error(Hop::Standby(base))),
    }
}

/// The provisioner listener's prefix for a standby server's provisioners: `/standby/{home}/v2/...`
/// goes to the tasks API of this DC's standby server for home DC `{home}`, without the prefix.
const STANDBY_PREFIX: &str = "/standby/";

/// Serves a request of the provisioner listener: Coopr's internal API of this DC's servers, or,
/// under `/standby/{home}/`, of its standby server for `{home}` (its own provisioners).
pub(super) async fn to_tasks(
    cx: &Ctx<'_>,
    body: ProxyBody,
) -> Result<Response<ProxyBody>, ProxyError> {
    let local = Route {
        target: crate::routing::Target::Local(Api::Tasks),
        shard: None,
        epoch: 0,
    };
    let Some(rest) = cx.parts.uri.path().strip_prefix(STANDBY_PREFIX) else {
        return to_local(cx, body, local, Api::Tasks).await;
    };
    let rt = cx.rt;
    let (home, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let base = rt
        .config
        .dcs
        .iter()
        .position(|d| d.name == home)
        .and_then(|i| rt.config.standby_tasks.get(i)?.as_ref());
    let Some(base) = base else {
        return Err(ProxyError::NoStandby {
            home: home.to_string(),
        });
    };
    let pq = match cx.parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let pq = http::uri::PathAndQuery::try_from(pq)
        .map_err(|e| ProxyError::BackendUnreachable(format!("bad standby path: {e}")))?;
    // The tasks API's requests keep whatever router headers they carry (none are set here).
    let router = RouterHeaders::default();
    let length = Length::of(&body);
    let out = Outbound::proxied(
        cx.parts,
        base,
        Some(pq.as_str()),
        cx.remote,
        &router,
        length,
    );
    match rt
        .upstream
        .send_outbound(out, body, rt.config.raw.timeouts.response())
        .await
    {
        Ok(resp) => Ok(answered_here(cx, resp, "standby", local)),
        Err(e) => Err(e.into_error(Hop::Standby(base))),
    }
}

/// An answer of this DC's (or its standby's) Coopr server, decorated for whoever asked: a
/// client gets every router header, a peer router only the epoch (`respond::decorate`).
fn answered_here(
    cx: &Ctx<'_>,
    resp: Response<Wire>,
    route_name: &'static str,
    route: Route,
) -> Response<ProxyBody> {
    decorate(
        resp.map(ProxyBody::Upstream),
        cx.rt.dc_header.clone(),
        route_name,
        route,
        cx.answers_a_peer(),
    )
}
