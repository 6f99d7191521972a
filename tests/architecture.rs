//! ARCHITECTURE.md's structural invariants, checked on the source: the module graph of `src/`
//! (top-level modules and files) has no cycle, and each layering rule written there as an
//! absence ("the proxy never imports etcd") holds. The graph is read from the `crate::` and
//! `super::` paths of every file (test modules left out), and from a `mod.rs`'s `use child::`.
//! A file naming its own parent module (`super::Thing` defined in the `mod.rs` above it) is
//! that module's inside, not an edge.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file of the library: its module path (`proxy/request`, `proxy` for
/// `proxy/mod.rs`) and its text without comments and test modules.
struct File {
    module: String,
    /// The module its `super::` means.
    parent: String,
    /// Whether it is a `mod.rs` (or `lib.rs`), whose bare `use child::` names a child.
    is_dir_module: bool,
    code: String,
    raw: String,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Drops `//` comments (not inside string literals) and everything from the first
/// `#[cfg(test)]` on (test modules sit at the end of a file here).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = String::new();
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            }
            if !in_str && c == '/' && prev == '/' {
                cut = i - 1;
                break;
            }
            prev = c;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

fn files() -> Vec<File> {
    let root = src();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    let mut out = Vec::new();
    for p in paths {
        let rel = p
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        // The binaries (`main.rs` with its `cli/` modules, `bin/`) are entry points, not
        // library modules; `*_tests.rs` are test modules.
        if rel == "main.rs"
            || rel.starts_with("cli/")
            || rel.starts_with("bin/")
            || rel.ends_with("_tests.rs")
        {
            continue;
        }
        let stem = rel.trim_end_matches(".rs");
        let (module, is_dir_module) = if stem == "lib" {
            (String::new(), true)
        } else if let Some(dir) = stem.strip_suffix("/mod") {
            (dir.to_string(), true)
        } else {
            (stem.to_string(), false)
        };
        let parent = match module.rsplit_once('/') {
            Some((p, _)) => p.to_string(),
            None => String::new(),
        };
        let raw = std::fs::read_to_string(&p).unwrap();
        out.push(File {
            parent: if is_dir_module {
                parent
            } else {
                module_dir(&module)
            },
            module,
            is_dir_module,
            code: code_of(&raw),
            raw,
        });
    }
    out
}

fn module_dir(module: &str) -> String {
    match module.rsplit_once('/') {
        Some((p, _)) => p.to_string(),
        None => String::new(),
    }
}

/// The paths that follow `prefix` in `code`: `crate::a::b` gives `a/b`; a group
/// `crate::{a::b, c}` gives `a/b` and `c`.
fn paths_after(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find(';').unwrap_or(group.len());
            let mut depth = 0;
            let mut start = true;
            let mut cur = String::new();
            for c in group[..end].chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !cur.is_empty() {
                            out.push(cur.replace("::", "/"));
                        }
                        cur.clear();
                        start = true;
                        continue;
                    }
                    _ => {}
                }
                if start && depth == 0 && (c.is_alphanumeric() || c == '_' || c == ':') {
                    cur.push(c);
                } else if !c.is_whitespace() && depth == 0 {
                    start = false;
                }
            }
            if !cur.is_empty() {
                out.push(cur.replace("::", "/"));
            }
        } else {
            let p: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(p.trim_end_matches(':').replace("::", "/"));
        }
    }
    out
}

/// The module of `known` that a path names: its longest prefix that is a module.
fn resolve(path: &str, known: &BTreeSet<String>) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    (1..=parts.len())
        .rev()
        .map(|k| parts[..k].join("/"))
        .find(|m| known.contains(m))
}

type Graph = BTreeMap<String, BTreeSet<String>>;

