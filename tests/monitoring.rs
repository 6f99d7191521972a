//! The monitoring files in docs/monitoring (Prometheus alert rules, a Grafana dashboard) name
//! only metrics the router exports, with labels it sets: renaming a metric without them fails
//! here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

/// The source of the `metrics` module: every file of `src/metrics/`, in name order.
fn metrics_src() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/metrics");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    assert!(
        files.len() > 1,
        "{} holds the metrics module",
        dir.display()
    );
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// Every `coopr_router_*` name in `text`.
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("coopr_router_") {
        let tail = &rest[i..];
        let n: String = tail
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        out.insert(n.clone());
        rest = &tail[n.len().max(1)..];
    }
    out
}

/// The metric names `src/metrics/` declares (`pub const X: &str = "coopr_router_..."`), and
/// which of them are histograms.
fn exported() -> (BTreeSet<String>, BTreeSet<String>) {
    let src = metrics_src();
    let mut all = BTreeSet::new();
    let mut histograms = BTreeSet::new();
    for line in src.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("pub const ")
            && let Some((konst, value)) = rest.split_once(": &str = \"")
        {
            let value = value.trim_end_matches("\";").to_string();
            if src.contains(&format!("histogram!({konst}")) {
                histograms.insert(value.clone());
            }
            all.insert(value);
        }
    }
    (all, histograms)
}

#[test]
fn every_metric_the_monitoring_files_name_is_exported() {
    let (all, histograms) = exported();
    assert!(all.len() > 15, "src/metrics/ was read: {all:?}");
    assert!(histograms.contains("coopr_router_request_duration_seconds"));
    for file in [
        "docs/monitoring/alerts.yml",
        "docs/monitoring/dashboard.json",
    ] {
        let used = names(&read(file));
        assert!(used.len() >= 6, "{file} names metrics: {used:?}");
        for n in used {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s).filter(|b| histograms.contains(*b)))
                .unwrap_or(&n);
            assert!(
                all.contains(base),
                "{file} names {n}, which the router does not export"
            );
        }
    }
}

#[test]
fn the_files_parse_and_use_labels_the_router_sets() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("docs/monitoring/dashboard.json")).unwrap();
    assert!(dash["panels"].as_array().is_some_and(|p| p.len() >= 8));
    let alerts = read("docs/monitoring/alerts.yml");
    assert!(alerts.contains("groups:") && alerts.matches("- alert:").count() >= 6);
    let metrics = metrics_src();
    for label in ["kind", "route", "reason", "peer", "dc"] {
        assert!(
            metrics.contains(&format!("\"{label}\"")),
            "label {label} is set by src/metrics/"
        );
    }
    // The checker itself: a made-up name is not exported.
    assert!(!exported().0.contains("coopr_router_made_up_total"));
}
