//! Phase `clusters`: the merged `GET /v2/clusters` as the replica store grows (1k -> 100k
//! replicated clusters), the store's size, and its open time after a restart.
//!
//! In-process, no HTTP: one `replication::Store` in a temp dir (a disk, fsync on), filled with
//! dc1's finished records through `Store::apply` (batches of 1000) as dc3 would receive them.
//! After each fill the store is closed and opened again (open time, first list), and one
//! `/v2/nodes/{id}` lookup of the newest cluster's node is timed, by the scan it was before
//! (`Store::cluster_of_node_scan`) and by the node index (`Store::cluster_of_node`).
//! Tenants: `acme` holds 500 clusters at every size (10 users, 50 each); `big` holds half of
//! the rest; 100 other tenants share the other half. At each size the list the proxy builds is
//! timed for three callers (acme's admin: 500 items; acme's user u3: 50; big's admin: grows
//! with the store), each through two paths in the same run:
//! - `scan` (before): what the merge did before the list index: `Store::summaries` (every
//!   replicated cluster read and parsed), then `old_merge`, a copy of the merge as it was
//!   (visibility filter, a clone of each summary, a sort reading each key at every comparison);
//! - `index` (now): `Store::visible_summaries` (the caller's range of the index), then
//!   `replication::merge_list` (summaries moved, sort keys read once).
//!   Both merge the same 100 local items and serialise the answer as the proxy does
//!   (`Value::to_string`).

use super::common::*;
use coopr_router::replication::record::{Envelope, Finished, Outcome, Record};
use coopr_router::replication::{Caller, ListItem, Store, local_coopr_holds, merge_list};
use coopr_router::routing::{DcEntry, RoutingTable, ShardEntry};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const ACME: u64 = 500;

/// 12 shards over dc1..dc3 at home; this router is dc3.
pub fn table() -> RoutingTable {
    let dcs = (1..=3)
        .map(|i| DcEntry {
            name: format!("dc{i}"),
            peer_url: format!("http://127.0.0.1:{i}").parse().unwrap(),
            id_start: i,
            id_increment: 3,
        })
        .collect();
    let shards = (0..12usize)
        .map(|s| ShardEntry {
            owner: (s + 2) % 3,
            replicas: vec![],
            epoch: 0,
            home: None,
            handoff: None,
        })
        .collect();
    RoutingTable::new(0, 2, dcs, shards)
}

/// The `k`th replicated cluster (dc1's ids 1, 4, 7, ...): tenant, owner and a captured state
/// the size of a small real one (~1.3 KB of details).
fn record(k: u64) -> Finished {
    let id = 1 + 3 * k;
    let (tenant, owner) = if k < ACME {
        ("acme".to_string(), format!("u{}", k % 10))
    } else if k.is_multiple_of(2) {
        ("big".to_string(), format!("u{}", k % 10))
    } else {
        (format!("t{}", k % 100), format!("u{}", k % 10))
    };
    let cid = format!("{id:08}");
    let nodes: Vec<Value> = (0..3)
        .map(|n| json!({"id": format!("{cid}-node-{n}"), "hostname": format!("host-{id}-{n}.example.com"), "ipaddresses": {"access_v4": format!("10.{}.{}.{}", n, (id >> 8) & 255, id & 255)}}))
        .collect();
    let status = if k.is_multiple_of(7) {
        "terminated"
    } else {
        "active"
    };
    Finished {
        op: k + 1,
        origin: "dc1".into(),
        cluster: cid.clone(),
        shard: (id % 12) as u32,
        epoch: 0,
        tenant: tenant.clone(),
        owner: owner.clone(),
        action: "cluster_create".into(),
        outcome: Outcome::Success,
        captured_ms: 1,
        details: json!({
            "id": cid, "name": format!("cluster-{k}"), "description": "a benchmark cluster",
            "account": {"userId": owner, "tenantId": format!("uuid-{tenant}")},
            "createTime": 1_700_000_000_000u64 + k, "expireTime": 0,
            "status": status, "nodes": nodes,
            "provider": {"name": "aws", "description": "Amazon"},
            "clusterTemplate": {"name": "hadoop-distributed", "description": "Hadoop"},
            "services": ["base", "hadoop-hdfs-namenode", "hadoop-hdfs-datanode", "zookeeper-server"],
            "progress": {"actionstatus": "COMPLETE", "stepstotal": 40, "stepscompleted": 40},
        }),
        status: json!({"clusterid": cid, "status": status, "stepstotal": 40, "stepscompleted": 40}),
        config: json!({"hadoop": {"core_site": {"fs.defaultFS": "hdfs://nn:8020"}}}),
        services: json!([
            "base",
            "hadoop-hdfs-namenode",
            "hadoop-hdfs-datanode",
            "zookeeper-server"
        ]),
        plan: None,
    }
}

