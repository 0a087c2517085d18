//! Certificate-bound tokens (RFC 8705 §3): the modes, the check on every request (cache
//! hit or not), and certificates forwarded by trusted proxies (RFC 9440 `Client-Cert`,
//! Envoy's `x-forwarded-client-cert`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use auth_core::testkit::{IssuedCertificate, TestCa, TestIssuer};
use auth_core::{
    AccessPolicy, Admission, BindingMode, ClientCertificate, Decision, Refusal, RejectReason, RequestContext, Validator,
};
use base64::Engine as _;
use serde_json::json;

struct World {
    idp: TestIssuer,
    cert: IssuedCertificate,
    other: IssuedCertificate,
}

async fn world() -> World {
    let idp = TestIssuer::start().await.unwrap();
    let ca = TestCa::new("mesh CA").unwrap();
    let cert = ca.workload_certificate("orders", "spiffe://mesh.test/ns/shop/sa/orders").unwrap();
    let other = ca.client_certificate("intruder").unwrap();
    World { idp, cert, other }
}

fn policy(idp: &TestIssuer, mode: BindingMode, proxies: &[&str]) -> AccessPolicy {
    let validator = Validator::builder()
        .issuer(idp.jwks_issuer())
        .certificate_binding(mode)
        .trusted_proxies(proxies.iter().copied())
        .build()
        .unwrap();
    AccessPolicy::new(validator)
}

fn bound_to(idp: &TestIssuer, cert: &IssuedCertificate) -> String {
    idp.token().claim("cnf", json!({ "x5t#S256": cert.thumbprint() })).sign()
}

/// One request: its token, the connection's certificate (if any), its peer, extra headers.
async fn call(
    policy: &AccessPolicy,
    token: &str,
    connection: Option<&IssuedCertificate>,
    peer: &str,
    extra: &[(&str, String)],
) -> Result<Admission, Refusal> {
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    for (name, value) in extra {
        headers.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    let certificate = connection.map(|c| Arc::new(ClientCertificate::from_der(&c.der).unwrap()));
    let peer: SocketAddr = peer.parse().unwrap();
    let mut request = RequestContext::new("GET", "/orders", &headers).peer_addr(peer);
    if let Some(certificate) = &certificate {
        request = request.client_certificate(certificate);
    }
    match policy.decide(&request) {
        Decision::Admit(admission) => Ok(admission),
        Decision::Refuse(refusal) => Err(refusal),
        Decision::Verify(verification) => verification.run().await,
    }
}

fn reason(result: Result<Admission, Refusal>) -> RejectReason {
    let refusal = result.expect_err("refused");
    let rejection = &refusal.rejection;
    assert_eq!(rejection.status, 401);
    assert!(rejection.www_authenticate().contains("invalid_token"), "{}", rejection.www_authenticate());
    refusal.error.reason()
}

const PEER: &str = "192.0.2.10:40000";
const PROXY: &str = "10.1.2.3:40000";

#[tokio::test]
async fn the_thumbprint_is_base64url_sha256_of_the_der_and_the_spiffe_id_is_read() {
    let w = world().await;
    let certificate = ClientCertificate::from_der(&w.cert.der).unwrap();
    assert_eq!(certificate.thumbprint(), w.cert.thumbprint());
    assert_eq!(certificate.thumbprint().len(), 43, "unpadded base64url of 32 bytes");
    assert_eq!(certificate.spiffe_id(), Some("spiffe://mesh.test/ns/shop/sa/orders"));
    assert_eq!(ClientCertificate::from_der(&w.other.der).unwrap().spiffe_id(), None);
    assert!(ClientCertificate::from_der(b"not a certificate").is_err());
    assert!(!format!("{certificate:?}").contains(certificate.thumbprint()));
}

#[tokio::test]
async fn if_present_a_bound_token_needs_its_certificate_on_every_request() {
    let w = world().await;
    let policy = policy(&w.idp, BindingMode::IfPresent, &[]);
    let token = bound_to(&w.idp, &w.cert);
    let admitted = call(&policy, &token, Some(&w.cert), PEER, &[]).await.unwrap();
    let principal = admitted.principal.as_ref().unwrap();
    assert_eq!(principal.spiffe_id(), Some("spiffe://mesh.test/ns/shop/sa/orders"));
    assert_eq!(principal.client_certificate().unwrap().thumbprint(), w.cert.thumbprint());
    // The token is now cached: the cache does not vouch for the certificate.
    assert_eq!(reason(call(&policy, &token, Some(&w.other), PEER, &[]).await), RejectReason::CertificateBinding);
    assert_eq!(reason(call(&policy, &token, None, PEER, &[]).await), RejectReason::CertificateBinding);
    let refusal = call(&policy, &token, None, PEER, &[]).await.unwrap_err();
    let description = refusal.rejection.www_authenticate();
    assert!(description.contains("client certificate"), "{description}");
    assert!(!description.contains(&w.cert.thumbprint()), "never the thumbprint: {description}");
    assert_eq!(policy.validator().metrics().cache_hits, 3);
    // Unbound tokens pass, with or without a certificate.
    call(&policy, &w.idp.token().sign(), None, PEER, &[]).await.unwrap();
    call(&policy, &w.idp.token().sign(), Some(&w.other), PEER, &[]).await.unwrap();
}

#[tokio::test]
async fn required_refuses_unbound_tokens_and_off_refuses_bound_ones() {
    let w = world().await;
    let required = policy(&w.idp, BindingMode::Required, &[]);
    let unbound = w.idp.token().sign();
    assert_eq!(reason(call(&required, &unbound, Some(&w.cert), PEER, &[]).await), RejectReason::CertificateBinding);
    call(&required, &bound_to(&w.idp, &w.cert), Some(&w.cert), PEER, &[]).await.unwrap();

    let off = policy(&w.idp, BindingMode::Off, &[]);
    let bound = bound_to(&w.idp, &w.cert);
    // Never accepted as a plain bearer token, even with the right certificate.
    assert_eq!(reason(call(&off, &bound, Some(&w.cert), PEER, &[]).await), RejectReason::SenderConstrained);
    call(&off, &unbound, None, PEER, &[]).await.unwrap();
}

fn client_cert_header(cert: &IssuedCertificate) -> (&'static str, String) {
    ("client-cert", format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&cert.der)))
}

