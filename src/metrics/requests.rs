//! Recording the traffic: answered requests (cached handles per route, class, status class and
//! DC), the router's own error responses, open and parked connections, failed TLS handshakes.

use super::labels::{CLASSES, ROUTES, STATUSES, status_index};
use super::names::{
    HTTP1_TO_HYPER, PEER_LINKS_OPENED, PEER_OVER_HTTP1, REQUEST_DURATION, REQUESTS,
    TLS_HANDSHAKE_FAILURES,
};
use super::registry::{install, state};
use ::metrics::Gauge;

/// One answered request: its route kind (`local`, `forwarded`, `error`), class (`read`,
/// `write`, `local`, `none`), HTTP status, the DC it went to, and seconds to the response head.
pub fn request(route: &'static str, class: &'static str, status: u16, dc: &str, seconds: f64) {
    let s = state();
    let st = status_index(status);
    let status = STATUSES[st];
    let (Some(r), Some(c)) = (
        ROUTES.iter().position(|&x| x == route),
        CLASSES.iter().position(|&x| x == class),
    ) else {
        // A label outside the cached sets: correct, just slower.
        ::metrics::counter!(REQUESTS, "route" => route, "class" => class, "status" => status, "dc" => dc.to_string())
            .increment(1);
        ::metrics::histogram!(REQUEST_DURATION, "route" => route, "class" => class).record(seconds);
        return;
    };
    s.with_dc(dc, |slots| {
        slots.counters[(r * CLASSES.len() + c) * STATUSES.len() + st]
            .get_or_init(|| {
                ::metrics::counter!(REQUESTS, "route" => route, "class" => class, "status" => status, "dc" => slots.dc.to_string())
            })
            .increment(1);
    });
    s.durations[r * CLASSES.len() + c]
        .get_or_init(|| ::metrics::histogram!(REQUEST_DURATION, "route" => route, "class" => class))
        .record(seconds);
}

/// A response the router made itself; `kind` is `ProxyError::kind()`.
pub fn upstream_error(kind: &'static str) {
    state()
        .errors
        .get(
            kind,
            |name, label, value| ::metrics::counter!(name, label => value),
        )
        .increment(1);
}

/// The gauge of `listener`'s open connections (a listener keeps it; see [`Counted`]).
pub fn open_connections(listener: &'static str) -> Gauge {
    state().connections.get(
        listener,
        |name, label, value| ::metrics::gauge!(name, label => value),
    )
}

/// A serving thread started (its pool lane and runtime): `/metrics` shows its live tasks
/// until [`serving_thread_stopped`].
pub fn serving_thread_started(lane: u32, rt: tokio::runtime::Handle) {
    let gauge = ::metrics::gauge!(super::SERVING_THREAD_TASKS, "thread" => lane.to_string());
    state()
        .serving
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((lane, gauge, rt));
}

/// A serving thread stopped: its series reads 0 from now on.
pub fn serving_thread_stopped(lane: u32) {
    state()
        .serving
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|(l, gauge, _)| {
            if *l == lane {
                gauge.set(0.0);
            }
            *l != lane
        });
}

/// The gauge of `listener`'s parked connections.
pub fn parked_connections(listener: &'static str) -> Gauge {
    state().parked.get(
        listener,
        |name, label, value| ::metrics::gauge!(name, label => value),
    )
}

/// Counts one in a gauge its owner keeps (a listener's open or parked connections) until
/// dropped, also when its task is cancelled: one pointer, not the gauge's handle, as it is
/// part of what every parked connection keeps.
pub struct Counted<'a>(&'a Gauge);

impl<'a> Counted<'a> {
    pub fn new(gauge: &'a Gauge) -> Self {
        gauge.increment(1.0);
        Counted(gauge)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Counts a TLS handshake that was refused or did not finish in time (rare: no handle cache).
pub fn tls_handshake_failed(listener: &'static str) {
    install();
    ::metrics::counter!(TLS_HANDSHAKE_FAILURES, "listener" => listener).increment(1);
}

/// Counts an HTTP/1.1 request the router's own server left to hyper's (rare: no handle cache).
pub fn http1_to_hyper(listener: &'static str) {
    install();
    ::metrics::counter!(HTTP1_TO_HYPER, "listener" => listener).increment(1);
}

/// Counts an HTTP/2 connection opened to a peer router (rare: no handle cache).
pub fn peer_link_opened(peer: &str) {
    install();
    ::metrics::counter!(PEER_LINKS_OPENED, "peer" => peer.to_string()).increment(1);
}

/// Counts a request forwarded over HTTP/1.1 while HTTP/2 links are on (rare: no handle cache).
pub fn peer_over_http1(why: &'static str) {
    install();
    ::metrics::counter!(PEER_OVER_HTTP1, "why" => why).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::render;

    #[test]
    fn uncached_labels_and_many_dcs_are_recorded() {
        request("replica", "read", 200, "dc9", 0.001);
        request("someday", "read", 200, "dc9", 0.001);
        for dc in ["a", "b", "a", "c"] {
            request("local", "write", 503, dc, 0.002);
        }
        let text = render();
        for want in [
            r#"coopr_router_requests_total{route="replica",class="read",status="2xx",dc="dc9"}"#,
            r#"coopr_router_requests_total{route="someday",class="read",status="2xx",dc="dc9"}"#,
            r#"coopr_router_requests_total{route="local",class="write",status="5xx",dc="a"} 2"#,
        ] {
            assert!(text.contains(want), "{want}\n{text}");
        }
    }
}