/// File-level edges: module -> modules it names.
fn file_graph(files: &[File]) -> Graph {
    let known: BTreeSet<String> = files.iter().map(|f| f.module.clone()).collect();
    let mut g = Graph::new();
    for f in files {
        let mut targets: Vec<String> = paths_after(&f.code, "crate::");
        for p in paths_after(&f.code, "super::") {
            targets.push(if f.parent.is_empty() {
                p
            } else {
                format!("{}/{p}", f.parent)
            });
        }
        if f.is_dir_module {
            for line in f.code.lines() {
                let l = line.trim_start().trim_start_matches("pub ");
                if let Some(rest) = l.strip_prefix("use ") {
                    let child: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    let full = if f.module.is_empty() {
                        child
                    } else {
                        format!("{}/{child}", f.module)
                    };
                    targets.push(full);
                }
            }
        }
        let edges = g.entry(f.module.clone()).or_default();
        for t in targets {
            // A file may use what its own parent module defines (`super::Thing` in a child of
            // `mod.rs`): that is one module's inside, not a loop between two.
            if let Some(m) = resolve(&t, &known)
                && m != f.module
                && !f.module.starts_with(&format!("{m}/"))
                && !m.is_empty()
            {
                edges.insert(m);
            }
        }
    }
    g
}

fn top(module: &str) -> &str {
    module.split('/').next().unwrap_or(module)
}

/// Top-level edges: `proxy/peer -> upstream/pool` is `proxy -> upstream`.
fn top_graph(files: &Graph) -> Graph {
    let mut g = Graph::new();
    for (a, bs) in files {
        for b in bs {
            if top(a) != top(b) && !top(a).is_empty() && !top(b).is_empty() {
                g.entry(top(a).to_string())
                    .or_default()
                    .insert(top(b).to_string());
            }
        }
    }
    g
}

/// Every cycle's members (strongly connected components of more than one node).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    // Kosaraju: order by finish time, then walk the reversed graph.
    let nodes: BTreeSet<&String> = g.keys().chain(g.values().flatten()).collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    fn dfs<'a>(
        n: &'a String,
        g: &'a Graph,
        seen: &mut BTreeSet<&'a String>,
        order: &mut Vec<&'a String>,
    ) {
        if !seen.insert(n) {
            return;
        }
        for m in g.get(n).into_iter().flatten() {
            dfs(m, g, seen, order);
        }
        order.push(n);
    }
    for n in &nodes {
        dfs(n, g, &mut seen, &mut order);
    }
    let mut rev: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (a, bs) in g {
        for b in bs {
            rev.entry(b).or_default().push(a);
        }
    }
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for n in order.into_iter().rev() {
        if done.contains(n) {
            continue;
        }
        let mut comp = Vec::new();
        let mut stack = vec![n];
        while let Some(x) = stack.pop() {
            if !done.insert(x) {
                continue;
            }
            comp.push(x.clone());
            stack.extend(rev.get(x).into_iter().flatten());
        }
        if comp.len() > 1 {
            comp.sort();
            out.push(comp);
        }
    }
    out
}

#[test]
fn no_module_loop() {
    let g = top_graph(&file_graph(&files()));
    assert!(g.len() > 10, "the graph was read: {g:?}");
    assert_eq!(
        cycles(&g),
        Vec::<Vec<String>>::new(),
        "top-level modules: {g:#?}"
    );
}

#[test]
fn no_file_loop() {
    let g = file_graph(&files());
    assert_eq!(cycles(&g), Vec::<Vec<String>>::new(), "files: {g:#?}");
}

/// `from` (a top-level module) names none of `forbidden`.
fn never_imports(from: &str, forbidden: &[&str]) {
    let files = files();
    assert!(
        files.iter().any(|f| top(&f.module) == from),
        "{from} is a module of src/"
    );
    let g = top_graph(&file_graph(&files));
    let uses = g.get(from).cloned().unwrap_or_default();
    for f in forbidden {
        assert!(
            !uses.contains(*f),
            "{from} must not import {f}; it imports {uses:?}"
        );
    }
}

#[test]
fn the_proxy_never_imports_a_source_a_listener_or_replication() {
    never_imports(
        "proxy",
        &[
            "etcd",
            "replication",
            "server",
            "tls",
            "admin",
            "reload",
            "app",
            "health",
        ],
    );
}

#[test]
fn replication_knows_no_listener() {
    never_imports(
        "replication",
        &["server", "admin", "app", "etcd", "reload", "health"],
    );
}

