//! The calling side (`auth_core::client::TokenSource`) against a real third-party OpenID
//! provider (panva/oidc-provider 9, under Node.js, on loopback): client_secret_basic,
//! private_key_jwt (both assertion audiences), resource indicators, refresh ahead of
//! expiry, provider outage and restart, and tls_client_auth over https with certificates
//! made by the harness. Every token the source hands out is also checked by the receiving
//! side (a discovery-configured `Validator` for the provider's issuer and the resource's
//! audience).
//!
//! These tests fail (never pass by skipping) when Node.js or the npm install is missing,
//! unless `AUTH_SKIP_INTEROP=1` is set, which CI never does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_core::client::{
    AccessToken, AssertionAudience, ClientAuth, TargetToken, TlsIdentity, TokenSource, TokenSourceBuilder,
    TokenSourceError, TokenTarget,
};
use auth_core::{Issuer, RejectReason, ScopeRequirement, Validator};
use interop_tests::{
    Api, BILLING_CLIENT, ClientCredentials, ClientJwtKey, MTLS_CLIENT_ID, PKJWT_CLIENT_ID, Provider, ProviderOptions,
    SHORT_LIVED_CLIENT, SHORT_TTL_SECS, TestCa, decode_unverified, start_or_skip_with,
};
use serde_json::Value;

/// Starts the provider, or returns from the test when the developer opted out.
macro_rules! provider {
    ($name:literal, $options:expr) => {
        match start_or_skip_with($name, $options) {
            Some(provider) => provider,
            None => return,
        }
    };
}

/// A source for a `client_secret_basic` client, found by discovery of the issuer.
fn basic(idp: &Provider, client: ClientCredentials) -> TokenSourceBuilder {
    TokenSource::builder(client.id).issuer(idp.issuer()).client_auth(ClientAuth::client_secret_basic(client.secret))
}

fn target(api: Api, scope: &str) -> TokenTarget {
    TokenTarget::resource(api.resource()).scope(scope)
}

fn claims(token: &AccessToken) -> Value {
    decode_unverified(token.secret()).1
}

