//! The pure routing decision: a classification and a snapshot in, where the request goes out.
//! No I/O and no clock, so every rule is tested by table (see tests/routing_decide.rs).

use super::RoutingTable;
use crate::classify::{Api, Class, Classification, Kind};

/// Where a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client port: clients and the load balancer.
    Client,
    /// The peer port: another DC's router. Never forwarded again.
    Peer,
    /// The provisioner port: this DC's provisioners speaking Coopr's internal API. Always
    /// served by the local servers' tasks API; never routed by ownership (`decide` treats it
    /// as a client).
    Provisioner,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// One of this DC's Coopr servers, on the given API.
    Local(Api),
    /// Another DC's router, by DC index.
    Peer(usize),
    /// This DC's standby Coopr server for shards whose home is the given DC (its database is a
    /// replica of that DC's).
    Standby(usize),
}

/// A routing decision that sends the request somewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub target: Target,
    /// The cluster's shard, if the request names a cluster.
    pub shard: Option<u32>,
    /// The shard's epoch in this snapshot (0 when there is no shard).
    pub epoch: u64,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Go(Route),
    /// Arrived from a peer, but this DC does not own the shard (or cannot take the create):
    /// answer 421 with this router's view.
    Misdirected {
        shard: Option<u32>,
        owner: Option<usize>,
        epoch: u64,
    },
    /// A create, and no DC owns all of its home shards.
    NoCreateTarget,
    /// A write for a shard this DC owns, but the router cannot prove its map is fresh: refuse
    /// it (503) rather than risk a write after the shard moved.
    Fenced {
        shard: Option<u32>,
    },
    /// A shard this DC adopted from its home DC (after a failover), with no standby server for
    /// that home: writes cannot be served here; reads are answered from the replica store when
    /// it holds a copy (the proxy's job), else refused.
    Adopted {
        shard: u32,
        home: usize,
    },
}

/// Decides where a classified request goes under `table`. `fenced` says the router cannot prove
/// its map is fresh: writes it would apply locally are refused, creates go elsewhere.
pub fn decide(table: &RoutingTable, c: &Classification, origin: Origin, fenced: bool) -> Decision {
    let local = table.local;
    let here = |shard, epoch| {
        Decision::Go(Route {
            target: Target::Local(c.api),
            shard,
            epoch,
        })
    };
    match (c.class, c.cluster) {
        (Class::Local, cluster) => here(cluster.map(|id| table.shard_of(id)), 0),
        (Class::Read | Class::Write, Some(id)) => {
            let shard = table.shard_of(id);
            let Some(entry) = table.shard(shard) else {
                return Decision::Misdirected {
                    shard: Some(shard),
                    owner: None,
                    epoch: 0,
                };
            };
            if entry.owner == local {
                if fenced && c.class == Class::Write {
                    return Decision::Fenced { shard: Some(shard) };
                }
                // An adopted shard: its clusters live in the home DC's database, not ours.
                if let Some(home) = entry.home.filter(|&h| h != local) {
                    // A standby server holds the home DC's (replicated) database and takes
                    // the shard's writes, so its reads go there too: read-your-writes.
                    return match table.has_standby(home) {
                        true => Decision::Go(Route {
                            target: Target::Standby(home),
                            shard: Some(shard),
                            epoch: entry.epoch,
                        }),
                        false => Decision::Adopted { shard, home },
                    };
                }
                here(Some(shard), entry.epoch)
            } else if origin == Origin::Peer {
                Decision::Misdirected {
                    shard: Some(shard),
                    owner: Some(entry.owner),
                    epoch: entry.epoch,
                }
            } else {
                Decision::Go(Route {
                    target: Target::Peer(entry.owner),
                    shard: Some(shard),
                    epoch: entry.epoch,
                })
            }
        }
        (Class::Write, None) if c.kind == Kind::Create => {
            if table.owns_all_home(local) && !fenced {
                return here(None, 0);
            }
            if origin == Origin::Peer {
                return Decision::Misdirected {
                    shard: None,
                    owner: None,
                    epoch: 0,
                };
            }
            // The first DC, in name order, whose Coopr server creates ids only in shards it owns.
            match (0..table.dcs.len()).find(|&dc| dc != local && table.owns_all_home(dc)) {
                Some(dc) => Decision::Go(Route {
                    target: Target::Peer(dc),
                    shard: None,
                    epoch: 0,
                }),
                None if fenced => Decision::Fenced { shard: None },
                None => Decision::NoCreateTarget,
            }
        }
        // The list, and writes whose body named no cluster (Coopr answers those with 400).
        (Class::Read | Class::Write, None) => here(None, 0),
        // A catalog write with no catalog home (see [`decide_global`]): local, as before.
        (Class::Global, _) => here(None, 0),
    }
}

/// Where a global (catalog) write goes. `home` is the catalog's home DC (`catalog.home`;
/// `None`: no shared catalog, the write is local); `delivery` says the request is the home DC
/// router's delivery of a write it already applied (`x-coopr-router-catalog`, trusted on the
/// peer port only). The home DC applies first: a client's write elsewhere goes to it, and a
/// peer's write that is not a delivery reaches only the home (else 421 naming it). Whether the
/// home then delivers it to the others is `fans_out`.
pub fn decide_global(
    table: &RoutingTable,
    home: Option<usize>,
    origin: Origin,
    delivery: bool,
) -> Decision {
    let here = Decision::Go(Route {
        target: Target::Local(Api::External),
        shard: None,
        epoch: 0,
    });
    match home {
        None => here,
        Some(_) if delivery && origin == Origin::Peer => here,
        Some(h) if h == table.local => here,
        Some(h) if origin == Origin::Peer => Decision::Misdirected {
            shard: None,
            owner: Some(h),
            epoch: 0,
        },
        Some(h) => Decision::Go(Route {
            target: Target::Peer(h),
            shard: None,
            epoch: 0,
        }),
    }
}

/// Whether a global write this router applies locally is then delivered to the other DCs: it
/// is the catalog's home and the write is not itself a delivery.
pub fn fans_out(table: &RoutingTable, home: Option<usize>, origin: Origin, delivery: bool) -> bool {
    home == Some(table.local) && !(delivery && origin == Origin::Peer)
}

/// Shared-database mode (every DC serves every cluster): the targets to try, in order. Local
/// while any local Coopr server is healthy, then the healthy DCs after this one (name order,
/// wrapping). With nothing healthy, local is tried anyway: a refused connection still moves on.
/// A request from a peer is only ever served locally.
pub fn shared_candidates(
    table: &RoutingTable,
    api: Api,
    origin: Origin,
    local_up: bool,
    peer_up: impl Fn(usize) -> bool,
) -> Vec<Target> {
    let local = Target::Local(api);
    if origin == Origin::Peer {
        return vec![local];
    }
    let n = table.dcs.len();
    let peers = (1..n)
        .map(|k| (table.local + k) % n)
        .filter(|&dc| peer_up(dc))
        .map(Target::Peer);
    let mut out: Vec<Target> = Vec::with_capacity(n);
    if local_up {
        out.push(local);
        out.extend(peers);
    } else {
        out.extend(peers);
        out.push(local);
    }
    out
}
