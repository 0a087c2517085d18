//! Certificate-bound access tokens (RFC 8705) through both example services, over real
//! HTTPS on loopback with certificates from the test kit's CA: the services request
//! client certificates (`auth_core::tls_server_config`), axum serves with
//! `auth_tower::tls::serve`, actix-web with `bind_rustls_0_23` and
//! `auth_actix::client_certificate`. And the same binding through a trusted proxy's
//! `Client-Cert` header (RFC 9440) over plain HTTP, believed only from a trusted address.
//! Both adapters must answer every case identically.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use auth_core::testkit::{IssuedCertificate, TestCa, TestIssuer};
use auth_core::{BindingMode, Issuer, RejectReason, Validator, ValidatorBuilder};
use base64::Engine as _;
use examples::demo::{
    AUDIENCE, Answer, RunningService, get_orders, start_actix, start_actix_tls, start_axum, start_axum_tls,
};
use serde_json::{Value, json};

const ALICE_SPIFFE: &str = "spiffe://example.org/ns/orders/sa/alice";

/// The issuer, the CA of the services' server certificate, the CA of the callers'
/// client certificates, two callers' certificates (alice's with a SPIFFE ID).
struct Pki {
    idp: TestIssuer,
    server_ca: TestCa,
    tls: Arc<rustls::ServerConfig>,
    alice: IssuedCertificate,
    bob: IssuedCertificate,
}

impl Pki {
    async fn new() -> Pki {
        let idp = TestIssuer::start().await.unwrap();
        let server_ca = TestCa::new("orders server CA").unwrap();
        let client_ca = TestCa::new("workloads CA").unwrap();
        let server = server_ca.server_certificate().unwrap();
        let tls = auth_core::tls_server_config(
            server.cert_pem.as_bytes(),
            server.key_pem.as_bytes(),
            Some(client_ca.cert_pem().as_bytes()),
        )
        .unwrap();
        let alice = client_ca.workload_certificate("alice", ALICE_SPIFFE).unwrap();
        let bob = client_ca.client_certificate("bob").unwrap();
        Pki { idp, server_ca, tls: Arc::new(tls), alice, bob }
    }

    fn validator(&self, adjust: impl FnOnce(ValidatorBuilder) -> ValidatorBuilder) -> Validator {
        adjust(Validator::builder().issuer(Issuer::discovery(self.idp.issuer()).audience(AUDIENCE))).build().unwrap()
    }

    /// A token `GET /orders` accepts, bound to `cert` when given.
    fn token(&self, bound_to: Option<&IssuedCertificate>) -> String {
        let token = self.idp.token().audience(AUDIENCE).scope("orders:read");
        match bound_to {
            Some(cert) => token.claim("cnf", json!({ "x5t#S256": cert.thumbprint() })).sign(),
            None => token.sign(),
        }
    }

    /// An HTTPS client trusting the services' CA, presenting `identity` if given.
    fn client(&self, identity: Option<&IssuedCertificate>) -> reqwest::Client {
        let root = reqwest::Certificate::from_pem(self.server_ca.cert_pem().as_bytes()).unwrap();
        let mut builder = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).tls_certs_only([root]);
        if let Some(cert) = identity {
            let pem = format!("{}\n{}", cert.cert_pem, cert.key_pem);
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder.build().unwrap()
    }

    /// Both services over HTTPS, requesting client certificates.
    async fn https_services(&self, validator: &Validator) -> [RunningService; 2] {
        let axum = start_axum_tls(validator, self.tls.clone()).await.unwrap();
        let actix = start_actix_tls(validator, self.tls.clone()).unwrap();
        assert!(axum.base.starts_with("https://") && actix.base.starts_with("https://"));
        [axum, actix]
    }
}

/// The value of an RFC 9440 `Client-Cert` header: the DER as a structured-field byte sequence.
fn client_cert_header(cert: &IssuedCertificate) -> String {
    format!(":{}:", base64::engine::general_purpose::STANDARD.encode(&cert.der))
}