fn xfcc_header(cert: &IssuedCertificate) -> (&'static str, String) {
    // Envoy percent-encodes the PEM (a space is %20).
    let pem = url::form_urlencoded::byte_serialize(cert.cert_pem.as_bytes()).collect::<String>().replace('+', "%20");
    (
        "x-forwarded-client-cert",
        format!("By=spiffe://mesh.test/far;Hash={};URI=spiffe://far,Cert=\"{pem}\"", "0".repeat(64)),
    )
}

#[tokio::test]
async fn forwarded_certificates_count_only_from_trusted_proxies() {
    let w = world().await;
    let policy = policy(&w.idp, BindingMode::IfPresent, &["10.0.0.0/8"]);
    let token = bound_to(&w.idp, &w.cert);
    for header in [client_cert_header(&w.cert), xfcc_header(&w.cert)] {
        let admitted = call(&policy, &token, None, PROXY, std::slice::from_ref(&header)).await.unwrap();
        assert_eq!(admitted.principal.as_ref().unwrap().spiffe_id(), Some("spiffe://mesh.test/ns/shop/sa/orders"));
        // From an address outside the trusted ranges the header is ignored.
        let from_anyone = call(&policy, &token, None, PEER, std::slice::from_ref(&header)).await;
        assert_eq!(reason(from_anyone), RejectReason::CertificateBinding, "{}", header.0);
    }
    // Another certificate forwarded: refused.
    assert_eq!(
        reason(call(&policy, &token, None, PROXY, &[client_cert_header(&w.other)]).await),
        RejectReason::CertificateBinding
    );
    // Envoy's Hash= form (hex SHA-256), nearest hop last.
    let hex: String = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(w.cert.thumbprint())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let xfcc =
        ("x-forwarded-client-cert", format!("Hash={};URI=spiffe://far,Hash={hex};URI=spiffe://near", "f".repeat(64)));
    let admitted = call(&policy, &token, None, PROXY, &[xfcc]).await.unwrap();
    assert_eq!(admitted.principal.as_ref().unwrap().spiffe_id(), Some("spiffe://near"));
    // The connection's own certificate wins over any header.
    let result = call(&policy, &token, Some(&w.other), PROXY, &[client_cert_header(&w.cert)]).await;
    assert_eq!(reason(result), RejectReason::CertificateBinding);
    // A malformed header is no certificate.
    let garbage = ("client-cert", ":not base64!:".to_owned());
    assert_eq!(reason(call(&policy, &token, None, PROXY, &[garbage]).await), RejectReason::CertificateBinding);
}

