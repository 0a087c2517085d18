//! Every header and claim rule, accepted and rejected, over real loopback HTTP against
//! the in-process issuer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use auth_core::testkit::{DEFAULT_AUDIENCE, TestIssuer, TestKey, TokenBuilder, sign_raw};
use auth_core::{
    Algorithm, AuthError, Decision, Issuer, Principal, RejectReason, Rejection, RequestContext, ScopeRequirement,
    TokenError, TypPolicy, Validator,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

async fn setup(issuer: impl FnOnce(&TestIssuer) -> Issuer) -> (TestIssuer, Validator) {
    let idp = TestIssuer::start().await.expect("issuer starts");
    let validator = Validator::builder().issuer(issuer(&idp)).build().expect("valid config");
    (idp, validator)
}

async fn reason(validator: &Validator, token: &str) -> RejectReason {
    match validator.validate(token).await {
        Ok(p) => panic!("accepted a token that must be rejected: {p:?}"),
        Err(err) => err.reason(),
    }
}

#[tokio::test]
async fn every_algorithm_verifies() {
    let keys: Vec<TestKey> = Algorithm::ALL.iter().map(|alg| TestKey::generate(*alg, &format!("k-{alg}"))).collect();
    let idp = TestIssuer::with_keys(keys).await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    for alg in Algorithm::ALL {
        let key = idp.key(&format!("k-{alg}")).unwrap();
        let token = idp.token().key(key).sign();
        let principal = validator.validate(&token).await.unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(principal.algorithm(), alg);
        assert_eq!(principal.key_id(), Some(format!("k-{alg}").as_str()));
    }
}

#[tokio::test]
async fn accepted_token_yields_the_principal() {
    let (idp, validator) = setup(|idp| idp.discovery_issuer()).await;
    let token = idp.token().scope("orders:read orders:write").claim("tenant", "acme").sign();
    let principal = validator.validate(&token).await.unwrap();
    assert_eq!(principal.issuer(), idp.issuer());
    assert_eq!(principal.subject(), Some("test-client"));
    assert_eq!(principal.claims().audience, vec![DEFAULT_AUDIENCE.to_string()]);
    assert!(principal.scopes().contains("orders:write"));
    #[derive(serde::Deserialize)]
    struct Custom {
        tenant: String,
    }
    assert_eq!(principal.custom_claims::<Custom>().unwrap().tenant, "acme");
    assert_eq!(validator.metrics().accepted, 1);
}

#[tokio::test]
async fn issuer_and_audience_rules() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer().audience("second-api")).await;
    let ok = |b: TokenBuilder| b.sign();
    assert!(validator.validate(&ok(idp.token().audience("second-api"))).await.is_ok());
    assert!(validator.validate(&ok(idp.token().audience(json!(["other", DEFAULT_AUDIENCE])))).await.is_ok());
    let cases = [
        (idp.token().audience("other-api"), RejectReason::InvalidAudience),
        (idp.token().audience(json!(["a", "b"])), RejectReason::InvalidAudience),
        (idp.token().audience(json!([])), RejectReason::InvalidClaim),
        (idp.token().audience(json!(null)), RejectReason::InvalidClaim),
        (idp.token().without_claim("aud"), RejectReason::MissingClaim),
        (idp.token().claim("iss", "http://evil.example"), RejectReason::UnknownIssuer),
        (idp.token().claim("iss", format!("{}/", idp.issuer())), RejectReason::UnknownIssuer),
        (idp.token().claim("iss", json!([idp.issuer()])), RejectReason::InvalidClaim),
        (idp.token().claim("iss", json!(null)), RejectReason::InvalidClaim),
        (idp.token().without_claim("iss"), RejectReason::MissingClaim),
    ];
    for (builder, want) in cases {
        assert_eq!(reason(&validator, &builder.sign()).await, want);
    }
}

#[tokio::test]
async fn unknown_issuer_causes_no_fetch() {
    let (idp, validator) = setup(|idp| idp.discovery_issuer()).await;
    let token = idp.token().claim("iss", "https://other.example").sign();
    assert_eq!(reason(&validator, &token).await, RejectReason::UnknownIssuer);
    assert_eq!(idp.jwks_fetches() + idp.discovery_fetches(), 0);
}

