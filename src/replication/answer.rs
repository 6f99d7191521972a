//! Pure answers from the replica store: which read a path asks for, the response to a read of
//! a replicated cluster (Coopr's visibility rules applied), and the merge of the local
//! cluster list with replicated summaries (`?status=`, visibility, no duplicates, Coopr's
//! order: newest first).

use super::replica::{ListItem, ReplicaEntry};
use super::visibility::{Caller, Visibility, visibility};
use bytes::Bytes;
use serde_json::Value;

/// A read the replica store can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadTarget {
    Details,
    Status,
    Config,
    Services,
    /// `/plans/{job}`: answered only when it is the captured (latest) plan.
    Plan(String),
}

/// The read a `GET /v2/clusters/{id}[/...]` path asks for; `None` when the store cannot answer
/// it (the plan list, anything else): read through to the owner.
pub fn read_target(path: &str) -> Option<ReadTarget> {
    if path.contains('%') {
        return None;
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["v2", "clusters", _] => Some(ReadTarget::Details),
        ["v2", "clusters", _, "status"] => Some(ReadTarget::Status),
        ["v2", "clusters", _, "config"] => Some(ReadTarget::Config),
        ["v2", "clusters", _, "services"] => Some(ReadTarget::Services),
        ["v2", "clusters", _, "plans", job] => Some(ReadTarget::Plan((*job).to_string())),
        _ => None,
    }
}

/// A response the replica store gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// JSON (else Coopr's plain-text error).
    pub json: bool,
    /// The entry's epoch and capture time, for `x-coopr-router-replica-epoch` and `Age`.
    pub epoch: u64,
    pub captured_ms: u64,
}

/// The answer to a read of a replicated cluster, or `None` to read through (no finished state
/// yet, or a plan the store does not hold).
pub fn read_answer(
    entry: &ReplicaEntry,
    target: &ReadTarget,
    caller: Caller<'_>,
) -> Option<Answer> {
    let f = entry.state.as_ref()?;
    let text = |status: u16, msg: String| Answer {
        status,
        body: Bytes::from(msg),
        json: false,
        epoch: f.epoch,
        captured_ms: f.captured_ms,
    };
    match visibility(caller, &f.tenant, &f.owner) {
        Visibility::MissingUser => {
            return Some(text(
                401,
                "Coopr-UserID not found in request headers.".into(),
            ));
        }
        Visibility::MissingTenant => {
            return Some(text(
                401,
                "Coopr-TenantID not found in request headers.".into(),
            ));
        }
        Visibility::Hidden => {
            return Some(text(404, format!("cluster {} not found", f.cluster)));
        }
        Visibility::Visible => {}
    }
    let body = match target {
        ReadTarget::Details => &f.details,
        ReadTarget::Status => &f.status,
        ReadTarget::Config => &f.config,
        ReadTarget::Services => &f.services,
        ReadTarget::Plan(job) => match &f.plan {
            Some(p) if p.get("id").and_then(Value::as_str) == Some(job.as_str()) => p,
            _ => return None,
        },
    };
    Some(Answer {
        status: 200,
        body: Bytes::from(body.to_string()),
        json: true,
        epoch: f.epoch,
        captured_ms: f.captured_ms,
    })
}

