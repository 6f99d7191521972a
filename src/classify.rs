//! Pure classification of a Coopr request (the built-in `coopr` rule set, docs/coopr-api.md §8):
//! method + path (+ query) and, for a few routes, a small JSON body -> [`Classification`].
//!
//! Two steps, so the proxy reads a body only when a rule needs it: [`classify_head`] answers at
//! once or asks for the body with a [`BodyRule`]; [`classify_body`] finishes the job.
//! Paths are matched on percent-decoded segments with empty segments dropped (as Coopr's
//! netty-http router does), so `/v2/%63lusters//42/` cannot slip past the rules; `.` and `..`
//! segments, and segments that decode to a `/`, are refused.

use crate::ids::{ClusterId, IdError};
use http::Method;
use percent_encoding::percent_decode;
use std::borrow::Cow;

/// What a request does, as far as routing cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Reads a cluster: answered in this DC when it can be.
    Read,
    /// Changes a cluster (or creates one): goes to the owner DC.
    Write,
    /// Names no cluster: the local Coopr server answers.
    Local,
    /// Changes the catalog every DC must share (tenants, catalog entities, plugin types and
    /// resources, import): applied first at the catalog's home DC, then delivered to the others.
    Global,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Local => "local",
            Class::Global => "global",
        }
    }
}

/// The route family, for routing special cases, logs and metrics labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// GET/HEAD `/v2/clusters/{id}` and below.
    ClusterRead,
    /// POST/PUT/DELETE `/v2/clusters/{id}` and below.
    ClusterWrite,
    /// POST `/v2/clusters`.
    Create,
    /// GET `/v2/clusters`.
    List,
    /// POST `/v2/nodes`, PUT `/v2/nodes/{id}` (cluster id in the body).
    NodeWrite,
    /// POST `/v2/getNodeProperties` (cluster id in the body).
    NodeProperties,
    /// GET/HEAD/DELETE `/v2/nodes/{id}`: the node's cluster is looked up (replicated
    /// details, else the local server) and the request routed by it.
    NodeById,
    /// GET `/v2/metrics/nodes/usage?cluster=`.
    Usage,
    /// POST `/v2/tasks/finish` (cluster id from the task id, for logs only).
    TaskFinish,
    /// Any other route of Coopr's internal (provisioner) API.
    Internal,
    /// A write to tenants, catalog entities, plugin types or resources, or `/v2/import`.
    Catalog,
    /// Everything else: catalog reads, profile, `/status`, unknown paths.
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ClusterRead => "cluster_read",
            Kind::ClusterWrite => "cluster_write",
            Kind::Create => "create",
            Kind::List => "list",
            Kind::NodeWrite => "node_write",
            Kind::NodeProperties => "node_properties",
            Kind::NodeById => "node_by_id",
            Kind::Usage => "usage",
            Kind::TaskFinish => "task_finish",
            Kind::Internal => "internal",
            Kind::Catalog => "catalog",
            Kind::Other => "other",
        }
    }
}

/// Which of a Coopr server's two APIs serves the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `server.port`: users, UI, CLI.
    External,
    /// `server.tasks.port`: provisioners.
    Tasks,
}

/// The result of classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    pub class: Class,
    pub kind: Kind,
    pub cluster: Option<ClusterId>,
    pub api: Api,
}

impl Classification {
    const fn new(class: Class, kind: Kind, cluster: Option<ClusterId>, api: Api) -> Self {
        Classification {
            class,
            kind,
            cluster,
            api,
        }
    }
    const fn local(kind: Kind, api: Api) -> Self {
        Classification::new(Class::Local, kind, None, api)
    }
}

/// The outcome of looking at the request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    Done(Classification),
    /// The cluster id is in the body; read it (up to the inspection limit) and call
    /// [`classify_body`].
    NeedBody(BodyRule),
}

/// How to find the cluster id in a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// JSON field `clusterId` decides the route; the body must fit the inspection limit.
    ClusterIdField { class: Class, kind: Kind },
    /// JSON field `taskId` names the cluster for logs only; a body over the limit, or one that
    /// does not parse, is passed on untouched.
    TaskIdField,
}