/// The validator accepts `token` with `scope`, issued by the provider to `client` for `api`.
async fn accepted(validator: &Validator, idp: &Provider, token: &AccessToken, client: &str, api: Api, scope: &str) {
    let principal = validator
        .authorize(token.secret(), &ScopeRequirement::all(scope.split(' ')))
        .await
        .unwrap_or_else(|e| panic!("the receiving side refused a {client} token for {api:?}: {e:?}"));
    assert_eq!(principal.issuer(), idp.issuer());
    assert_eq!(principal.claims().client(), Some(client));
    assert_eq!(principal.claims().audience, [api.audience()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_basic_token_is_accepted_and_cached() {
    let idp = provider!("client_secret_basic_token_is_accepted_and_cached", ProviderOptions::new());
    let tokens = basic(&idp, BILLING_CLIENT).build().unwrap();
    let billing = tokens.target(target(Api::Billing, "billing:read")).unwrap();
    assert!(billing.cached().is_none(), "nothing is fetched before the first call");

    let token = billing.token().await.unwrap();
    let c = claims(&token);
    assert_eq!(c["iss"], idp.issuer());
    assert_eq!(c["aud"], "billing-api");
    assert_eq!(c["client_id"], BILLING_CLIENT.id);
    assert_eq!(c["scope"], "billing:read");
    assert_eq!(token.scope(), Some("billing:read"), "the granted scope, from the token response");
    let lifetime = token.expires_in();
    assert!(lifetime > Duration::from_secs(290) && lifetime <= Duration::from_secs(300), "{lifetime:?}");
    accepted(&idp.validator(Api::Billing).unwrap(), &idp, &token, BILLING_CLIENT.id, Api::Billing, "billing:read")
        .await;

    // Cached: the same issued token, no second request, no second wait.
    let again = billing.token().await.unwrap();
    assert!(again.same_as(&token));
    assert!(billing.cached().unwrap().same_as(&token));
    let same = tokens.token(&target(Api::Billing, "billing:read")).await.unwrap();
    assert!(same.same_as(&token), "another handle of the same target shares the token");
    let stats = tokens.stats();
    assert_eq!((stats.token_requests, stats.waits, stats.failures), (1, 1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_with_issuer_and_token_endpoint_audiences() {
    let key = ClientJwtKey::generate_es256("pkjwt-es256-1").unwrap();
    let idp = provider!(
        "private_key_jwt_with_issuer_and_token_endpoint_audiences",
        ProviderOptions::new().client_jwks(&[&key])
    );
    let billing_validator = idp.validator(Api::Billing).unwrap();
    let source = |auth: ClientAuth| TokenSource::builder(PKJWT_CLIENT_ID).issuer(idp.issuer()).client_auth(auth);

    // aud = the issuer identifier (the default, with typ client-authentication+jwt).
    let by_issuer = source(ClientAuth::private_key_jwt(key.client_key().unwrap())).build().unwrap();
    // aud = the token endpoint URL (from discovery).
    let by_endpoint = source(
        ClientAuth::private_key_jwt(key.client_key().unwrap()).assertion_audience(AssertionAudience::TokenEndpoint),
    )
    .build()
    .unwrap();
    for (name, tokens) in [("issuer audience", &by_issuer), ("token endpoint audience", &by_endpoint)] {
        let billing = tokens.target(target(Api::Billing, "billing:read")).unwrap();
        let token = billing.token().await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(claims(&token)["client_id"], PKJWT_CLIENT_ID, "{name}");
        accepted(&billing_validator, &idp, &token, PKJWT_CLIENT_ID, Api::Billing, "billing:read").await;
        assert!(billing.token().await.unwrap().same_as(&token), "{name}");
        assert_eq!(tokens.stats().token_requests, 1, "{name}");
    }
    // Every request carries a fresh assertion (oidc-provider refuses a replayed jti): a
    // second target of the same source gets its own token.
    let orders = by_issuer.target(target(Api::Orders, "orders:read")).unwrap().token().await.unwrap();
    accepted(&idp.validator(Api::Orders).unwrap(), &idp, &orders, PKJWT_CLIENT_ID, Api::Orders, "orders:read").await;

    // A key the provider does not know: refused as invalid_client.
    let stranger = ClientJwtKey::generate_es256("pkjwt-es256-1").unwrap();
    let refused = source(ClientAuth::private_key_jwt(stranger.client_key().unwrap())).build().unwrap();
    let err = refused.target(target(Api::Billing, "billing:read")).unwrap().token().await.unwrap_err();
    match &err {
        TokenSourceError::Refused { code, .. } => assert_eq!(code, "invalid_client", "{err}"),
        other => panic!("expected Refused(invalid_client), got {other:?}"),
    }
    assert!(err.is_configuration());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_indicators_give_one_token_per_target() {
    let key = ClientJwtKey::generate_es256("pkjwt-es256-1").unwrap();
    let idp = provider!("resource_indicators_give_one_token_per_target", ProviderOptions::new().client_jwks(&[&key]));
    let tokens = TokenSource::builder(PKJWT_CLIENT_ID)
        .issuer(idp.issuer())
        .client_auth(ClientAuth::private_key_jwt(key.client_key().unwrap()))
        .build()
        .unwrap();
    let orders = tokens.target(target(Api::Orders, "orders:read")).unwrap();
    let billing = tokens.target(target(Api::Billing, "billing:read")).unwrap();
    let orders_validator = idp.validator(Api::Orders).unwrap();
    let billing_validator = idp.validator(Api::Billing).unwrap();

    let orders_token = orders.token().await.unwrap();
    let billing_token = billing.token().await.unwrap();
    assert!(!orders_token.same_as(&billing_token));
    assert_eq!(claims(&orders_token)["aud"], "orders-api");
    assert_eq!(claims(&orders_token)["scope"], "orders:read");
    assert_eq!(claims(&billing_token)["aud"], "billing-api");
    assert_eq!(claims(&billing_token)["scope"], "billing:read");
    accepted(&orders_validator, &idp, &orders_token, PKJWT_CLIENT_ID, Api::Orders, "orders:read").await;
    accepted(&billing_validator, &idp, &billing_token, PKJWT_CLIENT_ID, Api::Billing, "billing:read").await;
    // Each token is for its resource only.
    let err = orders_validator.validate(billing_token.secret()).await.unwrap_err();
    assert_eq!(err.reason(), RejectReason::InvalidAudience, "{err:?}");
    let err = billing_validator.validate(orders_token.secret()).await.unwrap_err();
    assert_eq!(err.reason(), RejectReason::InvalidAudience, "{err:?}");

    for _ in 0..5 {
        assert!(orders.token().await.unwrap().same_as(&orders_token));
        assert!(billing.token().await.unwrap().same_as(&billing_token));
    }
    let stats = tokens.stats();
    assert_eq!((stats.token_requests, stats.waits), (2, 2), "one request and one wait per target: {stats:?}");
}

/// What [`keep_calling`] saw: every distinct token (in order, with when it was first
/// handed out), the number of calls, and the calls that handed out a token at or after
/// its JWT `exp` by the wall clock (call number, seconds past `exp`).
struct Observed {
    tokens: Vec<(AccessToken, Instant)>,
    calls: usize,
    past_exp: Vec<(usize, f64)>,
}

/// Calls `handle.token()` every 100 ms for `period`; every call must succeed with a token
/// that has time left, and a new token must arrive while the previous one still has.
async fn keep_calling(handle: &TargetToken, period: Duration) -> Observed {
    let start = Instant::now();
    let mut observed = Observed { tokens: Vec::new(), calls: 0, past_exp: Vec::new() };
    while start.elapsed() < period {
        let token = handle.token().await.unwrap_or_else(|e| panic!("call {} failed: {e}", observed.calls));
        assert!(token.expires_in() > Duration::ZERO, "an expired token was handed out");
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        let exp = claims(&token)["exp"].as_f64().unwrap();
        if wall >= exp {
            observed.past_exp.push((observed.calls, wall - exp));
        }
        observed.calls += 1;
        match observed.tokens.last() {
            Some((previous, _)) if previous.same_as(&token) => {}
            Some((previous, _)) => {
                // The new token arrived while the previous one still had time left.
                assert!(previous.expires_in() > Duration::ZERO, "the token changed only after the old one expired");
                observed.tokens.push((token, Instant::now()));
            }
            None => observed.tokens.push((token, Instant::now())),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    observed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_refreshed_ahead_of_expiry() {
    let idp = provider!("short_lived_tokens_are_refreshed_ahead_of_expiry", ProviderOptions::new());
    let tokens = basic(&idp, SHORT_LIVED_CLIENT).min_lifetime(Duration::from_millis(500)).build().unwrap();
    let orders = tokens.target(target(Api::Orders, "orders:read")).unwrap();
    let orders_validator = idp.validator(Api::Orders).unwrap();

    let observed = keep_calling(&orders, Duration::from_secs(5)).await;
    for (i, (token, seen)) in observed.tokens.iter().enumerate() {
        let c = claims(token);
        eprintln!(
            "token {i}: seen at +{:?}, iat {} exp {} (expires_in now {:?})",
            seen.duration_since(observed.tokens[0].1),
            c["iat"],
            c["exp"],
            token.expires_in()
        );
        assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), SHORT_TTL_SECS);
        accepted(&orders_validator, &idp, token, SHORT_LIVED_CLIENT.id, Api::Orders, "orders:read").await;
    }
    let stats = tokens.stats();
    eprintln!("{} calls, {} tokens, {stats:?}", observed.calls, observed.tokens.len());
    // Every token had time left by the JWT's `exp` too: see the next test.
    eprintln!("handed out at or after the JWT's exp (call, seconds past): {:?}", observed.past_exp);
    assert!(observed.calls >= 40, "{}", observed.calls);
    // 2 s tokens over 5 s: refreshed at 75-80 % of their lifetime, i.e. 3 or 4 times.
    assert!(observed.tokens.len() >= 3, "{} tokens", observed.tokens.len());
    assert_eq!(stats.waits, 1, "only the very first call waited: {stats:?}");
    assert_eq!(stats.failures, 0, "{stats:?}");
    // One request per token (plus, at most, a refresh still in flight when the loop ended).
    let requests = stats.token_requests;
    let seen = observed.tokens.len() as u64;
    assert!(requests == seen || requests == seen + 1, "{requests} requests for {seen} tokens: {stats:?}");
}

/// oidc-provider answers `expires_in: 2` but writes `exp = floor(now) + 2`, so the JWT
/// lives 1-2 s: the token source counts a second less than `expires_in` (whole seconds
/// both ways), and so never hands out a token a zero-leeway validator refuses as expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_tokens_are_never_handed_out_past_their_jwt_exp() {
    let idp = provider!("short_lived_tokens_are_never_handed_out_past_their_jwt_exp", ProviderOptions::new());
    let tokens = basic(&idp, SHORT_LIVED_CLIENT).min_lifetime(Duration::from_millis(500)).build().unwrap();
    let orders = tokens.target(target(Api::Orders, "orders:read")).unwrap();
    let strict = Validator::builder()
        .issuer(Issuer::discovery(idp.issuer()).audience("orders-api").leeway(Duration::ZERO))
        .token_cache_capacity(0)
        .build()
        .unwrap();
    let start = Instant::now();
    let mut refused = Vec::new();
    while start.elapsed() < Duration::from_secs(5) {
        let token = orders.token().await.unwrap();
        if let Err(err) = strict.validate(token.secret()).await {
            refused.push(format!("+{:?}: {err}", start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused.is_empty(), "handed-out tokens a zero-leeway validator refused: {refused:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_outage_serves_the_cached_token_and_restart_recovers() {
    let mut idp = provider!("provider_outage_serves_the_cached_token_and_restart_recovers", ProviderOptions::new());
    let tokens = basic(&idp, SHORT_LIVED_CLIENT)
        .min_lifetime(Duration::from_millis(500))
        .backoff(Duration::from_millis(200), Duration::from_secs(1))
        .build()
        .unwrap();
    let orders = tokens.target(target(Api::Orders, "orders:read")).unwrap();
    let orders_validator = idp.validator(Api::Orders).unwrap();
    let first = orders.token().await.unwrap();
    accepted(&orders_validator, &idp, &first, SHORT_LIVED_CLIENT.id, Api::Orders, "orders:read").await;

    // Down: the cached token keeps being served while it is usable (the refresh due at
    // 75-80 % of its 2 s fails meanwhile), then callers get Unavailable, never an expired
    // token.
    idp.stop();
    let stopped = Instant::now();
    let mut served = Duration::ZERO;
    let err = loop {
        match orders.token().await {
            Ok(token) => {
                assert!(token.same_as(&first), "a token while the provider is down?");
                assert!(token.expires_in() > Duration::ZERO);
                served = stopped.elapsed();
            }
            Err(err) => break err,
        }
        assert!(stopped.elapsed() < Duration::from_secs(3), "a 2 s token served for 3 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("cached token served for {served:?} of the outage, then: {err}");
    // A 2 s token counts as 1 s (a second for rounding), usable for 0.9 s of it.
    assert!(served >= Duration::from_millis(600), "served only {served:?}");
    assert!(matches!(err, TokenSourceError::Unavailable { .. }), "{err:?}");
    assert!(!err.is_configuration());
    let failures = tokens.stats().failures;
    assert!(failures >= 1, "the refresh ahead of expiry failed: {:?}", tokens.stats());

    // Back on the same port with the same keys: a new token within the backoff ceiling.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(orders.token().await.is_err(), "still down");
    idp.restart().unwrap();
    let restarted = Instant::now();
    let fresh = loop {
        match orders.token().await {
            Ok(token) => break token,
            Err(err) => assert!(restarted.elapsed() < Duration::from_secs(5), "not recovered after 5 s: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("recovered {:?} after the restart; {:?}", restarted.elapsed(), tokens.stats());
    assert!(restarted.elapsed() < Duration::from_millis(2500), "{:?}", restarted.elapsed());
    assert!(!fresh.same_as(&first));
    assert_ne!(fresh.secret(), first.secret());
    accepted(&orders_validator, &idp, &fresh, SHORT_LIVED_CLIENT.id, Api::Orders, "orders:read").await;
    assert!(tokens.stats().failures > failures, "requests failed while down: {:?}", tokens.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_auth_over_https() {
    let ca = TestCa::new("interop test CA").unwrap();
    let idp = provider!("tls_client_auth_over_https", ProviderOptions::new().https(&ca).unwrap());
    assert!(idp.issuer().starts_with("https://localhost:"), "{}", idp.issuer());
    let discovery = idp
        .http_client()
        .get(format!("{}/.well-known/openid-configuration", idp.issuer()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let discovery: Value = serde_json::from_str(&discovery).unwrap();
    assert_eq!(discovery["mtls_endpoint_aliases"]["token_endpoint"], format!("{}/token", idp.issuer()));

    let mtls = |cert: &interop_tests::IssuedCertificate| {
        TokenSource::builder(MTLS_CLIENT_ID)
            .issuer(idp.issuer())
            .client_auth(ClientAuth::tls_client_auth(
                TlsIdentity::from_pem(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes()).unwrap(),
            ))
            .extra_root_certificates(ca.cert_pem().as_bytes())
            .unwrap()
            .build()
            .unwrap()
    };
    let tokens = mtls(&ca.client_certificate("mtls-client").unwrap());
    let billing = tokens.target(target(Api::Billing, "billing:read")).unwrap();
    let token = billing.token().await.unwrap_or_else(|e| panic!("tls_client_auth: {e}"));
    assert_eq!(claims(&token)["aud"], "billing-api");
    accepted(&idp.validator(Api::Billing).unwrap(), &idp, &token, MTLS_CLIENT_ID, Api::Billing, "billing:read").await;
    assert!(billing.token().await.unwrap().same_as(&token));
    assert_eq!(tokens.stats().token_requests, 1);

    // The same subject, from a CA the provider does not trust: no client authentication.
    let other_ca = TestCa::new("some other CA").unwrap();
    let stranger = mtls(&other_ca.client_certificate("mtls-client").unwrap());
    let err = stranger.target(target(Api::Billing, "billing:read")).unwrap().token().await.unwrap_err();
    eprintln!("certificate from another CA: {err}");
    match &err {
        TokenSourceError::Refused { code, .. } => assert_eq!(code, "invalid_client", "{err}"),
        other => panic!("expected Refused(invalid_client), got {other:?}"),
    }
}
