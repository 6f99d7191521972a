//! The Debian packaging as shipped: the systemd unit keeps its hardening (its own user, no new
//! privileges, a read-only file system but the state directory, no capabilities, ...), and every
//! asset `[package.metadata.deb]` in Cargo.toml names exists (a binary asset names a `[[bin]]`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The unit's `[Service]` directives: key -> every value given (in order).
fn service() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(root().join("packaging/coopr-router.service")).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if section == "[Service]" {
            let (k, v) = line.split_once('=').unwrap();
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

#[test]
fn the_unit_is_hardened() {
    let s = service();
    let one = |k: &str| -> &str {
        let v = s
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing from the unit"));
        assert_eq!(v.len(), 1, "{k} given once");
        &v[0]
    };
    for (k, want) in [
        ("User", "coopr-router"),
        ("Group", "coopr-router"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/coopr-router"),
        ("StateDirectory", "coopr-router"),
        ("WorkingDirectory", "/var/lib/coopr-router"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ] {
        assert_eq!(one(k), want, "{k}");
    }
    assert!(!s.contains_key("DynamicUser"), "its own, named user");
    assert!(
        s["SystemCallFilter"].contains(&"@system-service".to_string()),
        "system calls limited to @system-service"
    );
    // The only writable path is the state directory, and the binary runs the packaged config.
    assert_eq!(
        s.keys()
            .filter(|k| k.starts_with("ReadWrite"))
            .collect::<Vec<_>>(),
        ["ReadWritePaths"]
    );
    assert!(one("ExecStart").starts_with("/usr/bin/coopr-router run --config /etc/coopr-router/"));
    // The user it names is the one the package creates.
    let sysusers = std::fs::read_to_string(root().join("packaging/coopr-router.sysusers")).unwrap();
    assert!(
        sysusers
            .lines()
            .any(|l| l.starts_with("u coopr-router - ") && l.ends_with(" /var/lib/coopr-router")),
        "{sysusers}"
    );
}

#[test]
fn every_deb_asset_exists() {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).unwrap()).unwrap();
    let deb = manifest["package"]["metadata"]["deb"].as_table().unwrap();
    let bins: Vec<&str> = manifest["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    let assets = deb["assets"].as_array().unwrap();
    let mut dests = Vec::new();
    for a in assets {
        let a = a.as_array().unwrap();
        let (src, dest, mode) = (
            a[0].as_str().unwrap(),
            a[1].as_str().unwrap(),
            a[2].as_str().unwrap(),
        );
        assert!(
            mode.len() == 3 && mode.chars().all(|c| ('0'..='7').contains(&c)),
            "{src}: mode {mode}"
        );
        if let Some(bin) = src.strip_prefix("target/release/") {
            assert!(bins.contains(&bin), "{src} is not a [[bin]] of the crate");
        } else {
            assert!(root().join(src).is_file(), "deb asset {src} does not exist");
        }
        dests.push(dest);
    }
    for want in [
        "usr/bin/",
        "usr/lib/systemd/system/",
        "usr/lib/sysusers.d/coopr-router.conf",
        "usr/share/doc/coopr-router/examples/",
    ] {
        assert!(dests.contains(&want), "nothing installed to {want}");
    }
    // Every example config in config/ is shipped.
    for e in std::fs::read_dir(root().join("config")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        let src = format!("config/{name}");
        assert!(
            assets.iter().any(|a| a[0].as_str() == Some(src.as_str())),
            "{src} is not packaged"
        );
    }
    let scripts = deb["maintainer-scripts"].as_str().unwrap();
    let postinst = std::fs::read_to_string(root().join(scripts).join("postinst")).unwrap();
    assert!(postinst.contains("systemd-sysusers /usr/lib/sysusers.d/coopr-router.conf"));
}
