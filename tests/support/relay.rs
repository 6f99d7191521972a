//! A TCP relay a test puts between a router and etcd (or another router's peer port), to cut
//! the connection (close everything and refuse new ones) or blackhole it (hold connections
//! open, pass nothing), and heal it. With [`Options`] it can also delay every byte by a fixed
//! time each way (a WAN stand-in: this kernel has no netem) and keep a copy of the bytes sent
//! towards the target (the tap), so a test can assert on what crossed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How a relay treats the bytes it passes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Added to every byte's trip, each way.
    pub delay: Duration,
    /// Keep a copy of everything sent towards the target.
    pub tap: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    Cut,
    Blackhole,
}

pub struct Relay {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    tapped: Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        Relay::start_with(target, Options::default()).await
    }

    pub async fn start_with(target: SocketAddr, options: Options) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let (tx, rx) = watch::channel(Mode::Open);
        let tapped = Arc::new(Mutex::new(Vec::new()));
        let tap = tapped.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                if *rx.borrow() == Mode::Cut {
                    continue;
                }
                if options.delay.is_zero() && !options.tap {
                    tokio::spawn(serve(conn, target, rx.clone()));
                } else {
                    let tap = options.tap.then(|| tap.clone());
                    tokio::spawn(serve_delayed(conn, target, rx.clone(), options.delay, tap));
                }
            }
        });
        Relay {
            addr,
            mode: tx,
            tapped,
        }
    }

    /// Everything sent towards the target so far (with `Options::tap`).
    pub fn tapped(&self) -> Vec<u8> {
        self.tapped.lock().unwrap().clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

async fn serve(mut a: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    loop {
        let now = *mode.borrow_and_update();
        match now {
            Mode::Cut => return,
            Mode::Blackhole => {
                // Hold both ends; pass nothing until the mode changes.
                if mode.changed().await.is_err() {
                    return;
                }
                if *mode.borrow() != Mode::Open {
                    continue;
                }
                // A healed blackhole drops the held connection: the client reconnects.
                return;
            }
            Mode::Open => {
                let Ok(mut b) = TcpStream::connect(target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut a, &mut b) => return,
                    _ = mode.changed() => {
                        if *mode.borrow() == Mode::Blackhole {
                            // Keep the sockets, stop copying.
                            let _held = b;
                            while mode.changed().await.is_ok() {
                                if *mode.borrow() != Mode::Blackhole {
                                    break;
                                }
                            }
                        }
                        return;
                    }
                }
            }
        }
    }
}

/// Open mode only, with a one-way delay line in each direction (a reader stamps each chunk with
/// its due time; a writer sends it then, so delays overlap as on a real link). Any mode change
/// closes the connection.
async fn serve_delayed(
    a: TcpStream,
    target: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    delay: Duration,
    tap: Option<Arc<Mutex<Vec<u8>>>>,
) {
    if *mode.borrow_and_update() != Mode::Open {
        return;
    }
    let Ok(b) = TcpStream::connect(target).await else {
        return;
    };
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    let (ar, aw) = a.into_split();
    let (br, bw) = b.into_split();
    let up = pipe(ar, bw, delay, tap);
    let down = pipe(br, aw, delay, None);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = mode.changed() => {}
    }
}

async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    tap: Option<Arc<Mutex<Vec<u8>>>>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if let Some(t) = &tap {
                        t.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    if tx
                        .send((tokio::time::Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if w.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    };
    tokio::join!(reader, writer);
}