#[test]
fn failover_and_handoff_never_import_the_proxy() {
    never_imports("etcd", &["proxy", "server", "admin", "app"]);
    never_imports("failover", &["proxy", "etcd", "replication", "server"]);
}

#[test]
fn health_and_upstream_know_no_proxy() {
    never_imports("health", &["proxy", "replication", "etcd", "server"]);
    never_imports(
        "upstream",
        &["proxy", "replication", "etcd", "server", "runtime"],
    );
}

#[test]
fn the_table_knows_no_source() {
    never_imports(
        "routing",
        &[
            "etcd",
            "ownership",
            "reload",
            "proxy",
            "replication",
            "upstream",
        ],
    );
}

#[test]
fn the_pure_core_does_no_io() {
    // classify, ids, routing::decide, failover::step and failover::failback name nothing that does I/O.
    let g = file_graph(&files());
    let io = [
        "etcd",
        "server",
        "upstream",
        "replication",
        "proxy",
        "health",
        "runtime",
        "tls",
    ];
    for m in [
        "classify",
        "ids",
        "routing/decide",
        "failover/step",
        "failover/failback",
    ] {
        let uses = g.get(m).cloned().unwrap_or_default();
        for u in &uses {
            assert!(
                !io.contains(&top(u)),
                "{m} must do no I/O, yet it names {u}"
            );
        }
        let raw = files()
            .into_iter()
            .find(|f| f.module == m)
            .map(|f| f.code)
            .unwrap();
        for word in [
            "tokio::",
            "std::fs",
            "std::net",
            "hyper::",
            "Instant::now",
            "SystemTime",
        ] {
            assert!(
                !raw.contains(word),
                "{m} must do no I/O, yet it names {word}"
            );
        }
    }
}

#[test]
fn crates_stay_where_they_belong() {
    for f in files() {
        if !f.module.starts_with("etcd") {
            assert!(
                !f.raw.contains("etcd_client"),
                "{} imports etcd_client",
                f.module
            );
        }
        assert!(
            !f.raw.contains("anyhow"),
            "{} uses anyhow (bins only)",
            f.module
        );
        assert!(
            !f.raw.contains("legacy::Client"),
            "{} has an HTTP client of its own (use upstream)",
            f.module
        );
        assert!(
            !f.raw.contains("too_many_arguments"),
            "{} passes too many arguments (use the request context)",
            f.module
        );
    }
}

#[test]
fn the_checker_finds_a_loop() {
    // The reader and the cycle finder themselves: a made-up pair of files that import each
    // other is a loop, and a group import is read.
    let a = File {
        module: "a".into(),
        parent: String::new(),
        is_dir_module: false,
        code: code_of("use crate::{b::X, c};\n// crate::d\n"),
        raw: String::new(),
    };
    let b = File {
        module: "b".into(),
        parent: String::new(),
        is_dir_module: false,
        code: code_of("fn f() { crate::a::g() }"),
        raw: String::new(),
    };
    let c = File {
        module: "c".into(),
        parent: String::new(),
        is_dir_module: false,
        code: String::new(),
        raw: String::new(),
    };
    let d = File {
        module: "d".into(),
        parent: String::new(),
        is_dir_module: false,
        code: String::new(),
        raw: String::new(),
    };
    let g = file_graph(&[a, b, c, d]);
    assert_eq!(
        g["a"],
        ["b", "c"].iter().map(|s| s.to_string()).collect(),
        "a comment is not an import"
    );
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
}

#[test]
fn lints_live_in_one_place() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for rule in [
        "unsafe_code = \"forbid\"",
        "unwrap_used = \"deny\"",
        "expect_used = \"deny\"",
        "panic = \"deny\"",
    ] {
        assert!(manifest.contains(rule), "Cargo.toml [lints] has {rule}");
    }
    for f in files() {
        assert!(
            !f.code.contains("#![allow(clippy::unwrap_used")
                && !f.code.contains("#[allow(clippy::unwrap_used"),
            "{} lifts the unwrap lint outside tests",
            f.module
        );
    }
}
