//! The router in front of a server that behaves like Coopr (issue "In front of real Coopr"):
//! ids go on as Coopr writes them, Coopr's service credential, and no secret leaves its DC.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use http::{Method, StatusCode};
use std::time::Duration;
use support::*;

/// A cluster written with an unpadded id reaches Coopr padded (`%08d`), from the owner DC and
/// forwarded from another one, so Coopr's job ids and its plan lookups agree.
#[tokio::test]
async fn unpadded_ids_reach_coopr_padded() {
    let d = start(Duration::from_millis(50)).await;
    let id = create_active(&d.dcs[0], "pad").await;
    let n: u64 = id.parse().unwrap();
    assert_eq!(id, format!("{n:08}"));
    // Through the owner DC, then forwarded from dc2: both arrive padded.
    let r = call(
        Method::POST,
        &d.dcs[0].url(&format!("/v2/clusters/{n}/pause")),
        &ADMIN,
        "",
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    assert!(d.dcs[0].log_has("POST", &format!("/v2/clusters/{id}/pause")));
    assert!(!d.dcs[0].log_has("POST", &format!("/v2/clusters/{n}/pause")));
    let r = call(
        Method::DELETE,
        &d.dcs[1].url(&format!("/v2/clusters/{n}")),
        &ADMIN,
        "",
    )
    .await;
    assert!(r.status.is_success(), "{} {}", r.status, r.text());
    assert!(d.dcs[0].log_has("DELETE", &format!("/v2/clusters/{id}")));
    assert!(!d.dcs[0].log_has("DELETE", &format!("/v2/clusters/{n}")));
    // A read with an unpadded id is answered too.
    let r = get(&d.dcs[0].url(&format!("/v2/clusters/{n}/status"))).await;
    assert_eq!(r.status, StatusCode::OK);
}
