//! Misplaced ids: clusters this DC's Coopr created outside this DC's home shards (its id
//! settings or its stored counter are wrong). Each one is logged at ERROR with the fix, counted
//! (`coopr_router_misplaced_ids_total`), handed to the pinner (which pins it to this DC, in etcd
//! or in the static snapshot) and kept for `/ready` until an operator clears it.

use crate::ids::ClusterId;
use crate::routing::RoutingTable;
use crate::routing::pins::next_counter;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio::sync::mpsc;

/// One misplaced id, as `/ready` and `/admin/misplaced` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    pub id: String,
    /// The shard the id falls in by its number.
    pub shard: u32,
    /// That shard's home DC, if any.
    pub home: Option<String>,
    /// The DC the id was already pinned to (another cluster with the same id lives there).
    pub pinned_to: Option<String>,
    /// The value to store in this DC's Coopr id counter (ZooKeeper `/ids/clusters`).
    pub counter: u64,
    /// This DC's `server.ids.start.num` and `server.ids.increment.by`.
    pub start: u64,
    pub increment: u64,
}

/// What the pinner is asked to do: pin `id` to `dc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest {
    pub id: ClusterId,
    pub dc: String,
}

/// The misplaced ids seen since the last clear, and the pinner's queue.
pub struct Misplaced {
    found: Mutex<BTreeMap<ClusterId, Found>>,
    pinner: mpsc::UnboundedSender<PinRequest>,
}

impl Misplaced {
    /// A new set and the pinner's end of the queue.
    pub fn new() -> (Misplaced, mpsc::UnboundedReceiver<PinRequest>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Misplaced {
                found: Mutex::new(BTreeMap::new()),
                pinner: tx,
            },
            rx,
        )
    }

    /// Checks a cluster id this DC's Coopr just created; reports it if misplaced. Returns
    /// whether it was.
    pub fn check(&self, table: &RoutingTable, id: ClusterId) -> bool {
        if !table.misplaced(id) {
            return false;
        }
        let local = table.local;
        let dc = table.dc_name(local).to_string();
        let (start, increment) = table
            .dcs
            .get(local)
            .map_or((1, 1), |d| (d.id_start, d.id_increment));
        let shard = table.id_shard(id);
        let home = table
            .shard(shard)
            .and_then(|s| s.home)
            .map(|h| table.dc_name(h).to_string());
        let pinned_to = table.pin_of(id).map(|p| table.dc_name(p.dc).to_string());
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        let highest = found
            .keys()
            .next_back()
            .map_or(0, |k| k.get())
            .max(id.get());
        let counter = next_counter(highest, start, increment);
        tracing::error!(
            cluster = %id,
            shard,
            home = home.as_deref().unwrap_or("none"),
            pinned_to = pinned_to.as_deref().unwrap_or("none"),
            dc = %dc,
            fix = %format!(
                "set server.ids.start.num = {start} and server.ids.increment.by = {increment} in {dc}'s Coopr, \
                 stop its servers, set its cluster id counter (ZooKeeper {{server.zookeeper.namespace}}/ids/clusters, \
                 an 8-byte big-endian long) to {counter}, start them, \
                 then clear this with POST /admin/misplaced/clear"
            ),
            "Coopr created a cluster outside this DC's home shards"
        );
        crate::metrics::misplaced_id();
        let pin = pinned_to.is_none();
        found.insert(
            id,
            Found {
                id: id.to_string(),
                shard,
                home,
                pinned_to,
                counter,
                start,
                increment,
            },
        );
        drop(found);
        // Pinned elsewhere means another cluster has this id there: no pin can fix that.
        if pin {
            let _ = self.pinner.send(PinRequest { id, dc });
        }
        true
    }

    /// The misplaced ids since the last clear, by id.
    pub fn pending(&self) -> Vec<Found> {
        self.found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Forgets every misplaced id (the operator fixed Coopr's settings); returns how many.
    pub fn clear(&self) -> usize {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        let n = found.len();
        found.clear();
        n
    }
}