#[tokio::test]
async fn time_rules() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer().leeway(Duration::from_secs(30))).await;
    let t = now();
    let accept = [
        idp.token().claim("exp", t + 10),
        idp.token().claim("exp", t - 20), // within leeway
        idp.token().claim("nbf", t + 20), // within leeway
        idp.token().claim("iat", t + 20),
        idp.token().claim("exp", (t + 100) as f64 + 0.5), // a NumericDate may be fractional
    ];
    for builder in accept {
        let token = builder.sign();
        validator.validate(&token).await.unwrap();
    }
    let reject = [
        (idp.token().claim("exp", t - 31), RejectReason::Expired),
        (idp.token().without_claim("exp"), RejectReason::MissingClaim),
        (idp.token().claim("exp", json!(t + 100).to_string()), RejectReason::InvalidClaim),
        (idp.token().claim("exp", json!(null)), RejectReason::InvalidClaim),
        (idp.token().claim("exp", 253_402_300_800_i64), RejectReason::InvalidClaim),
        (idp.token().claim("exp", -5), RejectReason::InvalidClaim),
        (idp.token().claim("nbf", t + 60), RejectReason::NotYetValid),
        (idp.token().claim("nbf", "0"), RejectReason::InvalidClaim),
        (idp.token().claim("iat", t + 60), RejectReason::IssuedInFuture),
        (idp.token().claim("iat", json!({})), RejectReason::InvalidClaim),
    ];
    for (builder, want) in reject {
        assert_eq!(reason(&validator, &builder.sign()).await, want);
    }
}

#[tokio::test]
async fn max_token_age() {
    let (idp, validator) =
        setup(|idp| idp.jwks_issuer().leeway(Duration::ZERO).max_token_age(Duration::from_secs(60))).await;
    let t = now();
    validator.validate(&idp.token().claim("iat", t - 30).sign()).await.unwrap();
    assert_eq!(reason(&validator, &idp.token().claim("iat", t - 120).sign()).await, RejectReason::TooOld);
    assert_eq!(reason(&validator, &idp.token().without_claim("iat").sign()).await, RejectReason::MissingClaim);
}

#[tokio::test]
async fn required_claims() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer().require_claim("jti").require_claim("tenant")).await;
    validator.validate(&idp.token().claim("tenant", "t").sign()).await.unwrap();
    let err = validator.validate(&idp.token().sign()).await.unwrap_err();
    assert_eq!(err.to_string(), "the token lacks the required claim tenant");
    let err = validator.validate(&idp.token().claim("tenant", "t").without_claim("jti").sign()).await.unwrap_err();
    assert_eq!(err.reason(), RejectReason::MissingClaim);
}

#[tokio::test]
async fn typ_policy() {
    let (idp, lenient) = setup(|idp| idp.jwks_issuer()).await;
    let strict =
        Validator::builder().issuer(idp.jwks_issuer().typ_policy(TypPolicy::RequireAccessToken)).build().unwrap();
    let at = idp.token().sign();
    let jwt = idp.token().header("typ", "JWT").sign();
    let none = idp.token().without_header("typ").sign();
    let other = idp.token().header("typ", "logout+jwt").sign();
    for token in [&at, &jwt, &none] {
        lenient.validate(token).await.unwrap();
    }
    assert_eq!(reason(&lenient, &other).await, RejectReason::InvalidType);
    strict.validate(&at).await.unwrap();
    strict.validate(&idp.token().header("typ", "application/at+jwt").sign()).await.unwrap();
    for token in [&jwt, &none, &other] {
        assert_eq!(reason(&strict, token).await, RejectReason::InvalidType);
    }
}

#[tokio::test]
async fn header_rules() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let cases = [
        (idp.token().header("alg", "none"), RejectReason::UnsupportedAlgorithm),
        (idp.token().header("alg", "HS256"), RejectReason::UnsupportedAlgorithm),
        (idp.token().header("alg", "rs256"), RejectReason::UnsupportedAlgorithm),
        (idp.token().header("crit", json!(["exp"])).header("exp", 1), RejectReason::UnsupportedCriticalHeader),
        (idp.token().header("b64", false).header("crit", json!(["b64"])), RejectReason::UnsupportedCriticalHeader),
        (idp.token().header("kid", 42), RejectReason::Malformed),
        (idp.token().header("kid", "nope"), RejectReason::UnknownKey),
        (idp.token().header("alg", "PS256"), RejectReason::KeyAlgorithmMismatch), // key pinned to RS256
        (idp.token().header("alg", "ES256"), RejectReason::KeyAlgorithmMismatch),
    ];
    for (builder, want) in cases {
        assert_eq!(reason(&validator, &builder.sign()).await, want);
    }
    // Without kid, the single published key is used.
    validator.validate(&idp.token().without_header("kid").sign()).await.unwrap();
}

