//! The `[tls]` section: the client port's certificate, the peer port's mutual TLS (deployment
//! CA, this DC's peer certificate and key) and the CA for Coopr servers reached over https. Its
//! rules: files readable and holding what they should, and URL schemes that agree with it
//! (peer URLs are https exactly when `[tls.peer]` is set; an https Coopr server needs
//! `tls.backend.ca_file`).

use super::{ConfigError, RawConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// A TLS handshake (client or peer port) must finish within this.
    pub handshake_timeout_ms: u64,
    /// TLS on the client port. Without it the client port speaks plain HTTP/1.1 and h2c.
    pub client: Option<CertKey>,
    /// Mutual TLS on the peer port and towards other DCs' routers.
    pub peer: Option<PeerTls>,
    /// Trust for Coopr servers whose `url`/`tasks_url`/standby `url` is https.
    pub backend: Option<BackendTls>,
    /// TLS on the provisioner port (`listen.provisioner`), optionally verifying the
    /// provisioners' client certificates (as Coopr's own provisioner TLS does).
    pub provisioner: Option<ProvisionerTls>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            handshake_timeout_ms: 10_000,
            client: None,
            peer: None,
            backend: None,
            provisioner: None,
        }
    }
}

/// A certificate chain (leaf first) and its private key, PEM files.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertKey {
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerTls {
    /// The deployment CA that signs every DC router's peer certificate.
    pub ca_file: String,
    /// This DC's peer certificate (naming `{dc}.peer.coopr-router`) and key.
    pub cert_file: String,
    pub key_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProvisionerTls {
    /// The provisioner port's certificate chain and key.
    pub cert_file: String,
    pub key_file: String,
    /// When set, a provisioner must present a client certificate signed by this CA.
    #[serde(default)]
    pub client_ca_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BackendTls {
    /// The CA(s) that sign the Coopr servers' certificates.
    pub ca_file: String,
}

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        line: None,
        message: message.into(),
    }
}

/// Reads a PEM certificate file: at least one certificate.
pub fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path} holds no PEM certificate"));
    }
    Ok(certs)
}

/// Reads a PEM private key file (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{path}: no usable private key: {e}"))
}

/// Whether the peer port runs without authentication where other hosts can reach it (not on
/// loopback, no `[tls.peer]`), and why; validation allows it only with
/// `listen.insecure_plaintext_peer = true`, and the router warns about it on every start.
pub fn insecure_peer_port(raw: &RawConfig) -> Option<String> {
    let peer = raw.listen.peer;
    (raw.tls.peer.is_none() && !peer.ip().is_loopback()).then(|| {
        format!("the peer port {peer} is not on loopback and has no mutual TLS ([tls.peer]): anyone who reaches it can forward writes and post replication records as any DC")
    })
}

/// Checks the `[tls]` section against the rest of the file.
pub fn validate(raw: &RawConfig) -> Result<(), ConfigError> {
    let t = &raw.tls;
    if t.handshake_timeout_ms == 0 {
        return Err(err("tls.handshake_timeout_ms", "must be greater than 0"));
    }
    if let Some(why) = insecure_peer_port(raw)
        && !raw.listen.insecure_plaintext_peer
    {
        return Err(err(
            "listen.peer",
            format!(
                "{why}. Configure [tls.peer], bind listen.peer to a loopback address, or set listen.insecure_plaintext_peer = true to accept the risk"
            ),
        ));
    }
    let files = |prefix: &str, certs: &[(&str, &String)], key: Option<&String>| {
        for (name, path) in certs {
            read_certs(path).map_err(|e| err(format!("{prefix}.{name}"), e))?;
        }
        if let Some(k) = key {
            read_key(k).map_err(|e| err(format!("{prefix}.key_file"), e))?;
        }
        Ok::<(), ConfigError>(())
    };
    if let Some(c) = &t.client {
        files(
            "tls.client",
            &[("cert_file", &c.cert_file)],
            Some(&c.key_file),
        )?;
    }
    if let Some(p) = &t.peer {
        files(
            "tls.peer",
            &[("ca_file", &p.ca_file), ("cert_file", &p.cert_file)],
            Some(&p.key_file),
        )?;
    }
    if let Some(b) = &t.backend {
        files("tls.backend", &[("ca_file", &b.ca_file)], None)?;
    }
    if let Some(pv) = &t.provisioner {
        if raw.listen.provisioner.is_none() {
            return Err(err(
                "tls.provisioner",
                "[tls.provisioner] needs a provisioner listener (listen.provisioner)",
            ));
        }
        let mut named: Vec<(&str, &String)> = vec![("cert_file", &pv.cert_file)];
        if let Some(ca) = &pv.client_ca_file {
            named.push(("client_ca_file", ca));
        }
        files("tls.provisioner", &named, Some(&pv.key_file))?;
    }
    for (name, dc) in &raw.dcs {
        let https = dc.peer_url.starts_with("https://");
        if https != t.peer.is_some() {
            return Err(err(
                format!("dcs.{name}.peer_url"),
                if https {
                    "an https peer URL needs [tls.peer] (ca_file, cert_file, key_file)"
                } else {
                    "with [tls.peer] set, every peer URL must be https://"
                },
            ));
        }
    }
    let backend_urls = raw
        .backends
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            let mut v = vec![(format!("backends.{i}.url"), &b.url)];
            if let Some(t) = &b.tasks_url {
                v.push((format!("backends.{i}.tasks_url"), t));
            }
            v
        })
        .chain(
            raw.standby
                .iter()
                .map(|(n, s)| (format!("standby.{n}.url"), &s.url)),
        );
    for (key, url) in backend_urls {
        if url.starts_with("https://") && t.backend.is_none() {
            return Err(err(
                key,
                "an https Coopr server needs tls.backend.ca_file (the CA that signs its certificate)",
            ));
        }
    }
    Ok(())
}
