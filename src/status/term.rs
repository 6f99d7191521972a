//! `coopr-router status` in the terminal: one router's status document (`/admin/status.json`),
//! its readiness and its operation counts rendered as plain text (pure: the caller fetches).

use serde_json::Value;
use std::fmt::Write;

/// What the CLI read from one router's admin port.
pub struct Read {
    /// The admin URL it was read from.
    pub admin: String,
    /// `GET /admin/status.json`, or why it could not be read.
    pub status: Result<Value, String>,
    /// `GET /ready`: whether it answered 200, and the failed checks otherwise.
    pub ready: Result<(bool, Vec<String>), String>,
    /// `GET /admin/operations?state=open` and `?state=interrupted`: how many, or why not.
    pub open: Result<usize, String>,
    pub interrupted: Result<usize, String>,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn age(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 120_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min", ms / 60_000)
    }
}

/// The text for one router; `now_ms` dates the changes ("12 s ago").
pub fn render(r: &Read, now_ms: u64) -> String {
    let mut o = String::new();
    let st = match &r.status {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(o, "== {}: DOWN ({e})", r.admin);
            return o;
        }
    };
    let ready = match &r.ready {
        Ok((true, _)) => "ready".to_string(),
        Ok((false, failed)) => format!("NOT READY ({})", failed.join(", ")),
        Err(e) => format!("readiness unknown ({e})"),
    };
    let fence = if st["stale"] == true {
        "STALE map"
    } else if st["fenced"] == true {
        "FENCED"
    } else {
        "not fenced"
    };
    let _ = writeln!(
        o,
        "== {} ({})  {ready}  map: {}, revision {}, {fence}",
        s(&st["dc"]),
        r.admin,
        s(&st["source"]),
        s(&st["revision"])
    );
    let empty = Vec::new();
    let shards = st["shards"].as_array().unwrap_or(&empty);
    let handoffs = shards.iter().filter(|x| !x["handoff_to"].is_null()).count();
    let _ = writeln!(
        o,
        "shards: {} (shard owner/epoch{})",
        shards.len(),
        if handoffs > 0 {
            format!("; {handoffs} handing off, marked ->DC")
        } else {
            String::new()
        }
    );
    for row in shards.chunks(5) {
        let cells: Vec<String> = row
            .iter()
            .map(|x| {
                let mut c = format!(
                    "{:>4} {}/{}",
                    s(&x["shard"]),
                    s(&x["owner"]),
                    s(&x["epoch"])
                );
                if !x["handoff_to"].is_null() {
                    let _ = write!(c, "->{}", s(&x["handoff_to"]));
                }
                format!("{c:<16}")
            })
            .collect();
        let _ = writeln!(o, " {}", cells.join("").trim_end());
    }
    let pins = st["pins"].as_array().unwrap_or(&empty);
    if !pins.is_empty() {
        let _ = writeln!(o, "pins (ids -> DC, whatever their shard):");
        for p in pins {
            let _ = writeln!(
                o,
                "  {}..={} -> {}  epoch {}",
                s(&p["lo"]),
                s(&p["hi"]),
                s(&p["dc"]),
                s(&p["epoch"])
            );
        }
    }
    let failback = st["failback"].as_array().unwrap_or(&empty);
    if !failback.is_empty() {
        let _ = writeln!(o, "failback waiting (shards away from home, and why):");
        for w in failback {
            let detail = match (&w["by"], &w["remaining_ms"]) {
                (Value::String(by), _) => format!(" (moved by {by})"),
                (_, Value::Number(ms)) => format!(" ({ms} ms left)"),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "  shard {} at {}, home {}: {}{detail}",
                s(&w["shard"]),
                s(&w["owner"]),
                s(&w["home"]),
                s(&w["reason"]),
            );
        }
    }
    let _ = writeln!(o, "DCs:");
    for d in st["dcs"].as_array().unwrap_or(&empty) {
        let name = s(&d["name"]);
        let owned = shards.iter().filter(|x| s(&x["owner"]) == name).count();
        let _ = writeln!(
            o,
            "  {name:<8} {:<8} {:<5} owns {owned:>3} shards  creates: {}",
            if d["local"] == true {
                "this DC"
            } else {
                "peer"
            },
            if d["up"] == true { "up" } else { "DOWN" },
            if d["owns_all_home_shards"] == true {
                "yes"
            } else {
                "no"
            },
        );
    }
    let _ = writeln!(o, "local Coopr servers:");
    for b in st["backends"].as_array().unwrap_or(&empty) {
        let _ = writeln!(
            o,
            "  {} {}",
            s(&b["url"]),
            if b["healthy"] == true { "up" } else { "DOWN" }
        );
    }
    if st["replication"]["enabled"] == true {
        let _ = writeln!(o, "replication (queued, lag = age of the oldest queued):");
        for p in st["replication"]["peers"].as_array().unwrap_or(&empty) {
            let lag = p["oldest_age_ms"].as_u64().map_or("-".into(), age);
            let _ = writeln!(
                o,
                "  {:<8} queued {:>6}  lag {lag}",
                s(&p["peer"]),
                s(&p["queued"])
            );
        }
    } else {
        let _ = writeln!(o, "replication: not enabled");
    }
    let count = |c: &Result<usize, String>| match c {
        Ok(n) => n.to_string(),
        Err(e) => format!("? ({e})"),
    };
    let _ = writeln!(
        o,
        "operations: open {}, interrupted {}",
        count(&r.open),
        count(&r.interrupted)
    );
    let changes = st["changes"].as_array().unwrap_or(&empty);
    if changes.is_empty() {
        let _ = writeln!(o, "last ownership changes: none since this router started");
    } else {
        let _ = writeln!(o, "last ownership changes (newest first):");
        for c in changes.iter().take(10) {
            let when = c["at_ms"].as_u64().map_or("?".into(), |t| {
                format!("{} ago", age(now_ms.saturating_sub(t)))
            });
            let what = match c["what"].as_str() {
                Some("owner") => format!("{} -> {}", s(&c["from"]), s(&c["to"])),
                Some("handoff_started") => {
                    format!("handoff {} -> {} started", s(&c["from"]), s(&c["to"]))
                }
                Some("handoff_ended") => format!(
                    "handoff to {} withdrawn ({} stays)",
                    s(&c["from"]),
                    s(&c["to"])
                ),
                _ => format!("new epoch ({})", s(&c["to"])),
            };
            let _ = writeln!(
                o,
                "  {when:>12}  revision {}  shard {}  {what}  epoch {}",
                s(&c["revision"]),
                s(&c["shard"]),
                s(&c["epoch"])
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "dc": "dc1", "revision": 7, "source": "etcd", "stale": false, "fenced": true,
            "dcs": [
                {"name": "dc1", "local": true, "up": true, "owns_all_home_shards": true},
                {"name": "dc2", "local": false, "up": false, "owns_all_home_shards": false},
            ],
            "shards": [
                {"shard": 0, "owner": "dc1", "epoch": 3, "handoff_to": null},
                {"shard": 1, "owner": "dc2", "epoch": 4, "handoff_to": "dc1"},
            ],
            "backends": [{"url": "http://127.0.0.1:1/", "healthy": true}],
            "pins": [{"lo": 1, "hi": 5000, "dc": "dc2", "epoch": 9}],
            "failback": [{"shard": 1, "owner": "dc2", "home": "dc1", "reason": "not_alive_long_enough", "remaining_ms": 1200}],
            "replication": {"enabled": true, "peers": [{"peer": "dc2", "queued": 5, "oldest_age_ms": 2500}]},
            "changes": [{"at_ms": 10_000, "revision": 7, "shard": 0, "what": "owner", "from": "dc2", "to": "dc1", "epoch": 3}],
        })
    }

    #[test]
    fn every_part_of_the_document_is_shown() {
        let r = Read {
            admin: "http://a".into(),
            status: Ok(doc()),
            ready: Ok((false, vec!["not_fenced".into()])),
            open: Ok(2),
            interrupted: Err("needs the admin token".into()),
        };
        let out = render(&r, 22_000);
        for want in [
            "== dc1 (http://a)  NOT READY (not_fenced)  map: etcd, revision 7, FENCED",
            "   0 dc1/3",
            "   1 dc2/4->dc1",
            "1 handing off",
            "dc1      this DC  up    owns   1 shards  creates: yes",
            "dc2      peer     DOWN  owns   1 shards  creates: no",
            "http://127.0.0.1:1/ up",
            "dc2      queued      5  lag 2.5 s",
            "operations: open 2, interrupted ? (needs the admin token)",
            "12.0 s ago  revision 7  shard 0  dc2 -> dc1  epoch 3",
            "  1..=5000 -> dc2  epoch 9",
            "  shard 1 at dc2, home dc1: not_alive_long_enough (1200 ms left)",
        ] {
            assert!(out.contains(want), "missing {want:?} in\n{out}");
        }
    }

    #[test]
    fn an_unreachable_router_is_one_line() {
        let r = Read {
            admin: "http://b".into(),
            status: Err("connection refused".into()),
            ready: Err(String::new()),
            open: Ok(0),
            interrupted: Ok(0),
        };
        assert_eq!(render(&r, 0), "== http://b: DOWN (connection refused)\n");
    }
}
