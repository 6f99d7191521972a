//! Which pool lane the current thread takes upstream connections from. A serving thread
//! (`server::workers`) runs an event loop of its own, and a connection it opened is registered
//! with that loop: used from another thread, every readiness event would cross threads (a
//! wake-up through the kernel each way). So each serving thread keeps its own idle
//! connections: the pool keys them by lane as well as by upstream. Every other thread (the
//! shared runtime's: health checks, replication, admin) is lane 0.

use std::cell::Cell;

thread_local! {
    static LANE: Cell<u32> = const { Cell::new(0) };
}

/// Makes this thread take its upstream connections from lane `lane` (a serving thread calls it
/// once, when it starts).
pub fn set(lane: u32) {
    LANE.with(|l| l.set(lane));
}

/// This thread's lane (0 unless [`set`] said otherwise).
pub fn current() -> u32 {
    LANE.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_is_the_threads_own() {
        assert_eq!(current(), 0, "a thread starts in lane 0");
        set(3);
        assert_eq!(current(), 3);
        let other = std::thread::spawn(current).join().unwrap();
        assert_eq!(other, 0, "another thread keeps its own lane");
        set(0);
    }
}