/// `GET /orders` with `token` (and a `Client-Cert` header when given).
async fn get(client: &reqwest::Client, base: &str, token: &str, client_cert: Option<&str>) -> Answer {
    get_orders(client, base, token, client_cert).await.unwrap_or_else(|e| panic!("{base}: {e}"))
}

/// The case on both services: the same answer from both, with `status`; a 401 is
/// `invalid_token`. With `reason`, the validator counted it once per adapter. Returns the
/// body of a 200.
async fn expect(
    name: &str,
    services: &[RunningService; 2],
    validator: &Validator,
    send: impl AsyncFn(&str) -> Answer,
    status: u16,
    reason: Option<RejectReason>,
) -> Value {
    let before = validator.metrics();
    let axum = send(&services[0].base).await;
    let actix = send(&services[1].base).await;
    assert_eq!(axum.status, status, "{name}: axum answered {axum:?}");
    assert_eq!(axum, actix, "{name}: axum and actix differ");
    if status == 401 {
        let challenge = axum.challenge.as_deref().unwrap_or("");
        assert!(
            challenge.starts_with("Bearer") && challenge.contains(r#"error="invalid_token""#),
            "{name}: {challenge}"
        );
        let body: Value = serde_json::from_str(&axum.body).unwrap();
        assert_eq!(body["error"], "invalid_token", "{name}: {body}");
    }
    if let Some(reason) = reason {
        let counted = validator.metrics().rejected(reason) - before.rejected(reason);
        assert_eq!(counted, 2, "{name}: {reason:?} counted once per adapter");
    }
    eprintln!("{name:<66} -> {status} from both");
    if status == 200 { serde_json::from_str(&axum.body).unwrap() } else { Value::Null }
}

/// One validator's pair of services: each case goes to both (see [`expect`]).
struct Both<'a> {
    services: &'a [RunningService; 2],
    validator: &'a Validator,
}

fn on<'a>(services: &'a [RunningService; 2], validator: &'a Validator) -> Both<'a> {
    Both { services, validator }
}

