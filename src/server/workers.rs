//! The serving threads (`listen.threads`): each runs an event loop of its own (a current-thread
//! tokio runtime), an accept loop for each listener it serves (on a copy of the listening
//! socket: whichever thread is free first takes a new connection), and the connections it
//! accepted. A connection, its requests, its h2 streams and the upstream connections they use
//! (the pool's lane of that thread, `upstream::lane`) live on one thread: no task moves between
//! threads and no thread wakes another on the request path (on one shared multi-thread runtime,
//! a worker woke a sleeping one for about one request in ten, through `futex`; load/README.md).
//! A thread that accepted a connection while clearly busier than another hands it to the least
//! busy one ([`choose`]), so a burst of new connections does not all land on one thread.
//!
//! The threads stop when the last [`Workers`] handle is dropped: each leaves its event loop,
//! and what still runs there (accept loops, connections past the shutdown grace) is dropped
//! with it. Accept loops hold only [`Lanes`], never a `Workers`, so they cannot keep the
//! threads alive.

use std::future::Future;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The serving threads (cheap to clone: every listener of a router shares them).
#[derive(Clone)]
pub struct Workers(Arc<Inner>);

struct Inner {
    lanes: Lanes,
    /// Each thread's pool lane (the label of its `coopr_router_serving_thread_tasks` series).
    ids: Vec<u32>,
    /// Dropped with the last handle: each thread's signal to stop.
    _stop: Vec<oneshot::Sender<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for &lane in &self.ids {
            crate::metrics::serving_thread_stopped(lane);
        }
    }
}

/// The threads' runtimes, one handle each (what an accept loop needs to place a connection).
#[derive(Clone)]
pub struct Lanes(Arc<[Handle]>);

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Workers({} threads)", self.0.lanes.0.len())
    }
}

impl Workers {
    /// Starts `n` serving threads (at least one), named `{name}-{i}`, each in a pool lane of
    /// its own (`upstream::lane`; never 0, the shared lane).
    pub fn start(n: usize, name: &str) -> std::io::Result<Workers> {
        let n = n.max(1);
        let mut lanes = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        // Blocking work started from a request (the replication store's reads and writes) runs
        // on the serving thread's own blocking pool: together they hold at most about as many
        // threads as one tokio runtime does by default (512).
        let blocking = (512 / n).max(8);
        for i in 0..n {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(blocking)
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            lanes.push(rt.handle().clone());
            let lane = next_lane();
            ids.push(lane);
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
        // Shown by `/metrics` once every thread runs (a failed start registers none).
        for (&lane, rt) in ids.iter().zip(&lanes) {
            crate::metrics::serving_thread_started(lane, rt.clone());
        }
        Ok(Workers(Arc::new(Inner {
            lanes: Lanes(lanes.into()),
            ids,
            _stop: stops,
        })))
    }

    /// How many threads serve.
    pub fn len(&self) -> usize {
        self.0.lanes.0.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.0.lanes.0.is_empty()
    }

    /// Runs `accept(socket, placer)` on every thread, each on its own copy of `listener`
    /// registered with that thread's event loop. The loops stop when their handles are aborted
    /// (see [`AbortOnDrop`]) or the threads stop.
    pub fn accept_on_each<A, F>(
        &self,
        listener: TcpListener,
        accept: A,
    ) -> std::io::Result<AbortOnDrop>
    where
        A: Fn(TcpListener, Placer) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let listener = listener.into_std()?;
        let lanes = &self.0.lanes;
        let mut loops = Vec::with_capacity(lanes.0.len());
        for (here, lane) in lanes.0.iter().enumerate() {
            let copy = {
                let _on = lane.enter();
                TcpListener::from_std(listener.try_clone()?)?
            };
            let placer = Placer {
                lanes: lanes.clone(),
                here,
            };
            loops.push(lane.spawn(accept(copy, placer)));
        }
        Ok(AbortOnDrop(loops))
    }
}

/// The accept loops of one listener: aborted when dropped (a router dropped without a graceful
/// shutdown closes its ports all the same).
pub struct AbortOnDrop(Vec<JoinHandle<()>>);

impl AbortOnDrop {
    /// Waits until every loop has ended.
    pub async fn join(mut self) {
        for l in &mut self.0 {
            let _ = l.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for l in &self.0 {
            l.abort();
        }
    }
}

/// Where a connection accepted on one thread is served (an accept loop's own).
pub struct Placer {
    lanes: Lanes,
    /// The thread this accept loop runs on.
    here: usize,
}

impl Placer {
    /// Serves an accepted connection: `serve(socket)` as a task on this thread, or, when this
    /// thread is clearly busier than another ([`choose`]), on the least busy thread, its socket
    /// moved to that thread's event loop first.
    pub fn place<S, F>(&self, stream: TcpStream, serve: S) -> std::io::Result<()>
    where
        S: FnOnce(TcpStream) -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        let lanes = &self.lanes.0;
        let to = choose(self.here, lanes.iter().map(live_tasks));
        let Some(lane) = lanes.get(to).filter(|_| to != self.here) else {
            tokio::spawn(serve(stream));
            return Ok(());
        };
        let stream = stream.into_std()?;
        let stream = {
            let _on = lane.enter();
            TcpStream::from_std(stream)?
        };
        lane.spawn(serve(stream));
        Ok(())
    }
}

