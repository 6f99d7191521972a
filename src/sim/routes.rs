//! Path routing, as netty-http does it: only the path matters, empty segments and a trailing `/`
//! are ignored, an unknown path is 404 and a wrong method 405 — both before any header check.
//! Each route knows whether it needs the `Coopr-*` headers, and which of Coopr's two servers
//! serves it (`coopr-server/.../http/guice/HttpModule.java`: external handlers on `server.port`,
//! `TaskHandler` and `ProvisionerHandler` on `server.tasks.port`). A route asked of the wrong
//! server gets what that server's netty-http router gives: 405 if the path exists there under
//! another method, else 404 ([`resolve_on`]).

use http::Method;

use super::Port;

/// `start`, `stop` or `restart` on services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SvcAction {
    Start,
    Stop,
    Restart,
}

impl SvcAction {
    fn parse(text: &str) -> Option<SvcAction> {
        match text {
            "start" => Some(SvcAction::Start),
            "stop" => Some(SvcAction::Stop),
            "restart" => Some(SvcAction::Restart),
            _ => None,
        }
    }
}

/// A read under `/v2/clusters/{id}`.
#[derive(Debug, Clone)]
pub(crate) enum ReadKind {
    Details,
    Status,
    Config,
    Services,
    Plans,
    Plan(String),
}

/// A write under `/v2/clusters/{id}`.
#[derive(Debug, Clone)]
pub(crate) enum WriteKind {
    Delete,
    Extend,
    Abort,
    Pause,
    Resume,
    Configure,
    AddServices,
    ServicesAll(SvcAction),
    ServiceOne(String, SvcAction),
    Sync,
}

/// A plugin resource: `kind` is `automatortypes` or `providertypes`.
#[derive(Debug, Clone)]
pub(crate) struct ResKey {
    pub kind: String,
    pub name: String,
    pub res_type: String,
    pub res_name: String,
}

/// Every route the simulator serves.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    Status,
    SimLog,
    SimBlob,
    /// `POST /sim/expire/{id}`: what Coopr's lease janitor does (`janitor.rs`).
    SimExpire(String),
    TenantList,
    TenantCreate,
    TenantGet(String),
    TenantPut(String),
    TenantDelete(String),
    CatalogList(String),
    CatalogCreate(String),
    CatalogGet(String, String),
    CatalogPut(String, String),
    CatalogDelete(String, String),
    ClusterList,
    ClusterCreate,
    ClusterRead(String, ReadKind),
    ClusterWrite(String, WriteKind),
    NodeList,
    NodeCreate,
    NodeGet(String),
    NodePut(String),
    NodeDelete(String),
    NodeProperties,
    TaskTake,
    TaskFinish,
    ProvisionerList,
    ProvisionerGet(String),
    ProvisionerPut(String),
    ProvisionerHeartbeat(String),
    ProvisionerDelete(String),
    PluginUpload(ResKey),
    PluginDownload(String, ResKey, String),
    /// `GET /v2/plugins/{providertypes|automatortypes}` (`AdminHandler`).
    PluginTypeList(String),
    /// `GET /v2/plugins/{kind}/{name}` (`AdminHandler`).
    PluginTypeGet(String, String),
    /// `PUT /v2/plugins/{kind}/{name}` (`ProvisionerHandler`, tasks port).
    PluginTypePut(String, String),
}

impl Route {
    /// Whether the route checks the `Coopr-*` headers (external server routes).
    pub(crate) fn needs_auth(&self) -> bool {
        !matches!(
            self,
            Route::Status
                | Route::SimLog
                | Route::SimBlob
                | Route::SimExpire(_)
                | Route::TaskTake
                | Route::TaskFinish
                | Route::ProvisionerPut(_)
                | Route::ProvisionerHeartbeat(_)
                | Route::ProvisionerDelete(_)
                | Route::PluginDownload(..)
                | Route::PluginTypePut(..)
        )
    }

    /// Simulator-only routes (`/sim/log`, `/sim/expire/{id}`, `/v2/sim/blob`): served on every
    /// port, never behind the security token.
    pub(crate) fn is_sim_only(&self) -> bool {
        matches!(self, Route::SimLog | Route::SimBlob | Route::SimExpire(_))
    }

