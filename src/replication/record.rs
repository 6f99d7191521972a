//! The records replication sends, and the pure functions that build them: an operation's
//! *intent* (opened when the owner's Coopr server accepted a write), its *finished* state
//! (captured once the cluster is no longer `pending`), the envelope that orders them per shard,
//! the action a write implies, and the removal of every `providerFields` object (they can hold
//! cloud credentials and never leave the owner DC).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// An operation the owner's Coopr server accepted: the minimal state to restart it elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// The owner router's operation number (unique in its store).
    pub op: u64,
    /// The DC whose router opened it (the owner at the time).
    pub origin: String,
    /// The cluster id, 8 digits (`00000042`).
    pub cluster: String,
    pub shard: u32,
    pub epoch: u64,
    /// `Coopr-TenantID` (the tenant *name*) and `Coopr-UserID` of the write.
    pub tenant: String,
    pub user: String,
    pub method: String,
    pub path: String,
    /// What the write does, in Coopr's lowercase action names (`cluster_create`, ...).
    pub action: String,
    /// When the owner's Coopr server accepted it (ms since the epoch).
    pub time_ms: u64,
    /// The request body, every `providerFields` object removed; `None` when there was none, it
    /// was not JSON, or it was larger than the inspection limit (see `body_note`).
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_note: Option<String>,
}

/// How an operation ended (docs/coopr-api.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

/// A cluster's state once an operation on it finished, as the owner's Coopr server showed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub op: u64,
    pub origin: String,
    pub cluster: String,
    pub shard: u32,
    pub epoch: u64,
    /// Tenant name (from the write) and the cluster's owner (`account.userId`).
    pub tenant: String,
    pub owner: String,
    pub action: String,
    pub outcome: Outcome,
    /// When the state was captured at the owner (ms since the epoch): `Age` counts from here.
    pub captured_ms: u64,
    /// `GET /v2/clusters/{id}`, `/status`, `/config`, `/services`, and the latest plan.
    pub details: Value,
    pub status: Value,
    pub config: Value,
    pub services: Value,
    pub plan: Option<Value>,
}

/// One replicated record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Record {
    Intent(Intent),
    Finished(Finished),
}

impl Record {
    pub fn cluster(&self) -> &str {
        match self {
            Record::Intent(i) => &i.cluster,
            Record::Finished(f) => &f.cluster,
        }
    }
    pub fn shard(&self) -> u32 {
        match self {
            Record::Intent(i) => i.shard,
            Record::Finished(f) => f.shard,
        }
    }
    /// The DC whose router opened the operation (and sends its records).
    pub fn origin(&self) -> &str {
        match self {
            Record::Intent(i) => &i.origin,
            Record::Finished(f) => &f.origin,
        }
    }
    pub fn epoch(&self) -> u64 {
        match self {
            Record::Intent(i) => i.epoch,
            Record::Finished(f) => f.epoch,
        }
    }
}

/// A record with its place in its shard's order at the owner: `(epoch, seq)` only grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub seq: u64,
    pub record: Record,
}

impl Envelope {
    /// The order key a replica compares: epoch first, then sequence.
    pub fn order(&self) -> (u64, u64) {
        (self.record.epoch(), self.seq)
    }
}

/// The body of `POST /replication/v1/batch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub from: String,
    pub records: Vec<Envelope>,
}

/// The Coopr action a cluster write implies (lowercase, as the REST API names them), from its
/// method and path; `other` for a write the table does not know.
pub fn action_of(method: &str, path: &str) -> &'static str {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match (method, segs.as_slice()) {
        ("POST", ["v2", "clusters"]) => "cluster_create",
        ("DELETE", ["v2", "clusters", _]) => "cluster_delete",
        ("POST", ["v2", "clusters", _]) => "cluster_extend_lease",
        ("POST", ["v2", "clusters", _, "abort"]) => "cluster_abort",
        ("POST", ["v2", "clusters", _, "pause"]) => "cluster_pause",
        ("POST", ["v2", "clusters", _, "resume"]) => "cluster_resume",
        ("PUT", ["v2", "clusters", _, "config"]) => "cluster_configure",
        ("POST", ["v2", "clusters", _, "services"]) => "add_services",
        ("POST", ["v2", "clusters", _, "services", a])
        | ("POST", ["v2", "clusters", _, "services", _, a]) => match *a {
            "start" => "start_services",
            "stop" => "stop_services",
            "restart" => "restart_services",
            _ => "other",
        },
        ("POST", ["v2", "clusters", _, "clustertemplate", "sync"]) => "cluster_template_sync",
        _ => "other",
    }
}