/// The live tasks of a thread's runtime: its accept loops, its connections, their h2 streams
/// and whatever they started.
fn live_tasks(h: &Handle) -> usize {
    h.metrics().num_alive_tasks()
}

/// Which thread serves a connection accepted on thread `here`, given each thread's load: `here`
/// unless it carries more than the least loaded thread by over 1 + a quarter of that load
/// (then the least loaded one, the first of equals). The margin keeps connections where they
/// were accepted under a steady load (moving one costs two `epoll_ctl` and a wake-up) and
/// evens out a burst of new ones.
pub fn choose(here: usize, loads: impl Iterator<Item = usize>) -> usize {
    let (mut mine, mut least, mut low) = (None, here, usize::MAX);
    for (i, load) in loads.enumerate() {
        if i == here {
            mine = Some(load);
        }
        if load < low {
            (least, low) = (i, load);
        }
    }
    match mine {
        Some(mine) if mine > low + 1 + low / 4 => least,
        _ => here,
    }
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn a_connection_moves_only_from_a_clearly_busier_thread() {
        // (accepted on, loads, served on)
        let cases: &[(usize, &[usize], usize)] = &[
            (0, &[1, 1], 0),
            (0, &[2, 1], 0),
            (0, &[3, 1], 1),
            (1, &[1, 3], 0),
            (0, &[0, 0, 0], 0),
            (2, &[5, 2, 3], 2),
            (2, &[5, 2, 4], 1),
            (2, &[5, 2, 5], 1),
            (0, &[20, 16], 0),
            (0, &[22, 16], 1),
            (0, &[9, 1, 1], 1),
            (0, &[7], 0),
            (3, &[1, 1], 3),
        ];
        for (here, loads, want) in cases {
            assert_eq!(
                choose(*here, loads.iter().copied()),
                *want,
                "{here} {loads:?}"
            );
        }
    }

    /// Property: the thread chosen is the one accepting or the least loaded, and a connection
    /// moves only to a thread with fewer tasks.
    #[test]
    fn a_move_always_goes_to_a_less_loaded_thread() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..10_000 {
            let n = (next() % 6 + 1) as usize;
            let loads: Vec<usize> = (0..n).map(|_| (next() % 40) as usize).collect();
            let here = (next() % n as u64) as usize;
            let to = choose(here, loads.iter().copied());
            let low = *loads.iter().min().unwrap();
            assert!(to == here || loads[to] == low, "{here} {loads:?} -> {to}");
            if to != here {
                assert!(loads[to] < loads[here], "{here} {loads:?} -> {to}");
            }
        }
    }

    /// Every serving thread accepts on its own copy of the listener; a connection is served on
    /// a serving thread, in that thread's pool lane, the socket working on its event loop; a
    /// burst of connections held open ends up spread over the threads.
    #[tokio::test]
    async fn connections_are_accepted_and_served_on_the_serving_threads() {
        let workers = Workers::start(2, "test-serve").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let loops = workers
            .accept_on_each(listener, |l, placer| {
                let tx = tx.clone();
                async move {
                    while let Ok((s, _)) = l.accept().await {
                        let tx = tx.clone();
                        let placed = placer.place(s, move |mut s| async move {
                            let me = std::thread::current();
                            let name = me.name().unwrap_or("").to_string();
                            let _ = tx.send((name, crate::upstream::lane::current()));
                            // The socket works on this thread's event loop: echo one byte.
                            let mut b = [0u8; 1];
                            if s.read_exact(&mut b).await.is_ok() {
                                let _ = s.write_all(&b).await;
                            }
                            // Held open: the thread stays that much busier.
                            std::future::pending::<()>().await;
                        });
                        placed.unwrap();
                    }
                }
            })
            .unwrap();
        let mut clients = Vec::new();
        let mut served = std::collections::BTreeMap::new();
        for _ in 0..8 {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let (name, lane) = rx.recv().await.unwrap();
            assert!(name.starts_with("test-serve-"), "{name}");
            assert_ne!(lane, 0, "a serving thread has a lane of its own");
            *served.entry(name).or_insert(0) += 1;
            c.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"x");
            clients.push(c);
        }
        // Never more than 1 + a quarter apart (`choose`), whichever thread accepted them.
        let counts: Vec<usize> = served.values().copied().collect();
        assert_eq!(counts.len(), 2, "{served:?}");
        assert!(counts[0].abs_diff(counts[1]) <= 2, "{served:?}");
        drop(loops);
    }

    /// Dropping the accept loops closes the listening socket on every thread.
    #[tokio::test]
    async fn dropped_accept_loops_close_the_port() {
        let workers = Workers::start(2, "test-close").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let loops = workers
            .accept_on_each(
                listener,
                |l, _| async move { while l.accept().await.is_ok() {} },
            )
            .unwrap();
        TcpStream::connect(addr).await.unwrap();
        drop(loops);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "{addr} still accepts");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
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
        workers.0.lanes.0[0].spawn(async move {
            let _guard = guard;
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        });
        started.recv_timeout(Duration::from_secs(10)).unwrap();
        let other = workers.clone();
        drop(workers);
        // A handle is left: the thread still runs tasks.
        let (ran_tx, ran) = std::sync::mpsc::channel();
        other.0.lanes.0[0].spawn(async move {
            let _ = ran_tx.send(());
        });
        ran.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(rx.try_recv().is_err(), "nothing was dropped yet");
        drop(other);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the thread's task is dropped once the last handle is");
    }
}