    /// Which Coopr server has this route: `TaskHandler` and `ProvisionerHandler` are internal
    /// (`coopr-server/.../http/handler/{TaskHandler,ProvisionerHandler}.java`), the rest external.
    pub(crate) fn port(&self) -> Port {
        match self {
            Route::TaskTake
            | Route::TaskFinish
            | Route::ProvisionerPut(_)
            | Route::ProvisionerHeartbeat(_)
            | Route::ProvisionerDelete(_)
            | Route::PluginDownload(..)
            | Route::PluginTypePut(..) => Port::Internal,
            Route::SimLog | Route::SimBlob | Route::SimExpire(_) => Port::Both,
            _ => Port::External,
        }
    }

    fn served_on(&self, port: Port) -> bool {
        port == Port::Both || self.port() == Port::Both || self.port() == port
    }
}

/// [`resolve`] as the server behind `port` sees it.
pub(crate) fn resolve_on(port: Port, m: &Method, segs: &[&str]) -> Result<Route, u16> {
    if let Ok(route) = resolve(m, segs)
        && route.served_on(port)
    {
        return Ok(route);
    }
    let methods = [Method::GET, Method::POST, Method::PUT, Method::DELETE];
    let elsewhere = methods
        .iter()
        .any(|other| resolve(other, segs).is_ok_and(|r| r.served_on(port)));
    Err(if elsewhere { 405 } else { 404 })
}

/// The catalog entity types of `AdminHandler`.
pub(crate) const CATALOG_TYPES: [&str; 6] = [
    "providers",
    "hardwaretypes",
    "imagetypes",
    "services",
    "clustertemplates",
    "partialtemplates",
];

fn is_plugin_kind(kind: &str) -> bool {
    kind == "automatortypes" || kind == "providertypes"
}

/// Picks the route for the method among the ones this path allows; 405 if none.
macro_rules! pick {
    ($m:expr; $($meth:ident => $r:expr),+ $(,)?) => {
        $( if *$m == Method::$meth { Ok($r) } else )+ { Err(405) }
    };
}

/// Resolves a request to a route, or the status netty would give (404 or 405).
pub(crate) fn resolve(m: &Method, segs: &[&str]) -> Result<Route, u16> {
    match segs {
        ["status"] => pick!(m; GET => Route::Status),
        ["sim", "log"] => pick!(m; GET => Route::SimLog),
        ["sim", "expire", id] => pick!(m; POST => Route::SimExpire(id.to_string())),
        ["v2", rest @ ..] => v2(m, rest),
        _ => Err(404),
    }
}

fn v2(m: &Method, segs: &[&str]) -> Result<Route, u16> {
    let s = |x: &str| x.to_string();
    match segs {
        ["clusters", ..] => clusters(m, &segs[1..]),
        ["nodes"] => pick!(m; GET => Route::NodeList, POST => Route::NodeCreate),
        ["nodes", n] => pick!(m;
            GET => Route::NodeGet(s(n)), PUT => Route::NodePut(s(n)), DELETE => Route::NodeDelete(s(n))),
        ["getNodeProperties"] => pick!(m; POST => Route::NodeProperties),
        ["tasks", "take"] => pick!(m; POST => Route::TaskTake),
        ["tasks", "finish"] => pick!(m; POST => Route::TaskFinish),
        ["provisioners"] => pick!(m; GET => Route::ProvisionerList),
        ["provisioners", p] => pick!(m;
            GET => Route::ProvisionerGet(s(p)), PUT => Route::ProvisionerPut(s(p)),
            DELETE => Route::ProvisionerDelete(s(p))),
        ["provisioners", p, "heartbeat"] => pick!(m; POST => Route::ProvisionerHeartbeat(s(p))),
        ["tenants"] => pick!(m; GET => Route::TenantList, POST => Route::TenantCreate),
        ["tenants", n] => pick!(m;
            GET => Route::TenantGet(s(n)), PUT => Route::TenantPut(s(n)),
            DELETE => Route::TenantDelete(s(n))),
        ["tenants", t, kind, name, rt, rn, "versions", v] if is_plugin_kind(kind) => {
            let key = ResKey {
                kind: s(kind),
                name: s(name),
                res_type: s(rt),
                res_name: s(rn),
            };
            pick!(m; GET => Route::PluginDownload(s(t), key, s(v)))
        }
        ["plugins", kind] if is_plugin_kind(kind) => {
            pick!(m; GET => Route::PluginTypeList(s(kind)))
        }
        ["plugins", kind, name] if is_plugin_kind(kind) => pick!(m;
            GET => Route::PluginTypeGet(s(kind), s(name)),
            PUT => Route::PluginTypePut(s(kind), s(name))),
        ["plugins", kind, name, rt, rn] if is_plugin_kind(kind) => {
            let key = ResKey {
                kind: s(kind),
                name: s(name),
                res_type: s(rt),
                res_name: s(rn),
            };
            pick!(m; POST => Route::PluginUpload(key))
        }
        ["sim", "blob"] => pick!(m; GET => Route::SimBlob),
        [ty] if CATALOG_TYPES.contains(ty) => {
            pick!(m; GET => Route::CatalogList(s(ty)), POST => Route::CatalogCreate(s(ty)))
        }
        [ty, n] if CATALOG_TYPES.contains(ty) => pick!(m;
            GET => Route::CatalogGet(s(ty), s(n)), PUT => Route::CatalogPut(s(ty), s(n)),
            DELETE => Route::CatalogDelete(s(ty), s(n))),
        _ => Err(404),
    }
}

