//! Certificate-bound tokens (RFC 8705) through the tower layer over real HTTPS on
//! loopback: axum served by `auth_tower::tls::serve`, and tonic's own TLS server.
#![cfg(all(feature = "tls", feature = "tonic-tls"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use auth_core::testkit::{IssuedCertificate, TestCa, TestIssuer};
use auth_core::{BindingMode, Validator};
use auth_tower::{AuthLayer, Authenticated, GrpcRejection};
use axum::Router;
use axum::routing::get;
use serde_json::json;

struct World {
    idp: TestIssuer,
    ca: TestCa,
    cert: IssuedCertificate,
    other: IssuedCertificate,
}

fn world_certs() -> (TestCa, IssuedCertificate, IssuedCertificate) {
    let ca = TestCa::new("service CA").unwrap();
    let cert = ca.workload_certificate("orders", "spiffe://mesh.test/ns/shop/sa/orders").unwrap();
    let other = ca.client_certificate("intruder").unwrap();
    (ca, cert, other)
}

async fn world() -> World {
    let idp = TestIssuer::start().await.unwrap();
    let (ca, cert, other) = world_certs();
    World { idp, ca, cert, other }
}

fn bound_to(idp: &TestIssuer, cert: &IssuedCertificate) -> String {
    idp.token().claim("cnf", json!({ "x5t#S256": cert.thumbprint() })).sign()
}

async fn whoami(Authenticated(caller): Authenticated) -> String {
    caller.spiffe_id().unwrap_or("no spiffe id").to_owned()
}

/// Serves the router over HTTPS (client certificates from `ca` requested); returns the URL.
async fn serve_https(w: &World, mode: BindingMode) -> String {
    let validator = Validator::builder().issuer(w.idp.jwks_issuer()).certificate_binding(mode).build().unwrap();
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(AuthLayer::new(auth_core::AccessPolicy::new(validator.clone())));
    let server = w.ca.server_certificate().unwrap();
    let config = auth_core::tls_server_config(
        server.cert_pem.as_bytes(),
        server.key_pem.as_bytes(),
        Some(w.ca.cert_pem().as_bytes()),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(auth_tower::tls::serve(listener, Arc::new(config), app));
    format!("https://localhost:{port}/whoami")
}

fn client(ca: &TestCa, identity: Option<&IssuedCertificate>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap())
        .resolve("localhost", "127.0.0.1:0".parse().unwrap());
    if let Some(cert) = identity {
        let pem = format!("{}{}", cert.cert_pem, cert.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn get_status(client: &reqwest::Client, url: &str, token: &str) -> (u16, String, String) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let challenge =
        response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, challenge, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_over_tls_binds_tokens_to_the_connections_certificate() {
    let w = world().await;
    let url = serve_https(&w, BindingMode::IfPresent).await;
    let token = bound_to(&w.idp, &w.cert);
    let (status, _, body) = get_status(&client(&w.ca, Some(&w.cert)), &url, &token).await;
    assert_eq!((status, body.as_str()), (200, "spiffe://mesh.test/ns/shop/sa/orders"));
    // The token is cached now: another certificate, or none, is refused all the same.
    for other in [Some(&w.other), None] {
        let (status, challenge, _) = get_status(&client(&w.ca, other), &url, &token).await;
        assert_eq!(status, 401);
        assert!(challenge.contains("invalid_token") && challenge.contains("client certificate"), "{challenge}");
        assert!(!challenge.contains(&w.cert.thumbprint()), "{challenge}");
    }
    // An unbound token passes with or without a certificate.
    let unbound = w.idp.token().sign();
    assert_eq!(get_status(&client(&w.ca, None), &url, &unbound).await.0, 200);
    assert_eq!(get_status(&client(&w.ca, Some(&w.other)), &url, &unbound).await.0, 200);
    // A forwarded certificate header from the (untrusted) peer counts for nothing.
    use base64::Engine as _;
    let forged = format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&w.cert.der));
    let response =
        client(&w.ca, None).get(&url).bearer_auth(&token).header("client-cert", forged).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_mode_refuses_unbound_tokens_over_tls() {
    let w = world().await;
    let url = serve_https(&w, BindingMode::Required).await;
    assert_eq!(get_status(&client(&w.ca, Some(&w.cert)), &url, &w.idp.token().sign()).await.0, 401);
    assert_eq!(get_status(&client(&w.ca, Some(&w.cert)), &url, &bound_to(&w.idp, &w.cert)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_over_tls_reads_the_peer_certificate_without_user_code() {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};
    // tonic's TLS uses rustls' process default; with every feature on, both backends are
    // compiled in and none is chosen.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let w = world().await;
    let validator = Validator::builder().issuer(w.idp.jwks_issuer()).build().unwrap();
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>>().await;
    let server = w.ca.server_certificate().unwrap();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&server.cert_pem, &server.key_pem))
        .client_ca_root(Certificate::from_pem(w.ca.cert_pem()))
        .client_auth_optional(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let layer = AuthLayer::new(auth_core::AccessPolicy::new(validator.clone())).on_rejection(GrpcRejection);
    tokio::spawn(async move {
        let _keep = reporter;
        tonic::transport::Server::builder()
            .tls_config(tls)
            .unwrap()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    let check = |identity: Option<&IssuedCertificate>, token: String| {
        let mut tls =
            ClientTlsConfig::new().ca_certificate(Certificate::from_pem(w.ca.cert_pem())).domain_name("localhost");
        if let Some(cert) = identity {
            tls = tls.identity(Identity::from_pem(&cert.cert_pem, &cert.key_pem));
        }
        async move {
            let channel = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{port}"))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut request = tonic::Request::new(tonic_health::pb::HealthCheckRequest { service: String::new() });
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
            tonic_health::pb::health_client::HealthClient::new(channel).check(request).await.map(|_| ())
        }
    };
    let token = bound_to(&w.idp, &w.cert);
    check(Some(&w.cert), token.clone()).await.unwrap();
    let status = check(Some(&w.other), token.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let status = check(None, token).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    check(None, w.idp.token().sign()).await.unwrap();
}
