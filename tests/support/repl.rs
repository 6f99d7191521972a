//! Replication's end-to-end setup, shared by the tests that turn it on: each DC's
//! `[replication]` section (its own store in the test's folder, polls and retries of 20..200 ms)
//! with the admin token, a relay that taps what dc1 sends dc2, and waiting until every new
//! store has asked its owners for their full state.

use super::relay::Options;
use super::{Deployment, call, eventually};
use http::Method;
use std::path::Path;
use std::time::Duration;

/// Each DC `i`'s extra config: `[admin]` with `token` (when given), then `[replication]` on with
/// its store at `{dir}/dc{i+1}.redb`, polls and retries of 20..200 ms, and `more` (further
/// `[replication]` keys, one a line).
pub fn extra(dir: &Path, token: Option<&str>, more: &str) -> impl Fn(usize) -> String + use<> {
    let dir = dir.to_path_buf();
    let admin = token.map_or(String::new(), |t| format!("[admin]\ntoken = \"{t}\"\n\n"));
    let more = more.to_string();
    move |i| {
        format!(
            "{admin}[replication]\nenabled = true\npath = \"{}/dc{}.redb\"\npoll_min_ms = 20\npoll_max_ms = 200\nretry_min_ms = 20\nretry_max_ms = 200\n{more}",
            dir.display(),
            i + 1
        )
    }
}

/// A relay that keeps a copy of everything it passes, with no delay.
pub fn tapped() -> Options {
    Options {
        delay: Duration::ZERO,
        tap: true,
    }
}

/// For `start_relayed`: keep a copy of what dc1 sends dc2, relay every other pair untouched.
pub fn tap_dc1_to_dc2(from: usize, to: usize) -> Option<Options> {
    (from == 0 && to == 1).then(tapped)
}

/// Waits until no running router still has to ask a peer for its full state (a new store asks
/// each owner once, `/replication/v1/resync`) and none owes a peer one, read from each
/// router's `/admin/status.json` with `token`: tests that count the records a peer received
/// start from there.
pub async fn asks_settled(d: &Deployment, token: &str) {
    let auth = format!("Bearer {token}");
    for dc in d.dcs.iter().filter(|dc| dc.router.is_some()) {
        let url = dc.admin_url("/admin/status.json");
        eventually(
            Duration::from_secs(20),
            "every new store asked its owners, and none owes a peer the full state",
            || async {
                let v = call(Method::GET, &url, &[("authorization", auth.as_str())], "")
                    .await
                    .json();
                v["replication"]["peers"]
                    .as_array()?
                    .iter()
                    .all(|p| p["asking"] == false && p["owed"] == false)
                    .then_some(())
            },
        )
        .await;
    }
}