/// Routes under `/v2/clusters`.
fn clusters(m: &Method, segs: &[&str]) -> Result<Route, u16> {
    use ReadKind as R;
    use WriteKind as W;
    let read = |id: &str, k| Route::ClusterRead(id.to_string(), k);
    let write = |id: &str, k| Route::ClusterWrite(id.to_string(), k);
    match segs {
        [] => pick!(m; GET => Route::ClusterList, POST => Route::ClusterCreate),
        [id] => pick!(m; GET => read(id, R::Details), POST => write(id, W::Extend),
            DELETE => write(id, W::Delete)),
        [id, "status"] => pick!(m; GET => read(id, R::Status)),
        [id, "config"] => pick!(m; GET => read(id, R::Config), PUT => write(id, W::Configure)),
        [id, "services"] => {
            pick!(m; GET => read(id, R::Services), POST => write(id, W::AddServices))
        }
        [id, "plans"] => pick!(m; GET => read(id, R::Plans)),
        [id, "plans", p] => pick!(m; GET => read(id, R::Plan(p.to_string()))),
        [id, "abort"] => pick!(m; POST => write(id, W::Abort)),
        [id, "pause"] => pick!(m; POST => write(id, W::Pause)),
        [id, "resume"] => pick!(m; POST => write(id, W::Resume)),
        [id, "services", a] => match SvcAction::parse(a) {
            Some(a) => pick!(m; POST => write(id, W::ServicesAll(a))),
            None => Err(404),
        },
        [id, "services", svc, a] => match SvcAction::parse(a) {
            Some(a) => pick!(m; POST => write(id, W::ServiceOne(svc.to_string(), a))),
            None => Err(404),
        },
        [id, "clustertemplate", "sync"] => pick!(m; POST => write(id, W::Sync)),
        _ => Err(404),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table() {
        let get = Method::GET;
        assert!(matches!(resolve(&get, &["status"]), Ok(Route::Status)));
        assert!(matches!(resolve(&Method::POST, &["status"]), Err(405)));
        assert!(matches!(resolve(&get, &["v2", "nope"]), Err(404)));
        assert!(matches!(
            resolve(&get, &["v2", "clusters", "42", "status"]),
            Ok(Route::ClusterRead(_, ReadKind::Status))
        ));
        assert!(matches!(
            resolve(&Method::PUT, &["v2", "clusters"]),
            Err(405)
        ));
        assert!(matches!(
            resolve(
                &Method::POST,
                &["v2", "clusters", "1", "services", "hdfs", "stop"]
            ),
            Ok(Route::ClusterWrite(
                _,
                WriteKind::ServiceOne(_, SvcAction::Stop)
            ))
        ));
        assert!(matches!(
            resolve(&get, &["v2", "clustertemplates"]),
            Ok(Route::CatalogList(_))
        ));
    }
}
