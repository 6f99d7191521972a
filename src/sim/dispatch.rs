//! One request's flow: the security token (`--security-token`, before anything else, as Coopr's
//! `SecurityAuthenticationHttpHandler` sits in the netty pipeline before the router), route
//! (404/405 for this port), header auth, body, handler, then —
//! for a state-changing request that got a 2xx — the `/sim/log` entry and the `--data` save.

use std::sync::Arc;

use http::{HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use percent_encoding::percent_decode_str;

use super::auth::{self, Caller};
use super::ctx::Ctx;
use super::reply::{self, LogCluster, Resp};
use super::routes::{self, Route};
use super::tenants;
use super::{
    Port, Shared, catalog, cluster_ops, clusters, janitor, nodes, persist, plugins, simlog, tasks,
};
use crate::ids::ClusterId;

/// The largest request body the simulator buffers (plugin uploads are streamed instead).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Handles one request; never panics on network input.
pub(crate) async fn handle(shared: Arc<Shared>, port: Port, req: Request<Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let decoded: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let sim_only = routes::resolve(&parts.method, &segs).is_ok_and(|r| r.is_sim_only());
    if !sim_only
        && let Some(token) = &shared.cfg.security_token
        && let Err(resp) = auth::check_token(token, &parts.headers, parts.version)
    {
        return resp;
    }
    let route = match routes::resolve_on(port, &parts.method, &segs) {
        Ok(route) => route,
        Err(405) => {
            return reply::text(
                405,
                format!("Problem accessing: {path}. Reason: Method Not Allowed"),
            );
        }
        Err(code) => {
            return reply::text(
                code,
                format!("Problem accessing: {path}. Reason: Not Found"),
            );
        }
    };
    if let Route::Status = route {
        let mut resp = reply::text(200, "OK\n");
        if parts.version < http::Version::HTTP_2 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return resp;
    }
    let caller = if route.needs_auth() {
        match auth::check(&shared, &parts.headers) {
            Ok(caller) => Some(caller),
            Err(resp) => return resp,
        }
    } else {
        None
    };
    let logged = parts.method != Method::GET
        && parts.method != Method::HEAD
        && !matches!(route, Route::NodeProperties);
    let path_cluster = match &route {
        Route::ClusterWrite(id, _) | Route::SimExpire(id) => {
            ClusterId::parse(id).ok().map(|c| c.to_string())
        }
        _ => None,
    };
    let resp = match route {
        Route::PluginUpload(key) => plugins::upload(&shared, caller.as_ref(), key, body).await,
        route => {
            let bytes = match Limited::new(body, BODY_LIMIT).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return reply::text(400, "Cannot read request body."),
            };
            let query = parts.uri.query();
            let ctx = Ctx {
                shared: &shared,
                query,
                body: &bytes,
            };
            call(&ctx, route, caller.as_ref())
        }
    };
    if logged && resp.status().is_success() {
        let cluster = resp
            .extensions()
            .get::<LogCluster>()
            .map(|c| c.0.clone())
            .or(path_cluster);
        simlog::record(&shared, &parts, resp.status().as_u16(), cluster);
        persist::save(&shared).await;
    }
    resp
}

/// Calls the handler for a route. External routes get the authenticated caller.
fn call(ctx: &Ctx, route: Route, caller: Option<&Caller>) -> Resp {
    match (route, caller) {
        (Route::SimLog, _) => simlog::get(ctx),
        (Route::SimExpire(id), _) => janitor::expire(ctx, &id),
        (Route::SimBlob, _) => plugins::blob(ctx),
        (Route::TaskTake, _) => tasks::take(ctx),
        (Route::TaskFinish, _) => tasks::finish(ctx),
        (Route::ProvisionerPut(p), _) => tasks::provisioner_put(ctx, &p),
        (Route::ProvisionerHeartbeat(p), _) => tasks::heartbeat(ctx, &p),
        (Route::ProvisionerDelete(p), _) => tasks::provisioner_delete(ctx, &p),
        (Route::PluginDownload(t, key, v), _) => plugins::download(ctx, &t, &key, &v),
        (Route::PluginTypePut(kind, n), _) => catalog::plugin_type_put(ctx, &kind, &n),
        (Route::PluginTypeList(kind), Some(_)) => catalog::plugin_type_list(ctx, &kind),
        (Route::PluginTypeGet(kind, n), Some(_)) => catalog::plugin_type_get(ctx, &kind, &n),
        (Route::ProvisionerList, Some(c)) => tasks::provisioner_list(ctx, c),
        (Route::ProvisionerGet(p), Some(c)) => tasks::provisioner_get(ctx, c, &p),
        (Route::TenantList, Some(c)) => tenants::list(ctx, c),
        (Route::TenantCreate, Some(c)) => tenants::create(ctx, c),
        (Route::TenantGet(n), Some(c)) => tenants::get(ctx, c, &n),
        (Route::TenantPut(n), Some(c)) => tenants::put(ctx, c, &n),
        (Route::TenantDelete(n), Some(c)) => tenants::delete(ctx, c, &n),
        (Route::CatalogList(t), Some(c)) => catalog::list(ctx, c, &t),
        (Route::CatalogCreate(t), Some(c)) => catalog::create(ctx, c, &t),
        (Route::CatalogGet(t, n), Some(c)) => catalog::get(ctx, c, &t, &n),
        (Route::CatalogPut(t, n), Some(c)) => catalog::put(ctx, c, &t, &n),
        (Route::CatalogDelete(t, n), Some(c)) => catalog::delete(ctx, c, &t, &n),
        (Route::ClusterList, Some(c)) => clusters::list(ctx, c),
        (Route::ClusterCreate, Some(c)) => clusters::create(ctx, c),
        (Route::ClusterRead(id, kind), Some(c)) => clusters::read(ctx, c, &id, kind),
        (Route::ClusterWrite(id, kind), Some(c)) => cluster_ops::write(ctx, c, &id, kind),
        (Route::NodeList, Some(c)) => nodes::list(ctx, c),
        (Route::NodeCreate, Some(c)) => nodes::create(ctx, c),
        (Route::NodeGet(n), Some(c)) => nodes::get(ctx, c, &n),
        (Route::NodePut(n), Some(c)) => nodes::put(ctx, c, &n),
        (Route::NodeDelete(n), Some(c)) => nodes::delete(ctx, c, &n),
        (Route::NodeProperties, Some(c)) => nodes::properties(ctx, c),
        _ => reply::text(500, "internal routing error"),
    }
}
