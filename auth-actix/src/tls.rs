//! TLS terminated in the service: the client certificate read once per connection, at
//! the handshake, for certificate-bound tokens (RFC 8705).

use std::any::Any;
use std::sync::Arc;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use auth_core::ClientCertificate;

/// An [`HttpServer::on_connect`](actix_web::HttpServer::on_connect) hook that reads the
/// client certificate of a rustls 0.23 connection (`bind_rustls_0_23`,
/// `listen_rustls_0_23`): the leaf's RFC 8705 thumbprint and SPIFFE ID are computed once
/// per connection and kept in the connection's data as an `Arc<ClientCertificate>`, where
/// [`AuthMiddleware`](crate::AuthMiddleware) finds it for every request on the connection.
/// Certificate-bound tokens (`cnf.x5t#S256`) then work with no code of yours; the
/// handler sees the certificate through [`Principal::client_certificate`](crate::Principal::client_certificate)
/// and [`Principal::spiffe_id`](crate::Principal::spiffe_id).
///
/// Plain-TCP connections (a `bind` next to the `bind_rustls_0_23`) and TLS connections
/// without a client certificate get nothing; a certificate that is not X.509 counts as
/// none. The connection's certificate wins over any `Client-Cert` or
/// `x-forwarded-client-cert` header (see
/// [`ValidatorBuilder::trusted_proxies`](auth_core::ValidatorBuilder::trusted_proxies)).
///
/// TLS verifies the certificate, not this hook: ask for client certificates with a
/// `WebPkiClientVerifier` over the CAs you trust (`allow_unauthenticated` makes them
/// optional, so that unbound tokens keep working). The `ServerConfig` is yours, and so is
/// its crypto provider: this crate enables none (add `rustls` with `aws_lc_rs` or `ring`).
///
/// ```no_run
/// use std::sync::Arc;
///
/// use actix_web::{App, HttpResponse, HttpServer, web};
/// use auth_actix::{AccessPolicy, AuthMiddleware, Authenticated, Issuer, Validator};
/// use rustls::pki_types::pem::PemObject as _;
/// use rustls::pki_types::{CertificateDer, PrivateKeyDer};
///
/// async fn whoami(caller: Authenticated) -> HttpResponse {
///     HttpResponse::Ok().body(format!("workload {:?}", caller.spiffe_id()))
/// }
///
/// #[actix_web::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
///     // The CAs whose client certificates TLS accepts.
///     let mut client_roots = rustls::RootCertStore::empty();
///     for ca in CertificateDer::pem_file_iter("client-ca.pem")? {
///         client_roots.add(ca?)?;
///     }
///     let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
///         .allow_unauthenticated() // optional: requested, not required
///         .build()?;
///     let chain = CertificateDer::pem_file_iter("server.pem")?.collect::<Result<Vec<_>, _>>()?;
///     let key = PrivateKeyDer::from_pem_file("server-key.pem")?;
///     let tls = rustls::ServerConfig::builder_with_provider(provider)
///         .with_safe_default_protocol_versions()?
///         .with_client_cert_verifier(verifier)
///         .with_single_cert(chain, key)?;
///
///     let validator = Validator::builder()
///         .issuer(Issuer::discovery("https://idp.example.com").audience("orders-api"))
///         .build()?;
///     let auth = AuthMiddleware::new(AccessPolicy::new(validator));
///     HttpServer::new(move || App::new().wrap(auth.clone()).route("/whoami", web::get().to(whoami)))
///         .on_connect(auth_actix::client_certificate)
///         .bind_rustls_0_23(("0.0.0.0", 8443), tls)?
///         .run()
///         .await?;
///     Ok(())
/// }
/// ```
pub fn client_certificate(connection: &dyn Any, data: &mut Extensions) {
    let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() else { return };
    let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(<[_]>::first) else { return };
    match ClientCertificate::from_der(leaf) {
        Ok(certificate) => {
            data.insert(Arc::new(certificate));
        }
        Err(err) => tracing::debug!(error = %err, "the client certificate is not X.509: ignored"),
    }
}