impl Both<'_> {
    /// `GET /orders` with `token` from `client` (and a `Client-Cert` header when given).
    async fn get(
        &self,
        name: &str,
        client: &reqwest::Client,
        token: &str,
        client_cert: Option<&str>,
        status: u16,
        reason: Option<RejectReason>,
    ) -> Value {
        expect(name, self.services, self.validator, async |b| get(client, b, token, client_cert).await, status, reason)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_tokens_over_https_need_their_certificate() {
    let pki = Pki::new().await;
    let validator = pki.validator(|b| b);
    let services = pki.https_services(&validator).await;
    let (alice, bob, anonymous) = (pki.client(Some(&pki.alice)), pki.client(Some(&pki.bob)), pki.client(None));
    let bound = pki.token(Some(&pki.alice));
    let cb = Some(RejectReason::CertificateBinding);

    let body = on(&services, &validator).get("bound token, its certificate", &alice, &bound, None, 200, None).await;
    assert_eq!(body["caller"], auth_core::testkit::DEFAULT_CLIENT, "{body}");
    assert_eq!(body["spiffe_id"], ALICE_SPIFFE, "the caller's SPIFFE ID is shown: {body}");
    on(&services, &validator).get("bound token, another client's certificate", &bob, &bound, None, 401, cb).await;
    on(&services, &validator).get("bound token, no certificate", &anonymous, &bound, None, 401, cb).await;

    // The verified-token cache holds the token after a success: a second caller with the
    // same token but its own certificate is still refused.
    let cached = pki.token(Some(&pki.bob));
    on(&services, &validator).get("bound to bob, bob's certificate", &bob, &cached, None, 200, None).await;
    let hits = validator.metrics().cache_hits;
    on(&services, &validator).get("the cached token, alice's certificate", &alice, &cached, None, 401, cb).await;
    on(&services, &validator).get("the cached token, no certificate", &anonymous, &cached, None, 401, cb).await;
    assert!(validator.metrics().cache_hits > hits, "the refusals came from the cache: {:?}", validator.metrics());
    let body = on(&services, &validator)
        .get("the cached token, bob's certificate again", &bob, &cached, None, 200, None)
        .await;
    assert!(body.get("spiffe_id").is_none(), "bob's certificate has no SPIFFE ID: {body}");

    // if-present (the default): an unbound token passes, with or without a certificate.
    let unbound = pki.token(None);
    let body = on(&services, &validator).get("unbound token, a certificate", &alice, &unbound, None, 200, None).await;
    assert_eq!(body["spiffe_id"], ALICE_SPIFFE, "{body}");
    let body =
        on(&services, &validator).get("unbound token, no certificate", &anonymous, &unbound, None, 200, None).await;
    assert!(body.get("spiffe_id").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_mode_refuses_unbound_tokens_and_off_refuses_bound_ones() {
    let pki = Pki::new().await;
    let (alice, bob) = (pki.client(Some(&pki.alice)), pki.client(Some(&pki.bob)));
    let (bound, unbound) = (pki.token(Some(&pki.alice)), pki.token(None));

    let required = pki.validator(|b| b.certificate_binding(BindingMode::Required));
    let services = pki.https_services(&required).await;
    on(&services, &required).get("required: bound token, its certificate", &alice, &bound, None, 200, None).await;
    on(&services, &required)
        .get(
            "required: bound token, another certificate",
            &bob,
            &bound,
            None,
            401,
            Some(RejectReason::CertificateBinding),
        )
        .await;
    on(&services, &required).get("required: unbound token, a certificate", &alice, &unbound, None, 401, None).await;
    let anonymous = pki.client(None);
    on(&services, &required)
        .get("required: unbound token, no certificate", &anonymous, &unbound, None, 401, None)
        .await;

    // Off: bindings are not checked, so a bound token is never taken as a bearer token.
    let off = pki.validator(|b| b.certificate_binding(BindingMode::Off));
    let services = pki.https_services(&off).await;
    on(&services, &off).get("off: unbound token", &alice, &unbound, None, 200, None).await;
    on(&services, &off).get("off: bound token, its certificate", &alice, &bound, None, 401, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cert_header_is_believed_only_from_trusted_proxies() {
    let pki = Pki::new().await;
    // Plain HTTP: the services sit behind a TLS-terminating proxy on 127.0.0.1.
    let plain = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
    let bound = pki.token(Some(&pki.alice));
    let (alice_header, bob_header) = (client_cert_header(&pki.alice), client_cert_header(&pki.bob));

    let trusted = pki.validator(|b| b.trusted_proxies(["127.0.0.1/32"]));
    let services = [start_axum(&trusted).await.unwrap(), start_actix(&trusted).unwrap()];
    let body = on(&services, &trusted)
        .get("trusted proxy: Client-Cert of the bound certificate", &plain, &bound, Some(&alice_header), 200, None)
        .await;
    assert_eq!(body["spiffe_id"], ALICE_SPIFFE, "{body}");
    on(&services, &trusted)
        .get(
            "trusted proxy: Client-Cert of another certificate",
            &plain,
            &bound,
            Some(&bob_header),
            401,
            Some(RejectReason::CertificateBinding),
        )
        .await;
    on(&services, &trusted)
        .get("trusted proxy: no Client-Cert", &plain, &bound, None, 401, Some(RejectReason::CertificateBinding))
        .await;
    on(&services, &trusted)
        .get(
            "trusted proxy: Client-Cert not a certificate",
            &plain,
            &bound,
            Some(":bm90IGEgY2VydA==:"),
            401,
            Some(RejectReason::CertificateBinding),
        )
        .await;

    // The same header from a peer outside the trusted ranges (or with none configured).
    for (name, ranges) in [("no trusted proxies", vec![]), ("trusted 10.0.0.0/8 only", vec!["10.0.0.0/8"])] {
        let untrusted = pki.validator(|b| b.trusted_proxies(ranges));
        let services = [start_axum(&untrusted).await.unwrap(), start_actix(&untrusted).unwrap()];
        let case = format!("{name}: Client-Cert of the bound certificate");
        on(&services, &untrusted)
            .get(&case, &plain, &bound, Some(&alice_header), 401, Some(RejectReason::CertificateBinding))
            .await;
    }
}