#[tokio::test]
async fn key_injection_headers_are_ignored() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let attacker = TestKey::generate(Algorithm::RS256, "rs256-1");
    let jwk = attacker.public_jwk();
    let attacker = Arc::new(attacker);
    let forged = idp
        .token()
        .key(attacker.clone())
        .header("jwk", jwk.clone())
        .header("jku", format!("{}/jwks", idp.issuer()))
        .header("x5u", "http://127.0.0.1:1/x5u")
        .header("x5c", json!(["MIIB"]))
        .sign();
    assert_eq!(reason(&validator, &forged).await, RejectReason::InvalidSignature);
}

#[tokio::test]
async fn algorithm_allow_list() {
    let keys = vec![TestKey::generate(Algorithm::ES256, "ec"), TestKey::generate(Algorithm::RS256, "rsa")];
    let idp = TestIssuer::with_keys(keys).await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer().algorithms([Algorithm::ES256])).build().unwrap();
    validator.validate(&idp.token().key(idp.key("ec").unwrap()).sign()).await.unwrap();
    assert_eq!(
        reason(&validator, &idp.token().key(idp.key("rsa").unwrap()).sign()).await,
        RejectReason::AlgorithmNotAllowed
    );
}

#[tokio::test]
async fn jwk_without_alg_allows_its_key_family() {
    let idp = TestIssuer::with_keys(vec![TestKey::generate(Algorithm::PS384, "rsa").without_jwk_alg()]).await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    validator.validate(&idp.token().sign()).await.unwrap();
    // The same key signing PKCS#1 v1.5 would verify too: the family allows it. But a
    // token claiming PS384 while signed with another padding must fail.
    let tampered = idp.token().header("alg", "RS384").sign();
    assert_eq!(reason(&validator, &tampered).await, RejectReason::InvalidSignature);
}

#[tokio::test]
async fn signature_faults() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let token = idp.token().sign();
    let other = idp.token().claim("sub", "other").sign();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let (_, other_sig) = other.rsplit_once('.').unwrap();
    let (header, payload) = input.split_once('.').unwrap();
    let evil_payload = URL_SAFE_NO_PAD
        .encode(json!({"iss": idp.issuer(), "aud": DEFAULT_AUDIENCE, "exp": now() + 999, "sub": "admin"}).to_string());
    let cases = [
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(&URL_SAFE_NO_PAD.decode(sig).unwrap()[..200])),
        format!("{input}.{other_sig}"),
        format!("{header}.{evil_payload}.{sig}"),
        format!("{}.{payload}.{sig}", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"rs256-1","typ":"JWT"}"#)),
        format!("{input}.AAAA"),
    ];
    for token in cases {
        assert_eq!(reason(&validator, &token).await, RejectReason::InvalidSignature, "{token}");
    }
    assert_eq!(reason(&validator, &format!("{input}.")).await, RejectReason::Malformed);
    // Non-canonical base64 (stray trailing bits) is malformed, not "another" signature. A
    // 256-byte signature ends in a character whose low 4 bits are unused (zero when
    // canonical): set one of them.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_eq!(sig.len() % 4, 2, "a 256-byte signature");
    let last = ALPHABET.iter().position(|&c| c == *sig.as_bytes().last().unwrap()).unwrap();
    let stray = format!("{}{}", &sig[..sig.len() - 1], ALPHABET[last | 1] as char);
    assert_eq!(reason(&validator, &format!("{input}.{stray}")).await, RejectReason::Malformed);
}

#[tokio::test]
async fn hmac_with_the_public_key_is_refused() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let key = idp.key("rs256-1").unwrap();
    let claims = json!({"iss": idp.issuer(), "aud": DEFAULT_AUDIENCE, "exp": now() + 60}).to_string();
    let header = r#"{"alg":"HS256","kid":"rs256-1"}"#;
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(&claims));
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key.public_key_bytes()),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(reason(&validator, &token).await, RejectReason::UnsupportedAlgorithm);
    let none = sign_raw(None, r#"{"alg":"none"}"#, &claims);
    assert_eq!(reason(&validator, &format!("{}A", none)).await, RejectReason::UnsupportedAlgorithm);
}

