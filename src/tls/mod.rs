//! TLS with rustls (ring provider only; TLS 1.2 and 1.3; ALPN `h2`, `http/1.1`): the client
//! port's server config, the peer port's mutual TLS, and the outgoing client's trust and client
//! certificate. [`Material`] is built from a config (at start and at every reload, so new
//! certificates take effect for new connections while open ones keep theirs); it lives in the
//! runtime snapshot next to the config it came from.
//!
//! `identity` says how a certificate names a DC; `server` runs listener handshakes; `dev` makes
//! development certificates.

pub mod dev;
pub mod identity;
pub mod server;

use crate::config::Config;
use crate::config::tls::{read_certs, read_key};
use hyper_rustls::HttpsConnector;
pub use identity::PeerDc;
use identity::{DcClientVerifier, PeerNames, UpstreamVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

/// Why TLS material could not be built, with the config key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsError {
    pub key: &'static str,
    pub message: String,
}

fn fail(key: &'static str) -> impl Fn(String) -> TlsError {
    move |message| TlsError { key, message }
}

/// The one crypto provider: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS 1.3 and 1.2, nothing older.
pub const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Everything TLS a runtime needs, built from one config.
pub struct Material {
    /// The client port's server config (None: plain HTTP).
    pub client: Option<Arc<ServerConfig>>,
    /// The peer port's server config, requiring a client certificate naming a DC (None: plain).
    pub peer: Option<Arc<ServerConfig>>,
    /// The provisioner port's server config, verifying client certificates against
    /// `tls.provisioner.client_ca_file` when set (None: plain).
    pub provisioner: Option<Arc<ServerConfig>>,
    /// The outgoing client (peers and Coopr servers).
    upstream: Arc<ClientConfig>,
    names: PeerNames,
    pub handshake_timeout: Duration,
}

impl Material {
    /// Reads every file of `[tls]` and builds the configs.
    pub fn load(cfg: &Config) -> Result<Material, TlsError> {
        let t = &cfg.raw.tls;
        let p = provider();
        let client = match &t.client {
            None => None,
            Some(c) => {
                let chain = read_certs(&c.cert_file).map_err(fail("tls.client.cert_file"))?;
                let key = read_key(&c.key_file).map_err(fail("tls.client.key_file"))?;
                let mut sc = ServerConfig::builder_with_provider(p.clone())
                    .with_protocol_versions(VERSIONS)
                    .map_err(|e| fail("tls")(e.to_string()))?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .map_err(|e| fail("tls.client.key_file")(e.to_string()))?;
                sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                // Our suite order (AEAD only, strongest first), not the client's.
                sc.ignore_client_order = true;
                Some(Arc::new(sc))
            }
        };
        let provisioner = match &t.provisioner {
            None => None,
            Some(pv) => {
                let chain = read_certs(&pv.cert_file).map_err(fail("tls.provisioner.cert_file"))?;
                let key = read_key(&pv.key_file).map_err(fail("tls.provisioner.key_file"))?;
                let builder = ServerConfig::builder_with_provider(p.clone())
                    .with_protocol_versions(VERSIONS)
                    .map_err(|e| fail("tls")(e.to_string()))?;
                let builder = match &pv.client_ca_file {
                    None => builder.with_no_client_auth(),
                    Some(ca) => {
                        let roots =
                            Arc::new(roots(ca).map_err(fail("tls.provisioner.client_ca_file"))?);
                        let verifier =
                            WebPkiClientVerifier::builder_with_provider(roots, p.clone())
                                .build()
                                .map_err(|e| {
                                    fail("tls.provisioner.client_ca_file")(e.to_string())
                                })?;
                        builder.with_client_cert_verifier(verifier)
                    }
                };
                let mut sc = builder
                    .with_single_cert(chain, key)
                    .map_err(|e| fail("tls.provisioner.key_file")(e.to_string()))?;
                sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                sc.ignore_client_order = true;
                Some(Arc::new(sc))
            }
        };
        let dcs: Vec<String> = cfg.dcs.iter().map(|d| d.name.clone()).collect();
        let (peer, peer_verifier, client_auth) = match &t.peer {
            None => (None, None, None),
            Some(pt) => {
                let roots = Arc::new(roots(&pt.ca_file).map_err(fail("tls.peer.ca_file"))?);
                let chain = read_certs(&pt.cert_file).map_err(fail("tls.peer.cert_file"))?;
                let key = read_key(&pt.key_file).map_err(fail("tls.peer.key_file"))?;
                let inner = WebPkiClientVerifier::builder_with_provider(roots.clone(), p.clone())
                    .build()
                    .map_err(|e| fail("tls.peer.ca_file")(e.to_string()))?;
                let verifier = Arc::new(DcClientVerifier { inner, dcs });
                let mut sc = ServerConfig::builder_with_provider(p.clone())
                    .with_protocol_versions(VERSIONS)
                    .map_err(|e| fail("tls")(e.to_string()))?
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(chain.clone(), key.clone_key())
                    .map_err(|e| fail("tls.peer.key_file")(e.to_string()))?;
                sc.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                // Our suite order (AEAD only, strongest first), not the client's.
                sc.ignore_client_order = true;
                let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, p.clone())
                    .build()
                    .map_err(|e| fail("tls.peer.ca_file")(e.to_string()))?;
                (
                    Some(Arc::new(sc)),
                    Some(server_verifier),
                    Some((chain, key)),
                )
            }
        };
        let backend_verifier = match &t.backend {
            None => None,
            Some(b) => {
                let roots = Arc::new(roots(&b.ca_file).map_err(fail("tls.backend.ca_file"))?);
                Some(
                    WebPkiServerVerifier::builder_with_provider(roots, p.clone())
                        .build()
                        .map_err(|e| fail("tls.backend.ca_file")(e.to_string()))?,
                )
            }
        };
        let builder = ClientConfig::builder_with_provider(p.clone())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| fail("tls")(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(UpstreamVerifier {
                peer: peer_verifier,
                backend: backend_verifier,
                provider: p,
            }));
        let upstream = match client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| fail("tls.peer.key_file")(e.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        let names = PeerNames(
            cfg.dcs
                .iter()
                .filter_map(|d| Some((d.peer_url.authority()?.to_string(), d.name.clone())))
                .collect(),
        );
        Ok(Material {
            client,
            peer,
            provisioner,
            upstream: Arc::new(upstream),
            names,
            handshake_timeout: Duration::from_millis(t.handshake_timeout_ms),
        })
    }

