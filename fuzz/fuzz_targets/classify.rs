//! Fuzzes classification: method, path, query and body bytes to a classification. It must never
//! panic, and a cluster it finds must be one Coopr could store (0..=i64::MAX), found the same
//! way for the body rule's answer.

#![no_main]

use coopr_router::classify::{Head, classify_body, classify_head};
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    // Layout: method selector, then path, query and body separated by 0xFF bytes.
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = http::Method::from_bytes(METHODS[usize::from(m) % METHODS.len()].as_bytes())
        .unwrap_or(http::Method::GET);
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let query = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or_default();
    match classify_head(&method, &path, query.as_deref()) {
        Ok(Head::Done(c)) => {
            if let Some(id) = c.cluster {
                assert!(id.get() <= i64::MAX as u64);
            }
        }
        Ok(Head::NeedBody(rule)) => {
            if let Ok(c) = classify_body(rule, body)
                && let Some(id) = c.cluster
            {
                assert!(id.get() <= i64::MAX as u64);
            }
        }
        Err(_) => {}
    }
});