#[tokio::test]
async fn shape_and_size() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let big = idp.token().claim("pad", "x".repeat(13_000)).sign();
    assert_eq!(reason(&validator, &big).await, RejectReason::TooLarge);
    for bad in ["", "abc", "a.b", "a.b.c.d", "a.b.c.d.e", "a..c", "a.b.c=", "a b.c.d"] {
        assert_eq!(reason(&validator, bad).await, RejectReason::Malformed, "{bad:?}");
    }
    let dup = sign_raw(
        idp.key("rs256-1").as_deref(),
        r#"{"alg":"RS256","kid":"rs256-1"}"#,
        &format!(r#"{{"iss":"{0}","iss":"{0}","aud":"{DEFAULT_AUDIENCE}","exp":{1}}}"#, idp.issuer(), now() + 60),
    );
    assert_eq!(reason(&validator, &dup).await, RejectReason::Malformed);
}

#[tokio::test]
async fn scopes_all_and_any() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let token = idp.token().scope("orders:read profile").sign();
    let scp = idp.token().without_claim("scope").claim("scp", json!(["orders:read", "orders:write"])).sign();
    let all = ScopeRequirement::all(["orders:read", "orders:write"]);
    let any = ScopeRequirement::any(["orders:write", "profile"]);
    assert!(validator.authorize(&token, &ScopeRequirement::all(["orders:read"])).await.is_ok());
    assert!(validator.authorize(&token, &any).await.is_ok());
    assert!(validator.authorize(&scp, &all).await.is_ok());
    let err = validator.authorize(&token, &all).await.unwrap_err();
    assert_eq!(err.status(), 403);
    assert!(err.www_authenticate(None).contains(r#"scope="orders:read orders:write""#));
    let none = idp.token().sign();
    assert!(matches!(validator.authorize(&none, &any).await, Err(AuthError::InsufficientScope { .. })));
    assert_eq!(validator.metrics().rejected(RejectReason::InsufficientScope), 2);
}

#[tokio::test]
async fn errors_never_echo_the_token() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let token = idp.token().header("kid", "secret-kid-value").claim("sub", "secret-sub").sign();
    let err = validator.validate(&token).await.unwrap_err();
    let rendered = format!("{err} {err:?} {} {}", err.www_authenticate(None), err.json_body());
    assert!(!rendered.contains("secret"), "{rendered}");
    assert!(!rendered.contains(&token[..20]));
    assert_eq!(err, AuthError::InvalidToken(TokenError::UnknownKey));
}

#[tokio::test]
async fn configuration_errors() {
    use auth_core::ConfigError;
    assert!(matches!(Validator::builder().build(), Err(ConfigError::NoIssuer)));
    let e = Validator::builder()
        .issuer(Issuer::discovery("https://a").audience("x"))
        .issuer(Issuer::discovery("https://a").audience("y"))
        .build();
    assert!(matches!(e, Err(ConfigError::DuplicateIssuer(_))));
    let e = Validator::builder().issuer(Issuer::discovery("http://idp.example.com").audience("x")).build();
    assert!(matches!(e, Err(ConfigError::InvalidUrl { .. })));
    let ok = Validator::builder()
        .allow_insecure_http(true)
        .issuer(Issuer::discovery("http://idp.example.com").audience("x"))
        .build();
    assert!(ok.is_ok());
    let e = Validator::builder().issuer(Issuer::static_jwks("https://a", "{}").audience("x")).build();
    assert!(matches!(e, Err(ConfigError::InvalidJwks { .. })));
    let e = Validator::builder().issuer(Issuer::jwks_url("https://a", "not a url").audience("x")).build();
    assert!(matches!(e, Err(ConfigError::InvalidUrl { .. })));
}

#[tokio::test]
async fn static_jwks_and_multiple_issuers() {
    let a = TestIssuer::start().await.unwrap();
    let b = TestIssuer::with_keys(vec![TestKey::generate(Algorithm::EdDSA, "ed")]).await.unwrap();
    let validator = Validator::builder()
        .issuer(Issuer::static_jwks(a.issuer(), a.jwks().to_string()).audience(DEFAULT_AUDIENCE))
        .issuer(b.discovery_issuer().audience("b-api"))
        .build()
        .unwrap();
    validator.validate(&a.token().sign()).await.unwrap();
    validator.validate(&b.token().audience("b-api").sign()).await.unwrap();
    assert_eq!(a.jwks_fetches(), 0, "a static key set is never fetched");
    // A token from b, relabelled as a's, fails: a's keys do not know b's kid.
    let relabelled = b.token().claim("iss", a.issuer()).sign();
    assert_eq!(reason(&validator, &relabelled).await, RejectReason::UnknownKey);
}

