//! Prometheus metrics (through the `metrics` crate): the recorder, and the text `/metrics`
//! serves. Placeholder until the instrumentation lands.

/// The Prometheus text exposition of every metric recorded so far.
pub fn render() -> String {
    String::new()
}
