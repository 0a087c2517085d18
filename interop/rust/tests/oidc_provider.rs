//! auth-core against a real third-party OpenID provider (panva/oidc-provider 9, under
//! Node.js, over loopback HTTP): discovery, every signing algorithm, audience, scope,
//! expiry, key rotation on the running provider, provider outage and restart.
//!
//! These tests fail (never pass by skipping) when Node.js or the npm install is missing,
//! unless `AUTH_SKIP_INTEROP=1` is set, which CI never does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auth_core::{AuthError, Issuer, RejectReason, ScopeRequirement, TypPolicy, Validator, ValidatorBuilder};
use interop_tests::{
    Api, BILLING_CLIENT, HarnessError, ORDERS_CLIENT, Provider, READER_CLIENT, SHORT_LIVED_CLIENT, SHORT_TTL_SECS,
    SigningAlg, TokenRequest, start_or_skip, unix_now,
};

/// Starts the provider, or returns from the test when the developer opted out.
macro_rules! provider {
    ($name:literal) => {
        match start_or_skip($name) {
            Some(provider) => provider,
            None => return,
        }
    };
}

/// A validator configured with nothing but the issuer URL (OIDC discovery).
fn discovery(idp: &Provider) -> ValidatorBuilder {
    Validator::builder().issuer(Issuer::discovery(idp.issuer()).audience("orders-api"))
}