impl BodyRule {
    /// Whether a body over the inspection limit must be refused (413).
    pub fn must_fit(self) -> bool {
        matches!(self, BodyRule::ClusterIdField { .. })
    }
    /// The classification to use when the body cannot be inspected but need not be.
    pub fn fallback(self) -> Classification {
        match self {
            BodyRule::ClusterIdField { class, kind } => {
                Classification::new(class, kind, None, Api::External)
            }
            BodyRule::TaskIdField => Classification::local(Kind::TaskFinish, Api::Tasks),
        }
    }
}

/// Why a request cannot be classified. Each is a client error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    #[error("{0}")]
    BadId(#[from] IdError),
    #[error("path segment {0:?} is not allowed")]
    BadPath(String),
    #[error("the body must be a JSON object: {0}")]
    BadBody(String),
}

/// Most path segments looked at; deeper paths only matter by their first ones.
const MAX_SEGMENTS: usize = 8;

/// Classifies by method, path and query.
pub fn classify_head(
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Result<Head, ClassifyError> {
    let mut buf: [Cow<'_, str>; MAX_SEGMENTS] = Default::default();
    let mut n = 0;
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let seg = decode_segment(raw)?;
        if n < MAX_SEGMENTS {
            buf[n] = seg;
        }
        n += 1;
    }
    let s = |i: usize| -> &str { if i < n.min(MAX_SEGMENTS) { &buf[i] } else { "" } };
    let m = method;
    use Class::*;
    use Head::Done;
    let ext = Api::External;
    if s(0) != "v2" {
        return Ok(Done(Classification::local(Kind::Other, ext)));
    }
    let read_like = m == Method::GET || m == Method::HEAD;
    let write_like = m == Method::POST || m == Method::PUT || m == Method::DELETE;
    let head = match (s(1), n) {
        ("clusters", 2) if read_like => Done(Classification::new(Read, Kind::List, None, ext)),
        ("clusters", 2) if m == Method::POST => {
            Done(Classification::new(Write, Kind::Create, None, ext))
        }
        ("clusters", k) if k >= 3 && (read_like || write_like) => {
            let id = ClusterId::parse(s(2))?;
            let (class, kind) = if read_like {
                (Read, Kind::ClusterRead)
            } else {
                (Write, Kind::ClusterWrite)
            };
            Done(Classification::new(class, kind, Some(id), ext))
        }
        ("nodes", 2) if m == Method::POST => NeedBody(BodyRule::ClusterIdField {
            class: Write,
            kind: Kind::NodeWrite,
        }),
        ("nodes", 3) if m == Method::PUT => NeedBody(BodyRule::ClusterIdField {
            class: Write,
            kind: Kind::NodeWrite,
        }),
        // Coopr's NodeHandler deletes only nodes its own store holds, and answers 204 either
        // way: the request must reach the DC that holds the node's cluster.
        ("nodes", 3) if read_like => Done(Classification::new(Read, Kind::NodeById, None, ext)),
        ("nodes", 3) if m == Method::DELETE => {
            Done(Classification::new(Write, Kind::NodeById, None, ext))
        }
        ("getNodeProperties", 2) if m == Method::POST => NeedBody(BodyRule::ClusterIdField {
            class: Read,
            kind: Kind::NodeProperties,
        }),
        ("metrics", 4) if read_like && s(2) == "nodes" && s(3) == "usage" => {
            match query_param(query, "cluster")? {
                Some(v) => Done(Classification::new(
                    Read,
                    Kind::Usage,
                    Some(ClusterId::parse(&v)?),
                    ext,
                )),
                None => Done(Classification::local(Kind::Usage, ext)),
            }
        }
        ("tasks", 3) if m == Method::POST && s(2) == "finish" => NeedBody(BodyRule::TaskIdField),
        ("tasks", _) => Done(Classification::local(Kind::Internal, Api::Tasks)),
        ("provisioners", k) if k >= 3 && !read_like => {
            Done(Classification::local(Kind::Internal, Api::Tasks))
        }
        ("plugins", 4) if m == Method::PUT => {
            Done(Classification::local(Kind::Internal, Api::Tasks))
        }
        ("tenants", k)
            if k >= 8 && read_like && (s(3) == "automatortypes" || s(3) == "providertypes") =>
        {
            Done(Classification::local(Kind::Internal, Api::Tasks))
        }
        // The shared catalog (SuperadminHandler, AdminHandler, PluginHandler): its writes are
        // global; its reads stay local.
        (family, _) if write_like && is_catalog(family) => {
            Done(Classification::new(Global, Kind::Catalog, None, ext))
        }
        ("import", 2) if m == Method::POST => {
            Done(Classification::new(Global, Kind::Catalog, None, ext))
        }
        _ => Done(Classification::local(Kind::Other, ext)),
    };
    Ok(head)
}

use Head::NeedBody;

/// The path families under `/v2` whose writes change the shared catalog: tenants
/// (`SuperadminHandler`), the per-tenant catalog entities (`AdminHandler`), plugin types and
/// resources (`PluginHandler`, `SuperadminHandler`; a provisioner's own plugin-type `PUT` is the
/// internal API and matched before).
pub fn is_catalog(family: &str) -> bool {
    matches!(
        family,
        "tenants"
            | "providers"
            | "hardwaretypes"
            | "imagetypes"
            | "services"
            | "clustertemplates"
            | "partialtemplates"
            | "plugins"
    )
}

/// Finishes classification from a body (the whole body, at most the inspection limit).
pub fn classify_body(rule: BodyRule, body: &[u8]) -> Result<Classification, ClassifyError> {
    match rule {
        BodyRule::ClusterIdField { class, kind } => {
            let value: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| ClassifyError::BadBody(e.to_string()))?;
            let obj = value.as_object().ok_or_else(|| {
                ClassifyError::BadBody("found a JSON value that is not an object".into())
            })?;
            let cluster = match obj.get("clusterId") {
                // Without a cluster id Coopr itself answers 400; let the local server say so.
                None | Some(serde_json::Value::Null) => return Ok(rule.fallback()),
                Some(serde_json::Value::String(s)) => ClusterId::parse(s)?,
                Some(serde_json::Value::Number(n)) => ClusterId::parse(&n.to_string())?,
                Some(other) => return Err(IdError::NotNumeric(other.to_string()).into()),
            };
            Ok(Classification::new(
                class,
                kind,
                Some(cluster),
                Api::External,
            ))
        }
        BodyRule::TaskIdField => {
            #[derive(serde::Deserialize)]
            struct Finish {
                #[serde(rename = "taskId")]
                task_id: Option<String>,
            }
            let cluster = serde_json::from_slice::<Finish>(body)
                .ok()
                .and_then(|f| f.task_id)
                .and_then(|t| ClusterId::from_task_or_job(&t).ok());
            Ok(Classification::new(
                Class::Local,
                Kind::TaskFinish,
                cluster,
                Api::Tasks,
            ))
        }
    }
}