#[tokio::test]
async fn validate_with_certificate_for_direct_use() {
    let w = world().await;
    let validator = Validator::builder().issuer(w.idp.jwks_issuer()).build().unwrap();
    let token = bound_to(&w.idp, &w.cert);
    let certificate = Arc::new(ClientCertificate::from_der(&w.cert.der).unwrap());
    let principal = validator.validate_with_certificate(&token, &certificate).await.unwrap();
    assert_eq!(principal.claims().certificate_thumbprint.as_deref(), Some(w.cert.thumbprint().as_str()));
    assert_eq!(validator.validate(&token).await.unwrap_err().reason(), RejectReason::CertificateBinding);
}

#[test]
fn trusted_proxy_ranges_are_checked_at_build() {
    let err = Validator::builder()
        .issuer(auth_core::Issuer::static_jwks("https://i.example", r#"{"keys":[]}"#).audience("a"))
        .trusted_proxies(["10.0.0.0/99"])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("trusted_proxies"), "{err}");
}

#[tokio::test]
async fn a_confirmation_that_is_not_a_sha256_thumbprint_is_an_invalid_claim() {
    let w = world().await;
    let validator = Validator::builder().issuer(w.idp.jwks_issuer()).build().unwrap();
    for cnf in [json!({"x5t#S256": "c2hvcnQ"}), json!({"x5t#S256": 42}), json!({"x5t#S256": ""}), json!("x5t")] {
        let token = w.idp.token().claim("cnf", cnf.clone()).sign();
        assert_eq!(validator.validate(&token).await.unwrap_err().reason(), RejectReason::InvalidClaim, "{cnf}");
    }
    // RFC 8705's own example thumbprint (it has trailing bits) is a thumbprint.
    let token = w.idp.token().claim("cnf", json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})).sign();
    assert_eq!(validator.validate(&token).await.unwrap_err().reason(), RejectReason::CertificateBinding);
}

#[test]
fn pem_inputs_that_are_not_certificates_are_configuration_errors() {
    let ca = TestCa::new("ca").unwrap();
    let server = ca.server_certificate().unwrap();
    let (cert, key) = (server.cert_pem.as_bytes(), server.key_pem.as_bytes());
    assert!(auth_core::tls_server_config(cert, key, Some(ca.cert_pem().as_bytes())).is_ok());
    let err = auth_core::tls_server_config(b"nothing here", key, None).unwrap_err();
    assert!(err.to_string().contains("server certificate: no CERTIFICATE"), "{err}");
    let err = auth_core::tls_server_config(cert, key, Some(b"no CA either")).unwrap_err();
    assert!(err.to_string().contains("client CA"), "{err}");
    assert!(auth_core::tls_server_config(cert, b"not a key", None).is_err());
    let err = auth_core::client::TlsIdentity::from_pem(b"", key).unwrap_err();
    assert!(err.to_string().contains("client certificate"), "{err}");
    let err = Validator::builder()
        .extra_root_certificates(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(err.to_string().contains("root certificates"), "{err}");
}