/// The `status` filter of a list query (`?status=a,b`, repeatable): known values only, none
/// meaning all, as Coopr does.
pub fn status_filter(query: Option<&str>) -> Vec<String> {
    const KNOWN: [&str; 5] = [
        "pending",
        "active",
        "incomplete",
        "inconsistent",
        "terminated",
    ];
    let mut out = Vec::new();
    for pair in query.unwrap_or("").split('&') {
        let Some(v) = pair.strip_prefix("status=") else {
            continue;
        };
        for s in v
            .split([','])
            .flat_map(|s| s.split("%2C"))
            .flat_map(|s| s.split("%2c"))
        {
            let s = s.to_ascii_lowercase();
            if KNOWN.contains(&s.as_str()) && !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out
}

fn id_num(v: &Value) -> u64 {
    v.get("id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Merges the local server's list (already filtered by Coopr for this caller) with replicated
/// clusters: replicated ones the caller may see and that pass `?status=`; a replicated copy
/// replaces a local item with the same id (its shard is held elsewhere). Newest first (by
/// `createTime`, then id), each item's sort key read once.
pub fn merge_list(
    local: Vec<Value>,
    remote: Vec<ListItem>,
    query: Option<&str>,
    caller: Caller<'_>,
) -> Vec<Value> {
    let wanted = status_filter(query);
    let mut remote_ids = std::collections::HashSet::new();
    let mut keyed: Vec<((u64, u64), Value)> = Vec::with_capacity(local.len() + remote.len());
    let key = |v: &Value| {
        let t = v.get("createTime").and_then(Value::as_u64).unwrap_or(0);
        (t, id_num(v))
    };
    for e in remote {
        let Ok(id) = e.cluster.parse::<u64>() else {
            continue;
        };
        remote_ids.insert(id);
        if visibility(caller, &e.tenant, &e.owner) != Visibility::Visible {
            continue;
        }
        if !wanted.is_empty() && !wanted.contains(&e.status) {
            continue;
        }
        keyed.push((key(&e.summary), e.summary));
    }
    keyed.extend(
        local
            .into_iter()
            .filter(|v| !remote_ids.contains(&id_num(v)))
            .map(|v| (key(&v), v)),
    );
    // Stable, newest first: equal keys (a local list with repeated ids) keep their order.
    keyed.sort_by_key(|k| std::cmp::Reverse(k.0));
    keyed.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::record::{Finished, Outcome};
    use serde_json::json;

    fn entry(id: &str, tenant: &str, owner: &str, status: &str, created: u64) -> ReplicaEntry {
        ReplicaEntry {
            order: (0, 1),
            shard: 1,
            open: None,
            state: Some(Finished {
                op: 1,
                origin: "dc2".into(),
                cluster: id.into(),
                shard: 1,
                epoch: 7,
                tenant: tenant.into(),
                owner: owner.into(),
                action: "cluster_create".into(),
                outcome: Outcome::Success,
                captured_ms: 1000,
                details: json!({"id": id, "name": "n", "account": {"userId": owner, "tenantId": "uuid"}, "createTime": created, "status": status, "nodes": [{}, {}], "provider": {"name": "p", "secret": 1}}),
                status: json!({"clusterid": id, "status": status}),
                config: json!({"c": 1}),
                services: json!(["s"]),
                plan: Some(json!({"id": format!("{id}-002")})),
            }),
        }
    }

    fn who<'a>(user: &'a str, tenant: &'a str) -> Caller<'a> {
        Caller {
            user: Some(user),
            tenant: Some(tenant),
        }
    }

    #[test]
    fn targets() {
        assert_eq!(read_target("/v2/clusters/42"), Some(ReadTarget::Details));
        assert_eq!(
            read_target("/v2/clusters/42/status/"),
            Some(ReadTarget::Status)
        );
        assert_eq!(
            read_target("/v2/clusters/42/plans/00000042-001"),
            Some(ReadTarget::Plan("00000042-001".into()))
        );
        assert_eq!(read_target("/v2/clusters/42/plans"), None);
        assert_eq!(read_target("/v2/clusters/42/nodes"), None);
        assert_eq!(read_target("/v2/clusters/4%32"), None);
    }

    #[test]
    fn reads_apply_visibility_and_hold_only_the_latest_plan() {
        let e = entry("00000002", "acme", "bob", "active", 5);
        let a = read_answer(&e, &ReadTarget::Config, who("bob", "acme")).unwrap();
        assert_eq!((a.status, a.epoch, a.captured_ms), (200, 7, 1000));
        assert_eq!(&a.body[..], br#"{"c":1}"#);
        assert_eq!(
            read_answer(&e, &ReadTarget::Details, who("eve", "acme"))
                .unwrap()
                .status,
            404
        );
        assert_eq!(
            read_answer(&e, &ReadTarget::Details, who("admin", "acme"))
                .unwrap()
                .status,
            200
        );
        assert_eq!(
            read_answer(&e, &ReadTarget::Details, who("bob", "other"))
                .unwrap()
                .status,
            404
        );
        let none = Caller {
            user: None,
            tenant: Some("acme"),
        };
        assert_eq!(
            read_answer(&e, &ReadTarget::Status, none).unwrap().status,
            401
        );
        assert!(
            read_answer(
                &e,
                &ReadTarget::Plan("00000002-002".into()),
                who("bob", "acme")
            )
            .is_some()
        );
        assert!(
            read_answer(
                &e,
                &ReadTarget::Plan("00000002-001".into()),
                who("bob", "acme")
            )
            .is_none()
        );
        let mut no_state = e.clone();
        no_state.state = None;
        assert!(read_answer(&no_state, &ReadTarget::Details, who("bob", "acme")).is_none());
    }

    #[test]
    fn status_filters() {
        assert_eq!(status_filter(None), Vec::<String>::new());
        assert_eq!(status_filter(Some("status=active,bogus")), vec!["active"]);
        assert_eq!(
            status_filter(Some("x=1&status=Active%2Cterminated&status=pending")),
            vec!["active", "terminated", "pending"]
        );
    }

    #[test]
    fn lists_merge_without_duplicates_newest_first() {
        let local = vec![
            json!({"id": "00000001", "createTime": 10, "status": "active"}),
            json!({"id": "00000002", "createTime": 1, "status": "pending"}),
        ];
        let remote: Vec<ListItem> = [
            entry("00000002", "acme", "bob", "active", 1),
            entry("00000005", "acme", "bob", "terminated", 20),
            entry("00000008", "acme", "eve", "active", 30),
            entry("00000011", "other", "bob", "active", 40),
        ]
        .iter()
        .map(|e| ListItem::of(e.state.as_ref().unwrap()))
        .collect();
        let ids = |v: &[Value]| {
            v.iter()
                .map(|x| x["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let all = merge_list(local.clone(), remote.clone(), None, who("bob", "acme"));
        assert_eq!(ids(&all), ["00000005", "00000001", "00000002"]);
        assert_eq!(
            all[2]["status"], "active",
            "the replica replaces the stale local copy"
        );
        assert_eq!(all[0]["numNodes"], 2);
        assert_eq!(all[0]["provider"], json!({"name": "p"}));
        let admin = merge_list(
            local.clone(),
            remote,
            Some("status=active"),
            who("admin", "acme"),
        );
        assert_eq!(ids(&admin), ["00000008", "00000001", "00000002"]);
    }
}
