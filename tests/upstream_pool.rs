//! The upstream connection pool (`proxy/pool.rs`) through `Upstream::send`, against tiny
//! upstreams on ephemeral ports: connections are reused, one the upstream closed while idle is
//! not, nor one past the idle timeout or answered `Connection: close`; refused connections are
//! `Connect`, a silent upstream `Timeout`; https works with the backend CA; at most `max_idle`
//! idle connections are kept.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use bytes::Bytes;
use coopr_router::body::ProxyBody;
use coopr_router::config::{self, Timeouts};
use coopr_router::tls::Material;
use coopr_router::tls::dev::{DevCa, Usage, Validity, default_hosts};
use coopr_router::upstream::pool::Pool;
use coopr_router::upstream::{SendError, Upstream};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What a test upstream has seen.
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// Requests seen, for `Mode::Gate` to wait on.
    count: tokio::sync::watch::Sender<usize>,
}

impl Default for Seen {
    fn default() -> Self {
        Seen {
            connections: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            count: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// How a test upstream answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `200 ok`, keep-alive.
    Ok,
    /// `200 ok`, then it closes the connection without saying so.
    OkThenClose,
    /// `200 ok` with `Connection: close`.
    OkConnectionClose,
    /// Reads the request and never answers.
    Silent,
    /// Answers the first request of a connection (`200 ok`, keep-alive), no later one.
    FirstOnly,
    /// `200 ok`, keep-alive, once this many requests have arrived (so that many connections
    /// are open at once).
    Gate(usize),
}

/// A raw HTTP/1.1 upstream on an ephemeral port (plain, or TLS with `tls`).
async fn upstream(mode: Mode, tls: Option<tokio_rustls::TlsAcceptor>) -> (SocketAddr, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let (s, tls) = (s.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => serve(tcp, mode, &s).await,
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            serve(stream, mode, &s).await;
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Answers requests (heads only, no bodies) on one connection as `mode` says.
async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut io: S,
    mode: Mode,
    seen: &Seen,
) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            seen.requests.fetch_add(1, Ordering::SeqCst);
            seen.count.send_modify(|c| *c += 1);
            if let Mode::Gate(n) = mode {
                let _ = seen.count.subscribe().wait_for(|c| *c >= n).await;
            }
            let first = seen.requests.load(Ordering::SeqCst) == 1;
            let answer: &[u8] = match mode {
                Mode::Silent => continue,
                Mode::FirstOnly if !first => continue,
                Mode::FirstOnly => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                Mode::Ok | Mode::OkThenClose | Mode::Gate(_) => {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                }
                Mode::OkConnectionClose => {
                    b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
                }
            };
            if io.write_all(answer).await.is_err() {
                return;
            }
            if !matches!(mode, Mode::Ok | Mode::Gate(_) | Mode::FirstOnly) {
                let _ = io.shutdown().await;
                return;
            }
        }
    }
}

fn timeouts() -> Timeouts {
    Timeouts {
        connect_ms: 1_000,
        ..Timeouts::default()
    }
}

/// TLS material from a minimal config, with `extra` appended (e.g. a `[tls.backend]` table).
fn material(extra: &str) -> Material {
    let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let addrs = [(a(1), a(2), a(3), a(4))];
    let cfg = config::parse(&support::config_text(0, &addrs, extra)).unwrap();
    Material::load(&cfg).unwrap()
}

/// GET `url`; the body read to its end.
async fn get(
    up: &Upstream,
    url: &str,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), SendError> {
    let req = Request::get(url).body(ProxyBody::Empty).unwrap();
    let resp = up.send(req, timeout).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Ok((status, body))
}

const LONG: Duration = Duration::from_secs(10);

/// Sockets of this process's side still open to `addr` (ESTABLISHED or CLOSE_WAIT), IPv4.
fn open_to(addr: SocketAddr) -> usize {
    let SocketAddr::V4(v4) = addr else { return 0 };
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_le_bytes(v4.ip().octets()),
        v4.port()
    );
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() > 3 && cols[2] == want && (cols[3] == "01" || cols[3] == "08")
        })
        .count()
}

#[tokio::test]
async fn sequential_requests_reuse_one_connection() {
    let (addr, seen) = upstream(Mode::Ok, None).await;
    let up = Upstream::new(&timeouts(), &material(""));
    for i in 0..5 {
        let (status, body) = get(&up, &format!("http://{addr}/v2/x?i={i}"), LONG)
            .await
            .unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 5);
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one keep-alive connection"
    );
}

