//! Certificate-bound tokens (RFC 8705) over real loopback HTTPS: an actix server with
//! `bind_rustls_0_23` and `on_connect(auth_actix::client_certificate)`, reqwest clients
//! presenting client certificates of a test CA; and, over plain HTTP, the `Client-Cert`
//! header (RFC 9440) of a trusted proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use auth_actix::{AccessPolicy, AuthMiddleware, Authenticated, BindingMode, Validator};
use auth_core::Algorithm;
use auth_core::testkit::{IssuedCertificate, TestCa, TestIssuer, TestKey};
use base64::Engine as _;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};

const SPIFFE_ID: &str = "spiffe://example.org/ns/orders/sa/api";

// ---------------------------------------------------------------------------------------
// Harness

/// The server's TLS: its certificate from `ca`, client certificates from `ca` requested
/// but not required.
fn tls_config(ca: &TestCa) -> rustls::ServerConfig {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let server = ca.server_certificate().unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server.der.clone())],
            PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap(),
        )
        .unwrap()
}

/// An actix server on a loopback port (HTTPS with `tls`, else plain HTTP), with the
/// `client_certificate` hook, serving `GET /orders` behind `validator`; stopped on drop.
struct Server {
    base: String,
    handle: ServerHandle,
}

impl Server {
    fn start(validator: Validator, tls: Option<rustls::ServerConfig>) -> Server {
        let (tx, rx) = mpsc::channel();
        let scheme = if tls.is_some() { "https" } else { "http" };
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let auth = AuthMiddleware::new(AccessPolicy::new(validator));
                let server = HttpServer::new(move || {
                    App::new().service(web::resource("/orders").wrap(auth.clone()).get(whoami))
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .on_connect(auth_actix::client_certificate);
                let server = match tls {
                    Some(tls) => server.bind_rustls_0_23(("127.0.0.1", 0), tls),
                    None => server.bind(("127.0.0.1", 0)),
                }
                .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).unwrap();
                server.await
            })
        });
        let (addr, handle): (SocketAddr, ServerHandle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Server { base: format!("{scheme}://{addr}"), handle }
    }

    fn url(&self) -> String {
        format!("{}/orders", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// What the handler saw of the caller.
async fn whoami(caller: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "sub": caller.subject(),
        "spiffe_id": caller.spiffe_id(),
        "thumbprint": caller.client_certificate().map(|c| c.thumbprint()),
    }))
}

