//! Replication's requests (the local Coopr server's status polls and state capture, the peers'
//! batch endpoint, the restart hook) go through the router's one upstream layer: the pool,
//! TLS and the local servers' round robin and health of the runtime in force, so a reload
//! (new TLS material, other servers) applies to replication too. Bodies are small and buffered.

use crate::body::ProxyBody;
use crate::runtime::Runtime;
use crate::upstream::Reply;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request};
use std::sync::Arc;
use std::time::Duration;

/// The most of a response body replication reads (a captured cluster state is far smaller).
const MAX_BODY: usize = 16 * 1024 * 1024;

#[derive(Clone)]
pub struct Http {
    runtime: Arc<ArcSwap<Runtime>>,
}

impl Http {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        Http { runtime }
    }

    /// Sends one request and reads the whole answer, within the response timeout (at least 1 s).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        self.exchange(method, url, headers, body, false).await
    }

    /// `GET` from a local Coopr server, with the service credential (`coopr.token_file`).
    pub async fn get_local(&self, url: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
        self.exchange(Method::GET, url, headers, Bytes::new(), true)
            .await
    }

    /// One exchange through the runtime's upstream; `to_coopr` adds the service credential.
    async fn exchange(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
        to_coopr: bool,
    ) -> Result<Reply, String> {
        let rt = self.runtime.load_full();
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = if body.is_empty() {
            ProxyBody::Empty
        } else {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            ProxyBody::full(body)
        };
        let mut req = req.body(body).map_err(|e| e.to_string())?;
        if to_coopr {
            rt.authorize(req.headers_mut());
        }
        let timeout = rt
            .config
            .raw
            .timeouts
            .response()
            .max(Duration::from_secs(1));
        rt.upstream.fetch(req, timeout, MAX_BODY).await
    }

    /// The catalog's home DC in the runtime in force (`catalog.home`).
    pub fn catalog_home(&self) -> Option<String> {
        self.runtime.load().config.raw.catalog.home.clone()
    }

    /// Whether the peer port runs mutual TLS (`[tls.peer]`) in the runtime in force.
    pub fn peer_tls(&self) -> bool {
        self.runtime.load().config.raw.tls.peer.is_some()
    }

    /// `replication.sweep_ms` in the runtime in force (hot).
    pub fn sweep_ms(&self) -> u64 {
        self.runtime.load().config.raw.replication.sweep_ms
    }

    /// The external API base URL (no trailing `/`) of this DC's standby server for home DC
    /// index `home`, if one is configured.
    pub fn standby_base(&self, home: usize) -> Option<String> {
        let rt = self.runtime.load();
        let url = rt.config.standby.get(home)?.as_ref()?;
        Some(url.to_string().trim_end_matches('/').to_string())
    }

    /// The external API base URL (no trailing `/`) of the local Coopr server to ask next:
    /// round robin over the servers that pass their health checks, as the proxy picks them.
    pub fn local_base(&self) -> Option<String> {
        let rt = self.runtime.load();
        let i = rt.backends.pick(&[])?;
        let b = rt.backends.get(i)?;
        Some(b.url.to_string().trim_end_matches('/').to_string())
    }
}