fn orders(alg: SigningAlg) -> TokenRequest {
    TokenRequest::new(ORDERS_CLIENT, Api::Orders, "orders:read orders:write").alg(alg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_configured_validator_accepts_every_signing_algorithm() {
    let idp = provider!("discovery_configured_validator_accepts_every_signing_algorithm");
    let keys = idp.keys().await.unwrap();
    let validator = discovery(&idp).build().unwrap();
    // The strictest typ policy too: oidc-provider marks its access tokens `at+jwt` (RFC 9068).
    let strict = Validator::builder()
        .issuer(Issuer::discovery(idp.issuer()).audience("orders-api").typ_policy(TypPolicy::RequireAccessToken))
        .build()
        .unwrap();

    for alg in SigningAlg::ALL {
        let minted = idp.token(&orders(alg)).await.unwrap();
        let (header, claims) = minted.decoded();
        let (raw_header, raw_claims) = interop_tests::decode_unverified_raw(&minted.access_token);
        eprintln!(
            "oidc-provider {} {alg} access token:\n  header {raw_header}\n  claims {raw_claims}\n  response \
             expires_in={} scope={:?} token_type={}",
            idp.version(),
            minted.expires_in,
            minted.scope,
            minted.token_type
        );
        // What a real token looks like (LESSONS.md records the same).
        let names = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
        assert_eq!(names(&header), BTreeSet::from(["alg", "typ", "kid"].map(String::from)), "{header}");
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], alg.as_str());
        assert_eq!(
            names(&claims),
            BTreeSet::from(["jti", "sub", "iat", "exp", "scope", "client_id", "iss", "aud"].map(String::from)),
            "{claims}"
        );
        assert_eq!(claims["iss"], idp.issuer());
        assert_eq!(claims["aud"], "orders-api", "a single audience, as a string");
        assert_eq!(claims["sub"], ORDERS_CLIENT.id);
        assert_eq!(claims["client_id"], ORDERS_CLIENT.id);

        let principal = validator.validate(&minted.access_token).await.unwrap_or_else(|e| panic!("{alg}: {e:?}"));
        assert_eq!(principal.algorithm(), alg.to_core());
        assert_eq!(principal.key_id(), keys.active(alg));
        assert_eq!(principal.issuer(), idp.issuer());
        assert_eq!(principal.claims().client(), Some(ORDERS_CLIENT.id));
        assert_eq!(principal.claims().audience, ["orders-api"]);
        assert!(principal.scopes().contains("orders:read") && principal.scopes().contains("orders:write"));
        validator
            .authorize(&minted.access_token, &ScopeRequirement::all(["orders:read", "orders:write"]))
            .await
            .unwrap();
        strict.validate(&minted.access_token).await.unwrap_or_else(|e| panic!("{alg} with at+jwt required: {e:?}"));
    }
    let m = validator.metrics();
    assert_eq!((m.discovery_fetches, m.jwks_fetches), (1, 1), "one discovery, one JWKS for all three keys: {m:?}");
    assert_eq!(m.accepted, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_for_another_api_is_401() {
    let idp = provider!("token_for_another_api_is_401");
    let validator = discovery(&idp).build().unwrap();
    for alg in SigningAlg::ALL {
        let billing =
            idp.access_token(&TokenRequest::new(BILLING_CLIENT, Api::Billing, "billing:read").alg(alg)).await.unwrap();
        assert_eq!(interop_tests::decode_unverified(&billing).1["aud"], "billing-api");
        let err = validator.validate(&billing).await.unwrap_err();
        assert_eq!(err.reason(), RejectReason::InvalidAudience, "{alg}: {err:?}");
        assert_eq!(err.status(), 401);
        assert!(validator.challenge(&err).contains("error=\"invalid_token\""), "{}", validator.challenge(&err));
    }
    // The same client's token for the right API is fine: only the audience differed.
    let billing_validator =
        Validator::builder().issuer(Issuer::discovery(idp.issuer()).audience("billing-api")).build().unwrap();
    let billing = idp.access_token(&TokenRequest::new(BILLING_CLIENT, Api::Billing, "billing:read")).await.unwrap();
    billing_validator.authorize(&billing, &ScopeRequirement::all(["billing:read"])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scope_is_403_insufficient_scope() {
    let idp = provider!("missing_scope_is_403_insufficient_scope");
    // The provider itself refuses to grant the reader more than it may have.
    let refused = idp.token(&TokenRequest::new(READER_CLIENT, Api::Orders, "orders:read orders:write")).await;
    match refused {
        Err(HarnessError::TokenRefused { status: 400, body }) => assert!(body.contains("invalid_scope"), "{body}"),
        other => panic!("expected invalid_scope, got {other:?}"),
    }

    let validator = discovery(&idp).build().unwrap();
    for alg in SigningAlg::ALL {
        let reader =
            idp.access_token(&TokenRequest::new(READER_CLIENT, Api::Orders, "orders:read").alg(alg)).await.unwrap();
        assert_eq!(interop_tests::decode_unverified(&reader).1["scope"], "orders:read");
        validator.authorize(&reader, &ScopeRequirement::all(["orders:read"])).await.unwrap();
        let err = validator.authorize(&reader, &ScopeRequirement::all(["orders:write"])).await.unwrap_err();
        assert!(matches!(err, AuthError::InsufficientScope { .. }), "{alg}: {err:?}");
        assert_eq!(err.status(), 403);
        let challenge = validator.challenge(&err);
        assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
        assert!(challenge.contains("scope=\"orders:write\""), "{challenge}");
    }

    // A token granted no scope at all has no `scope` claim: every scope requirement fails.
    let bare = idp
        .access_token(&TokenRequest { scope: None, ..TokenRequest::new(READER_CLIENT, Api::Orders, "") })
        .await
        .unwrap();
    let (_, claims) = interop_tests::decode_unverified(&bare);
    assert!(claims.get("scope").is_none(), "{claims}");
    validator.validate(&bare).await.unwrap();
    let err = validator.authorize(&bare, &ScopeRequirement::any(["orders:read", "orders:write"])).await.unwrap_err();
    assert_eq!(err.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_short_lived_token_is_401() {
    let idp = provider!("expired_short_lived_token_is_401");
    // No leeway, so that expiry is observable within the test's time budget.
    let validator = Validator::builder()
        .issuer(Issuer::discovery(idp.issuer()).audience("orders-api").leeway(Duration::ZERO))
        .build()
        .unwrap();
    let minted = idp.token(&TokenRequest::new(SHORT_LIVED_CLIENT, Api::Orders, "orders:read")).await.unwrap();
    assert_eq!(minted.expires_in, SHORT_TTL_SECS);
    let (_, claims) = minted.decoded();
    let exp = claims["exp"].as_u64().unwrap();
    assert_eq!(exp - claims["iat"].as_u64().unwrap(), SHORT_TTL_SECS);

    validator.validate(&minted.access_token).await.unwrap();
    validator.validate(&minted.access_token).await.unwrap(); // from the verified-token cache
    assert_eq!(validator.metrics().cache_hits, 1);

    // `exp` is the first instant the token is no longer valid; wait until just past it.
    let wait = (exp + 1).saturating_sub(unix_now());
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
    let err = validator.validate(&minted.access_token).await.unwrap_err();
    assert_eq!(err.reason(), RejectReason::Expired, "{err:?}");
    assert_eq!(err.status(), 401);
    assert_eq!(validator.metrics().cache_hits, 1, "the cached entry did not outlive exp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_on_the_running_provider() {
    let idp = provider!("key_rotation_on_the_running_provider");
    let validator = discovery(&idp)
        .refresh_interval(Duration::from_millis(500), Duration::from_secs(3600), Duration::from_secs(2))
        .unknown_kid_cooldown(Duration::from_millis(300))
        .build()
        .unwrap();
    let old_kid = idp.keys().await.unwrap().active(SigningAlg::ES256).unwrap().to_owned();
    let old = idp.access_token(&orders(SigningAlg::ES256)).await.unwrap();
    validator.validate(&old).await.unwrap();
    assert_eq!(validator.metrics().jwks_fetches, 1);
    tokio::time::sleep(Duration::from_millis(350)).await; // past the unknown-kid cooldown

    // A new key on the running provider: its first token is accepted on its first
    // request, with exactly one JWKS fetch, and no restart of anything.
    let new_kid = idp.rotate(SigningAlg::ES256).await.unwrap();
    assert_ne!(new_kid, old_kid);
    assert!(idp.published_kids().await.unwrap().contains(&new_kid));
    let new = idp.access_token(&orders(SigningAlg::ES256)).await.unwrap();
    assert_eq!(interop_tests::decode_unverified(&new).0["kid"], new_kid.as_str());
    let before = validator.metrics().jwks_fetches;
    let principal = validator.validate(&new).await.unwrap();
    assert_eq!(principal.key_id(), Some(new_kid.as_str()));
    assert_eq!(validator.metrics().jwks_fetches - before, 1, "one JWKS fetch for the new kid");
    validator.validate(&old).await.unwrap(); // the old key is still published

    // The old key leaves the provider's JWKS: its tokens stop validating once the
    // validator's key set is refreshed (here: at its 2 s lifetime), in the key set and in
    // the verified-token cache alike.
    idp.drop_key(&old_kid).await.unwrap();
    assert!(!idp.published_kids().await.unwrap().contains(&old_kid));
    let dropped_at = Instant::now();
    let deadline = dropped_at + Duration::from_secs(6);
    let err = loop {
        match validator.validate(&old).await {
            Err(err) => break err,
            Ok(_) => assert!(Instant::now() < deadline, "the dropped key still validates after 6 s"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("old-key token rejected {:?} after the key was dropped: {err:?}", dropped_at.elapsed());
    assert_eq!(err.reason(), RejectReason::UnknownKey, "{err:?}");
    assert_eq!(err.status(), 401);
    validator.validate(&new).await.unwrap();
    // Other algorithms' keys were untouched by the rotation.
    validator.validate(&idp.access_token(&orders(SigningAlg::EdDSA)).await.unwrap()).await.unwrap();
    let m = validator.metrics();
    assert!(m.jwks_fetches <= 6, "bounded refetching: {m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_stopped_serves_cached_keys_and_restart_recovers() {
    let mut idp = provider!("provider_stopped_serves_cached_keys_and_restart_recovers");
    let validator = discovery(&idp)
        .refresh_interval(Duration::from_millis(500), Duration::from_secs(3600), Duration::from_secs(1))
        .unknown_kid_cooldown(Duration::from_millis(300))
        .max_stale(Duration::from_secs(3600))
        .token_cache_capacity(0) // only the key cache may answer
        .build()
        .unwrap();
    let rs = idp.access_token(&orders(SigningAlg::RS256)).await.unwrap();
    let ed = idp.access_token(&orders(SigningAlg::EdDSA)).await.unwrap();
    validator.validate(&rs).await.unwrap();

    idp.stop();
    assert!(!idp.is_running());
    assert!(reqwest::get(format!("{}/jwks", idp.issuer())).await.is_err(), "the provider is really down");
    tokio::time::sleep(Duration::from_millis(1200)).await; // the key set is past its lifetime
    validator.validate(&rs).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // the background refresh fails
    validator.validate(&rs).await.unwrap();
    validator.validate(&ed).await.expect("a token never seen before, signed by a cached key");
    let m = validator.metrics();
    assert!(m.refresh_failures >= 1 && m.stale_served >= 1, "{m:?}");
    assert!(validator.is_ready());

    // Restarted on the same port with the same keys; then a rotation the validator has
    // never seen: recovered without restarting the validator.
    idp.restart().unwrap();
    assert!(idp.is_running());
    let new_kid = idp.rotate(SigningAlg::RS256).await.unwrap();
    let new = idp.access_token(&orders(SigningAlg::RS256)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await; // past the cooldown of the failed refresh
    let failures = validator.metrics().refresh_failures;
    let principal = validator.validate(&new).await.unwrap();
    assert_eq!(principal.key_id(), Some(new_kid.as_str()));
    validator.validate(&rs).await.unwrap();
    validator.validate(&ed).await.unwrap();
    assert_eq!(validator.metrics().refresh_failures, failures, "{:?}", validator.metrics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_started_while_provider_down_recovers() {
    let mut idp = provider!("validator_started_while_provider_down_recovers");
    let token = idp.access_token(&orders(SigningAlg::ES256)).await.unwrap();
    idp.stop();
    let validator = discovery(&idp).unknown_kid_cooldown(Duration::from_millis(300)).build().expect("no I/O at build");
    let err = validator.validate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::KeysUnavailable { .. }), "{err:?}");
    assert_eq!(err.status(), 503);
    assert!(!validator.is_ready());

    idp.restart().unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    validator.validate(&token).await.unwrap();
    assert!(validator.is_ready());
    let m = validator.metrics();
    assert!(m.refresh_failures >= 1 && m.discovery_fetches >= 2, "{m:?}");
}