/// With discovery, the document may spell the issuer with or without a trailing slash
/// where the configuration spells it the other way; tokens must then carry exactly the
/// document's `iss`.
#[tokio::test]
async fn item11_discovery_pins_tokens_to_the_documents_exact_issuer() {
    // Configured with a slash; the document (like oidc-provider's) has none.
    let idp = TestIssuer::start().await.unwrap();
    let slashed = format!("{}/", idp.issuer());
    let validator =
        Validator::builder().issuer(Issuer::discovery(&slashed).audience(DEFAULT_AUDIENCE)).build().unwrap();
    validator.validate(&idp.token().sign()).await.expect("the document's issuer, exactly");
    let configured_form = idp.token().claim("iss", slashed.clone()).sign();
    assert_eq!(reason(&validator, &configured_form).await, RejectReason::UnknownIssuer);
    assert_eq!(
        reason(&validator, &idp.token().claim("iss", format!("{slashed}/")).sign()).await,
        RejectReason::UnknownIssuer
    );

    // Configured without a slash; the document has one.
    let idp = TestIssuer::start().await.unwrap();
    let slashed = format!("{}/", idp.issuer());
    idp.set_discovery_issuer(Some(&slashed));
    let validator = Validator::builder().issuer(idp.discovery_issuer()).build().unwrap();
    validator.validate(&idp.token().claim("iss", slashed.clone()).sign()).await.expect("the document's issuer");
    assert_eq!(reason(&validator, &idp.token().sign()).await, RejectReason::UnknownIssuer);

    // A document naming another issuer is still refused: no keys, 503.
    let idp = TestIssuer::start().await.unwrap();
    idp.set_discovery_issuer(Some(&format!("{}/other", idp.issuer())));
    let validator = Validator::builder().issuer(idp.discovery_issuer()).build().unwrap();
    assert_eq!(validator.validate(&idp.token().sign()).await.unwrap_err().status(), 503);
    assert_eq!(idp.jwks_fetches(), 0);
}

#[tokio::test]
async fn item11_before_discovery_succeeds_tokens_get_503() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_outage(Some(auth_core::testkit::Outage::Refuse)).await.unwrap();
    let slashed = format!("{}/", idp.issuer());
    let validator =
        Validator::builder().issuer(Issuer::discovery(&slashed).audience(DEFAULT_AUDIENCE)).build().unwrap();
    for iss in [idp.issuer().to_owned(), slashed.clone()] {
        let err = validator.validate(&idp.token().claim("iss", iss.clone()).sign()).await.unwrap_err();
        assert!(matches!(err, AuthError::KeysUnavailable { .. }), "{iss}: {err:?}");
    }
}

#[tokio::test]
async fn item11_an_explicit_jwks_url_uses_the_configured_issuer_exactly() {
    let idp = TestIssuer::start().await.unwrap();
    let slashed = format!("{}/", idp.issuer());
    let validator = Validator::builder()
        .issuer(Issuer::jwks_url(&slashed, idp.jwks_url()).audience(DEFAULT_AUDIENCE))
        .build()
        .unwrap();
    validator.validate(&idp.token().claim("iss", slashed.clone()).sign()).await.unwrap();
    assert_eq!(reason(&validator, &idp.token().sign()).await, RejectReason::UnknownIssuer);
    assert_eq!(idp.jwks_fetches(), 1);
}

#[test]
fn outside_a_tokio_runtime_a_fetch_fails_closed_instead_of_panicking() {
    use std::task::{Context, Poll, Waker};
    let validator = Validator::builder()
        .issuer(Issuer::jwks_url("https://issuer.example", "https://issuer.example/jwks").audience("api"))
        .build()
        .unwrap();
    let claims = json!({"iss": "https://issuer.example", "aud": "api", "exp": now() + 60}).to_string();
    let token = sign_raw(None, r#"{"alg":"RS256","kid":"k"}"#, &claims) + "AAAA";
    let mut future = std::pin::pin!(validator.validate(&token));
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Err(err)) => assert_eq!(err.status(), 503, "{err:?}"),
        other => panic!("expected a 503 at once, got {other:?}"),
    }
}

