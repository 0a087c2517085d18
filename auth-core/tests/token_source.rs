//! The calling side over real loopback HTTP against the test issuer's token endpoint:
//! client authentication, the response rules, one cached token per target, single
//! flight, refresh ahead, backoff, the downstream's refusals, and what never leaks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::client::{
    AssertionAudience, ClientAuth, ClientKey, Metadata, RotatingClientKey, TokenSource, TokenSourceBuilder,
    TokenSourceError, TokenTarget,
};
use auth_core::testkit::{ExpiresIn, Outage, TestClient, TestIssuer, TestKey};
use auth_core::{Algorithm, Issuer, Validator};
use serde_json::json;

const BILLING: &str = "https://billing.test";
const SECRET: &str = "orders-secret";

async fn issuer() -> TestIssuer {
    let idp = TestIssuer::start().await.unwrap();
    idp.register_client(TestClient::secret("orders", SECRET).scopes("invoices:read invoices:write"));
    idp
}

fn source(idp: &TestIssuer) -> TokenSourceBuilder {
    TokenSource::builder("orders").issuer(idp.issuer()).client_auth(ClientAuth::client_secret_basic(SECRET))
}

fn billing() -> TokenTarget {
    TokenTarget::resource(BILLING).scope("invoices:read")
}

/// A validator for what billing receives.
fn billing_validator(idp: &TestIssuer) -> Validator {
    Validator::builder().issuer(Issuer::discovery(idp.issuer()).audience(BILLING)).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_form_encodes_id_and_secret() {
    let idp = TestIssuer::start().await.unwrap();
    // RFC 6749 §2.3.1: a ':' in the id or secret must survive Basic encoding.
    let (id, secret) = ("orders:svc", "p@ss:w/rd+ é");
    idp.register_client(TestClient::secret(id, secret).scopes("invoices:read"));
    let tokens = TokenSource::builder(id)
        .issuer(idp.issuer())
        .client_auth(ClientAuth::client_secret_basic(secret))
        .build()
        .unwrap();
    let token = tokens.token(&billing()).await.unwrap();
    let principal = billing_validator(&idp).validate(token.secret()).await.unwrap();
    assert_eq!(principal.claims().client(), Some(id));
    let seen = idp.seen_token_requests();
    let authorization = seen[0].authorization.as_deref().unwrap();
    use base64::Engine as _;
    let decoded =
        base64::engine::general_purpose::STANDARD.decode(authorization.strip_prefix("Basic ").unwrap()).unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "orders%3Asvc:p%40ss%3Aw%2Frd%2B+%C3%A9");
    assert_eq!(seen[0].param("grant_type"), Some("client_credentials"));
    assert_eq!(seen[0].param("client_secret"), None, "the secret goes in one place only");
    assert_eq!(seen[0].params("resource"), [BILLING]);
    assert_eq!(seen[0].param("scope"), Some("invoices:read"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_sends_id_and_secret_in_the_body() {
    let idp = issuer().await;
    let tokens = TokenSource::builder("orders")
        .issuer(idp.issuer())
        .client_auth(ClientAuth::client_secret_post(SECRET))
        .build()
        .unwrap();
    tokens.token(&billing()).await.unwrap();
    let seen = &idp.seen_token_requests()[0];
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.param("client_id"), Some("orders"));
    assert_eq!(seen.param("client_secret"), Some(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_configuration_error_retried_only_at_the_ceiling() {
    let idp = issuer().await;
    let tokens = TokenSource::builder("orders")
        .issuer(idp.issuer())
        .client_auth(ClientAuth::client_secret_basic("wrong"))
        .backoff(Duration::from_millis(50), Duration::from_secs(30))
        .build()
        .unwrap();
    let err = tokens.token(&billing()).await.unwrap_err();
    assert!(matches!(&err, TokenSourceError::Refused { code, .. } if code == "invalid_client"), "{err:?}");
    assert!(err.is_configuration());
    assert!(!format!("{err} {err:?}").contains("wrong"), "no secret in the error");
    // Inside the ceiling: refused at once, without a request.
    let requests = idp.token_requests();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let again = tokens.token(&billing()).await.unwrap_err();
    assert!(again.is_configuration());
    assert!(again.retry_after().unwrap() > Duration::from_secs(20), "{again:?}");
    assert_eq!(idp.token_requests(), requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_assertions_follow_rfc7523() {
    let idp = TestIssuer::start().await.unwrap();
    let client_key = Arc::new(TestKey::generate(Algorithm::ES256, "orders-key-1"));
    idp.register_client(TestClient::private_key_jwt("orders", client_key.clone()).scopes("invoices:read"));
    let key =
        ClientKey::from_pem(Algorithm::ES256, client_key.private_key_pem().as_bytes()).unwrap().key_id("orders-key-1");
    let tokens = TokenSource::builder("orders")
        .issuer(idp.issuer())
        .client_auth(ClientAuth::private_key_jwt(key))
        .rejection_cooldown(Duration::ZERO)
        .min_lifetime(Duration::from_millis(1))
        .build()
        .unwrap();
    let target = tokens.target(billing()).unwrap();
    let first = target.token().await.unwrap();
    billing_validator(&idp).validate(first.secret()).await.unwrap();
    // A second request (after the downstream refused the first token) has a new jti.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(target.reject(first.header_value()));
    target.token().await.unwrap();
    let seen = idp.seen_token_requests();
    assert_eq!(seen.len(), 2);
    let mut jtis = Vec::new();
    for request in &seen {
        assert_eq!(
            request.param("client_assertion_type"),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        assert_eq!(request.authorization, None);
        let (header, claims) = request.assertion.clone().unwrap();
        assert_eq!(header["typ"], "client-authentication+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "orders-key-1");
        assert_eq!(claims["iss"], "orders");
        assert_eq!(claims["sub"], "orders");
        assert_eq!(claims["aud"], json!(idp.issuer()), "the issuer, as a single string");
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert!((1..=60).contains(&lifetime), "{lifetime}");
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_ne!(jtis[0], jtis[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_for_the_token_endpoint_and_a_key_rotated_at_run_time() {
    let idp = TestIssuer::start().await.unwrap();
    let old = Arc::new(TestKey::generate(Algorithm::RS256, "k1"));
    let new = Arc::new(TestKey::generate(Algorithm::PS256, "k2"));
    idp.register_client(TestClient::private_key_jwt("orders", old.clone()).scopes("invoices:read"));
    let keys = RotatingClientKey::new(
        ClientKey::from_pem(Algorithm::RS256, old.private_key_pem().as_bytes()).unwrap().key_id("k1"),
    );
    let tokens = TokenSource::builder("orders")
        .token_endpoint(idp.token_endpoint())
        .client_auth(
            ClientAuth::private_key_jwt_from(keys.clone()).assertion_audience(AssertionAudience::TokenEndpoint),
        )
        .rejection_cooldown(Duration::ZERO)
        .min_lifetime(Duration::from_millis(1))
        .build()
        .unwrap();
    let target = tokens.target(billing()).unwrap();
    let token = target.token().await.unwrap();
    let (header, claims) = idp.seen_token_requests()[0].assertion.clone().unwrap();
    assert_eq!(claims["aud"], json!(idp.token_endpoint()));
    assert!(header.get("typ").is_none(), "{header}");
    // The new key is registered, then the service rotates without a restart.
    idp.register_client(TestClient::private_key_jwt("orders", new.clone()).scopes("invoices:read"));
    keys.rotate(ClientKey::from_pem(Algorithm::PS256, new.private_key_pem().as_bytes()).unwrap().key_id("k2"));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(target.reject(token.header_value()));
    target.token().await.unwrap();
    let (header, _) = idp.seen_token_requests()[1].assertion.clone().unwrap();
    assert_eq!((header["kid"].as_str(), header["alg"].as_str()), (Some("k2"), Some("PS256")));
}

#[test]
fn a_client_key_of_the_wrong_type_fails_at_start_up() {
    let ec = TestKey::generate(Algorithm::ES256, "ec");
    assert!(ClientKey::from_pem(Algorithm::RS256, ec.private_key_pem().as_bytes()).is_err());
    assert!(
        ClientKey::from_pem(Algorithm::ES256, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
            .is_err()
    );
    // private_key_jwt names the issuer: without it (and a direct endpoint), no build.
    let key = ClientKey::from_pem(Algorithm::ES256, ec.private_key_pem().as_bytes()).unwrap();
    let err = TokenSource::builder("orders")
        .token_endpoint("https://idp.example.com/token")
        .client_auth(ClientAuth::private_key_jwt(key))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("issuer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_is_discovered_once_and_the_document_must_be_the_issuers() {
    let idp = issuer().await;
    let tokens = source(&idp).build().unwrap();
    tokens.token(&billing()).await.unwrap();
    tokens.token(&TokenTarget::resource("https://other.test")).await.unwrap();
    assert_eq!(idp.discovery_fetches(), 1);
    // RFC 8414 metadata, at the path inserted before the issuer's path.
    let oauth = source(&idp).metadata(Metadata::OAuthAuthorizationServer).build().unwrap();
    oauth.token(&billing()).await.unwrap();

    let impostor = issuer().await;
    impostor.set_discovery_issuer(Some("https://someone-else.example"));
    let err = source(&impostor).build().unwrap().token(&billing()).await.unwrap_err();
    assert!(matches!(&err, TokenSourceError::Unavailable { cause, .. } if cause.contains("issuer")), "{err:?}");
    assert_eq!(impostor.token_requests(), 0, "no credentials sent to an impostor's endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_in_as_a_string_or_absent() {
    let idp = issuer().await;
    idp.set_token_lifetime(Duration::from_secs(120));
    for style in [ExpiresIn::String, ExpiresIn::Absent] {
        idp.set_expires_in(style);
        let token = source(&idp).build().unwrap().token(&billing()).await.unwrap();
        let left = token.expires_in().as_secs();
        assert!((110..=120).contains(&left), "{style:?}: {left}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_responses_are_typed_errors() {
    let idp = issuer().await;
    let cases = [
        (json!({"access_token": "abc", "token_type": "DPoP", "expires_in": 60}), "token_type"),
        (json!({"token_type": "Bearer", "expires_in": 60}), "access_token"),
        (json!({"access_token": "a".repeat(17 * 1024), "token_type": "Bearer"}), "bytes"),
        (json!({"access_token": "a\r\nx", "token_type": "Bearer"}), "characters"),
        (json!({"access_token": "abc", "token_type": "Bearer", "expires_in": "soon"}), "expires_in"),
    ];
    for (body, why) in cases {
        idp.set_token_answer(Some((200, body)));
        let err = source(&idp).build().unwrap().token(&billing()).await.unwrap_err();
        assert!(matches!(&err, TokenSourceError::InvalidResponse(m) if m.contains(why)), "{why}: {err:?}");
    }
    idp.set_token_answer(Some((400, json!({"error": "invalid_scope", "error_description": "nope"}))));
    let err = source(&idp).build().unwrap().token(&billing()).await.unwrap_err();
    assert_eq!(err.to_string(), "the token endpoint refused the request: invalid_scope (nope)");
    // A body over the response limit is not read to its end.
    idp.set_token_answer(Some((200, json!({"access_token": "a", "token_type": "Bearer", "pad": "x".repeat(70_000)}))));
    let err = source(&idp).build().unwrap().token(&billing()).await.unwrap_err();
    assert!(matches!(&err, TokenSourceError::InvalidResponse(m) if m.contains("exceeds")), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_per_target_and_one_request_for_ten_thousand_callers() {
    let idp = issuer().await;
    idp.set_token_outage(Some(Outage::Slow(Duration::from_millis(300))));
    let tokens = source(&idp).build().unwrap();
    let target = tokens.target(billing()).unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10_000 {
        let target = target.clone();
        calls.spawn(async move { target.token().await.map(|t| t.secret().to_owned()) });
    }
    let mut secrets = std::collections::HashSet::new();
    while let Some(result) = calls.join_next().await {
        secrets.insert(result.unwrap().unwrap());
    }
    assert_eq!(secrets.len(), 1);
    assert_eq!(idp.token_requests(), 1);
    idp.set_token_outage(None);
    // The same target spelled differently is the same token; another resource is another.
    let same = TokenTarget::resource(BILLING).scope("invoices:read invoices:read");
    assert!(secrets.contains(tokens.token(&same).await.unwrap().secret()));
    let write = tokens.token(&TokenTarget::resource(BILLING).scope("invoices:write")).await.unwrap();
    assert!(!secrets.contains(write.secret()));
    assert_eq!(idp.token_requests(), 2);
    let claims = billing_validator(&idp).validate(write.secret()).await.unwrap();
    assert!(claims.scopes().contains("invoices:write"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_token_is_refreshed_ahead_and_nobody_waits_for_a_slow_endpoint() {
    let idp = issuer().await;
    // 30 s tokens: refreshed at 22.5–24 s, usable until 27 s; the endpoint takes 2 s.
    idp.set_token_lifetime(Duration::from_secs(30));
    let tokens = source(&idp).build().unwrap();
    let target = tokens.target(billing()).unwrap();
    let first = target.token().await.unwrap();
    idp.set_token_outage(Some(Outage::Slow(Duration::from_secs(2))));
    let waits = tokens.stats().waits;
    let started = Instant::now();
    let mut refreshed = None;
    while started.elapsed() < Duration::from_secs(29) {
        let header = target.cached_header().expect("a usable token at every moment");
        if refreshed.is_none() && header != first.header_value() {
            refreshed = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refreshed = refreshed.expect("refreshed before the first token expired");
    assert!(refreshed > Duration::from_secs(20), "{refreshed:?}");
    assert_eq!(tokens.stats().waits, waits, "no caller waited");
    assert_eq!(idp.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_token_is_not_refreshed_and_dropped_handles_stop_the_tasks() {
    let idp = issuer().await;
    idp.set_token_lifetime(Duration::from_secs(2));
    let tokens = source(&idp).min_lifetime(Duration::from_millis(100)).build().unwrap();
    let target = tokens.target(billing()).unwrap();
    target.token().await.unwrap();
    // token() marked it used once: that earns one refresh; after it, nobody uses the target.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(idp.token_requests(), 2, "one refresh for the use, none for an idle token");
    // A used target whose handles are all dropped refreshes no more.
    let used = tokens.target(TokenTarget::resource("https://other.test")).unwrap();
    used.token().await.unwrap();
    drop((used, target, tokens));
    let before = idp.token_requests();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(idp.token_requests(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_refreshes_and_fails_calls() {
    let idp = issuer().await;
    idp.set_token_lifetime(Duration::from_secs(2));
    let tokens = source(&idp).min_lifetime(Duration::from_millis(100)).build().unwrap();
    let target = tokens.target(billing()).unwrap();
    target.token().await.unwrap();
    tokens.shutdown();
    assert_eq!(target.token().await.unwrap_err(), TokenSourceError::ShutDown);
    assert!(target.cached_header().is_none(), "the token is forgotten");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(idp.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_down_the_current_token_serves_then_a_typed_error_then_recovery() {
    let idp = issuer().await;
    // Counted as 3 s (a second less, for rounding): usable for 2.7 s.
    idp.set_token_lifetime(Duration::from_secs(4));
    let tokens = source(&idp)
        .min_lifetime(Duration::from_millis(100))
        .backoff(Duration::from_millis(200), Duration::from_millis(800))
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let target = tokens.target(billing()).unwrap();
    let first = target.token().await.unwrap();
    idp.set_token_outage(Some(Outage::Refuse));
    // Until it is no longer usable (2.7 s), the current token serves.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(2500) {
        assert_eq!(target.token().await.unwrap().secret(), first.secret());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The refresh at 75-80 % of 3 s failed, and was retried after the backoff (the first
    // request succeeded; at least one background attempt since).
    let attempts = idp.token_requests();
    assert!(attempts >= 2, "a background refresh was attempted: {attempts}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Expired: never handed out; the error is typed and quick.
    let asked = Instant::now();
    let err = target.token().await.unwrap_err();
    assert!(asked.elapsed() < Duration::from_secs(3), "no hang");
    assert!(matches!(err, TokenSourceError::Unavailable { .. }), "{err:?}");
    assert!(target.cached_header().is_none());
    idp.set_token_outage(None);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let fresh = target.token().await.unwrap();
    assert_ne!(fresh.secret(), first.secret());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_endpoint_times_out() {
    let idp = issuer().await;
    idp.set_token_outage(Some(Outage::Stall));
    let tokens = source(&idp).timeout(Duration::from_millis(500)).build().unwrap();
    let asked = Instant::now();
    let err = tokens.token(&billing()).await.unwrap_err();
    assert!(asked.elapsed() < Duration::from_secs(3));
    assert!(matches!(&err, TokenSourceError::Unavailable { cause, .. } if cause.contains("timed out")), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn very_short_lifetimes_cannot_storm_the_endpoint() {
    let idp = issuer().await;
    idp.set_token_lifetime(Duration::from_secs(1));
    // The default floor: 10 s planned, so no request sooner than 7.5 s after a success.
    let tokens = source(&idp).build().unwrap();
    let target = tokens.target(billing()).unwrap();
    target.token().await.unwrap();
    let started = Instant::now();
    let mut refused = 0;
    while started.elapsed() < Duration::from_secs(3) {
        if let Err(err) = target.token().await {
            assert!(err.retry_after().is_some(), "{err:?}");
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused > 0, "the expired token is never handed out");
    assert_eq!(idp.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_refusal_drops_only_the_token_it_carried_once_per_cooldown() {
    let idp = issuer().await;
    let tokens = source(&idp).min_lifetime(Duration::from_millis(1)).build().unwrap();
    let target = tokens.target(billing()).unwrap();
    let first = target.token().await.unwrap();
    let stale = http::HeaderValue::from_static("Bearer not-the-current-token");
    assert!(!target.reject(&stale), "a token that is not cached changes nothing");
    // Past the floor (three quarters of min_lifetime after the last success).
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(target.reject(first.header_value()));
    let second = target.token().await.unwrap();
    assert_ne!(second.secret(), first.secret());
    // Inside the cooldown (30 s by default) a hostile downstream cannot force requests.
    assert!(!target.reject(second.header_value()));
    assert_eq!(target.token().await.unwrap().secret(), second.secret());
    assert_eq!(idp.token_requests(), 2);
}

#[test]
fn a_request_cancelled_with_its_runtime_does_not_wedge_the_target() {
    let idp_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let idp = idp_runtime.block_on(issuer());
    idp.set_token_outage(Some(Outage::Slow(Duration::from_secs(1))));
    let tokens = source(&idp).build().unwrap();
    let target = tokens.target(billing()).unwrap();
    {
        let doomed = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        doomed.block_on(async {
            let pending = tokio::time::timeout(Duration::from_millis(100), target.token()).await;
            assert!(pending.is_err(), "still in flight");
        });
        // Dropping the runtime cancels the request task mid-flight.
    }
    idp.set_token_outage(None);
    let next = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let token = next.block_on(async { tokio::time::timeout(Duration::from_secs(5), target.token()).await });
    assert!(token.expect("no wedge").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_panics_or_gives_up_does_not_cancel_the_request() {
    let idp = issuer().await;
    idp.set_token_outage(Some(Outage::Slow(Duration::from_millis(500))));
    let tokens = source(&idp).build().unwrap();
    let target = tokens.target(billing()).unwrap();
    let panicking = {
        let target = target.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_millis(50), target.token()).await;
            panic!("the caller fails");
        })
    };
    assert!(panicking.await.is_err());
    let token = target.token().await.unwrap();
    assert!(!token.secret().is_empty());
    assert_eq!(idp.token_requests(), 1, "the second caller joined the first request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_must_be_https_except_loopback_and_redirects_are_not_followed() {
    let err = TokenSource::builder("orders")
        .token_endpoint("http://idp.example.com/token")
        .client_auth(ClientAuth::client_secret_basic(SECRET))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    let idp = issuer().await;
    idp.set_token_answer(Some((302, json!({}))));
    let err = source(&idp).build().unwrap().token(&billing()).await.unwrap_err();
    assert!(matches!(&err, TokenSourceError::Unavailable { cause, .. } if cause == "HTTP 302"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_shows_the_client_id_and_never_a_secret_or_token() {
    let idp = issuer().await;
    let builder = source(&idp);
    assert!(!format!("{builder:?}").contains(SECRET));
    let tokens = builder.build().unwrap();
    let target = tokens.target(billing()).unwrap();
    let token = target.token().await.unwrap();
    let shown = format!("{tokens:?} {target:?} {token:?} {:?}", ClientAuth::client_secret_post(SECRET));
    assert!(shown.contains("orders"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains(token.secret()), "{shown}");
}

#[cfg(feature = "reqwest-middleware")]
mod reqwest_middleware {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use auth_core::client::reqwest_middleware::AttachToken;
    use bytes::Bytes;
    use http_body_util::Full;

    use super::*;

    /// A downstream that answers the first `refuse` requests with `401 invalid_token` and
    /// the others with the `Authorization` header it received.
    async fn downstream(refuse: usize) -> (String, Arc<AtomicUsize>) {
        let left = Arc::new(AtomicUsize::new(refuse));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = left.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let gate = gate.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let gate = gate.clone();
                        async move {
                            let auth = req.headers().get("authorization").cloned();
                            let refused =
                                gate.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                            let mut response = http::Response::new(Full::new(Bytes::from(
                                auth.map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default(),
                            )));
                            if refused {
                                *response.status_mut() = http::StatusCode::UNAUTHORIZED;
                                response.headers_mut().insert(
                                    "www-authenticate",
                                    http::HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                                );
                            }
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        (format!("http://{addr}/invoices/1"), left)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_middleware_attaches_the_token_and_retries_once_after_invalid_token() {
        let idp = issuer().await;
        let tokens = source(&idp).min_lifetime(Duration::from_millis(1)).build().unwrap();
        let target = tokens.target(billing()).unwrap();
        let client = ::reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(AttachToken::new(target.clone()))
            .build();
        let (url, refuse) = downstream(0).await;
        let first = client.get(&url).send().await.unwrap().text().await.unwrap();
        let token = target.token().await.unwrap();
        assert_eq!(first, format!("Bearer {}", token.secret()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        refuse.store(1, Ordering::SeqCst);
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "replayed once with a new token");
        let second = response.text().await.unwrap();
        assert_ne!(second, first);
        assert_eq!(idp.token_requests(), 2);
        // Every call refused: one retry per cooldown, not a token request per call.
        refuse.store(100, Ordering::SeqCst);
        for _ in 0..3 {
            assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
        }
        assert_eq!(idp.token_requests(), 2);
        // No token: the request is not sent and the error says why.
        let down = TestIssuer::start().await.unwrap();
        down.set_token_outage(Some(Outage::Status(503)));
        let none = source(&down).build().unwrap().target(billing()).unwrap();
        let client =
            ::reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(AttachToken::new(none)).build();
        let err = client.get(&url).send().await.unwrap_err();
        assert!(err.to_string().contains("token endpoint"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_document_is_shared_with_the_validator_of_the_same_issuer() {
    let idp = issuer().await;
    let validator = billing_validator(&idp);
    let tokens = source(&idp).share_metadata_with(&validator).build().unwrap();
    let token = tokens.token(&billing()).await.unwrap();
    validator.validate(token.secret()).await.unwrap();
    assert_eq!(idp.discovery_fetches(), 1, "one fetch serves both sides");
    // A failed token request makes both sides read the document again, once.
    idp.set_token_outage(Some(Outage::Status(503)));
    let other = TokenTarget::resource("https://other.test");
    tokens.token(&other).await.unwrap_err();
    idp.set_token_outage(None);
    validator.warm_up().await.unwrap();
    assert_eq!(idp.discovery_fetches(), 2);
    // Only an issuer the validator discovers can be shared.
    let elsewhere = issuer().await;
    let err = source(&elsewhere).share_metadata_with(&validator).build().unwrap_err();
    assert!(err.to_string().contains("share_metadata_with"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_presents_the_certificate_at_the_mutual_tls_alias() {
    use auth_core::client::TlsIdentity;
    let idp = TestIssuer::start_tls().await.unwrap();
    let ca = idp.ca().unwrap();
    let cert = ca.client_certificate("orders").unwrap();
    idp.register_client(TestClient::tls_client_auth("orders", &cert).scopes("invoices:read").certificate_bound());
    let identity = TlsIdentity::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap();
    let tokens = TokenSource::builder("orders")
        .issuer(idp.issuer())
        .client_auth(ClientAuth::tls_client_auth(identity))
        .extra_root_certificates(idp.ca_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let token = tokens.token(&billing()).await.unwrap();
    let seen = &idp.seen_token_requests()[0];
    assert_eq!(seen.path, "/mtls/token", "the mtls_endpoint_aliases entry from discovery");
    assert!(seen.client_certificate);
    assert_eq!(
        (seen.param("client_id"), seen.param("client_secret"), seen.authorization.as_deref()),
        (Some("orders"), None, None)
    );
    // The token is bound to the certificate that asked for it (RFC 8705 §3).
    use base64::Engine as _;
    let payload = token.secret().split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["cnf"]["x5t#S256"], json!(cert.thumbprint()));
    assert_eq!(claims["client_id"], "orders");

    // The same name from another CA fails the handshake: nothing is issued.
    let other = auth_core::testkit::TestCa::new("another CA").unwrap().client_certificate("orders").unwrap();
    let identity = TlsIdentity::from_pem(other.cert_pem.as_bytes(), other.key_pem.as_bytes()).unwrap();
    let impostor = TokenSource::builder("orders")
        .token_endpoint(idp.mtls_token_endpoint())
        .client_auth(ClientAuth::tls_client_auth(identity))
        .extra_root_certificates(idp.ca_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let requests = idp.token_requests();
    let err = impostor.token(&billing()).await.unwrap_err();
    assert!(matches!(err, TokenSourceError::Unavailable { .. }), "{err:?}");
    assert_eq!(idp.token_requests(), requests);
    // And a secret client cannot pass for the certificate's client.
    let secretly = TokenSource::builder("orders")
        .token_endpoint(idp.mtls_token_endpoint())
        .client_auth(ClientAuth::client_secret_post("guess"))
        .extra_root_certificates(idp.ca_pem().as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let err = secretly.token(&billing()).await.unwrap_err();
    assert!(matches!(&err, TokenSourceError::Refused { code, .. } if code == "invalid_client"), "{err:?}");
}
