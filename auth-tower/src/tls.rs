//! Serving an axum router over HTTPS with rustls (feature `tls`), each request carrying
//! its connection's peer and client certificate (thumbprint computed once, at the
//! handshake) for certificate-bound tokens (RFC 8705): axum's own server cannot expose
//! peer certificates.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tower_service::Service;

use crate::certificate::Connection;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` over TLS with `config` (for example from
/// [`auth_core::tls_server_config`], which requests client certificates). Every request
/// has a [`Connection`] and axum's `ConnectInfo<SocketAddr>` in its extensions. Runs until
/// the listener fails; a failed handshake only ends its own connection.
///
/// ```no_run
/// use std::sync::Arc;
/// use axum::{Router, routing::get};
///
/// # async fn run(router: Router) -> Result<(), Box<dyn std::error::Error>> {
/// let config = auth_core::tls_server_config(
///     &std::fs::read("server.pem")?,
///     &std::fs::read("server.key")?,
///     Some(&std::fs::read("clients-ca.pem")?),
/// )?;
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8443").await?;
/// auth_tower::tls::serve(listener, Arc::new(config), router).await?;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: axum::Router,
) -> std::io::Result<()> {
    // Only HTTP/1.1 is served here: a client offered h2 would pick it and fail.
    let mut config = config;
    if config.alpn_protocols.iter().any(|p| p.as_slice() != b"http/1.1") {
        Arc::make_mut(&mut config).alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Per-connection errors (reset before accept, too many files): go on.
            Err(err) if is_transient(&err) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(err) => return Err(err),
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(target: auth_core::LOG_TARGET, peer = %peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let leaf = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).map(|c| c.to_vec());
            let connection = Connection::new(peer, leaf.as_deref());
            let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                let extensions = request.extensions_mut();
                extensions.insert(connection.clone());
                extensions.insert(axum::extract::ConnectInfo(peer));
                let mut router = router.clone();
                async move {
                    Ok::<_, Infallible>(
                        router.call(request.map(axum::body::Body::new)).await.unwrap_or_else(|e| match e {}),
                    )
                }
            });
            let served = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            if let Err(err) = served.await {
                tracing::debug!(target: auth_core::LOG_TARGET, peer = %peer, error = %err, "connection ended with an error");
            }
        });
    }
}

fn is_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(err.kind(), ConnectionAborted | ConnectionReset | Interrupted | WouldBlock)
        || err.raw_os_error() == Some(24)
}