/// `AccessPolicy` looks a header's token up in the cache before scanning its alphabet: a
/// hit answers as a full check would, and every miss still gets the header syntax check.
#[tokio::test]
async fn policy_checks_the_header_syntax_on_every_miss() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let policy = auth_core::AccessPolicy::new(validator.clone()).require_scopes(["orders:read"]).unwrap();
    let token = idp.token().scope("orders:read").sign();
    let header = format!("Bearer {token}");
    for _ in 0..3 {
        let principal = check(&policy, [header.as_bytes()], None).await.unwrap().unwrap();
        assert!(principal.scopes().contains("orders:read"));
    }
    assert_eq!(validator.metrics().cache_hits, 2);
    // The cached token with one byte outside b64token, or with padding, is another string:
    // a miss, so the syntax check or the JWS check answers (401 malformed either way).
    for bad in [
        format!("Bearer {token}!"),
        format!("Bearer {}", token.replacen('.', ",", 1)),
        format!("Bearer {token}=="),
        format!("Bearer {token} x"),
    ] {
        let err = check(&policy, [bad.as_bytes()], None).await.unwrap_err();
        assert_eq!(err.reason(), RejectReason::Malformed, "{bad}");
    }
    let m = validator.metrics();
    assert_eq!(m.rejected(RejectReason::Malformed), 4, "each rejection is counted once");
    assert_eq!(m.cache_hits, 2);
    // Scopes are checked on hits too.
    let strict = auth_core::AccessPolicy::new(validator.clone()).require_scopes(["orders:write"]).unwrap();
    assert_eq!(check(&strict, [header.as_bytes()], None).await.unwrap_err().status(), 403);
    assert_eq!(validator.metrics().cache_hits, 3);
}

/// `check_cached` answers only what needs no verification, and answers it as `check` would.
#[tokio::test]
async fn policy_check_cached_answers_without_io_or_defers() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let policy = auth_core::AccessPolicy::new(validator.clone()).require_scopes(["orders:read"]).unwrap();
    let optional = auth_core::AccessPolicy::new(validator.clone()).optional();
    let none: [&[u8]; 0] = [];
    assert_eq!(check_cached(&policy, none, None).unwrap().unwrap_err(), AuthError::MissingToken);
    assert!(check_cached(&optional, none, None).unwrap().unwrap().is_none());
    assert_eq!(
        check_cached(&policy, [b"Basic abc".as_slice()], None).unwrap().unwrap_err(),
        AuthError::UnsupportedScheme
    );
    assert_eq!(
        check_cached(&optional, [b"Basic abc".as_slice()], None).unwrap().unwrap_err(),
        AuthError::UnsupportedScheme
    );

    let token = idp.token().scope("orders:read").sign();
    let header = format!("Bearer {token}");
    assert!(check_cached(&policy, [header.as_bytes()], None).is_none(), "not verified yet: defer to check");
    assert_eq!(idp.jwks_fetches(), 0, "check_cached never fetches");
    check(&policy, [header.as_bytes()], None).await.unwrap().unwrap();
    let principal = check_cached(&policy, [header.as_bytes()], None).unwrap().unwrap().unwrap();
    assert!(principal.scopes().contains("orders:read"));

    let write = auth_core::AccessPolicy::new(validator.clone()).require_scopes(["orders:write"]).unwrap();
    assert_eq!(check_cached(&write, [header.as_bytes()], None).unwrap().unwrap_err().status(), 403);
    let bad = format!("Bearer {token}!");
    // Not cached, and refused by its syntax: decided in the synchronous step.
    assert_eq!(check_cached(&policy, [bad.as_bytes()], None).unwrap().unwrap_err().reason(), RejectReason::Malformed);
    assert_eq!(check(&policy, [bad.as_bytes()], None).await.unwrap_err().reason(), RejectReason::Malformed);
}

