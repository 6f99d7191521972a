//! The listener side of TLS: a [`TlsSource`] gives the server config in force (read per
//! connection, so a reload applies to the next handshake and never to open connections), and
//! [`handshake`] runs one handshake within the handshake timeout, logging a refusal.

use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Where a TLS listener gets its current server config and handshake timeout.
#[derive(Clone)]
pub struct TlsSource {
    pub config: Arc<dyn Fn() -> Option<Arc<ServerConfig>> + Send + Sync>,
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSource")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Runs the server handshake on `stream`. `None` (the connection is dropped) when the config is
/// gone, the client does not finish in time, or the handshake fails (a wrong, expired or
/// unknown peer certificate, an old protocol version, no common cipher).
pub async fn handshake(
    source: &TlsSource,
    stream: TcpStream,
    listener: &'static str,
    remote: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    let Some(config) = (source.config)() else {
        tracing::warn!(
            listener,
            %remote,
            "TLS is no longer configured on this listener (restart to serve plain); closing"
        );
        return None;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(source.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::warn!(listener, %remote, error = %e, "TLS handshake refused");
            crate::metrics::tls_handshake_failed(listener);
            None
        }
        Err(_) => {
            tracing::info!(listener, %remote, timeout = ?source.handshake_timeout, "TLS handshake did not finish in time; closing");
            crate::metrics::tls_handshake_failed(listener);
            None
        }
    }
}

/// The DC the client certificate of an accepted connection names (mutual TLS on the peer
/// port; the verifier already checked its chain and that it names a DC of the map). `None` on
/// the client port, or for a certificate that names no single DC.
pub fn peer_dc(stream: &TlsStream<TcpStream>) -> Option<super::identity::PeerDc> {
    let cert = stream.get_ref().1.peer_certificates()?.first()?;
    super::identity::peer_dc_of(cert)
}
