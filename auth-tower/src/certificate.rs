//! What the connection knows of the caller (its address, its client certificate), read
//! once per connection and carried in every request's extensions.

use std::net::SocketAddr;
use std::sync::Arc;

use auth_core::ClientCertificate;

/// The connection a request came on: the socket peer and, over TLS with a client
/// certificate, that certificate (its thumbprint computed once, at the handshake). Put in
/// each request's extensions by [`crate::tls::serve`] (and, for tonic, from its
/// `TlsConnectInfo`); the layer passes it to the core.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The socket peer.
    pub peer: SocketAddr,
    /// The client certificate (the leaf), if one was presented and verified by TLS.
    pub certificate: Option<Arc<ClientCertificate>>,
}

impl Connection {
    /// From the peer and the leaf certificate's DER (a certificate that does not parse
    /// counts as none: no binding can match it).
    pub fn new(peer: SocketAddr, leaf_der: Option<&[u8]>) -> Self {
        let certificate = leaf_der.and_then(|der| ClientCertificate::from_der(der).ok()).map(Arc::new);
        Connection { peer, certificate }
    }
}

/// tonic puts the connection's peer certificates in `TlsConnectInfo` (per request): read
/// them into a [`Connection`] unless one is there already.
#[cfg(feature = "tonic-tls")]
pub(crate) fn from_tonic<B>(request: &mut http::Request<B>) {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let extensions = request.extensions();
    if extensions.get::<Connection>().is_some() {
        return;
    }
    let connection = if let Some(tls) = extensions.get::<TlsConnectInfo<TcpConnectInfo>>() {
        let Some(peer) = tls.get_ref().remote_addr() else { return };
        let certs = tls.peer_certs();
        Connection::new(peer, certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref()))
    } else if let Some(peer) = extensions.get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr) {
        Connection { peer, certificate: None }
    } else {
        return;
    };
    request.extensions_mut().insert(connection);
}
