//! Key fetching and caching against the in-process issuer over loopback HTTP: discovery,
//! rotation, single flight, cooldown, outages, stale serving, Cache-Control, ETag,
//! hostile JWKS responses, and the verified-token cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use auth_core::testkit::{Outage, TestIssuer, TestKey};
use auth_core::{Algorithm, AuthError, RejectReason, Validator, ValidatorBuilder};

/// Short timings so that expiry, cooldown and staleness can be watched in a test.
fn fast(idp: &TestIssuer) -> ValidatorBuilder {
    Validator::builder()
        .issuer(idp.jwks_issuer())
        .refresh_interval(Duration::from_millis(300), Duration::from_secs(3600), Duration::from_millis(300))
        .unknown_kid_cooldown(Duration::from_millis(200))
        .fetch_timeout(Duration::from_secs(1))
}

async fn settle() {
    // Let a background refresh (spawned by a request) finish.
    tokio::time::sleep(Duration::from_millis(150)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_then_jwks_and_issuer_mismatch() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.discovery_issuer()).build().unwrap();
    validator.validate(&idp.token().sign()).await.unwrap();
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));

    let evil = TestIssuer::start().await.unwrap();
    evil.set_discovery_issuer(Some("https://someone-else.example"));
    let validator = Validator::builder().issuer(evil.discovery_issuer()).build().unwrap();
    let err = validator.validate(&evil.token().sign()).await.unwrap_err();
    assert_eq!(err.status(), 503);
    assert_eq!(evil.jwks_fetches(), 0, "keys are never fetched from an impersonating discovery document");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_without_a_usable_jwks_uri_fetches_no_keys() {
    let idp = TestIssuer::start().await.unwrap();
    let token = idp.token().sign();
    for (case, jwks_uri) in [
        ("no jwks_uri", serde_json::Value::Null),
        ("not a URL", "not a url".into()),
        ("plain http to a remote host", "http://keys.example.com/jwks".into()),
        ("not a string", 42.into()),
    ] {
        idp.set_discovery_members(Some(serde_json::json!({ "jwks_uri": jwks_uri })));
        let validator = Validator::builder().issuer(idp.discovery_issuer()).build().unwrap();
        let before = idp.jwks_fetches();
        let err = validator.validate(&token).await.unwrap_err();
        assert!(matches!(err, AuthError::KeysUnavailable { .. }), "{case}: {err:?}");
        assert_eq!(idp.jwks_fetches(), before, "{case}: no key set is fetched");
        assert!(validator.metrics().refresh_failures >= 1, "{case}: counted as a failed refresh");
    }
    // The same validator setup with the document mended works.
    idp.set_discovery_members(None);
    let validator = Validator::builder().issuer(idp.discovery_issuer()).build().unwrap();
    validator.validate(&token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_does_no_io_and_warm_up_fetches() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).build().unwrap();
    assert_eq!(idp.jwks_fetches(), 0);
    assert!(!validator.is_ready());
    validator.warm_up().await.unwrap();
    assert!(validator.is_ready());
    assert_eq!(idp.jwks_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_new_kid_validates_on_first_request_with_one_fetch() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).build().unwrap();
    validator.validate(&idp.token().sign()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await; // past the cooldown
    let before = idp.jwks_fetches();
    idp.rotate(TestKey::generate(Algorithm::ES256, "es-2"));
    let principal = validator.validate(&idp.token().sign()).await.unwrap();
    assert_eq!(principal.key_id(), Some("es-2"));
    assert_eq!(idp.jwks_fetches() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_unknown_kid_share_one_fetch() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp)
        .refresh_interval(Duration::from_secs(60), Duration::from_secs(60), Duration::from_secs(60))
        .build()
        .unwrap();
    validator.warm_up().await.unwrap();
    let before = idp.jwks_fetches();
    // A cold validator and a newly published key: one fetch, which every caller awaits.
    let validator_fresh = fast(&idp).unknown_kid_cooldown(Duration::from_secs(30)).build().unwrap();
    idp.add_key(TestKey::generate(Algorithm::ES256, "es-new"));
    let token = Arc::new(idp.token().key(idp.key("es-new").unwrap()).sign());
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (v, t) = (validator_fresh.clone(), token.clone());
        tasks.push(tokio::spawn(async move { v.validate(&t).await }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += usize::from(task.await.unwrap().is_ok());
    }
    assert_eq!(idp.jwks_fetches() - before, 1, "one shared fetch for 1000 callers");
    assert_eq!(ok, 1000, "every caller that waited on the shared fetch gets the new key");

    // A warm validator, past its cooldown, sees an unknown kid: one fetch for 1000 callers.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let before = idp.jwks_fetches();
    let unknown = Arc::new(idp.token().header("kid", "never-published").sign());
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (v, t) = (validator.clone(), unknown.clone());
        tasks.push(tokio::spawn(async move { v.validate(&t).await }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err().reason(), RejectReason::UnknownKey);
    }
    assert_eq!(idp.jwks_fetches() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kids_within_a_cooldown_cause_at_most_one_fetch() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).unknown_kid_cooldown(Duration::from_secs(30)).build().unwrap();
    validator.warm_up().await.unwrap();
    let before = idp.jwks_fetches();
    let good = idp.token().sign();
    for i in 0..500 {
        let token = idp.token().header("kid", format!("junk-{i}-{}", fastrand::u64(..))).sign();
        assert_eq!(validator.validate(&token).await.unwrap_err().reason(), RejectReason::UnknownKey);
    }
    assert!(idp.jwks_fetches() - before <= 1);
    validator.validate(&good).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idp_does_not_delay_cached_keys() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).fetch_timeout(Duration::from_secs(10)).token_cache_capacity(0).build().unwrap();
    validator.warm_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await; // the key set is now due for refresh
    idp.set_outage(Some(Outage::Slow(Duration::from_secs(5)))).await.unwrap();
    for _ in 0..20 {
        let token = idp.token().sign();
        let result = tokio::time::timeout(Duration::from_secs(2), validator.validate(&token)).await;
        result.expect("a cached key is never held up by the slow refresh").unwrap();
    }
    assert_eq!(idp.jwks_fetches(), 2, "one background refresh started, still in flight");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_serves_stale_keys_until_max_stale_then_503() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).max_stale(Duration::from_millis(1500)).token_cache_capacity(0).build().unwrap();
    validator.warm_up().await.unwrap();
    idp.set_outage(Some(Outage::Refuse)).await.unwrap();
    let token = idp.token().sign();
    // Past expiry (300 ms) but within max_stale: still served.
    tokio::time::sleep(Duration::from_millis(600)).await;
    validator.validate(&token).await.unwrap();
    settle().await;
    validator.validate(&token).await.unwrap();
    let m = validator.metrics();
    assert!(m.stale_served >= 1 && m.refresh_failures >= 1, "{m:?}");
    // Past expiry + max_stale: fail closed with 503, never 500.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = validator.validate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::KeysUnavailable { .. }), "{err:?}");
    assert_eq!(err.status(), 503);
    assert!(!validator.is_ready());
    // The issuer comes back: recovery without a restart.
    idp.set_outage(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    validator.validate(&token).await.unwrap();
    assert!(validator.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_with_idp_down_then_recovery() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_outage(Some(Outage::Refuse)).await.unwrap();
    let validator = fast(&idp).build().expect("starts while the issuer is down");
    let token = idp.token().sign();
    let err = validator.validate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::KeysUnavailable { .. }));
    // Within the cooldown: fails fast, with a Retry-After hint, no new fetch.
    let err = validator.validate(&token).await.unwrap_err();
    assert!(err.retry_after_secs().is_some());
    assert!(validator.warm_up().await.is_err());
    idp.set_outage(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    validator.validate(&token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_errors_and_garbage_keep_last_good_keys() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).token_cache_capacity(0).build().unwrap();
    validator.warm_up().await.unwrap();
    for outage in [Outage::Status(503), Outage::Status(404), Outage::Garbage, Outage::Stall] {
        idp.set_outage(Some(outage.clone())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await; // due, and past the cooldown
        validator.validate(&idp.token().sign()).await.unwrap_or_else(|e| panic!("{outage:?}: {e}"));
        settle().await;
        let m = validator.metrics();
        eprintln!("{outage:?} fetches={} failures={}", m.jwks_fetches, m.refresh_failures);
    }
    tokio::time::sleep(Duration::from_millis(1200)).await; // the stalled fetch times out (1 s)
    let m = validator.metrics();
    assert!(m.refresh_failures >= 4, "{m:?}");
    idp.set_outage(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_jwks_documents() {
    let idp = TestIssuer::start().await.unwrap();
    let good = idp.jwks();
    let token = idp.token().sign();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", vec![b' '; 2 * 1024 * 1024]), // over the 1 MiB cap
        ("text/html", good.to_string().into_bytes()),      // not JSON by content type
        ("application/json", b"{\"keys\": 5}".to_vec()),   // not a JWK set
        ("application/json", b"{\"keys\": []}".to_vec()),  // no usable key
    ];
    for (content_type, body) in cases {
        idp.set_jwks_body(Some((content_type, body)));
        let validator = fast(&idp).build().unwrap();
        let err = validator.validate(&token).await.unwrap_err();
        assert!(matches!(err, AuthError::KeysUnavailable { .. }), "{content_type}: {err:?}");
        assert_eq!(validator.metrics().refresh_failures, 1);
    }
    // Partially bad: the good key is used, the others skipped.
    let mut doc = good.clone();
    let keys = doc["keys"].as_array_mut().unwrap();
    keys.insert(
        0,
        serde_json::json!({"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"}),
    );
    keys.insert(0, serde_json::json!({"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"}));
    keys.insert(0, serde_json::json!("not an object"));
    idp.set_jwks_body(Some(("application/jwk-set+json", doc.to_string().into_bytes())));
    let validator = fast(&idp).build().unwrap();
    validator.validate(&token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_key_stops_validating_after_refresh() {
    let idp = TestIssuer::start().await.unwrap();
    idp.add_key(TestKey::generate(Algorithm::ES256, "es-2"));
    let validator = fast(&idp).build().unwrap();
    let old = idp.token().key(idp.key("rs256-1").unwrap()).sign();
    validator.validate(&old).await.unwrap();
    validator.validate(&old).await.unwrap();
    assert_eq!(validator.metrics().cache_hits, 1);
    idp.unpublish("rs256-1");
    tokio::time::sleep(Duration::from_millis(350)).await;
    // This request triggers the background refresh (it may still pass on the old set).
    let new = idp.token().key(idp.key("es-2").unwrap()).sign();
    validator.validate(&new).await.unwrap();
    settle().await;
    let err = validator.validate(&old).await.unwrap_err();
    assert_eq!(err.reason(), RejectReason::UnknownKey, "neither the key set nor the token cache keeps a removed key");
    let hits = validator.metrics().cache_hits;
    validator.validate(&new).await.unwrap();
    assert_eq!(validator.metrics().cache_hits, hits + 1, "a key republished unchanged keeps its tokens cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_sets_the_refresh_time() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_cache_control(Some("public, max-age=1"));
    let validator = Validator::builder()
        .issuer(idp.jwks_issuer())
        .refresh_interval(Duration::from_millis(100), Duration::from_secs(3600), Duration::from_secs(600))
        .unknown_kid_cooldown(Duration::from_millis(50))
        .build()
        .unwrap();
    validator.warm_up().await.unwrap();
    let token = idp.token().sign();
    tokio::time::sleep(Duration::from_millis(500)).await;
    validator.validate(&token).await.unwrap();
    settle().await;
    assert_eq!(idp.jwks_fetches(), 1, "max-age=1 s is not yet due at 0.5 s");
    tokio::time::sleep(Duration::from_millis(700)).await;
    validator.validate(&token).await.unwrap();
    settle().await;
    assert_eq!(idp.jwks_fetches(), 2, "due after at most 0.9 s of a 1 s max-age");

    // Without Cache-Control, the default lifetime (10 min here) applies: no refresh.
    idp.set_cache_control(None);
    let validator = Validator::builder()
        .issuer(idp.jwks_issuer())
        .refresh_interval(Duration::from_millis(100), Duration::from_secs(3600), Duration::from_secs(600))
        .build()
        .unwrap();
    validator.warm_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    validator.validate(&token).await.unwrap();
    settle().await;
    assert_eq!(idp.jwks_fetches(), 3);

    // max-age is clamped to the configured minimum.
    idp.set_cache_control(Some("max-age=0"));
    let validator = Validator::builder()
        .issuer(idp.jwks_issuer())
        .refresh_interval(Duration::from_secs(60), Duration::from_secs(3600), Duration::from_secs(600))
        .unknown_kid_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    validator.warm_up().await.unwrap();
    for _ in 0..10 {
        validator.validate(&token).await.unwrap();
    }
    settle().await;
    assert_eq!(idp.jwks_fetches(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_conditional_requests() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_etag(true);
    let validator = fast(&idp).build().unwrap();
    validator.warm_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    validator.warm_up().await.unwrap();
    let m = validator.metrics();
    assert_eq!((m.jwks_fetches, m.jwks_not_modified), (2, 1));
    validator.validate(&idp.token().sign()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cache_hits_expiry_and_opt_out() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).build().unwrap();
    let token = idp.token().sign();
    let first = validator.validate(&token).await.unwrap();
    let second = validator.validate(&token).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(validator.metrics().cache_hits, 1);
    assert_eq!(validator.cached_tokens(), 1);

    // An entry never outlives exp.
    let short = idp.token().expires_in(2).sign();
    let strict = Validator::builder().issuer(idp.jwks_issuer().leeway(Duration::ZERO)).build().unwrap();
    strict.validate(&short).await.unwrap();
    strict.validate(&short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(strict.validate(&short).await.unwrap_err().reason(), RejectReason::Expired);
    assert_eq!(strict.metrics().cache_hits, 1);

    let uncached = fast(&idp).token_cache_capacity(0).build().unwrap();
    uncached.validate(&token).await.unwrap();
    uncached.validate(&token).await.unwrap();
    assert_eq!(uncached.metrics().cache_hits, 0);
    assert_eq!(uncached.cached_tokens(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_cache_is_bounded() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).token_cache_capacity(50).build().unwrap();
    for _ in 0..300 {
        validator.validate(&idp.token().sign()).await.unwrap();
    }
    assert!(validator.cached_tokens() <= 50, "{}", validator.cached_tokens());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_only_within_the_origin() {
    let idp = TestIssuer::start().await.unwrap();
    let token = idp.token().sign();
    // Same origin: followed.
    idp.set_jwks_redirect(Some(&format!("{}/jwks-moved", idp.issuer())));
    let validator = fast(&idp).build().unwrap();
    validator.validate(&token).await.unwrap();
    // Another origin (an attacker-controlled JWKS): not followed, nothing fetched there.
    let attacker = TestIssuer::start().await.unwrap();
    idp.set_jwks_redirect(Some(&attacker.jwks_url()));
    let validator = fast(&idp).build().unwrap();
    let err = validator.validate(&token).await.unwrap_err();
    assert!(matches!(err, AuthError::KeysUnavailable { .. }), "{err:?}");
    assert_eq!(attacker.jwks_fetches(), 0);
    assert_eq!(validator.metrics().refresh_failures, 1);
}

/// A validator that refreshes only on demand (no refresh-ahead inside a test), with
/// `cooldown` between fetches.
fn on_demand(idp: &TestIssuer, cooldown: Duration) -> Validator {
    Validator::builder()
        .issuer(idp.jwks_issuer())
        .refresh_interval(Duration::from_secs(600), Duration::from_secs(600), Duration::from_secs(600))
        .unknown_kid_cooldown(cooldown)
        .fetch_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_a_kid_first_used_inside_the_cooldown_is_accepted_when_it_ends() {
    let idp = TestIssuer::start().await.unwrap();
    let cooldown = Duration::from_secs(2);
    let validator = on_demand(&idp, cooldown);
    validator.warm_up().await.unwrap();
    let fetched_at = std::time::Instant::now();
    let before = idp.jwks_fetches();
    // The issuer starts signing with a new key right after our fetch (Keycloak does).
    tokio::time::sleep(Duration::from_millis(500)).await;
    idp.rotate(TestKey::generate(Algorithm::ES256, "es-new"));
    let token = idp.token().sign();
    for _ in 0..3 {
        // Inside the cooldown: refused at once, without a fetch, and not remembered.
        assert_eq!(validator.validate(&token).await.unwrap_err().reason(), RejectReason::UnknownKey);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(idp.jwks_fetches(), before, "no fetch inside the cooldown");
    // The refusal scheduled one fetch for the end of the cooldown, without a request.
    tokio::time::sleep((cooldown + Duration::from_millis(700)).saturating_sub(fetched_at.elapsed())).await;
    assert_eq!(idp.jwks_fetches() - before, 1, "one fetch when the cooldown ended");
    let principal = validator.validate(&token).await.expect("the first request after the cooldown is accepted");
    assert_eq!(principal.key_id(), Some("es-new"));
    assert_eq!(idp.jwks_fetches() - before, 1, "served from the set fetched at the end of the cooldown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_a_kid_first_seen_while_the_issuer_is_down_is_not_blacklisted() {
    let idp = TestIssuer::start().await.unwrap();
    let cooldown = Duration::from_secs(1);
    let validator = on_demand(&idp, cooldown);
    validator.warm_up().await.unwrap();
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    let attempts = validator.metrics().jwks_fetches;
    idp.rotate(TestKey::generate(Algorithm::ES256, "es-new"));
    idp.set_outage(Some(Outage::Refuse)).await.unwrap();
    let token = idp.token().sign();
    // The fetch this causes fails: nothing proves the kid absent.
    assert_eq!(validator.validate(&token).await.unwrap_err().reason(), RejectReason::UnknownKey);
    assert_eq!(validator.metrics().jwks_fetches - attempts, 1);
    idp.set_outage(None).await.unwrap();
    // Inside the cooldown: refused at once; a fetch is scheduled for its end.
    assert_eq!(validator.validate(&token).await.unwrap_err().reason(), RejectReason::UnknownKey);
    tokio::time::sleep(cooldown + Duration::from_millis(500)).await;
    let principal = validator.validate(&token).await.expect("accepted once the issuer is back and the cooldown over");
    assert_eq!(principal.key_id(), Some("es-new"));
    assert_eq!(validator.metrics().jwks_fetches - attempts, 2, "the failed fetch and one that succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item01_a_kid_proven_absent_is_forgotten_after_one_cooldown() {
    let idp = TestIssuer::start().await.unwrap();
    let cooldown = Duration::from_millis(500);
    let validator = on_demand(&idp, cooldown);
    validator.warm_up().await.unwrap();
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    let key = TestKey::generate(Algorithm::ES256, "es-late");
    let early = idp.token().key(Arc::new(TestKey::generate(Algorithm::ES256, "es-late"))).sign();
    // A fetch started after the kid was seen proves it absent: remembered.
    assert_eq!(validator.validate(&early).await.unwrap_err().reason(), RejectReason::UnknownKey);
    let attempts = validator.metrics().jwks_fetches;
    idp.add_key(key);
    let token = idp.token().key(idp.key("es-late").unwrap()).sign();
    assert_eq!(validator.validate(&token).await.unwrap_err().reason(), RejectReason::UnknownKey);
    // Remembered for at most one cooldown: then a request fetches again and is accepted.
    tokio::time::sleep(cooldown + Duration::from_millis(200)).await;
    validator.validate(&token).await.expect("the negative memory lasts one cooldown at most");
    assert_eq!(validator.metrics().jwks_fetches - attempts, 1);
}

/// A validator shared across runtimes (`#[tokio::test]`s, actix workers): a refresh whose
/// runtime is dropped mid-fetch must not leave the source believing a fetch is in flight.
#[test]
fn item02_a_refresh_cancelled_with_its_runtime_does_not_stop_refreshing() {
    let runtime = |threads: usize| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap()
    };
    let server = runtime(1); // the issuer outlives every runtime below
    let idp = server.block_on(TestIssuer::start()).unwrap();
    let validator = Validator::builder()
        .issuer(idp.jwks_issuer())
        .refresh_interval(Duration::from_secs(600), Duration::from_secs(600), Duration::from_secs(600))
        .unknown_kid_cooldown(Duration::from_millis(200))
        .fetch_timeout(Duration::from_secs(5))
        .token_cache_capacity(0)
        .build()
        .unwrap();
    let token = idp.token().sign();

    // 1. Keys fetched on one runtime, which then goes away with its pooled connection.
    let first = runtime(1);
    first.block_on(validator.validate(&token)).unwrap();
    drop(first);

    // 2. A refresh started on a second runtime, dropped while the issuer is answering slowly.
    server.block_on(idp.set_outage(Some(Outage::Slow(Duration::from_secs(3))))).unwrap();
    let second = runtime(1);
    second.block_on(async {
        let refresh = tokio::time::timeout(Duration::from_millis(300), validator.warm_up()).await;
        assert!(refresh.is_err(), "the refresh is still in flight when its runtime goes");
    });
    drop(second);
    server.block_on(idp.set_outage(None)).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // past the cooldown

    // 3. From a third runtime: a new fetch is made and succeeds.
    let before = idp.jwks_fetches();
    let third = runtime(1);
    third.block_on(async {
        let refresh = tokio::time::timeout(Duration::from_secs(3), validator.warm_up()).await;
        refresh.expect("the refresh does not hang").expect("a new fetch succeeds");
        idp.rotate(TestKey::generate(Algorithm::ES256, "es-2"));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let principal = validator.validate(&idp.token().sign()).await.expect("an unknown kid still triggers a fetch");
        assert_eq!(principal.key_id(), Some("es-2"));
    });
    assert_eq!(idp.jwks_fetches() - before, 2, "the forced refresh and the unknown-kid refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item03_readiness_fetches_missing_keys_and_reports_each_issuer() {
    let down = TestIssuer::start().await.unwrap();
    let up = TestIssuer::start().await.unwrap();
    down.set_outage(Some(Outage::Refuse)).await.unwrap();
    let validator = Validator::builder()
        .issuer(down.jwks_issuer())
        .issuer(up.discovery_issuer())
        .unknown_kid_cooldown(Duration::from_millis(200))
        .fetch_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    // Started while one issuer is down, and kept out of traffic: no request ever comes.
    let readiness = validator.readiness().await;
    assert!(!readiness.keys_loaded() && !readiness.keys_usable());
    let [first, second] = readiness.issuers() else { panic!("{readiness:?}") };
    assert_eq!((first.issuer(), first.keys_loaded()), (down.issuer(), false));
    assert_eq!((second.issuer(), second.keys_loaded(), second.keys_usable()), (up.issuer(), true, true));
    assert_eq!(up.jwks_fetches(), 1, "readiness fetched the keys that were missing");
    // The issuer comes back: the probe alone makes the instance ready.
    down.set_outage(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let readiness = validator.readiness().await;
    assert!(readiness.keys_loaded() && readiness.keys_usable(), "{readiness:?}");
    assert!(validator.is_ready());
    assert_eq!(down.jwks_fetches(), 1);
    // Ready issuers are not fetched again by the probe.
    validator.readiness().await;
    assert_eq!((down.jwks_fetches(), up.jwks_fetches()), (1, 1));
    assert_eq!(validator.metrics().accepted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item03_keys_loaded_once_stays_true_through_an_outage() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).max_stale(Duration::from_millis(300)).build().unwrap();
    validator.warm_up().await.unwrap();
    idp.set_outage(Some(Outage::Refuse)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await; // past the lifetime and max_stale
    let readiness = validator.readiness().await;
    assert!(readiness.keys_loaded(), "loaded once: the probe that keeps an IdP outage from becoming a deploy outage");
    assert!(!readiness.keys_usable(), "{readiness:?}");
    assert!(!validator.is_ready());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item04_a_key_set_lives_at_most_one_hour_by_default() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_cache_control(Some("public, max-age=604800")); // a week, as some providers send
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    validator.warm_up().await.unwrap();
    let readiness = validator.readiness().await;
    let expires_in = readiness.issuers()[0].expires_in().unwrap();
    assert!(expires_in <= Duration::from_secs(3600), "a removed key would validate for {expires_in:?}");
    assert!(expires_in > Duration::from_secs(3590), "{expires_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item05_a_key_re_pinned_to_another_algorithm_is_rebuilt() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).build().unwrap();
    let rs256 = idp.token().sign();
    validator.validate(&rs256).await.unwrap();
    validator.validate(&rs256).await.unwrap(); // cached
    // The issuer re-pins the same key material to PS256.
    let mut jwks = idp.jwks();
    jwks["keys"][0]["alg"] = "PS256".into();
    idp.set_jwks_body(Some(("application/json", jwks.to_string().into_bytes())));
    validator.warm_up().await.unwrap();
    assert_eq!(validator.metrics().key_sets_installed, 2);
    let err = validator.validate(&rs256).await.unwrap_err();
    assert_eq!(err.reason(), RejectReason::KeyAlgorithmMismatch, "the cached RS256 token is refused too");
    let uncached = idp.token().sign();
    assert_eq!(validator.validate(&uncached).await.unwrap_err().reason(), RejectReason::KeyAlgorithmMismatch);
    let ps256 = idp.token().header("alg", "PS256").sign();
    assert_eq!(validator.validate(&ps256).await.unwrap_err().reason(), RejectReason::InvalidSignature);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item06_the_same_keys_fetched_again_are_not_a_new_key_set() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = fast(&idp).build().unwrap();
    validator.warm_up().await.unwrap();
    validator.warm_up().await.unwrap(); // 200, same document (no ETag)
    let m = validator.metrics();
    assert_eq!((m.jwks_fetches, m.key_sets_installed), (2, 1), "{m:?}");
    // Reordered members and keys are the same set too.
    let mut jwks = idp.jwks();
    jwks["keys"].as_array_mut().unwrap().reverse();
    idp.set_jwks_body(Some(("application/json", jwks.to_string().into_bytes())));
    validator.warm_up().await.unwrap();
    assert_eq!(validator.metrics().key_sets_installed, 1);
    // A set that differs is installed.
    idp.set_jwks_body(None);
    idp.add_key(TestKey::generate(Algorithm::EdDSA, "ed-2"));
    validator.warm_up().await.unwrap();
    assert_eq!(validator.metrics().key_sets_installed, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item09_the_token_cache_is_bounded_in_bytes_too() {
    let idp = TestIssuer::start().await.unwrap();
    let budget: u64 = 256 * 1024;
    let validator = fast(&idp).token_cache_capacity(10_000).token_cache_max_bytes(budget).build().unwrap();
    let groups: Vec<String> = (0..200).map(|i| format!("group-{i:04}-{}", "x".repeat(20))).collect();
    let mut token_bytes = 0;
    for _ in 0..100 {
        let token = idp.token().claim("groups", groups.clone()).sign();
        token_bytes = token.len();
        validator.validate(&token).await.unwrap();
    }
    let cached = validator.cached_tokens();
    assert!(cached > 0, "large tokens are still cached");
    assert!(
        cached * token_bytes as u64 <= budget,
        "{cached} tokens of {token_bytes} bytes over a {budget}-byte budget"
    );
    // Small tokens: the entry count is the bound.
    let small = fast(&idp).token_cache_capacity(50).token_cache_max_bytes(budget).build().unwrap();
    for _ in 0..200 {
        small.validate(&idp.token().sign()).await.unwrap();
    }
    assert!(small.cached_tokens() <= 50, "{}", small.cached_tokens());
}
