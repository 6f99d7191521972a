//! The classification table: one row per route of docs/coopr-api.md §2 and §8, plus the path
//! tricks and bad ids the router must refuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coopr_router::classify::{
    Api, BodyRule, Class, Classification, Head, Kind, classify_body, classify_head,
};
use http::Method;

/// Expected outcome of a row.
#[derive(Debug)]
enum Want {
    /// class, kind, cluster id, api
    Is(Class, Kind, Option<u64>, Api),
    Bad,
}
use Class::*;
use Kind::*;
use Want::*;
const E: Api = Api::External;
const T: Api = Api::Tasks;

fn run(method: &str, target: &str, body: &str) -> Result<Classification, String> {
    let m = Method::from_bytes(method.as_bytes()).unwrap();
    let (path, query) = target
        .split_once('?')
        .map_or((target, None), |(p, q)| (p, Some(q)));
    match classify_head(&m, path, query).map_err(|e| e.to_string())? {
        Head::Done(c) => Ok(c),
        Head::NeedBody(rule) => classify_body(rule, body.as_bytes()).map_err(|e| e.to_string()),
    }
}

#[test]
fn every_route_of_the_catalog() {
    let rows: &[(&str, &str, &str, Want)] = &[
        // ClusterHandler
        ("GET", "/v2/clusters", "", Is(Read, List, None, E)),
        (
            "GET",
            "/v2/clusters?status=active,pending",
            "",
            Is(Read, List, None, E),
        ),
        ("HEAD", "/v2/clusters", "", Is(Read, List, None, E)),
        (
            "GET",
            "/v2/clusters/00000042",
            "",
            Is(Read, ClusterRead, Some(42), E),
        ),
        (
            "HEAD",
            "/v2/clusters/42",
            "",
            Is(Read, ClusterRead, Some(42), E),
        ),
        (
            "GET",
            "/v2/clusters/00000042/config",
            "",
            Is(Read, ClusterRead, Some(42), E),
        ),
        (
            "GET",
            "/v2/clusters/00000042/services",
            "",
            Is(Read, ClusterRead, Some(42), E),
        ),
        (
            "GET",
            "/v2/clusters/00000042/status",
            "",
            Is(Read, ClusterRead, Some(42), E),
        ),
        (
            "GET",
            "/v2/clusters/00000042/plans",
            "",
            Is(Read, ClusterRead, Some(42), E),
        ),
        (
            "GET",
            "/v2/clusters/00000042/plans/00000042-107",
            "",
            Is(Read, ClusterRead, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters",
            "{\"name\":\"x\"}",
            Is(Write, Create, None, E),
        ),
        (
            "DELETE",
            "/v2/clusters/00000042",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042",
            "{\"expireTime\":1}",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/abort",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/pause",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/resume",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "PUT",
            "/v2/clusters/00000042/config",
            "{}",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/services",
            "{}",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/services/start",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/services/stop",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/services/restart",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/services/hdfs/restart",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "POST",
            "/v2/clusters/00000042/clustertemplate/sync",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        // Methods Coopr does not route: the local server answers 405.
        (
            "PATCH",
            "/v2/clusters/00000042",
            "",
            Is(Local, Other, None, E),
        ),
        ("PUT", "/v2/clusters", "", Is(Local, Other, None, E)),
        // NodeHandler
        ("GET", "/v2/nodes", "", Is(Local, Other, None, E)),
        (
            "GET",
            "/v2/nodes/16b10331-0bd4",
            "",
            // Routed by the node's cluster, looked up by the proxy (NodeHandler answers only
            // for nodes its own store holds).
            Is(Read, NodeById, None, E),
        ),
        (
            "POST",
            "/v2/nodes",
            "{\"id\":\"n\",\"clusterId\":\"00000007\"}",
            Is(Write, NodeWrite, Some(7), E),
        ),
        (
            "POST",
            "/v2/nodes",
            "{\"clusterId\":7}",
            Is(Write, NodeWrite, Some(7), E),
        ),
        (
            "PUT",
            "/v2/nodes/n1",
            "{\"id\":\"n1\",\"clusterId\":\"8\"}",
            Is(Write, NodeWrite, Some(8), E),
        ),
        (
            "POST",
            "/v2/nodes",
            "{\"id\":\"n\"}",
            Is(Write, NodeWrite, None, E),
        ),
        ("DELETE", "/v2/nodes/n1", "", Is(Write, NodeById, None, E)),
        ("HEAD", "/v2/nodes/n1", "", Is(Read, NodeById, None, E)),
        ("GET", "/v2/nodes", "", Is(Local, Other, None, E)),
        // RPCHandler
        (
            "POST",
            "/v2/getNodeProperties",
            "{\"clusterId\":\"00000009\",\"properties\":[]}",
            Is(Read, NodeProperties, Some(9), E),
        ),
        (
            "POST",
            "/v2/getClusterStatuses",
            "",
            Is(Local, Other, None, E),
        ),
        // Status, user, metrics
        ("GET", "/status", "", Is(Local, Other, None, E)),
        ("GET", "/v2/profile", "", Is(Local, Other, None, E)),
        ("PUT", "/v2/profile", "{}", Is(Local, Other, None, E)),
        ("DELETE", "/v2/profile", "", Is(Local, Other, None, E)),
        (
            "GET",
            "/v2/metrics/nodes/usage?tenant=t&cluster=00000011&groupby=x",
            "",
            Is(Read, Usage, Some(11), E),
        ),
        (
            "GET",
            "/v2/metrics/nodes/usage?tenant=t",
            "",
            Is(Local, Usage, None, E),
        ),
        ("GET", "/v2/metrics/queues", "", Is(Local, Other, None, E)),
        // AdminHandler catalog
        ("GET", "/v2/clustertemplates", "", Is(Local, Other, None, E)),
        ("GET", "/v2/providers/aws/2", "", Is(Local, Other, None, E)),
        ("POST", "/v2/services", "{}", Is(Global, Catalog, None, E)),
        (
            "PUT",
            "/v2/hardwaretypes/small",
            "{}",
            Is(Global, Catalog, None, E),
        ),
        (
            "DELETE",
            "/v2/imagetypes/ubuntu/3",
            "",
            Is(Global, Catalog, None, E),
        ),
        ("GET", "/v2/export", "", Is(Local, Other, None, E)),
        ("POST", "/v2/import", "{}", Is(Global, Catalog, None, E)),
        ("POST", "/v2/resolve", "{}", Is(Local, Other, None, E)),
        (
            "GET",
            "/v2/plugins/providertypes/aws",
            "",
            Is(Local, Other, None, E),
        ),
        (
            "POST",
            "/v2/clustertemplates",
            "{}",
            Is(Global, Catalog, None, E),
        ),
        (
            "PUT",
            "/v2/clustertemplates/hadoop",
            "{}",
            Is(Global, Catalog, None, E),
        ),
        (
            "DELETE",
            "/v2/partialtemplates/base",
            "",
            Is(Global, Catalog, None, E),
        ),
        ("POST", "/v2/providers", "{}", Is(Global, Catalog, None, E)),
        (
            "GET",
            "/v2/partialtemplates/base",
            "",
            Is(Local, Other, None, E),
        ),
        ("HEAD", "/v2/services/base", "", Is(Local, Other, None, E)),
        ("GET", "/v2/import", "", Is(Local, Other, None, E)),
        // Superadmin and plugins
        ("GET", "/v2/tenants", "", Is(Local, Other, None, E)),
        ("POST", "/v2/tenants", "{}", Is(Global, Catalog, None, E)),
        (
            "PUT",
            "/v2/tenants/acme",
            "{}",
            Is(Global, Catalog, None, E),
        ),
        (
            "DELETE",
            "/v2/tenants/acme",
            "",
            Is(Global, Catalog, None, E),
        ),
        ("GET", "/v2/provisioners", "", Is(Local, Other, None, E)),
        ("GET", "/v2/provisioners/p1", "", Is(Local, Other, None, E)),
        ("GET", "/v2/tenants/acme", "", Is(Local, Other, None, E)),
        (
            "GET",
            "/v2/plugins/automatortypes",
            "",
            Is(Local, Other, None, E),
        ),
        (
            "DELETE",
            "/v2/plugins/providertypes/aws",
            "",
            Is(Global, Catalog, None, E),
        ),
        ("POST", "/v2/%74enants", "{}", Is(Global, Catalog, None, E)),
        (
            "DELETE",
            "/v2/plugins/automatortypes/chef/1",
            "",
            Is(Global, Catalog, None, E),
        ),
        (
            "POST",
            "/v2/plugins/automatortypes/chef/cookbooks/hadoop",
            "bytes",
            Is(Global, Catalog, None, E),
        ),
        (
            "POST",
            "/v2/plugins/automatortypes/chef/cookbooks/hadoop/versions/2/stage",
            "",
            Is(Global, Catalog, None, E),
        ),
        ("POST", "/v2/plugins/sync", "", Is(Global, Catalog, None, E)),
        // Internal API: provisioners talk to their own DC
        (
            "POST",
            "/v2/tasks/take",
            "{\"workerId\":\"w\"}",
            Is(Local, Internal, None, T),
        ),
        (
            "POST",
            "/v2/tasks/finish",
            "{\"taskId\":\"00000042-107-1234\",\"status\":0}",
            Is(Local, TaskFinish, Some(42), T),
        ),
        (
            "POST",
            "/v2/tasks/finish",
            "not json at all",
            Is(Local, TaskFinish, None, T),
        ),
        (
            "PUT",
            "/v2/provisioners/p1",
            "{}",
            Is(Local, Internal, None, T),
        ),
        (
            "POST",
            "/v2/provisioners/p1/heartbeat",
            "{}",
            Is(Local, Internal, None, T),
        ),
        (
            "DELETE",
            "/v2/provisioners/p1",
            "",
            Is(Local, Internal, None, T),
        ),
        (
            "GET",
            "/v2/tenants/t1/automatortypes/chef/cookbooks/hadoop/versions/2",
            "",
            Is(Local, Internal, None, T),
        ),
        (
            "PUT",
            "/v2/plugins/providertypes/aws",
            "{}",
            Is(Local, Internal, None, T),
        ),
        // Unknown paths stay local (Coopr answers 404).
        ("GET", "/", "", Is(Local, Other, None, E)),
        ("GET", "/v3/clusters/1", "", Is(Local, Other, None, E)),
        // Normalisation: empty segments and trailing slashes are ignored, escapes decoded.
        (
            "GET",
            "/v2//clusters//0042/",
            "",
            Is(Read, ClusterRead, Some(42), E),
        ),
        (
            "POST",
            "/v2/%63lusters/42/abort",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        (
            "DELETE",
            "/v2/clusters/%34%32",
            "",
            Is(Write, ClusterWrite, Some(42), E),
        ),
        // Bad ids and path tricks: 400.
        ("GET", "/v2/clusters/abc", "", Bad),
        ("GET", "/v2/clusters/-1/status", "", Bad),
        ("DELETE", "/v2/clusters/12345678901234567890", "", Bad),
        ("DELETE", "/v2/clusters/9999999999999999999", "", Bad),
        ("GET", "/v2/clusters//status", "", Bad),
        ("POST", "/v2/clusters/4%2F2/abort", "", Bad),
        ("POST", "/v2/clusters/4%5C2/abort", "", Bad),
        ("POST", "/v2/clusters/4\\2/abort", "", Bad),
        ("POST", "/v2/x\\y/clusters/42/abort", "", Bad),
        ("GET", "/v2/clusters/%2e%2e/42", "", Bad),
        ("POST", "/v2/clusters/../clusters/42/abort", "", Bad),
        ("GET", "/v2/clusters/./42", "", Bad),
        ("GET", "/v2/clusters/%ff", "", Bad),
        ("GET", "/v2/metrics/nodes/usage?cluster=x1", "", Bad),
        ("POST", "/v2/nodes", "[1,2]", Bad),
        ("POST", "/v2/nodes", "{not json", Bad),
        ("POST", "/v2/nodes", "{\"clusterId\":\"abc\"}", Bad),
        ("POST", "/v2/nodes", "{\"clusterId\":true}", Bad),
        ("POST", "/v2/getNodeProperties", "\u{0}\u{1}", Bad),
    ];
    let mut failures = Vec::new();
    for (method, target, body, want) in rows {
        let got = run(method, target, body);
        let ok = match (want, &got) {
            (Is(class, kind, cluster, api), Ok(c)) => {
                c.class == *class
                    && c.kind == *kind
                    && c.cluster.map(|id| id.get()) == *cluster
                    && c.api == *api
            }
            (Bad, Err(_)) => true,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{method} {target} body={body:?}: want {want:?}, got {got:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn body_rules_say_whether_a_body_must_fit() {
    let m = Method::POST;
    assert!(matches!(classify_head(&m, "/v2/nodes", None), Ok(Head::NeedBody(r)) if r.must_fit()));
    assert!(matches!(
        classify_head(&m, "/v2/tasks/finish", None),
        Ok(Head::NeedBody(BodyRule::TaskIdField))
    ));
    assert!(!BodyRule::TaskIdField.must_fit());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the input, classification answers without panicking, and a cluster it finds
        /// is one Coopr could store.
        #[test]
        fn never_panics(method in "(GET|POST|PUT|DELETE|HEAD|PATCH)", path in "(/[a-zA-Z0-9%.\\-]{0,12}){0,7}/?", body in ".{0,64}") {
            let _ = run(&method, &path, &body);
        }

        /// Any spelling of an id (padding, escapes, extra slashes) finds the same cluster.
        #[test]
        fn spellings_of_an_id_agree(n in 0u64..=i64::MAX as u64, pad in 0usize..12, slashes in 1usize..3) {
            let plain = run("GET", &format!("/v2/clusters/{n}/status"), "").unwrap();
            let s = "/".repeat(slashes);
            let padded = run("GET", &format!("{s}v2{s}clusters{s}{n:0>pad$}{s}status{s}"), "").unwrap();
            let escaped: String = n.to_string().bytes().map(|b| format!("%{b:02X}")).collect();
            let escaped = run("GET", &format!("/v2/clusters/{escaped}/status"), "").unwrap();
            prop_assert_eq!(plain.cluster.unwrap().get(), n);
            prop_assert_eq!(padded, plain);
            prop_assert_eq!(escaped, plain);
        }
    }
}
