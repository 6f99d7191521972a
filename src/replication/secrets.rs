//! Secrets stay home (pure): what replication captures and stores is an allowlist of the fields
//! replica reads need, and everything else is dropped on the owner, before it is stored or sent.
//!
//! The allowlist follows what Coopr serializes (its public repository,
//! `coopr-server/src/main/java/co/cask/coopr/`): `codec/json/current/ClusterCodec.java` (the
//! cluster's fields), `ClusterDetailsCodec.java` (details = the cluster, with full nodes,
//! links, progress and message), `ProviderCodec.java` and `AbstractBaseEntityCodec.java` (a
//! provider: name, label, description, icon, version, providertype — and `provisioner`, the
//! provider's admin fields such as an AWS `api_password`, which is dropped), `cluster/Node.java`
//! and `cluster/NodeProperties.java` (a node: id, clusterId, services, properties, actions,
//! links — and `provisionerResults`, e.g. an `ssh-auth` password, which is dropped).
//! `cluster/ClusterSummary.java` is what the list merge builds from these (`record::summary`).
//!
//! Free-form parts (a cluster's `config`, a template, a plan) keep their shape, less every
//! member whose name says it holds a credential ([`is_secret_name`]), at any depth. The same
//! rule cleans an intent's request body.

use serde_json::{Map, Value};

/// Members a cluster's details keep (ClusterCodec + ClusterDetailsCodec).
const CLUSTER: &[&str] = &[
    "id",
    "name",
    "description",
    "account",
    "createTime",
    "expireTime",
    "provider",
    "clusterTemplate",
    "nodes",
    "services",
    "latestJobId",
    "status",
    "config",
    "links",
    "progress",
    "message",
];
/// An account: who owns the cluster (Account.java).
const ACCOUNT: &[&str] = &["userId", "tenantId"];
/// A provider as a cluster names it: never its `provisioner` admin fields.
const PROVIDER: &[&str] = &[
    "name",
    "label",
    "description",
    "icon",
    "version",
    "providertype",
];
/// A node (Node.java): never its `provisionerResults`.
const NODE: &[&str] = &[
    "id",
    "clusterId",
    "services",
    "properties",
    "actions",
    "links",
];
/// A node's properties (NodeProperties.java).
const NODE_PROPERTIES: &[&str] = &[
    "ipaddresses",
    "hostname",
    "nodenum",
    "hardwaretype",
    "imagetype",
    "flavor",
    "image",
    "sshuser",
    "services",
    "automators",
];

/// Whether a member name says it holds a credential: Coopr's `providerFields` and
/// `provisionerResults`, and any name containing password, secret, key, token or credential
/// (any case).
pub fn is_secret_name(name: &str) -> bool {
    if name == "providerFields" || name == "provisionerResults" {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    ["password", "passwd", "secret", "key", "token", "credential"]
        .iter()
        .any(|w| lower.contains(w))
}

/// Removes every member named like a credential, at any depth.
pub fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| !is_secret_name(k));
            map.values_mut().for_each(scrub);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// Whether a value still holds a member named like a credential anywhere.
#[cfg(test)]
pub fn has_secret(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.iter().any(|(k, v)| is_secret_name(k) || has_secret(v)),
        Value::Array(items) => items.iter().any(has_secret),
        _ => false,
    }
}

/// Keeps only `allowed` members of an object (anything else passes as it is).
fn only(v: Value, allowed: &[&str]) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| allowed.contains(&k.as_str()))
                .collect::<Map<String, Value>>(),
        ),
        other => other,
    }
}

/// A node as replicas keep it.
fn node(v: Value) -> Value {
    let mut n = only(v, NODE);
    if let Some(p) = n.get_mut("properties") {
        *p = only(p.take(), NODE_PROPERTIES);
    }
    n
}

/// A cluster's details as replicas keep them: the allowlist, then the name rule over the rest.
pub fn details(v: Value) -> Value {
    let mut d = only(v, CLUSTER);
    if let Some(a) = d.get_mut("account") {
        *a = only(a.take(), ACCOUNT);
    }
    if let Some(p) = d.get_mut("provider") {
        *p = only(p.take(), PROVIDER);
    }
    if let Some(Value::Array(nodes)) = d.get_mut("nodes") {
        for n in nodes.iter_mut() {
            *n = node(n.take());
        }
    }
    scrub(&mut d);
    d
}

