//! How a certificate names a DC, and the checks built on it: the peer port accepts a client
//! certificate only if it names a DC of the map ([`DcClientVerifier`]); the outgoing client
//! checks that a peer's server certificate names the DC it dialled, and checks Coopr servers
//! against the backend CA only ([`UpstreamVerifier`], [`PeerNames`]).
//!
//! A DC router's certificate carries the DNS subject alternative name `{dc}.peer.coopr-router`
//! (see certs/README.md). DNS names are what webpki checks natively, so no extra X.509 parser is
//! needed; the suffix is not a real domain and cannot be issued by a public CA.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::collections::HashMap;
use std::sync::Arc;

/// The suffix of a DC router's certificate name.
pub const PEER_SUFFIX: &str = ".peer.coopr-router";

/// The DNS name a DC router's certificate carries: `{dc}.peer.coopr-router`.
pub fn peer_dns_name(dc: &str) -> String {
    format!("{dc}{PEER_SUFFIX}")
}

/// The first of `dcs` that `cert` names, if any (the certificate's chain is not checked here).
pub fn dc_of_cert<'a>(cert: &CertificateDer<'_>, dcs: &'a [String]) -> Option<&'a str> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    dcs.iter()
        .find(|dc| {
            ServerName::try_from(peer_dns_name(dc))
                .is_ok_and(|name| ee.verify_is_valid_for_subject_name(&name).is_ok())
        })
        .map(String::as_str)
}

/// The DC a verified peer's client certificate names, as the peer port's connection code puts
/// it into each request's extensions (`server::serve_tls`): batches, forwarded writes and
/// handoff traffic are attributed to this DC, never to what the request body or headers claim.
/// Present only on a mutual-TLS peer connection whose certificate names exactly one DC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDc(pub String);

/// The one DC a (verified) certificate names explicitly (`{dc}.peer.coopr-router`, no
/// wildcard); `None` when it names none or several, so it cannot speak for any single DC.
pub fn peer_dc_of(cert: &CertificateDer<'_>) -> Option<PeerDc> {
    let mut dcs: Vec<String> = names_of(cert)
        .into_iter()
        .filter_map(|n| {
            let dc = n.strip_suffix(PEER_SUFFIX)?;
            (!dc.is_empty() && !dc.contains(['*', '.'])).then(|| dc.to_string())
        })
        .collect();
    dcs.sort();
    dcs.dedup();
    match dcs.as_slice() {
        [dc] => Some(PeerDc(dc.clone())),
        _ => None,
    }
}

/// The DNS names a certificate carries, for logs.
fn names_of(cert: &CertificateDer<'_>) -> Vec<String> {
    webpki::EndEntityCert::try_from(cert)
        .map(|ee| ee.valid_dns_names().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The peer port's client verifier: the deployment CA's chain check (expiry included), then the
/// certificate must name a DC of the map.
#[derive(Debug)]
pub struct DcClientVerifier {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub dcs: Vec<String>,
}

impl ClientCertVerifier for DcClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        true
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if dc_of_cert(end_entity, &self.dcs).is_some() {
            return Ok(ClientCertVerified::assertion());
        }
        tracing::warn!(
            names = ?names_of(end_entity),
            dcs = ?self.dcs,
            "peer certificate is signed by the deployment CA but names no DC of the map"
        );
        Err(Error::InvalidCertificate(CertificateError::NotValidForName))
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The outgoing client's server verifier: names ending in [`PEER_SUFFIX`] (peer routers) are
/// checked against the deployment CA only, every other name (Coopr servers) against the backend
/// CA only, so neither CA can impersonate the other's servers.
#[derive(Debug)]
pub struct UpstreamVerifier {
    pub peer: Option<Arc<WebPkiServerVerifier>>,
    pub backend: Option<Arc<WebPkiServerVerifier>>,
    pub provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let is_peer =
            matches!(server_name, ServerName::DnsName(d) if d.as_ref().ends_with(PEER_SUFFIX));
        let verifier = if is_peer { &self.peer } else { &self.backend };
        match verifier {
            Some(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now),
            None => Err(Error::General(format!(
                "no CA is configured for {} ({})",
                server_name.to_str(),
                if is_peer {
                    "tls.peer.ca_file"
                } else {
                    "tls.backend.ca_file"
                }
            ))),
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Maps a peer router's URL authority (`10.1.0.5:55081`) to the name its certificate must
/// carry (`dc2.peer.coopr-router`): a peer is identified by its DC, not by its address. Other
/// URLs (Coopr servers) use their host name.
#[derive(Debug, Clone, Default)]
pub struct PeerNames(pub HashMap<String, String>);

impl hyper_rustls::ResolveServerName for PeerNames {
    fn resolve(
        &self,
        uri: &http::Uri,
    ) -> Result<ServerName<'static>, Box<dyn std::error::Error + Sync + Send>> {
        if let Some(dc) = uri.authority().and_then(|a| self.0.get(a.as_str())) {
            return Ok(ServerName::try_from(peer_dns_name(dc))?);
        }
        let host = uri.host().ok_or("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok(ServerName::try_from(host.to_string())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_names_resolve_by_authority_then_host() {
        use hyper_rustls::ResolveServerName;
        let names = PeerNames(HashMap::from([(
            "10.1.0.5:55081".to_string(),
            "dc_2".to_string(),
        )]));
        let peer = names.resolve(&"https://10.1.0.5:55081".parse().unwrap());
        assert_eq!(peer.unwrap().to_str(), "dc_2.peer.coopr-router");
        let backend = names.resolve(&"https://coopr.internal:55054".parse().unwrap());
        assert_eq!(backend.unwrap().to_str(), "coopr.internal");
        let v6 = names.resolve(&"https://[::1]:55054".parse().unwrap());
        assert_eq!(v6.unwrap().to_str(), "::1");
    }
}