/// An HTTPS client that trusts only `ca`, presenting `identity` if any.
fn client(ca: &TestCa, identity: Option<&IssuedCertificate>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10));
    if let Some(cert) = identity {
        let pem = format!("{}{}", cert.cert_pem, cert.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.unwrap();
    let status = response.status();
    let challenge = response.headers().get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    Reply { status, challenge, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Reply {
    send(client.get(url).header(AUTHORIZATION, format!("Bearer {token}"))).await
}

/// 401 `invalid_token` about the client certificate, naming no thumbprint.
fn assert_unbound_refusal(reply: &Reply, certificates: &[&IssuedCertificate]) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    assert_eq!(reply.body["error"], "invalid_token", "{reply:?}");
    let description = reply.body["error_description"].as_str().unwrap();
    assert!(description.contains("client certificate"), "{reply:?}");
    let challenge = reply.challenge.as_deref().unwrap();
    assert!(challenge.starts_with(r#"Bearer error="invalid_token""#), "{reply:?}");
    for cert in certificates {
        let thumbprint = cert.thumbprint();
        assert!(!description.contains(&thumbprint) && !challenge.contains(&thumbprint), "{reply:?}");
    }
}

struct Setup {
    idp: TestIssuer,
    ca: TestCa,
    workload: IssuedCertificate,
    other: IssuedCertificate,
}

async fn setup() -> Setup {
    let idp = TestIssuer::with_keys(vec![TestKey::generate(Algorithm::ES256, "es256-1")]).await.unwrap();
    let ca = TestCa::new("client CA").unwrap();
    let workload = ca.workload_certificate("orders-api", SPIFFE_ID).unwrap();
    let other = ca.client_certificate("someone-else").unwrap();
    Setup { idp, ca, workload, other }
}

fn validator(idp: &TestIssuer, binding: BindingMode, trusted_proxies: &[&str]) -> Validator {
    Validator::builder()
        .issuer(idp.jwks_issuer())
        .certificate_binding(binding)
        .trusted_proxies(trusted_proxies.iter().copied())
        .build()
        .unwrap()
}

fn bound_token(idp: &TestIssuer, cert: &IssuedCertificate) -> String {
    idp.token().claim("cnf", json!({ "x5t#S256": cert.thumbprint() })).sign()
}

// ---------------------------------------------------------------------------------------
// TLS in the service

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_with_its_certificate_is_admitted_and_the_handler_sees_the_workload() {
    let s = setup().await;
    let server = Server::start(validator(&s.idp, BindingMode::IfPresent, &[]), Some(tls_config(&s.ca)));
    let token = bound_token(&s.idp, &s.workload);
    let client = client(&s.ca, Some(&s.workload));
    // Several requests on one kept-alive connection: the certificate read at the handshake
    // serves them all.
    for _ in 0..3 {
        let reply = get(&client, &server.url(), &token).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(reply.body["spiffe_id"], SPIFFE_ID, "{reply:?}");
        assert_eq!(reply.body["thumbprint"], s.workload.thumbprint(), "{reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_with_another_certificate_or_none_is_401() {
    let s = setup().await;
    let server = Server::start(validator(&s.idp, BindingMode::IfPresent, &[]), Some(tls_config(&s.ca)));
    let token = bound_token(&s.idp, &s.workload);

    let reply = get(&client(&s.ca, Some(&s.other)), &server.url(), &token).await;
    assert_unbound_refusal(&reply, &[&s.workload, &s.other]);

    let reply = get(&client(&s.ca, None), &server.url(), &token).await;
    assert_unbound_refusal(&reply, &[&s.workload]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_token_passes_if_present_and_is_401_when_binding_is_required() {
    let s = setup().await;
    let token = s.idp.token().sign();

    let server = Server::start(validator(&s.idp, BindingMode::IfPresent, &[]), Some(tls_config(&s.ca)));
    let reply = get(&client(&s.ca, None), &server.url(), &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["spiffe_id"], Value::Null, "{reply:?}");
    // An unbound token with a certificate passes too; the handler still sees the workload.
    let reply = get(&client(&s.ca, Some(&s.workload)), &server.url(), &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["spiffe_id"], SPIFFE_ID, "{reply:?}");
    drop(server);

    let server = Server::start(validator(&s.idp, BindingMode::Required, &[]), Some(tls_config(&s.ca)));
    for identity in [None, Some(&s.workload)] {
        let reply = get(&client(&s.ca, identity), &server.url(), &token).await;
        assert_unbound_refusal(&reply, &[&s.workload]);
    }
    let reply = get(&client(&s.ca, Some(&s.workload)), &server.url(), &bound_token(&s.idp, &s.workload)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_bound_token_stolen_to_another_certificate_is_401() {
    let s = setup().await;
    let server = Server::start(validator(&s.idp, BindingMode::IfPresent, &[]), Some(tls_config(&s.ca)));
    let token = bound_token(&s.idp, &s.workload);
    let (owner, thief) = (client(&s.ca, Some(&s.workload)), client(&s.ca, Some(&s.other)));

    // Verified once: now in the validator's cache.
    assert_eq!(get(&owner, &server.url(), &token).await.status, StatusCode::OK);
    let reply = get(&thief, &server.url(), &token).await;
    assert_unbound_refusal(&reply, &[&s.workload, &s.other]);
    let reply = get(&client(&s.ca, None), &server.url(), &token).await;
    assert_unbound_refusal(&reply, &[&s.workload]);
    // The owner is not affected.
    assert_eq!(get(&owner, &server.url(), &token).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_certificate_wins_over_a_forwarded_header() {
    let s = setup().await;
    // Even from a trusted proxy, a header cannot replace the connection's certificate.
    let server = Server::start(validator(&s.idp, BindingMode::IfPresent, &["127.0.0.1/32"]), Some(tls_config(&s.ca)));
    let token = bound_token(&s.idp, &s.workload);
    let request = client(&s.ca, Some(&s.other))
        .get(server.url())
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header("client-cert", format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&s.workload.der)));
    assert_unbound_refusal(&send(request).await, &[&s.workload, &s.other]);
}

// ---------------------------------------------------------------------------------------
// TLS terminated by a proxy (plain HTTP to the service)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_certificate_is_believed_from_a_trusted_proxy_only() {
    let s = setup().await;
    let token = bound_token(&s.idp, &s.workload);
    let forwarded = format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&s.workload.der));
    let request = |url: String| {
        reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(10))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header("client-cert", forwarded.clone())
    };

    let trusting = Server::start(validator(&s.idp, BindingMode::IfPresent, &["127.0.0.1/32"]), None);
    let reply = send(request(trusting.url())).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["spiffe_id"], SPIFFE_ID, "{reply:?}");

    let distrusting = Server::start(validator(&s.idp, BindingMode::IfPresent, &[]), None);
    let reply = send(request(distrusting.url())).await;
    assert_unbound_refusal(&reply, &[&s.workload]);
}