/// The outcome of a finished operation from the cluster's final status (docs/coopr-api.md §5):
/// `active`, or `terminated` after a delete, is success; anything else is failure.
pub fn outcome_of(action: &str, status: &str) -> Outcome {
    match (action, status) {
        (_, "active") | ("cluster_delete", "terminated") => Outcome::Success,
        _ => Outcome::Failure,
    }
}

/// A list item (`ClusterSummary`) built from captured details.
pub fn summary(d: &Value) -> Value {
    let named = |k: &str| json!({ "name": d.get(k).and_then(|v| v.get("name")).cloned().unwrap_or(Value::Null) });
    json!({
        "id": d.get("id"),
        "name": d.get("name"),
        "description": d.get("description"),
        "ownerId": d.pointer("/account/userId"),
        "createTime": d.get("createTime"),
        "expireTime": d.get("expireTime"),
        "numNodes": d.get("nodes").and_then(Value::as_array).map_or(0, Vec::len),
        "status": d.get("status"),
        "provider": named("provider"),
        "clusterTemplate": named("clusterTemplate"),
        "services": d.get("services"),
        "progress": d.get("progress"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_by_method_and_path() {
        let table = [
            ("POST", "/v2/clusters", "cluster_create"),
            ("POST", "/v2/clusters/", "cluster_create"),
            ("DELETE", "/v2/clusters/42", "cluster_delete"),
            ("POST", "/v2/clusters/42", "cluster_extend_lease"),
            ("POST", "/v2/clusters/42/abort", "cluster_abort"),
            ("POST", "/v2/clusters/42/pause", "cluster_pause"),
            ("POST", "/v2/clusters/42/resume", "cluster_resume"),
            ("PUT", "/v2/clusters/42/config", "cluster_configure"),
            ("POST", "/v2/clusters/42/services", "add_services"),
            ("POST", "/v2/clusters/42/services/stop", "stop_services"),
            (
                "POST",
                "/v2/clusters/42/services/hdfs/restart",
                "restart_services",
            ),
            ("POST", "/v2/clusters/42/services/hdfs/explode", "other"),
            (
                "POST",
                "/v2/clusters/42/clustertemplate/sync",
                "cluster_template_sync",
            ),
            ("GET", "/v2/clusters/42", "other"),
        ];
        for (m, p, want) in table {
            assert_eq!(action_of(m, p), want, "{m} {p}");
        }
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome_of("cluster_create", "active"), Outcome::Success);
        assert_eq!(outcome_of("cluster_delete", "terminated"), Outcome::Success);
        assert_eq!(outcome_of("cluster_create", "terminated"), Outcome::Failure);
        assert_eq!(
            outcome_of("cluster_configure", "inconsistent"),
            Outcome::Failure
        );
        assert_eq!(outcome_of("cluster_create", "incomplete"), Outcome::Failure);
    }

    #[test]
    fn records_round_trip_with_a_kind_tag() {
        let e = Envelope {
            seq: 7,
            record: Record::Intent(Intent {
                op: 1,
                origin: "dc1".into(),
                cluster: "00000042".into(),
                shard: 6,
                epoch: 3,
                tenant: "acme".into(),
                user: "u".into(),
                method: "DELETE".into(),
                path: "/v2/clusters/42".into(),
                action: "cluster_delete".into(),
                time_ms: 5,
                body: None,
                body_note: None,
            }),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(text.contains("\"kind\":\"intent\""));
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), e);
        assert_eq!(e.order(), (3, 7));
    }
}
