//! The status view of one router: the self-contained HTML page (`GET /` and `/admin/status` on
//! the admin port, `page.html`), the JSON document it and `coopr-router status` read
//! (`GET /admin/status.json`: the routes view plus DC health, replication queues and the last
//! ownership changes), and the terminal rendering of that document.
//!
//! Module map: `changes` (the last ownership changes: pure diff, ring, follower task), `client`
//! (`coopr-router status` reading an admin port), `term` (the document as terminal text, pure).

pub mod changes;
pub mod client;
pub mod term;

use crate::replication::Replication;
use crate::routing::RoutingTable;
use crate::runtime::Runtime;
use changes::ChangeLog;
use serde_json::{Value, json};

/// The status page: no external assets, inline CSS and JS.
pub const PAGE: &str = include_str!("page.html");

/// `GET /admin/status.json`: `routes` (the `/admin/routes` view) with, per DC, `local` and
/// `up` (a peer: its router answers the health checks; this DC: a local Coopr server is up),
/// `replication` (`enabled`, and per peer the records queued and the age of the oldest), and
/// `changes` (newest first). It shows only the router's own state: no tenant, user or cluster.
pub async fn document(
    mut routes: Value,
    table: &RoutingTable,
    rt: &Runtime,
    replication: Option<&Replication>,
    log: &ChangeLog,
) -> Value {
    if let Some(dcs) = routes.get_mut("dcs").and_then(Value::as_array_mut) {
        for (i, d) in dcs.iter_mut().enumerate() {
            let local = i == table.local;
            let up = if local {
                rt.backends.any_up()
            } else {
                rt.peers.is_up(i)
            };
            d["local"] = json!(local);
            d["up"] = json!(up);
        }
    }
    routes["replication"] = match replication {
        Some(r) => json!({"enabled": true, "peers": r.peer_queues().await}),
        None => json!({"enabled": false, "peers": []}),
    };
    routes["changes"] = json!(log.newest_first());
    routes
}
