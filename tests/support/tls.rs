//! TLS test support: development certificates in a temporary directory (the `certs dev`
//! layout), the config edit that turns a test deployment to TLS everywhere, and a small TLS
//! client (rustls, ring) that speaks HTTP/1.1 or h2 as ALPN decides.

use super::Reply;
use bytes::Bytes;
use coopr_router::tls::dev::{DevCa, Leaf, Usage, Validity, write_with};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A dev CA and per-DC certificates under a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The deployment CA (its files are `ca.pem`, `ca.key`).
    pub ca: DevCa,
}

impl Pki {
    pub fn new(dcs: &[&str]) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let dcs: Vec<String> = dcs.iter().map(|s| s.to_string()).collect();
        let ca = DevCa::new("test deployment CA").expect("CA");
        write_with(&ca, dir.path(), &dcs, &[]).expect("dev certificates");
        Pki { dir, ca }
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }
    /// The `[tls]` sections of DC `dc`.
    pub fn tls_section(&self, dc: &str) -> String {
        coopr_router::tls::dev::tls_section(self.dir.path(), dc)
    }
    /// A test deployment's config with https peer URLs and TLS on both ports.
    pub fn edit(&self, i: usize, text: String) -> String {
        coopr_router::tls::dev::enable_in(&text, self.dir.path(), &format!("dc{}", i + 1))
    }
}

/// A certificate signed by a CA the deployment does not know, or by the deployment's own CA
/// (loaded from `ca.pem`/`ca.key`) with any name and validity.
pub fn leaf(ca: &DevCa, usage: Usage, validity: Validity) -> Leaf {
    ca.issue(&usage, validity).expect("issue a certificate")
}

/// Roots from a PEM file.
pub fn roots(ca: &Path) -> RootCertStore {
    let mut store = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        store.add(c.unwrap()).unwrap();
    }
    store
}

/// A client config trusting `ca`, presenting `client` if given, offering `alpn`.
pub fn client_config(ca: &Path, client: Option<&Leaf>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(ca));
    let mut cfg = match client {
        Some(l) => {
            let chain = CertificateDer::pem_slice_iter(l.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(l.key_pem.as_bytes()).unwrap();
            b.with_client_auth_cert(chain, key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// A TLS connection to `addr` checking the certificate against `name`.
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await?;
    // TLS 1.3 sends the server's verdict on a client certificate after the client's Finished:
    // the refusal shows as an error on the first read, which hyper reports.
    Ok(tls)
}

/// Sends one request over an established TLS connection (h2 if ALPN chose it, else HTTP/1.1).
pub async fn request(
    tls: TlsStream<TcpStream>,
    mut req: Request<Full<Bytes>>,
) -> Result<Reply, String> {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    if !h2 && let Some(pq) = req.uri().path_and_query().cloned() {
        // HTTP/1.1 needs a Host (hyper's connection-level client adds none).
        if let Some(a) = req.uri().authority().cloned()
            && !req.headers().contains_key("host")
        {
            req.headers_mut()
                .insert("host", a.as_str().parse().unwrap());
        }
        *req.uri_mut() = pq.as_str().parse().unwrap();
    }
    let io = TokioIo::new(tls);
    let resp = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| format!("{e:?}"))?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| format!("{e:?}"))?
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// One GET over a new TLS connection.
pub async fn get(
    addr: SocketAddr,
    name: &str,
    cfg: Arc<ClientConfig>,
    path: &str,
) -> Result<Reply, String> {
    let tls = connect(addr, name, cfg).await.map_err(|e| e.to_string())?;
    let req = Request::get(format!("https://{name}{path}"))
        .header("host", name)
        .header("coopr-userid", "admin")
        .header("coopr-tenantid", "superadmin")
        .body(Full::new(Bytes::new()))
        .unwrap();
    request(tls, req).await
}

/// Writes a plain HTTP request to `addr` and returns whatever comes back before it closes.
pub async fn plain_exchange(addr: SocketAddr) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let _ = s
        .write_all(b"GET /status HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    out
}

/// A TLS-terminating relay standing in for a Coopr server with `server.ssl.enabled`: TLS with
/// `leaf` on its own port, plain TCP to the target set later (a test learns the simulator's
/// address only while the deployment starts).
pub struct TlsRelay {
    pub addr: SocketAddr,
    pub target: Arc<std::sync::Mutex<Option<SocketAddr>>>,
}

impl TlsRelay {
    pub async fn start(leaf: &Leaf) -> TlsRelay {
        let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target: Arc<std::sync::Mutex<Option<SocketAddr>>> = Default::default();
        let t = target.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, t) = (acceptor.clone(), t.clone());
                tokio::spawn(async move {
                    let Some(to) = *t.lock().unwrap() else { return };
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = TcpStream::connect(to).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsRelay { addr, target }
    }
}