    /// No TLS anywhere and no trusted root: plain HTTP only (`coopr-router status` reading
    /// admin ports, which are plain HTTP). An https URL then fails verification.
    pub fn plain() -> Result<Material, TlsError> {
        let upstream = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .map_err(|e| fail("tls")(e.to_string()))?
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        Ok(Material {
            client: None,
            peer: None,
            provisioner: None,
            upstream: Arc::new(upstream),
            names: PeerNames(Default::default()),
            handshake_timeout: Duration::from_secs(10),
        })
    }

    /// The upstream pool's TLS (HTTP/1.1 only).
    pub fn upstream_tls(&self) -> UpstreamTls {
        UpstreamTls::new(&self.upstream, self.names.clone())
    }

    /// The outgoing connector: plain for http URLs, TLS for https ones (HTTP/1.1 only).
    pub fn connector<H>(&self, http: H) -> HttpsConnector<H> {
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.upstream).clone())
            .https_or_http()
            .with_server_name_resolver(self.names.clone())
            .enable_http1()
            .wrap_connector(http)
    }
}

/// The outgoing client's TLS as the upstream pool uses it (`proxy/pool.rs`): the client config
/// offering ALPN `http/1.1` only, and the name each server's certificate must carry.
#[derive(Clone)]
pub struct UpstreamTls {
    connector: tokio_rustls::TlsConnector,
    /// The same config offering ALPN `h2` only (`upstream/h2`: the HTTP/2 link to a peer).
    h2: tokio_rustls::TlsConnector,
    names: PeerNames,
}

impl UpstreamTls {
    /// From a client config (ALPN is set here) and the peer names; `Material` builds its own.
    pub fn new(config: &ClientConfig, names: PeerNames) -> UpstreamTls {
        let mut config = config.clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut h2 = config.clone();
        h2.alpn_protocols = vec![b"h2".to_vec()];
        UpstreamTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            h2: tokio_rustls::TlsConnector::from(Arc::new(h2)),
            names,
        }
    }

    /// [`connect`](Self::connect) offering ALPN `h2` only: an error unless the server chose it.
    pub async fn connect_h2(
        &self,
        uri: &http::Uri,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        let stream = self.handshake(&self.h2, uri, tcp).await?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err("the peer did not choose HTTP/2 (ALPN h2)".into());
        }
        Ok(stream)
    }

    /// The TLS handshake with the server `uri` names, over `tcp`.
    pub async fn connect(
        &self,
        uri: &http::Uri,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        self.handshake(&self.connector, uri, tcp).await
    }

    async fn handshake(
        &self,
        connector: &tokio_rustls::TlsConnector,
        uri: &http::Uri,
        tcp: tokio::net::TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
        use hyper_rustls::ResolveServerName;
        let name = self
            .names
            .resolve(uri)
            .map_err(|e| format!("no TLS server name for {uri}: {e}"))?;
        connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))
    }
}

/// Every file `[tls]` names (the config file watch also watches these).
pub fn files(cfg: &Config) -> Vec<String> {
    let t = &cfg.raw.tls;
    let mut out = Vec::new();
    if let Some(c) = &t.client {
        out.extend([c.cert_file.clone(), c.key_file.clone()]);
    }
    if let Some(p) = &t.peer {
        out.extend([p.ca_file.clone(), p.cert_file.clone(), p.key_file.clone()]);
    }
    if let Some(b) = &t.backend {
        out.push(b.ca_file.clone());
    }
    if let Some(pv) = &t.provisioner {
        out.extend([pv.cert_file.clone(), pv.key_file.clone()]);
        out.extend(pv.client_ca_file.clone());
    }
    out
}

/// A root store from a PEM file of CA certificates.
fn roots(path: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in read_certs(path)? {
        store
            .add(cert)
            .map_err(|e| format!("{path}: not a usable CA certificate: {e}"))?;
    }
    Ok(store)
}