/// RFC 6750 §3.1: a malformed token is 401 `invalid_token`; no credentials, or another
/// scheme, is 401 with a bare challenge; 400 `invalid_request` only for more than one token.
#[tokio::test]
async fn item07_rfc6750_answers() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let token = idp.token().sign();
    let (h, rest) = token.split_once('.').unwrap();
    let required = auth_core::AccessPolicy::new(validator.clone());
    let optional = auth_core::AccessPolicy::new(validator.clone()).optional();
    let query = auth_core::AccessPolicy::new(validator.clone()).allow_query_token();
    const BARE: &str = "bare";
    const INVALID_TOKEN: &str = "invalid_token";
    const INVALID_REQUEST: &str = "invalid_request";
    let one = |v: String| vec![v];
    // (case, Authorization values, query string, status, challenge error code or BARE)
    type Case<'a> = (&'a str, Vec<String>, Option<String>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        ("Basic credentials", one("Basic dXNlcjpwYXNz".into()), None, 401, BARE),
        ("Token scheme", one(format!("Token {token}")), None, 401, BARE),
        ("a raw JWT without a scheme", one(token.clone()), None, 401, BARE),
        ("an empty Authorization field", one(String::new()), None, 401, BARE),
        ("Bearer without a token", one("Bearer".into()), None, 401, INVALID_TOKEN),
        ("Bearer and a space", one("Bearer ".into()), None, 401, INVALID_TOKEN),
        ("a byte outside base64url", one(format!("Bearer {token}!")), None, 401, INVALID_TOKEN),
        ("a space inside the token", one(format!("Bearer {h}. {rest}")), None, 401, INVALID_TOKEN),
        ("a tab inside the token", one(format!("Bearer {h}.\t{rest}")), None, 401, INVALID_TOKEN),
        ("padding", one(format!("Bearer {h}=.{rest}")), None, 401, INVALID_TOKEN),
        ("two segments", one(format!("Bearer {h}.{h}")), None, 401, INVALID_TOKEN),
        ("two tokens separated by a space", one(format!("Bearer {token} {token}")), None, 401, INVALID_TOKEN),
        ("a tab after the scheme", one(format!("Bearer\t{token}")), None, 401, INVALID_TOKEN),
        ("a comma inside the token", one(format!("Bearer {h},{rest}")), None, 401, INVALID_TOKEN),
        (
            "two Authorization fields",
            vec![format!("Bearer {token}"), format!("Bearer {token}")],
            None,
            400,
            INVALID_REQUEST,
        ),
        ("two fields merged by a proxy", one(format!("Bearer {token}, Bearer {token}")), None, 400, INVALID_REQUEST),
        (
            "a header and a query token",
            one(format!("Bearer {token}")),
            Some(format!("access_token={token}")),
            400,
            INVALID_REQUEST,
        ),
        (
            "two access_token parameters",
            vec![],
            Some(format!("access_token={token}&access_token={token}")),
            400,
            INVALID_REQUEST,
        ),
    ];
    for policy in [&required, &optional, &query] {
        for (name, headers, query, status, code) in &cases {
            let err = check(policy, headers.iter().map(|v| v.as_bytes()), query.as_deref()).await.expect_err(name);
            let challenge = Rejection::from_error(&err, None).www_authenticate().to_owned();
            assert_eq!(err.status(), *status, "{name}: {err:?}");
            if *code == BARE {
                assert_eq!(challenge, "Bearer", "{name}");
            } else {
                assert!(challenge.starts_with(&format!(r#"Bearer error="{code}""#)), "{name}: {challenge}");
            }
        }
    }
    // No credentials at all: 401 bare, or anonymous under optional authentication.
    let none: [&[u8]; 0] = [];
    let err = check(&required, none, None).await.unwrap_err();
    assert_eq!((err.status(), policy_challenge(&required, &err)), (401, "Bearer".to_owned()));
    assert!(check(&optional, none, None).await.unwrap().is_none());
    // A query token is malformed (401) only where query tokens are accepted.
    let bad_query = Some("access_token=a%20b");
    assert_eq!(check(&query, none, bad_query).await.unwrap_err().status(), 401);
    assert_eq!(check(&required, none, bad_query).await.unwrap_err(), AuthError::MissingToken);
    assert_eq!(
        check(&query, none, Some(&format!("access_token={token}")[..])).await.unwrap().unwrap().key_id(),
        Some("rs256-1")
    );
}

fn policy_challenge(_policy: &auth_core::AccessPolicy, err: &AuthError) -> String {
    Rejection::from_error(err, None).www_authenticate().to_owned()
}

/// A request to `/orders` with these `Authorization` values and query, as an adapter
/// builds it.
fn request_headers<'a>(authorization: impl IntoIterator<Item = &'a [u8]>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for value in authorization {
        headers.append("authorization", http::HeaderValue::from_bytes(value).expect("a header value"));
    }
    headers
}

fn target(query: Option<&str>) -> String {
    query.map_or("/orders".to_owned(), |q| format!("/orders?{q}"))
}

/// Drives a policy the way the adapters do: the synchronous step, then the verification.
async fn check<'a>(
    policy: &auth_core::AccessPolicy,
    authorization: impl IntoIterator<Item = &'a [u8]>,
    query: Option<&str>,
) -> Result<Option<Principal>, AuthError> {
    let headers = request_headers(authorization);
    let target = target(query);
    let decision = policy.decide(&RequestContext::new("GET", &target, &headers));
    let outcome = match decision {
        Decision::Admit(admission) => Ok(admission),
        Decision::Refuse(refusal) => Err(refusal),
        Decision::Verify(verification) => verification.run().await,
    };
    outcome.map(|admission| admission.principal).map_err(|refusal| refusal.error)
}