/// A serving thread (`upstream::lane`) reuses only the connections opened in its own lane:
/// one another thread's event loop watches is not handed to it.
#[tokio::test]
async fn each_lane_reuses_only_its_own_connections() {
    use coopr_router::upstream::lane;
    let (addr, seen) = upstream(Mode::Ok, None).await;
    let up = Upstream::new(&timeouts(), &material(""));
    let url = format!("http://{addr}/v2/x");
    // (lane, connections opened by then): lane 7 opens one, lane 8 another, and each is
    // reused by its own lane afterwards.
    for (l, want) in [(7, 1), (7, 1), (8, 2), (8, 2), (7, 2), (0, 3), (8, 3)] {
        lane::set(l);
        let got = get(&up, &url, LONG).await;
        lane::set(0);
        assert_eq!(got.unwrap().0, StatusCode::OK);
        assert_eq!(
            seen.connections.load(Ordering::SeqCst),
            want,
            "after a request in lane {l}"
        );
    }
}

#[tokio::test]
async fn a_dropped_pool_closes_its_idle_connections() {
    // A reload builds a new `Upstream`; the old one's idle connections must not linger.
    let (addr, _seen) = upstream(Mode::Ok, None).await;
    let up = Upstream::new(&timeouts(), &material(""));
    assert_eq!(
        get(&up, &format!("http://{addr}/"), LONG).await.unwrap().0,
        StatusCode::OK
    );
    assert_eq!(open_to(addr), 1);
    drop(up);
    support::eventually(LONG, "the idle connection closed", || async {
        (open_to(addr) == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_requests_open_connections_that_are_then_reused() {
    let (addr, seen) = upstream(Mode::Ok, None).await;
    let up = Upstream::new(&timeouts(), &material(""));
    let url = format!("http://{addr}/");
    for _ in 0..3 {
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let (up, url) = (up.clone(), url.clone());
            all.spawn(async move { get(&up, &url, LONG).await.map(|r| r.0) });
        }
        while let Some(r) = all.join_next().await {
            assert_eq!(r.unwrap().unwrap(), StatusCode::OK);
        }
    }
    assert_eq!(seen.requests.load(Ordering::SeqCst), 24);
    let n = seen.connections.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&n),
        "{n} connections for 3 rounds of 8 concurrent requests"
    );
}

#[tokio::test]
async fn at_most_max_idle_connections_are_kept_per_upstream() {
    let (addr, seen) = upstream(Mode::Gate(4), None).await;
    let pool = Pool::new(
        Duration::from_secs(1),
        Duration::from_secs(90),
        2,
        material("").upstream_tls(),
    );
    let url = format!("http://{addr}/");
    let mut all = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (pool, url) = (pool.clone(), url.clone());
        all.spawn(async move {
            let req = Request::get(url).body(ProxyBody::Empty).unwrap();
            let (out, body) = coopr_router::upstream::Outbound::of_request(req);
            let resp = pool.send(out, body, Duration::from_secs(10)).await.unwrap();
            resp.into_body().collect().await.unwrap();
        });
    }
    while let Some(r) = all.join_next().await {
        r.unwrap();
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 4);
    // Two go back to the pool, two are closed.
    support::eventually(LONG, "two idle connections left", || async {
        (open_to(addr) == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_used_again() {
    let (addr, seen) = upstream(Mode::OkThenClose, None).await;
    let up = Upstream::new(&timeouts(), &material(""));
    let url = format!("http://{addr}/");
    assert_eq!(get(&up, &url, LONG).await.unwrap().0, StatusCode::OK);
    // The pool's side notices the close and closes its socket too.
    support::eventually(LONG, "the idle connection closed", || async {
        (open_to(addr) == 0).then_some(())
    })
    .await;
    assert_eq!(get(&up, &url, LONG).await.unwrap().0, StatusCode::OK);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        2,
        "nothing sent twice"
    );
}

#[tokio::test]
async fn connection_close_answers_and_expired_idle_connections_are_not_reused() {
    let (addr, seen) = upstream(Mode::OkConnectionClose, None).await;
    let up = Upstream::new(&timeouts(), &material(""));
    let url = format!("http://{addr}/");
    for _ in 0..3 {
        assert_eq!(get(&up, &url, LONG).await.unwrap().0, StatusCode::OK);
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 3);

    let (addr, seen) = upstream(Mode::Ok, None).await;
    let t = Timeouts {
        upstream_idle_ms: 1,
        ..timeouts()
    };
    let up = Upstream::new(&t, &material(""));
    let url = format!("http://{addr}/");
    for _ in 0..3 {
        assert_eq!(get(&up, &url, LONG).await.unwrap().0, StatusCode::OK);
        // Lets the idle timeout (1 ms) pass: time itself is what is tested.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let up = Upstream::new(&timeouts(), &material(""));
    match get(&up, &format!("http://{addr}/"), LONG).await {
        Err(SendError::Connect(e)) => assert!(e.contains(&addr.to_string()), "{e}"),
        other => panic!("expected a connect error, got {:?}", other.map(|r| r.0)),
    }
}

#[tokio::test]
async fn no_response_head_within_the_timeout_is_a_timeout() {
    let (addr, seen) = upstream(Mode::Silent, None).await;
    let up = Upstream::new(&timeouts(), &material(""));
    let r = get(&up, &format!("http://{addr}/"), Duration::from_millis(300)).await;
    assert!(matches!(r, Err(SendError::Timeout)), "{:?}", r.map(|r| r.0));
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        1,
        "the request was sent"
    );
}

/// The response timer of a connection is armed lazily (`wire::conn`): it stays at an earlier
/// request's deadline until it fires or a request needs it sooner. Either way each request
/// waits exactly its own `timeout`, counted from when it was sent (paused time: the clock
/// jumps to each timer once nothing else can happen).
#[tokio::test(start_paused = true)]
async fn each_request_on_a_reused_connection_waits_its_own_timeout() {
    let ten = Duration::from_secs(10);
    for (first_wait, gap, second_wait) in [
        // The timer is still armed for the first request (t0 + 10 s) when the second is sent
        // at t0 + 6 s: it fires first, and is moved to t0 + 16 s.
        (ten, Duration::from_secs(6), ten),
        // Armed an hour out by the first request; the second needs it sooner: moved back.
        (Duration::from_secs(3600), Duration::ZERO, ten),
        // A shorter timeout than the armed one (a reloaded config).
        (ten, Duration::from_secs(1), Duration::from_secs(2)),
    ] {
        let (addr, seen) = upstream(Mode::FirstOnly, None).await;
        let up = Upstream::new(&timeouts(), &material(""));
        let url = format!("http://{addr}/");
        let (status, _) = get(&up, &url, first_wait).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        tokio::time::advance(gap).await;
        let sent = tokio::time::Instant::now();
        let r = get(&up, &url, second_wait).await;
        let waited = sent.elapsed();
        assert!(matches!(r, Err(SendError::Timeout)), "{:?}", r.map(|r| r.0));
        assert_eq!(
            (
                seen.connections.load(Ordering::SeqCst),
                seen.requests.load(Ordering::SeqCst)
            ),
            (1, 2),
            "the second request went on the first one's connection"
        );
        assert!(
            waited >= second_wait && waited < second_wait + Duration::from_millis(100),
            "{first_wait:?} then {gap:?} then {second_wait:?}: the second request waited {waited:?}"
        );
    }
}

#[tokio::test]
async fn a_streamed_body_of_known_length_starts_the_response_timeout_once_sent() {
    // The body is dropped once its announced length was sent (`wire::Outgoing`), so the
    // response timeout, which starts when the body is done, starts: nothing hangs.
    let (addr, seen) = upstream(Mode::Silent, None).await;
    let up = Upstream::new(&timeouts(), &material(""));
    let body = ProxyBody::Prefixed {
        prefix: Some(Bytes::from_static(b"{")),
        rest: Box::new(ProxyBody::full("}")),
    };
    let req = Request::post(format!("http://{addr}/"))
        .header("content-length", "2")
        .body(body)
        .unwrap();
    let r = tokio::time::timeout(LONG, up.send(req, Duration::from_millis(300)))
        .await
        .expect("the response timeout started");
    assert!(
        matches!(r, Err(SendError::Timeout)),
        "{:?}",
        r.map(|r| r.status())
    );
    assert_eq!(seen.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn https_upstreams_are_verified_and_reused() {
    let ca = DevCa::new("pool test CA").unwrap();
    let leaf = ca
        .issue(&Usage::Server(default_hosts()), Validity::current(1))
        .unwrap();
    let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(coopr_router::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let (addr, seen) = upstream(Mode::Ok, Some(acceptor)).await;

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let trusted = material(&format!(
        "[tls.backend]\nca_file = \"{}\"\n",
        ca_file.display()
    ));
    let up = Upstream::new(&timeouts(), &trusted);
    for _ in 0..3 {
        let (status, body) = get(&up, &format!("https://{addr}/"), LONG).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    }
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);

    // Without the backend CA the certificate is refused before anything is sent.
    let untrusted = Upstream::new(&timeouts(), &material(""));
    let r = get(&untrusted, &format!("https://{addr}/"), LONG).await;
    assert!(
        matches!(r, Err(SendError::Connect(_))),
        "{:?}",
        r.map(|r| r.0)
    );
    assert_eq!(
        seen.requests.load(Ordering::SeqCst),
        3,
        "nothing sent untrusted"
    );
}
