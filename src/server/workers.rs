//! The serving threads (`listen.threads`): each runs an event loop of its own (a current-thread
//! tokio runtime) and serves whole connections handed to it by the accept loops. A connection,
//! its requests and the upstream connections they use (the pool's lane of that thread,
//! `upstream::lane`) live on one thread: no task moves between threads and no thread wakes
//! another on the request path (on the shared multi-thread runtime, a worker woke a sleeping
//! one for about one request in ten, through `futex`; load/README.md). An accepted connection
//! goes to the thread with the fewest live tasks.
//!
//! The threads stop when the last [`Workers`] handle is dropped: each leaves its event loop,
//! and what still runs there (connections past the shutdown grace) is dropped with it.

use std::future::Future;
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The serving threads (cheap to clone: every listener of a router shares them).
#[derive(Clone)]
pub struct Workers(Arc<Inner>);

struct Inner {
    /// One runtime handle per thread.
    lanes: Box<[Handle]>,
    /// Dropped with the last handle: each thread's signal to stop.
    _stop: Vec<oneshot::Sender<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workers({} threads)", self.0.lanes.len())
    }
}

impl Workers {
    /// Starts `n` serving threads (at least one), named `{name}-{i}`. Their pool lanes
    /// (`upstream::lane`) are `first_lane`, `first_lane + 1`, ... (never 0, the shared lane).
    pub fn start(n: usize, name: &str) -> std::io::Result<Workers> {
        let mut lanes = Vec::with_capacity(n.max(1));
        let mut stops = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            lanes.push(rt.handle().clone());
            let lane = next_lane();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    crate::upstream::lane::set(lane);
                    // Runs the thread's tasks until every handle is gone; dropping the runtime
                    // then drops whatever is left on it.
                    let _ = rt.block_on(stopped);
                })?;
            stops.push(stop);
        }
        Ok(Workers(Arc::new(Inner {
            lanes: lanes.into(),
            _stop: stops,
        })))
    }

    /// How many threads serve.
    pub fn len(&self) -> usize {
        self.0.lanes.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.0.lanes.is_empty()
    }

    /// Serves an accepted connection on the thread with the fewest live tasks: its socket is
    /// registered with that thread's event loop, and `serve(socket)` becomes a task there.
    pub fn spawn<S, F>(&self, stream: tokio::net::TcpStream, serve: S) -> std::io::Result<()>
    where
        S: FnOnce(tokio::net::TcpStream) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let lane = &self.0.lanes[least_loaded(self.0.lanes.iter().map(live_tasks))];
        // Moved from the accepting loop's event loop to the chosen thread's.
        let stream = stream.into_std()?;
        let stream = {
            let _on = lane.enter();
            tokio::net::TcpStream::from_std(stream)?
        };
        lane.spawn(serve(stream));
        Ok(())
    }
}

/// The live tasks of a thread's runtime: its connections, their h2 streams and whatever they
/// started.
fn live_tasks(h: &Handle) -> usize {
    h.metrics().num_alive_tasks()
}

/// The index of the smallest load (the first of equals); 0 when there is none.
fn least_loaded(loads: impl Iterator<Item = usize>) -> usize {
    loads
        .enumerate()
        .min_by_key(|&(i, load)| (load, i))
        .map_or(0, |(i, _)| i)
}

/// A pool lane no other serving thread of this process has.
fn next_lane() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_least_loaded_thread_takes_the_connection() {
        let cases: &[(&[usize], usize)] = &[
            (&[], 0),
            (&[5], 0),
            (&[3, 1, 2], 1),
            (&[2, 2, 2], 0),
            (&[4, 0, 0], 1),
            (&[1, 7], 0),
        ];
        for (loads, want) in cases {
            assert_eq!(least_loaded(loads.iter().copied()), *want, "{loads:?}");
        }
    }

    /// A connection accepted on the test's runtime is served on a serving thread, registered
    /// with its event loop, in that thread's pool lane; two connections go to two threads.
    #[tokio::test]
    async fn connections_are_served_on_the_serving_threads() {
        let workers = Workers::start(2, "test-serve").unwrap();
        assert_eq!(workers.len(), 2);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for _ in 0..2 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
            let (stream, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            workers
                .spawn(stream, move |mut s| async move {
                    let me = std::thread::current();
                    let _ = tx.send((
                        me.name().unwrap_or("").to_string(),
                        crate::upstream::lane::current(),
                    ));
                    // The socket works on this thread's event loop: read one byte, echo it.
                    let mut b = [0u8; 1];
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    if s.read_exact(&mut b).await.is_ok() {
                        let _ = s.write_all(&b).await;
                    }
                    // Stay alive, so the next connection finds this thread busier.
                    std::future::pending::<()>().await;
                })
                .unwrap();
            // The task has started (and counts) before the next connection is placed.
            let got = rx.recv().await.unwrap();
            assert!(got.0.starts_with("test-serve-"), "{got:?}");
            assert_ne!(got.1, 0, "a serving thread has a lane of its own");
        }
        for c in &mut clients {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            c.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"x");
        }
        // One connection each: the second went to the idle thread.
        assert_eq!(live_tasks(&workers.0.lanes[0]), 1);
        assert_eq!(live_tasks(&workers.0.lanes[1]), 1);
    }

    /// Dropping the last handle stops the threads, and what still ran on them is dropped.
    #[test]
    fn the_threads_stop_with_the_last_handle() {
        struct Dropped(std::sync::mpsc::Sender<()>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let workers = Workers::start(1, "test-stop").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (started_tx, started) = std::sync::mpsc::channel();
        let guard = Dropped(tx);
        workers.0.lanes[0].spawn(async move {
            let _guard = guard;
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        let other = workers.clone();
        drop(workers);
        // A handle is left: the thread still runs tasks.
        let (ran_tx, ran) = std::sync::mpsc::channel();
        other.0.lanes[0].spawn(async move {
            let _ = ran_tx.send(());
        });
        ran.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(rx.try_recv().is_err(), "nothing was dropped yet");
        let t = Instant::now();
        drop(other);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the thread's task is dropped once the last handle is");
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
