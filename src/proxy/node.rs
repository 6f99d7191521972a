//! Nodes follow their cluster: `GET`/`DELETE /v2/nodes/{id}` name a node, not a cluster, and
//! Coopr's NodeHandler answers only for nodes its own store holds (a delete of another DC's
//! node deletes nothing and still answers 204). The node's cluster is found in the replicated
//! cluster details, else by asking a local server (as the client: its headers go along); the
//! request is then routed by that cluster. An unknown node gets the local server's own answer.

use super::ctx::Ctx;
use crate::body::ProxyBody;
use crate::ids::ClusterId;
use crate::upstream::upstream_request;
use http::{Method, header};

/// The most of a node's JSON read to find its cluster.
const MAX_NODE_BYTES: usize = 1024 * 1024;

/// The cluster of the node a `/v2/nodes/{id}` request names, if it can be found.
pub(super) async fn cluster_of_node(cx: &Ctx<'_>) -> Option<ClusterId> {
    let raw = cx.parts.uri.path().rsplit('/').find(|s| !s.is_empty())?;
    let node = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    if let Some(r) = &cx.proxy.replication
        && let Some(c) = r.cluster_of_node(&node).await
    {
        return Some(c);
    }
    let rt = cx.rt;
    let backend = rt.backends.get(rt.backends.pick(&[])?)?;
    let mut req = upstream_request(cx.parts, &backend.url, cx.remote, ProxyBody::Empty);
    *req.method_mut() = Method::GET;
    req.headers_mut().remove(header::CONTENT_LENGTH);
    req.headers_mut().remove(header::TRANSFER_ENCODING);
    let reply = rt
        .upstream
        .fetch(req, rt.config.raw.timeouts.response(), MAX_NODE_BYTES)
        .await
        .ok()?;
    if !reply.ok() {
        return None;
    }
    ClusterId::parse(reply.json()?.get("clusterId")?.as_str()?).ok()
}
