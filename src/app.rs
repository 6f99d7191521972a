//! Wiring: builds every component of one router from a validated config and a set of bound
//! listeners, starts the client, peer and admin servers, and owns shutdown. The only module
//! that knows every component.

use crate::admin::{Admin, AdminParts};
use crate::config::{Config, OwnershipSource};
use crate::etcd::watch::Watcher;
use crate::ownership::{Freshness, state_file};
use crate::proxy::Proxy;
use crate::reload::Reloader;
use crate::routing::{Origin, Routes, RoutingTable};
use crate::runtime::Runtime;
use crate::server::{ServeOptions, Workers, serve};
use crate::shutdown::{Shutdown, ShutdownTrigger};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The listeners of a router, bound before it starts (tests bind port 0 first).
pub struct Listeners {
    pub client: TcpListener,
    pub peer: TcpListener,
    pub admin: TcpListener,
    /// Coopr's internal API for this DC's provisioners (`listen.provisioner`), if on.
    pub provisioner: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses of `cfg.listen`.
    pub async fn bind(cfg: &Config) -> std::io::Result<Listeners> {
        let l = &cfg.raw.listen;
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
        };
        Ok(Listeners {
            client: bind(l.client).await?,
            peer: bind(l.peer).await?,
            admin: bind(l.admin).await?,
            provisioner: match l.provisioner {
                Some(a) => Some(bind(a).await?),
                None => None,
            },
        })
    }
}

/// A running router.
pub struct RouterHandle {
    trigger: ShutdownTrigger,
    tasks: JoinSet<()>,
    pub client_addr: SocketAddr,
    pub peer_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The provisioner listener's address, when `listen.provisioner` is on.
    pub provisioner_addr: Option<SocketAddr>,
    pub routes: Routes,
    /// Applies config changes; with the static source it also holds the one `Publisher`.
    /// (With etcd, the watcher task owns the publisher.)
    pub reloader: Arc<Reloader>,
    pub freshness: Arc<Freshness>,
    /// Writes in flight to a Coopr server, per shard (what a planned handoff waits for).
    pub inflight: Arc<crate::inflight::InFlight>,
    shutdown_signal: Shutdown,
    replication: Option<crate::replication::Replication>,
}

impl RouterHandle {
    /// Stops accepting; in-flight requests get the configured grace period.
    pub fn shutdown(&self) {
        self.trigger.trigger();
    }

    /// Waits until every server has stopped (and the replication store is closed).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
        if let Some(r) = &self.replication {
            r.close().await;
        }
    }

    /// Resolves when the router begins to stop (a signal, or `POST /admin/drain`).
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + use<> {
        self.shutdown_signal.clone().wait()
    }
}

/// Sharded mode: the misplaced-create check and its pinner (etcd writes `pins/{id}`; the static
/// source publishes the pin in its snapshot).
fn misplaced_ids(
    config: &Arc<Config>,
    reloader: &Arc<Reloader>,
    tasks: &mut JoinSet<()>,
    shutdown: &Shutdown,
) -> Option<Arc<crate::ownership::Misplaced>> {
    if config.raw.ownership.mode != crate::config::OwnershipMode::Sharded {
        return None;
    }
    let (misplaced, mut rx) = crate::ownership::Misplaced::new();
    match config.raw.ownership.source {
        OwnershipSource::Etcd => {
            let settings = crate::etcd::Settings::from_config(&config.raw.ownership);
            tasks.spawn(crate::etcd::pins::pinner(settings, rx, shutdown.clone()));
        }
        OwnershipSource::Static => {
            let reloader = reloader.clone();
            let stop = shutdown.clone().wait();
            tasks.spawn(async move {
                tokio::pin!(stop);
                loop {
                    let req = tokio::select! {
                        _ = &mut stop => return,
                        req = rx.recv() => match req { Some(r) => r, None => return },
                    };
                    if reloader.pin_here(req.id, &req.dc) {
                        tracing::warn!(cluster = %req.id, dc = %req.dc, "pinned a misplaced cluster id in the static map until restart; add it to [[ownership.pins]]");
                    }
                }
            });
        }
    }
    Some(Arc::new(misplaced))
}

/// Starts a router on already-bound listeners, with no config file to reload.
pub fn start(config: Config, listeners: Listeners) -> std::io::Result<RouterHandle> {
    start_with_file(config, None, listeners)
}