/// The synchronous step alone: `None` when the token needs verifying.
fn check_cached<'a>(
    policy: &auth_core::AccessPolicy,
    authorization: impl IntoIterator<Item = &'a [u8]>,
    query: Option<&str>,
) -> Option<Result<Option<Principal>, AuthError>> {
    let headers = request_headers(authorization);
    let target = target(query);
    match policy.decide(&RequestContext::new("GET", &target, &headers)) {
        Decision::Admit(admission) => Some(Ok(admission.principal)),
        Decision::Refuse(refusal) => Some(Err(refusal.error)),
        Decision::Verify(_) => None,
    }
}

/// Until sender constraints are checked, a bound token is refused: accepting it as a
/// plain bearer token would defeat its binding (RFC 8705 §3, RFC 9449 §7.2).
#[tokio::test]
async fn item08_sender_constrained_tokens_are_refused() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    // DPoP (`jkt`) and confirmations of unknown kinds: never accepted as bearer tokens.
    for cnf in [json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}), json!({}), json!({"x5t": "abc"})] {
        let token = idp.token().claim("cnf", cnf.clone()).sign();
        let err = validator.validate(&token).await.unwrap_err();
        assert_eq!((err.status(), err.error_code()), (401, Some("invalid_token")), "{cnf}");
        assert_eq!(err.reason(), RejectReason::SenderConstrained, "{cnf}");
        assert_eq!(err.to_string(), "sender-constrained tokens of this kind are not accepted");
    }
    // A certificate-bound token without its certificate (tests/binding.rs has the rest).
    let bound = idp.token().claim("cnf", json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})).sign();
    let err = validator.validate(&bound).await.unwrap_err();
    assert_eq!((err.status(), err.error_code()), (401, Some("invalid_token")));
    assert_eq!(err.reason(), RejectReason::CertificateBinding);
    assert!(!err.to_string().contains("bwcK0"), "the thumbprint is never named");
    validator.validate(&idp.token().sign()).await.unwrap();
}

/// Real tokens reach 8–10 KB (Entra ID, Keycloak with many groups): accepted up to 16 KiB.
#[tokio::test]
async fn item09_tokens_up_to_16_kib_are_accepted_by_default() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let groups: Vec<String> = (0..200).map(|i| format!("group-{i:04}-{}", "x".repeat(20))).collect();
    let large = idp.token().claim("groups", groups).sign();
    assert!(large.len() > 8_500 && large.len() < 16 * 1024, "{}", large.len());
    validator.validate(&large).await.expect("an 8.5 KB token is accepted");
    let too_large = "a".repeat(16 * 1024 + 1);
    assert_eq!(reason(&validator, &too_large).await, RejectReason::TooLarge);
}

/// `scope` as a JSON array of strings (some providers emit it; Spring accepts both).
#[tokio::test]
async fn item10_scope_may_be_a_json_array() {
    let (idp, validator) = setup(|idp| idp.jwks_issuer()).await;
    let token = idp.token().claim("scope", json!(["orders:read", "orders:write"])).sign();
    let principal = validator.validate(&token).await.unwrap();
    assert_eq!(principal.scopes().iter().collect::<Vec<_>>(), ["orders:read", "orders:write"]);
    for bad in [json!(5), json!({"a": 1}), json!([1]), json!(null), json!(["a", 2])] {
        let token = idp.token().claim("scope", bad.clone()).sign();
        assert_eq!(reason(&validator, &token).await, RejectReason::InvalidClaim, "{bad}");
    }
}
