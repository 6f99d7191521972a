//! The shell's clocks, on paused time over an in-memory pipe: a client that stops answering
//! with a stream open gets a PING and is closed a tick later; an idle one gets GOAWAY; a
//! listener's shutdown sends GOAWAY and cuts what is still open a tick later.

use super::*;
use crate::shutdown::ShutdownTrigger;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const IDLE: Duration = Duration::from_secs(10);

fn opts() -> Options {
    Options {
        limits: conn::Limits {
            max_streams: 8,
            max_header_list: 4096,
            stream_window: 65_535,
            conn_window: 65_535,
        },
        idle: IDLE,
        per_connection: 4,
    }
}

/// The preface, an empty SETTINGS and, if `get`, a GET on stream 1 (HPACK: static :method
/// GET, :scheme http, :path /, :authority "a").
fn opening(get: bool) -> Vec<u8> {
    let mut b = crate::h2::frame::PREFACE.to_vec();
    b.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    if get {
        let block = [0x82, 0x86, 0x84, 0x41, 1, b'a'];
        b.extend([0, 0, block.len() as u8, 1, 0x5, 0, 0, 0, 1]);
        b.extend(block);
    }
    b
}

/// Frame types the server wrote until it closed.
async fn kinds_until_closed(c: &mut tokio::io::DuplexStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = c.read_to_end(&mut all).await;
    let mut kinds = Vec::new();
    let mut at = 0;
    while let Some(h) = crate::h2::frame::Head::parse(&all[at..]) {
        kinds.push(h.kind);
        at += 9 + h.len;
    }
    kinds
}

/// Serves one connection whose handler never answers; returns what the client read and how
/// long the server took to end.
async fn serve_silent(get: bool, stop_after: Option<Duration>) -> (Vec<u8>, Duration) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let (trigger, shutdown) = ShutdownTrigger::new();
    client.write_all(&opening(get)).await.unwrap();
    let handler =
        |_: Request<ClientBody>, _: SocketAddr| std::future::pending::<Response<ProxyBody>>();
    let remote: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let start = tokio::time::Instant::now();
    let served = tokio::spawn(async move {
        serve(server, Bytes::new(), remote, handler, opts(), &shutdown).await;
        tokio::time::Instant::now()
    });
    if let Some(after) = stop_after {
        tokio::time::sleep(after).await;
        trigger.trigger();
    }
    let kinds = kinds_until_closed(&mut client).await;
    let ended = served.await.unwrap();
    (kinds, ended - start)
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_with_a_stream_open_is_pinged_then_closed() {
    let (kinds, took) = serve_silent(true, None).await;
    // SETTINGS (no WINDOW_UPDATE: the window is the default), SETTINGS ACK, PING.
    assert_eq!(kinds, vec![4, 4, 6], "{kinds:?}");
    assert!(took >= 2 * IDLE && took < 3 * IDLE, "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_gets_goaway() {
    let (kinds, took) = serve_silent(false, None).await;
    assert_eq!(kinds, vec![4, 4, 7], "{kinds:?}");
    assert!(took >= IDLE && took < 2 * IDLE, "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_sends_goaway_and_cuts_what_is_open_a_tick_later() {
    let (kinds, took) = serve_silent(true, Some(Duration::from_secs(1))).await;
    // GOAWAY NO_ERROR at the shutdown, then the stream still open is cut with a second one.
    assert_eq!(kinds, vec![4, 4, 7, 7], "{kinds:?}");
    let one = Duration::from_secs(1);
    assert!(took >= one + IDLE && took < one + 2 * IDLE, "{took:?}");
}