/// Starts a router whose config came from `path`: SIGHUP, `POST /admin/reload` and changes to
/// the file reload it.
pub fn start_with_file(
    config: Config,
    path: Option<PathBuf>,
    listeners: Listeners,
) -> std::io::Result<RouterHandle> {
    let config = Arc::new(config);
    let (trigger, shutdown) = ShutdownTrigger::new();
    let mut tasks = JoinSet::new();
    let o = &config.raw.ownership;
    // This router among its DC's routers (etcd `members/`, handoff acknowledgements).
    let member = crate::ownership::keyspace::router_instance();
    let (routes, publisher, freshness) = match o.source {
        OwnershipSource::Static => {
            let (routes, publisher) = Routes::new(RoutingTable::from_config(&config));
            crate::metrics::map_published(0);
            (routes, Some(publisher), Arc::new(Freshness::always_fresh()))
        }
        OwnershipSource::Etcd => {
            let freshness = Arc::new(Freshness::live(
                std::time::Duration::from_millis(o.fence_after_ms),
                std::time::Duration::from_millis(config.raw.failover.fence_margin_ms),
                config.raw.failover.beat_window(),
            ));
            let path = state_path(&config);
            let (routes, publisher) = Routes::new(initial_table(&config, &path));
            let watcher = Watcher::new(config.clone(), publisher, freshness.clone(), Some(path));
            tasks.spawn(watcher.run(shutdown.clone()));
            let ttl = config.raw.failover.lease_ttl();
            let settings = crate::etcd::Settings::from_config(&config.raw.ownership);
            tasks.spawn(crate::etcd::liveness::run(
                settings,
                config.raw.dc.clone(),
                member.clone(),
                ttl,
                Some(freshness.clone()),
                shutdown.clone(),
            ));
            (routes, None, freshness)
        }
    };
    if let Some(reason) = crate::config::insecure_peer_port(&config.raw) {
        // Loud on every start: anyone who reaches this port can speak for any DC.
        tracing::warn!(
            peer = %config.raw.listen.peer,
            "INSECURE: {reason} (listen.insecure_plaintext_peer = true); configure [tls.peer] or bind listen.peer to loopback"
        );
    }
    let tls = crate::tls::Material::load(&config).map_err(std::io::Error::other)?;
    let runtime = Arc::new(ArcSwap::from_pointee(Runtime::new(
        config.clone(),
        Arc::new(tls),
    )));
    let inflight = crate::inflight::InFlight::new(config.raw.shard_count);
    let reloader = Arc::new(Reloader::new(path.clone(), runtime.clone(), publisher));
    if path.is_some() {
        tasks.spawn(reloader.clone().watch_file(shutdown.clone()));
        tasks.spawn(reloader.clone().on_sighup(shutdown.clone()));
    }
    let mut failback = None;
    if o.source == OwnershipSource::Etcd {
        let rt = runtime.clone();
        let peer_up: Arc<dyn Fn(usize) -> bool + Send + Sync> =
            Arc::new(move |dc| rt.load().peers.is_up(dc));
        tasks.spawn(crate::etcd::failover::run(
            config.clone(),
            routes.clone(),
            peer_up.clone(),
            shutdown.clone(),
        ));
        let rt = runtime.clone();
        tasks.spawn(crate::etcd::compact::run(
            crate::etcd::Settings::from_config(&config.raw.ownership),
            Arc::new(move || rt.load().config.raw.ownership.compact_every_ms),
            shutdown.clone(),
        ));
        let status = crate::etcd::failback::Status::new();
        tasks.spawn(crate::etcd::failback::run(
            config.clone(),
            routes.clone(),
            peer_up,
            status.clone(),
            shutdown.clone(),
        ));
        failback = Some(status);
    }
    let replication = if config.raw.replication.enabled {
        let r = crate::replication::Replication::start(
            &config,
            routes.clone(),
            shutdown.clone(),
            &mut tasks,
            runtime.clone(),
        )
        .map_err(|e| std::io::Error::other(format!("replication: {e}")))?;
        Some(r)
    } else {
        None
    };
    if let Some(home) = &config.raw.catalog.home
        && replication.is_none()
    {
        tracing::warn!(home = %home, "catalog.home is set but replication is off: catalog writes are applied at the home DC only and delivered to no other DC (set [replication] enabled = true)");
    }
    if o.source == OwnershipSource::Etcd {
        tasks.spawn(crate::etcd::handoff_driver::run(
            config.clone(),
            member.clone(),
            routes.clone(),
            inflight.clone(),
            replication.clone(),
            shutdown.clone(),
        ));
    }
    let misplaced = misplaced_ids(&config, &reloader, &mut tasks, &shutdown);
    let proxy = Proxy::new(
        routes.clone(),
        runtime.clone(),
        freshness.clone(),
        inflight.clone(),
    )
    .with_misplaced(misplaced.clone())
    .with_replication(
        replication
            .clone()
            .map(|r| Arc::new(r) as Arc<dyn crate::proxy::Replicas>),
    );
    let replication_handle = replication.clone();
    tasks.spawn(crate::health::run(runtime.clone(), shutdown.clone()));
    let addrs = (
        listeners.client.local_addr()?,
        listeners.peer.local_addr()?,
        listeners.admin.local_addr()?,
    );
    // The client, peer and provisioner connections are served on threads of their own; the
    // admin port, health checks, etcd and replication stay on this runtime.
    let workers = Workers::start(config.raw.listen.serving_threads(), "coopr-serve")?;
    let opts = |name, tls, workers| ServeOptions {
        workers,
        name,
        limits: config.raw.limits.clone(),
        request_head_timeout: config.raw.timeouts.request_head(),
        grace: config.raw.timeouts.shutdown_grace(),
        tls,
        park_after: config.raw.timeouts.idle_park(),
    };
    let provisioner_addr = match &listeners.provisioner {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let provisioner = listeners
        .provisioner
        .map(|l| (l, Origin::Provisioner, "provisioner"));
    for (listener, origin, name) in [
        (listeners.client, Origin::Client, "client"),
        (listeners.peer, Origin::Peer, "peer"),
    ]
    .into_iter()
    .chain(provisioner)
    {
        // One `Arc` per request (not a clone of every handle the proxy holds), and a small
        // handler for each connection to keep.
        let proxy = Arc::new(proxy.clone());
        let handler = move |mut req: http::Request<crate::body::ClientBody>, remote| {
            if origin == Origin::Peer {
                attribute_peer(&mut req);
            }
            // The handler's future is the proxy's own (no block around it to copy it into).
            proxy.clone().handle(req, origin, remote)
        };
        let tls = crate::runtime::tls_source(&runtime, origin);
        let opts = opts(name, tls, Some(workers.clone()));
        tasks.spawn(serve(listener, handler, opts, shutdown.clone()));
    }
    let admin = Admin::new(AdminParts {
        routes: routes.clone(),
        runtime,
        shutdown: shutdown.clone(),
        trigger: trigger.clone(),
        freshness: freshness.clone(),
        reloader: reloader.clone(),
        replication,
        misplaced,
        held: proxy.held(),
        failback,
    });
    let handler = move |req, _remote| {
        let admin = admin.clone();
        async move { admin.handle(req).await }
    };
    tasks.spawn(serve(
        listeners.admin,
        handler,
        opts("admin", None, None),
        shutdown.clone(),
    ));
    tracing::info!(
        dc = %config.dcs[config.local].name,
        client = %addrs.0, peer = %addrs.1, admin = %addrs.2, provisioner = ?provisioner_addr,
        shards = config.shards.len(),
        serving_threads = workers.len(),
        "router started"
    );
    Ok(RouterHandle {
        trigger,
        tasks,
        client_addr: addrs.0,
        peer_addr: addrs.1,
        admin_addr: addrs.2,
        provisioner_addr,
        routes,
        reloader,
        freshness,
        inflight,
        shutdown_signal: shutdown,
        replication: replication_handle,
    })
}

/// A peer-port request is attributed to the DC its client certificate names (mutual TLS):
/// whatever `x-coopr-router-hop` the sender claimed is replaced by that DC, so forwarded writes
/// and handoff traffic are logged as the certificate's DC. Without a certificate (a loopback
/// peer port, or the `listen.insecure_plaintext_peer` opt-out) the claim stands.
fn attribute_peer(req: &mut http::Request<crate::body::ClientBody>) {
    let Some(crate::tls::PeerDc(dc)) = req.extensions().get::<crate::tls::PeerDc>() else {
        return;
    };
    match http::HeaderValue::from_str(dc) {
        Ok(v) => {
            req.headers_mut().insert(crate::headers::HOP, v);
        }
        Err(_) => {
            req.headers_mut().remove(crate::headers::HOP);
        }
    }
}

/// Where the last-known-good map lives: `ownership.state_file`, or `{dc}.ownership.json` in the
/// working directory.
fn state_path(cfg: &Config) -> std::path::PathBuf {
    match &cfg.raw.ownership.state_file {
        Some(p) => p.into(),
        None => format!("{}.ownership.json", cfg.raw.dc).into(),
    }
}

/// The map to start with in etcd mode: the last-known-good one from disk if it is usable (the
/// router starts stale and fenced until etcd answers), else the config's static map (fenced).
fn initial_table(cfg: &Config, path: &std::path::Path) -> RoutingTable {
    match state_file::load(path) {
        Ok(Some(map)) => match map.build(cfg) {
            Ok(table) => {
                tracing::info!(path = %path.display(), revision = table.revision, "loaded the last-known-good map; stale until etcd answers");
                return table;
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "the saved map does not fit this config; ignoring it")
            }
        },
        Ok(None) => {
            tracing::info!(path = %path.display(), "no saved map; starting from the config's map, fenced until etcd answers")
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the saved map; ignoring it")
        }
    }
    RoutingTable::from_config(cfg)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Shuts `Shutdown` clones down together; re-exported for the demo.
pub fn shutdown_pair() -> (ShutdownTrigger, Shutdown) {
    ShutdownTrigger::new()
}