/// Applies clusters `from..to` in batches of 1000 (one commit each).
fn fill(store: &Store, t: &RoutingTable, from: u64, to: u64) {
    let mut k = from;
    while k < to {
        let end = (k + 1000).min(to);
        let batch: Vec<Envelope> = (k..end)
            .map(|k| Envelope {
                seq: k + 1,
                record: Record::Finished(record(k)),
            })
            .collect();
        let a = store.apply("dc1", t, &batch).expect("apply");
        assert_eq!(a.applied, batch.len(), "every record applies: {a:?}");
        k = end;
    }
}

/// The local server's answer (dc3's own 100 clusters), as `merge_list` gets it.
fn local_list() -> Vec<Value> {
    (0..100u64)
        .map(|k| json!({"id": format!("{:08}", 3 + 3 * k), "createTime": 1_600_000_000_000u64 + k, "status": "active", "name": format!("local-{k}")}))
        .collect()
}

#[derive(Clone, Copy)]
pub enum Path {
    Scan,
    Index,
}

fn id_num(v: &Value) -> u64 {
    v.get("id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `replication::merge_list` as it was before the list index (commit 805d31c), the peer the
/// new path is compared with in the same run.
fn old_merge(local: Vec<Value>, remote: &[ListItem], caller: Caller<'_>) -> Vec<Value> {
    use coopr_router::replication::{Visibility, visibility};
    let mut remote_ids = std::collections::HashSet::new();
    let mut out: Vec<Value> = Vec::with_capacity(local.len() + remote.len());
    for e in remote {
        let Ok(id) = e.cluster.parse::<u64>() else {
            continue;
        };
        remote_ids.insert(id);
        if visibility(caller, &e.tenant, &e.owner) != Visibility::Visible {
            continue;
        }
        out.push(e.summary.clone());
    }
    out.extend(
        local
            .into_iter()
            .filter(|v| !remote_ids.contains(&id_num(v))),
    );
    out.sort_by(|a, b| {
        let t = |v: &Value| v.get("createTime").and_then(Value::as_u64).unwrap_or(0);
        t(b).cmp(&t(a)).then(id_num(b).cmp(&id_num(a)))
    });
    out
}

/// One merged list as the proxy builds it: the answer's bytes and item count.
pub fn list_once(
    store: &Store,
    t: &RoutingTable,
    caller: Caller<'_>,
    path: Path,
) -> (usize, usize) {
    let keep = |shard: u32| !local_coopr_holds(t, shard);
    let merged = match path {
        Path::Scan => old_merge(local_list(), &store.summaries(keep).expect("scan"), caller),
        Path::Index => {
            let remote = store.visible_summaries(caller, keep).expect("index");
            merge_list(local_list(), remote, None, caller)
        }
    };
    let n = merged.len();
    (Value::Array(merged).to_string().len(), n)
}

/// Times lists for at most `budget` (and at most 200, at least 5).
fn time_lists(
    store: &Store,
    t: &RoutingTable,
    caller: Caller<'_>,
    path: Path,
    budget: Duration,
) -> Value {
    let mut times = Vec::new();
    let (cpu0, start) = (cpu_secs(), Instant::now());
    let mut out = (0, 0);
    while times.len() < 5 || (times.len() < 200 && start.elapsed() < budget) {
        let t0 = Instant::now();
        out = list_once(store, t, caller, path);
        times.push(ms(t0.elapsed()));
    }
    let n = times.len();
    let cpu_ms = (cpu_secs() - cpu0) * 1000.0 / n as f64;
    let mut s = summary(times);
    s["cpu_ms_per_list"] = json!(cpu_ms);
    s["bytes"] = json!(out.0);
    s["items"] = json!(out.1);
    s
}

/// `--only list`: `iters` lists of the store at `store` (kept by `--keep-store`) through
/// `path`, as `user@tenant`, nothing else: run it under callgrind with two iteration counts, and
/// the difference divided by the difference in counts is one list's instructions, the setup
/// cancelled out. (heaptrack sees nothing: the example uses the router's allocator, mimalloc.)
pub fn list_only(store: &std::path::Path, path: &str, who: &str, iters: u64) -> (Value, String) {
    let s = Store::open(store).expect("store");
    let t = table();
    let (user, tenant) = who.split_once('@').expect("--caller user@tenant");
    let caller = Caller {
        user: Some(user),
        tenant: Some(tenant),
    };
    let p = if path == "scan" {
        Path::Scan
    } else {
        Path::Index
    };
    let mut last = (0, 0);
    for _ in 0..iters {
        last = list_once(&s, &t, caller, p);
    }
    let v = json!({"path": path, "caller": who, "iters": iters, "bytes": last.0, "items": last.1});
    let md = format!("list-only: {v}\n");
    (v, md)
}

pub fn run(sizes: &[u64], budget: Duration, keep: Option<&std::path::Path>) -> (Value, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = keep.map_or_else(
        || dir.path().join("replica.redb"),
        |k| k.join("replica.redb"),
    );
    let _ = std::fs::remove_file(&path);
    let t = table();
    let mut store = Store::open(&path).expect("store");
    let mut filled = 0;
    let mut rows = Vec::new();
    let mut store_rows = Vec::new();
    let mut json_rows = Vec::new();
    let callers: [(&str, Caller<'static>); 3] = [
        (
            "acme admin (500)",
            Caller {
                user: Some("admin"),
                tenant: Some("acme"),
            },
        ),
        (
            "acme u3 (50)",
            Caller {
                user: Some("u3"),
                tenant: Some("acme"),
            },
        ),
        (
            "big admin (~n/2)",
            Caller {
                user: Some("admin"),
                tenant: Some("big"),
            },
        ),
    ];
    for &n in sizes {
        let t0 = Instant::now();
        fill(&store, &t, filled, n);
        let fill_s = t0.elapsed().as_secs_f64();
        filled = n;
        // Restart: close, reopen, time it and the first list.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(store.close(Duration::from_secs(5)));
        drop(store);
        let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        let t1 = Instant::now();
        store = Store::open(&path).expect("reopen");
        let open_ms = ms(t1.elapsed());
        let t2 = Instant::now();
        list_once(&store, &t, callers[0].1, Path::Index);
        let first_ms = ms(t2.elapsed());
        // `/v2/nodes/{id}` of a replicated cluster: `Store::cluster_of_node` (the newest
        // cluster's node, so a scan in id order reads every entry first).
        let node = format!("{:08}-node-1", 1 + 3 * (n - 1));
        let t3 = Instant::now();
        let scanned = store.cluster_of_node_scan(&node).expect("node scan");
        let node_scan_ms = ms(t3.elapsed());
        let t4 = Instant::now();
        let found = store.cluster_of_node(&node).expect("node lookup");
        let node_ms = ms(t4.elapsed());
        assert!(found.is_some() && found == scanned, "{node} is listed");
        // The retention sweep when nothing is due (its usual minute: every capture is at 1 ms,
        // kept 1 s, swept at 2 ms): the scan it was reads and parses every replicated cluster,
        // the index reads an empty range. Each is one write transaction (a commit).
        let t5 = Instant::now();
        let by_scan = store.retire_terminated_scan(2, 1000).expect("sweep scan");
        let sweep_scan_ms = ms(t5.elapsed());
        let t6 = Instant::now();
        let by_index = store.retire_terminated(2, 1000).expect("sweep");
        let sweep_ms = ms(t6.elapsed());
        assert_eq!(by_scan, by_index, "the sweeps agree");
        assert_eq!(
            (by_index.retired, by_index.clusters),
            (0, n),
            "nothing due, n clusters"
        );
        let load = loadavg();
        store_rows.push(vec![
            n.to_string(),
            format!("{:.1}", bytes as f64 / 1048576.0),
            format!("{:.0}", bytes as f64 / n as f64),
            f2(open_ms),
            f2(first_ms),
            f2(node_scan_ms),
            format!("{:.3}", node_ms),
            f2(sweep_scan_ms),
            f2(sweep_ms),
            format!("{:.0}", n as f64 / fill_s),
            format!("{load:.1}"),
        ]);
        let mut per = Vec::new();
        for (name, caller) in callers {
            let scan = time_lists(&store, &t, caller, Path::Scan, budget);
            let index = time_lists(&store, &t, caller, Path::Index, budget);
            rows.push(vec![
                n.to_string(),
                name.to_string(),
                index["items"].to_string(),
                f2(scan["p50"].as_f64().unwrap_or(f64::NAN)),
                f2(scan["p99"].as_f64().unwrap_or(f64::NAN)),
                f2(scan["cpu_ms_per_list"].as_f64().unwrap_or(f64::NAN)),
                f2(index["p50"].as_f64().unwrap_or(f64::NAN)),
                f2(index["p99"].as_f64().unwrap_or(f64::NAN)),
                f2(index["cpu_ms_per_list"].as_f64().unwrap_or(f64::NAN)),
                format!(
                    "{:.1}",
                    scan["p50"].as_f64().unwrap_or(f64::NAN)
                        / index["p50"].as_f64().unwrap_or(f64::NAN)
                ),
                format!("{:.1}", loadavg()),
            ]);
            per.push(json!({"caller": name, "scan": scan, "index": index}));
        }
        json_rows.push(json!({
            "clusters": n, "store_bytes": bytes, "open_ms": open_ms,
            "first_list_ms": first_ms, "node_lookup_scan_ms": node_scan_ms, "node_lookup_ms": node_ms, "sweep_scan_ms": sweep_scan_ms, "sweep_ms": sweep_ms, "fill_records_per_s": n as f64 / fill_s,
            "loadavg_1m": load, "lists": per,
        }));
        eprintln!("scale: clusters {n} done");
    }
    let md = format!(
        "### Merged `GET /v2/clusters` by replicated clusters (ms per list; scan = before, index = now)\n\n{}\n### Replica store size and restart\n\n{}",
        super::common::table(
            &[
                "clusters",
                "caller",
                "items",
                "scan p50",
                "scan p99",
                "scan CPU",
                "index p50",
                "index p99",
                "index CPU",
                "scan/index p50",
                "load 1m",
            ],
            &rows
        ),
        super::common::table(
            &[
                "clusters",
                "file MiB",
                "bytes/cluster",
                "open ms",
                "first list ms",
                "node scan ms (before)",
                "node index ms (now)",
                "sweep scan ms (before)",
                "sweep index ms (now)",
                "fill records/s",
                "load 1m",
            ],
            &store_rows
        )
    );
    (json!(json_rows), md)
}