/// What a replica keeps of the other captured parts (status, config, services, plan): their
/// shape, less credential-named members.
pub fn part(mut v: Value) -> Value {
    scrub(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn details_keep_what_reads_need_and_nothing_secret() {
        let captured = json!({
            "id": "00000042", "name": "c", "description": "d", "status": "active",
            "account": {"userId": "u", "tenantId": "t", "apiKey": "x"},
            "createTime": 1, "expireTime": 0, "latestJobId": "00000042-001",
            "provider": {"name": "aws", "providertype": "aws",
                         "provisioner": {"api_user": "a", "api_password": "PLANTED-1"}},
            "clusterTemplate": {"name": "demo", "defaults": {"config": {"db_password": "PLANTED-2"}}},
            "services": ["base"], "config": {"tier": "gold", "adminToken": "PLANTED-3", "nested": {"aws_secret_key": "PLANTED-4"}},
            "nodes": [{"id": "n1", "clusterId": "00000042", "services": [],
                       "properties": {"hostname": "h", "ipaddresses": {"access_v4": "10.0.0.1"}, "nodenum": 1, "rootPassword": "PLANTED-5"},
                       "actions": [{"taskId": "t1", "status": "complete"}],
                       "provisionerResults": {"ssh-auth": {"user": "root", "password": "PLANTED-6"}}}],
            "links": [], "progress": {"stepscompleted": 1}, "message": "ok",
            "unknownFutureField": {"anything": 1}
        });
        let kept = details(captured);
        let text = kept.to_string();
        for planted in 1..=6 {
            assert!(!text.contains(&format!("PLANTED-{planted}")), "{text}");
        }
        assert!(!has_secret(&kept));
        assert_eq!(
            kept["provider"],
            json!({"name": "aws", "providertype": "aws"})
        );
        assert_eq!(kept["account"], json!({"userId": "u", "tenantId": "t"}));
        assert_eq!(kept["nodes"][0]["properties"]["hostname"], "h");
        assert!(kept["nodes"][0].get("provisionerResults").is_none());
        assert_eq!(kept["config"], json!({"tier": "gold", "nested": {}}));
        assert!(
            kept.get("unknownFutureField").is_none(),
            "not on the allowlist"
        );
        assert_eq!(kept["clusterTemplate"]["name"], "demo");
        assert_eq!(kept["latestJobId"], "00000042-001");
    }

    #[test]
    fn secret_names() {
        for n in [
            "providerFields",
            "provisionerResults",
            "api_password",
            "PASSWORD",
            "secretKey",
            "ssh_key",
            "keystore",
            "authToken",
            "credentials",
            "passwd",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "name",
            "hostname",
            "config",
            "services",
            "status",
            "nodes",
            "latestJobId",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn scrub_reaches_every_depth() {
        let mut v = json!({"a": [{"b": {"password": 1, "c": 2}}], "token": 3, "x": "password"});
        scrub(&mut v);
        assert_eq!(v, json!({"a": [{"b": {"c": 2}}], "x": "password"}));
    }

    #[test]
    fn provider_fields_are_removed_at_every_depth() {
        let table = [
            (json!({"providerFields": {"key": "s3cret"}}), json!({})),
            (
                json!({"config": {"a": 1}, "providerFields": {"k": "v"}, "restart": true}),
                json!({"config": {"a": 1}, "restart": true}),
            ),
            (
                json!({"config": {"nested": {"providerFields": {"k": "v"}, "x": [ {"providerFields": 1, "y": 2} ]}}}),
                json!({"config": {"nested": {"x": [ {"y": 2} ]}}}),
            ),
            (json!([{"providerFields": null}, 3]), json!([{}, 3])),
            (json!("providerFields"), json!("providerFields")),
            (
                json!({"services": ["providerFields"]}),
                json!({"services": ["providerFields"]}),
            ),
        ];
        for (mut input, want) in table {
            scrub(&mut input);
            assert_eq!(input, want);
            assert!(!has_secret(&input));
        }
    }
}