/// Percent-decodes one path segment, refusing dot segments and encoded slashes.
fn decode_segment(raw: &str) -> Result<Cow<'_, str>, ClassifyError> {
    // One pass over the bytes (not a memchr per question): whether there is anything to
    // decode, and a backslash.
    let (mut escaped, mut backslash) = (false, false);
    for &b in raw.as_bytes() {
        escaped |= b == b'%';
        backslash |= b == b'\\';
    }
    let seg: Cow<'_, str> = if escaped {
        let bytes: Cow<'_, [u8]> = percent_decode(raw.as_bytes()).into();
        match String::from_utf8(bytes.into_owned()) {
            Ok(s) => Cow::Owned(s),
            Err(_) => return Err(ClassifyError::BadPath(raw.to_string())),
        }
    } else {
        Cow::Borrowed(raw)
    };
    // `raw` has no '/' (the path was split on them); a decoded segment may have one.
    let separator = if escaped {
        seg.contains('/') || seg.contains('\\')
    } else {
        backslash
    };
    if seg == "." || seg == ".." || separator {
        return Err(ClassifyError::BadPath(raw.to_string()));
    }
    Ok(seg)
}

/// The first value of a query parameter, percent-decoded (`+` is a space).
fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, ClassifyError> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // Coopr decodes keys too: `%63luster=42` names cluster 42.
        let k = percent_decode(k.replace('+', " ").as_bytes())
            .decode_utf8_lossy()
            .into_owned();
        if k == name {
            let v = v.replace('+', " ");
            let decoded = percent_decode(v.as_bytes())
                .decode_utf8()
                .map_err(|_| ClassifyError::BadPath(pair.to_string()))?;
            return Ok(Some(decoded.into_owned()));
        }
    }
    Ok(None)
}
