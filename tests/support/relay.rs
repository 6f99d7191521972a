//! A TCP relay a test puts between a router and etcd, to cut the connection (close everything
//! and refuse new ones) or blackhole it (hold connections open, pass nothing), and heal it.

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Open,
    Cut,
    Blackhole,
}

pub struct Relay {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl Relay {
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let (tx, rx) = watch::channel(Mode::Open);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                if *rx.borrow() == Mode::Cut {
                    continue;
                }
                tokio::spawn(serve(conn, target, rx.clone()));
            }
        });
        Relay { addr, mode: tx }
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
