//! Property tests over the three entry points that take hostile input: token validation
//! (`Validator::validate` with a static key set), JWKS parsing (`Issuer::static_jwks` +
//! `build`) and credential extraction (`bearer_token`). The fuzz targets in `fuzz/`
//! check the same invariants with coverage guidance; these run in the normal suite.
//!
//! Invariants: no panic; `validate` with static keys completes without waiting on
//! anything and only ever answers 401; every error's status is 400/401/403/503; the
//! `WWW-Authenticate` challenge is well-formed (comma-separated `name="value"` params,
//! no `"`/`\`/control characters inside values) and never echoes the request; a token
//! is accepted exactly when every header and claim is acceptable and it was signed by
//! the key its header names (a model of the policy, below); any change to a signed
//! token's bytes makes it rejected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::pin::pin;
use std::sync::LazyLock;
use std::task::{Context, Poll, Waker};

use auth_core::testkit::TestKey;
use auth_core::{
    Algorithm, AuthError, ConfigError, CredentialSources, Issuer, Principal, RequestError, TokenError, Validator,
    bearer_token,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "api";
/// Latest NumericDate the library accepts (9999-12-31T23:59:59Z).
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

struct Fixture {
    /// `rs` (RS256), `es` (ES256), `ed` (EdDSA).
    keys: Vec<TestKey>,
    validator: Validator,
}

/// One HTTP client for every validator built here: the default one reads the system's CA
/// certificates at each `build()`, which would dominate these tests' runtime. Static key
/// sets never use it.
static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(|| {
    // Loopback http only, so no trust anchors; TLS on this build's backend (reqwest here has
    // no provider of its own, as in the library).
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc-rs"))]
    let provider = rustls::crypto::ring::default_provider();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    reqwest::Client::builder().tls_backend_preconfigured(tls).build().unwrap()
});

fn builder() -> auth_core::ValidatorBuilder {
    Validator::builder().http_client(CLIENT.clone())
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let keys = vec![
        TestKey::generate(Algorithm::RS256, "rs"),
        TestKey::generate(Algorithm::ES256, "es"),
        TestKey::generate(Algorithm::EdDSA, "ed"),
    ];
    let validator = builder()
        .issuer(Issuer::static_jwks(ISSUER, jwks(keys.iter().map(TestKey::public_jwk))).audience(AUDIENCE))
        .build()
        .expect("fixture validator");
    Fixture { keys, validator }
});

/// `cases` per property, or `PROPTEST_CASES` when set (for a longer run by hand:
/// `PROPTEST_CASES=20000 cargo test -p auth-core --all-features --test properties --release`).
/// Failures are not persisted to files: a failing case prints its minimal input.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn jwks(keys: impl IntoIterator<Item = Value>) -> String {
    json!({ "keys": keys.into_iter().collect::<Vec<_>>() }).to_string()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Polls once: with a static key set, validation does no I/O and must be ready at once.
fn now_or_never<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("validation against a static key set did not complete at once"),
    }
}

fn validate(validator: &Validator, token: &str) -> Result<Principal, AuthError> {
    now_or_never(validator.validate(token))
}

fn sign(key: &TestKey, header: &[u8], claims: &[u8]) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(key.sign(input.as_bytes())))
}

/// A rejection by `validate` (static keys): 401 `invalid_token`, well-formed challenge.
fn assert_rejected(result: Result<Principal, AuthError>, token: &str) -> AuthError {
    match result {
        Ok(principal) => panic!("token accepted: {token}\nclaims: {:?}", principal.claims()),
        Err(err) => {
            assert_eq!(err.status(), 401, "validate with static keys answered {err:?}");
            assert!(matches!(err, AuthError::InvalidToken(_)), "{err:?}");
            check_error(&err, token);
            err
        }
    }
}

/// Status in the allowed set, challenges well-formed with any realm, and the request's
/// text (`secret`) never echoed.
fn check_error(err: &AuthError, secret: &str) {
    assert!(matches!(err.status(), 400 | 401 | 403 | 503), "status {} for {err:?}", err.status());
    for realm in [None, Some("api"), Some("a\"b\\c\r\nd\u{7f}é")] {
        check_challenge(&err.www_authenticate(realm));
    }
    // No fixed text of a challenge has 32 characters without a space, so a long
    // space-free secret can only appear there if it was copied from the request.
    if secret.len() >= 32 && !secret.contains(char::is_whitespace) {
        assert!(!err.www_authenticate(None).contains(secret), "challenge echoes the request: {err:?}");
        assert!(!err.json_body().contains(secret), "error body echoes the request: {err:?}");
    }
}

/// `Bearer`, then optionally ` name="value"` params separated by `, `; names are
/// `[a-z_]+`, values printable ASCII without `"` or `\`.
fn check_challenge(challenge: &str) {
    let mut rest = challenge.strip_prefix("Bearer").unwrap_or_else(|| panic!("{challenge:?}"));
    let mut first = true;
    while !rest.is_empty() {
        rest = rest.strip_prefix(if first { " " } else { ", " }).unwrap_or_else(|| panic!("separator: {challenge:?}"));
        first = false;
        let (name, after) = rest.split_once("=\"").unwrap_or_else(|| panic!("name: {challenge:?}"));
        assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{challenge:?}");
        let (value, after) = after.split_once('"').unwrap_or_else(|| panic!("unterminated: {challenge:?}"));
        assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\'), "value {value:?} in {challenge:?}");
        rest = after;
    }
}

// ---------------------------------------------------------------------------------
// Strategies: JSON members, each with whether the policy must accept it.

/// A header or claim member: `None` = absent; `bool` = acceptable.
type Member = (Option<Value>, bool);

fn absent(ok: bool) -> Just<Member> {
    Just((None, ok))
}

fn member(value: Value, ok: bool) -> Just<Member> {
    Just((Some(value), ok))
}

/// Arbitrary small JSON (strings, numbers, arrays, objects, nesting).
fn any_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A string-typed optional claim (`sub`, `jti`, `client_id`, `azp`, `scope`).
fn string_claim() -> impl Strategy<Value = Member> {
    prop_oneof![
        20 => absent(true),
        20 => "\\PC{0,16}".prop_map(|s| (Some(Value::from(s)), true)),
        1 => member(json!(7), false),
        1 => member(Value::Null, false),
        1 => member(json!(["a"]), false),
    ]
}

/// A NumericDate claim relative to now; `ok_if` says whether the instant passes.
fn date_claim(now: i64, required: bool, ok_if: fn(i64, i64) -> bool) -> impl Strategy<Value = Member> {
    let instant = prop_oneof![
        4 => Just(now),
        2 => Just(now - 30),
        2 => Just(now + 30),
        2 => Just(4_102_444_800_i64),
        1 => Just(now - 3600),
        1 => Just(now + 3600),
        1 => Just(0_i64),
        1 => Just(MAX_NUMERIC_DATE),
    ];
    prop_oneof![
        60 => instant.clone().prop_map(move |t| (Some(json!(t)), ok_if(t, now))),
        10 => instant.prop_map(move |t| (Some(json!(t as f64 + 0.5)), ok_if(t, now) && t < MAX_NUMERIC_DATE)),
        (if required { 2 } else { 40 }) => absent(!required),
        1 => member(Value::Null, false),
        1 => member(json!("4102444800"), false),
        1 => member(json!(-1), false),
        1 => member(json!(MAX_NUMERIC_DATE + 1), false),
        1 => member(json!(u64::MAX), false),
        1 => member(json!(1e300), false),
        1 => member(json!(true), false),
    ]
}

/// One fixture key index and a header for it.
fn header(key: usize) -> BoxedStrategy<(Map<String, Value>, bool)> {
    let (alg, kid) = {
        let k = &FIXTURE.keys[key];
        (k.algorithm().as_str(), k.kid())
    };
    let alg = prop_oneof![
        40 => member(json!(alg), true),
        1 => select(Algorithm::ALL.to_vec()).prop_map(move |a| (Some(json!(a.as_str())), a.as_str() == alg)),
        1 => select(vec!["none", "None", "HS256", "rs256", "RS256 ", "ES512", ""]).prop_map(|a| (Some(json!(a)), false)),
        1 => member(json!(1), false),
        1 => member(Value::Null, false),
        1 => absent(false),
    ];
    let kid = prop_oneof![
        30 => member(json!(kid), true),
        // Without kid: the fixture has exactly one key per algorithm, so it is found.
        15 => absent(true),
        1 => select(vec!["rs", "es", "ed"]).prop_map(move |k| (Some(json!(k)), k == kid)),
        1 => "\\PC{0,8}".prop_map(move |k| (Some(json!(k)), k == kid)),
        1 => member(json!(3), false),
        1 => member(Value::Null, false),
    ];
    let typ = prop_oneof![
        20 => absent(true),
        20 => select(vec!["at+jwt", "JWT", "application/at+jwt", "AT+JWT", "application/JWT", "jwt"])
            .prop_map(|t| (Some(json!(t)), true)),
        2 => select(vec!["dpop+jwt", "logout+jwt", "", "at+jwt ", "application/", "JOSE"])
            .prop_map(|t| (Some(json!(t)), false)),
        1 => member(json!(["JWT"]), false),
        1 => member(Value::Null, false),
    ];
    let crit = prop_oneof![40 => absent(true), 1 => member(json!([]), false), 1 => member(json!(["exp"]), false)];
    let b64 = prop_oneof![40 => absent(true), 4 => member(json!(true), true), 1 => member(json!(false), false)];
    // Members the library must ignore (a token never chooses its own key).
    let extra = prop::collection::btree_map(
        prop_oneof![select(vec!["jku", "jwk", "x5u", "x5c", "cty", "zip", "enc"]).prop_map(String::from), "[a-z]{1,3}"],
        any_json(),
        0..3,
    );
    (alg.boxed(), kid.boxed(), typ.boxed(), crit.boxed(), b64.boxed(), extra.boxed())
        .prop_map(|(alg, kid, typ, crit, b64, extra)| {
            assemble(extra, [("alg", alg), ("kid", kid), ("typ", typ), ("crit", crit), ("b64", b64)])
        })
        .boxed()
}

/// A JSON object of `extra` members overlaid with the `named` ones (absent when `None`),
/// and whether every named member is one the model accepts.
fn assemble<'a>(
    extra: std::collections::BTreeMap<String, Value>,
    named: impl IntoIterator<Item = (&'a str, (Option<Value>, bool))>,
) -> (Map<String, Value>, bool) {
    let mut map: Map<String, Value> = extra.into_iter().collect();
    let mut ok = true;
    for (name, (value, good)) in named {
        map.remove(name);
        if let Some(value) = value {
            map.insert(name.into(), value);
        }
        ok &= good;
    }
    (map, ok)
}

fn claims() -> BoxedStrategy<(Map<String, Value>, bool)> {
    let now = now();
    let iss = prop_oneof![
        40 => member(json!(ISSUER), true),
        1 => select(vec!["https://issuer.example/", "https://ISSUER.example", "", "https://evil.example"])
            .prop_map(|s| (Some(json!(s)), false)),
        1 => member(json!([ISSUER]), false),
        1 => member(Value::Null, false),
        1 => absent(false),
    ];
    let aud = prop_oneof![
        30 => member(json!(AUDIENCE), true),
        10 => member(json!(["other", AUDIENCE]), true),
        1 => member(json!(["other"]), false),
        1 => member(json!([]), false),
        1 => member(json!("API"), false),
        1 => member(json!([AUDIENCE, 1]), false),
        1 => member(json!(1), false),
        1 => absent(false),
    ];
    // Leeway 60 s: exp must be > now - 60, nbf and iat <= now + 60.
    let exp = date_claim(now, true, |t, now| t > now - 60);
    let nbf = date_claim(now, false, |t, now| t <= now + 60);
    let iat = date_claim(now, false, |t, now| t <= now + 60);
    // `scope` and `scp` alike: a space-delimited string or an array of strings.
    let scopes = || {
        prop_oneof![
            30 => absent(true),
            5 => member(json!("orders:read orders:write"), true),
            5 => member(json!(["orders:read", "a b"]), true),
            1 => member(json!(["a", 1]), false),
            1 => member(json!(1), false),
            1 => member(Value::Null, false),
        ]
    };
    let scp = (scopes(), scopes());
    let strings = prop::collection::vec(string_claim(), 4);
    let extra = prop::collection::btree_map("[a-z]{1,3}", any_json(), 0..3);
    (iss.boxed(), aud.boxed(), exp.boxed(), nbf.boxed(), iat.boxed(), scp.boxed(), strings.boxed(), extra.boxed())
        .prop_map(|(iss, aud, exp, nbf, iat, (scope, scp), strings, extra)| {
            let named =
                [("iss", iss), ("aud", aud), ("exp", exp), ("nbf", nbf), ("iat", iat), ("scope", scope), ("scp", scp)];
            let strings = ["sub", "jti", "client_id", "azp"].into_iter().zip(strings);
            assemble(extra, named.into_iter().chain(strings))
        })
        .boxed()
}

/// A key index, a header for it, claims, and whether the model accepts the token.
fn signed_token() -> impl Strategy<Value = (usize, String, String, bool)> {
    (0..3usize).prop_flat_map(|key| {
        (header(key), claims()).prop_map(move |((h, h_ok), (c, c_ok))| {
            (key, Value::Object(h).to_string(), Value::Object(c).to_string(), h_ok && c_ok)
        })
    })
}

/// A well-formed, acceptable token for a fixture key.
fn good_token(key: usize) -> String {
    let k = &FIXTURE.keys[key];
    let header = json!({"alg": k.algorithm().as_str(), "kid": k.kid(), "typ": "at+jwt"}).to_string();
    let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "sub": "svc", "scope": "a b"}).to_string();
    sign(k, header.as_bytes(), claims.as_bytes())
}

/// base64 of arbitrary bytes in one of several alphabets/paddings, or raw characters.
fn segment() -> impl Strategy<Value = String> {
    let bytes = prop::collection::vec(any::<u8>(), 0..48);
    prop_oneof![
        bytes.clone().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        bytes.clone().prop_map(|b| URL_SAFE.encode(b)),
        bytes.clone().prop_map(|b| STANDARD.encode(b)),
        any_json().prop_map(|v| URL_SAFE_NO_PAD.encode(v.to_string())),
        Just(URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"es"}"#)),
        "[A-Za-z0-9_=+/ .-]{0,16}",
        Just(String::new()),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// Any string at all is rejected with a well-formed 401.
    #[test]
    fn arbitrary_strings_are_rejected(token in prop_oneof!["\\PC{0,200}", ".{0,64}", "[A-Za-z0-9_.-]{0,300}"]) {
        assert_rejected(validate(&FIXTURE.validator, &token), &token);
    }

    /// Random segment counts, dots and base64 alphabets/padding are rejected (unsigned).
    #[test]
    fn random_shapes_are_rejected(segments in prop::collection::vec(segment(), 0..6)) {
        let token = segments.join(".");
        assert_rejected(validate(&FIXTURE.validator, &token), &token);
    }

    /// Any JWKS document either builds or fails with `InvalidJwks`; never another error,
    /// never a panic; what builds rejects tokens from keys it does not hold.
    #[test]
    fn arbitrary_jwks_documents(doc in prop_oneof![
        "\\PC{0,120}",
        any_json().prop_map(|v| v.to_string()),
        prop::collection::vec(any_json(), 0..4).prop_map(jwks),
    ]) {
        match builder().issuer(Issuer::static_jwks(ISSUER, doc).audience(AUDIENCE)).build() {
            Ok(validator) => {
                let token = good_token(1);
                assert_rejected(validate(&validator, &token), &token);
            }
            Err(ConfigError::InvalidJwks { .. }) => {}
            Err(other) => panic!("unexpected config error {other:?}"),
        }
    }

    /// Arbitrary Authorization values and query strings: the invariants of extraction.
    #[test]
    fn arbitrary_credentials(
        headers in prop::collection::vec(prop_oneof![
            prop::collection::vec(any::<u8>(), 0..48),
            "(?i:bearer) {0,3}[A-Za-z0-9._~+/=-]{0,24} {0,2}".prop_map(String::into_bytes),
            "\\PC{0,32}".prop_map(String::into_bytes),
        ], 0..3),
        query in proptest::option::of(prop_oneof!["\\PC{0,32}", "([a-z_]{1,12}(=[A-Za-z0-9.%=-]{0,8})?&?){0,3}"]),
        allow_query in any::<bool>(),
    ) {
        let sources = CredentialSources { query: allow_query };
        let query_names_token = query
            .as_deref()
            .is_some_and(|q| q.split('&').any(|p| p.split_once('=').map_or(p, |(name, _)| name) == "access_token"));
        match bearer_token(headers.iter().map(Vec::as_slice), query.as_deref(), sources) {
            Ok(token) => {
                let body = token.trim_end_matches('=');
                prop_assert!(!body.is_empty());
                prop_assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)), "{token:?}");
                match headers.as_slice() {
                    [] => prop_assert!(allow_query && query_names_token),
                    [value] => {
                        let value = std::str::from_utf8(value).unwrap();
                        let (scheme, rest) = value.split_once(' ').unwrap();
                        prop_assert!(scheme.eq_ignore_ascii_case("bearer"));
                        prop_assert_eq!(rest.trim_matches(' '), token);
                        prop_assert!(!query_names_token);
                    }
                    _ => prop_assert!(false, "token taken from several headers"),
                }
            }
            Err(err) => {
                prop_assert!(matches!(err.status(), 400 | 401), "{err:?}");
                if headers.len() > 1 {
                    prop_assert_eq!(&err, &AuthError::from(RequestError::MultipleAuthorizationHeaders));
                } else if headers.len() == 1 && query_names_token {
                    prop_assert_eq!(&err, &AuthError::from(RequestError::MultipleTokens));
                } else if headers.is_empty() && !(allow_query && query_names_token) {
                    prop_assert_eq!(&err, &AuthError::MissingToken);
                }
                for value in &headers {
                    check_error(&err, &String::from_utf8_lossy(value));
                }
                check_error(&err, query.as_deref().unwrap_or_default());
            }
        }
    }

    /// One Authorization header built from parts, against the grammar: optional white
    /// space around the value is dropped; a scheme other than `Bearer` (any case) is no
    /// bearer credential (bare 401); after `Bearer`, one or more spaces and a b64token
    /// are accepted; anything else is a malformed token (401), or two merged Bearer
    /// credentials (400).
    #[test]
    fn authorization_header_model(
        scheme in select(vec!["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Bearer:", "Token", "", "Bearer,"]),
        sep in select(vec!["", " ", "   ", "\t", " \t"]),
        token in prop_oneof!["[A-Za-z0-9._~+/-]{1,40}={0,2}", "={1,2}", "[^ ]{0,24}", "[a-z]{1,8}, ?[Bb]earer [a-z]{1,8}"],
        trailing in select(vec!["", " ", "  ", "\t"]),
    ) {
        let value = format!("{scheme}{sep}{token}{trailing}");
        let b64token = |t: &str| {
            let body = t.trim_end_matches('=');
            !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        };
        let trimmed = value.trim_matches([' ', '\t']);
        let (found_scheme, rest) = trimmed.split_at(trimmed.find([' ', '\t']).unwrap_or(trimmed.len()));
        let candidate = rest.strip_prefix(' ').map(|t| t.trim_start_matches(' '));
        let merged = trimmed
            .split(',')
            .filter(|e| e.trim_matches([' ', '\t']).get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")))
            .count()
            >= 2;
        let expected: Result<&str, &str> = if !found_scheme.eq_ignore_ascii_case("bearer") {
            Err("no bearer")
        } else {
            match candidate {
                Some(t) if b64token(t) => Ok(t),
                Some(t) if !t.is_empty() && merged => Err("several"),
                _ => Err("malformed"),
            }
        };
        match (bearer_token([value.as_bytes()], None, CredentialSources::default()), expected) {
            (Ok(got), Ok(want)) => prop_assert_eq!(got, want),
            (Err(AuthError::UnsupportedScheme), Err("no bearer")) => {}
            (Err(AuthError::InvalidToken(TokenError::Malformed(_))), Err("malformed")) => {}
            (Err(AuthError::InvalidRequest(RequestError::MultipleTokens)), Err("several")) => {}
            (got, want) => prop_assert!(false, "{value:?}: got {got:?}, want {want:?}"),
        }
        if let Err(err) = bearer_token([value.as_bytes()], None, CredentialSources::default()) {
            check_error(&err, &value);
        }
    }
}

proptest! {
    #![proptest_config(config(384))]

    /// Random JSON headers and claims, really signed: accepted exactly when the model
    /// says every member is acceptable; what is accepted carries what was signed.
    #[test]
    fn signed_tokens_follow_the_policy_model((key, header, claims, expect_ok) in signed_token()) {
        let k = &FIXTURE.keys[key];
        let token = sign(k, header.as_bytes(), claims.as_bytes());
        match validate(&FIXTURE.validator, &token) {
            Ok(principal) => {
                prop_assert!(expect_ok, "accepted, the model rejects:\n  header {header}\n  claims {claims}");
                prop_assert_eq!(principal.algorithm(), k.algorithm());
                prop_assert!(principal.key_id().is_none_or(|kid| kid == k.kid()));
                prop_assert_eq!(principal.issuer(), ISSUER);
                prop_assert!(principal.claims().audience.iter().any(|a| a == AUDIENCE));
                prop_assert_eq!(principal.claims_json(), claims.as_str());
                // Again: from the cache, the same.
                let again = validate(&FIXTURE.validator, &token).unwrap();
                prop_assert_eq!(again.claims(), principal.claims());
            }
            Err(err) => {
                prop_assert!(!expect_ok, "rejected ({err:?}), the model accepts:\n  header {header}\n  claims {claims}");
                assert_rejected(Err(err), &token);
            }
        }
    }

    /// Any change to a signed, valid token's bytes gets it rejected.
    #[test]
    fn mutated_signed_tokens_are_rejected(
        key in 0..3usize,
        edits in prop::collection::vec((0..3u8, any::<prop::sample::Index>(), select(
            b"AQgw_-.=+/ \0\xc3eyJ".to_vec()
        )), 1..4),
    ) {
        let token = good_token(key);
        assert!(validate(&FIXTURE.validator, &token).is_ok(), "fixture token rejected");
        let mut bytes = token.clone().into_bytes();
        for (op, at, byte) in edits {
            match op {
                0 if !bytes.is_empty() => {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                1 => bytes.insert(at.index(bytes.len() + 1), byte),
                _ if !bytes.is_empty() => {
                    bytes.remove(at.index(bytes.len()));
                }
                _ => {}
            }
        }
        let mutated = String::from_utf8_lossy(&bytes).into_owned();
        prop_assume!(mutated != token);
        assert_rejected(validate(&FIXTURE.validator, &mutated), &mutated);
    }
}

/// How the real key's JWK is altered before it is published among junk keys.
#[derive(Debug, Clone, Copy)]
enum JwkEdit {
    None,
    DropAlg,
    DropUse,
    PadParams,
    KeyOpsVerify,
    UseEnc,
    WithPrivate,
    KeyOpsEncrypt,
    WrongAlg,
    DropKty,
}

impl JwkEdit {
    /// Whether the key must still be usable after the edit.
    fn usable(self) -> bool {
        matches!(self, JwkEdit::None | JwkEdit::DropAlg | JwkEdit::DropUse | JwkEdit::PadParams | JwkEdit::KeyOpsVerify)
    }

    fn apply(self, mut jwk: Value) -> Value {
        let obj = jwk.as_object_mut().unwrap();
        match self {
            JwkEdit::None => {}
            JwkEdit::DropAlg => drop(obj.remove("alg")),
            JwkEdit::DropUse => drop(obj.remove("use")),
            JwkEdit::PadParams => {
                for name in ["n", "e", "x", "y"] {
                    if let Some(Value::String(s)) = obj.get_mut(name) {
                        *s = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(&*s).unwrap());
                    }
                }
            }
            JwkEdit::KeyOpsVerify => drop(obj.insert("key_ops".into(), json!(["verify", "sign"]))),
            JwkEdit::UseEnc => drop(obj.insert("use".into(), json!("enc"))),
            JwkEdit::WithPrivate => drop(obj.insert("d".into(), json!("AQAB"))),
            JwkEdit::KeyOpsEncrypt => drop(obj.insert("key_ops".into(), json!(["encrypt"]))),
            JwkEdit::WrongAlg => drop(obj.insert("alg".into(), json!("RSA-OAEP"))),
            JwkEdit::DropKty => drop(obj.remove("kty")),
        }
        jwk
    }
}

/// A JWK-shaped junk object: plausible members with random or subtly wrong values,
/// under kids that none of the fixture tokens use.
fn junk_jwk() -> impl Strategy<Value = Value> {
    let b64 = |lens: Vec<usize>| {
        select(lens)
            .prop_flat_map(|n| prop::collection::vec(any::<u8>(), n))
            .prop_map(|b| json!(URL_SAFE_NO_PAD.encode(b)))
    };
    let fields = (
        select(vec!["RSA", "EC", "OKP", "oct", "rsa", ""]),
        proptest::option::of(select(vec!["P-256", "P-384", "P-521", "Ed25519", "Ed448", "secp256k1"])),
        proptest::option::of(b64(vec![0, 1, 31, 32, 33, 48, 64, 128, 256, 257, 513])),
        proptest::option::of(b64(vec![0, 1, 3, 9])),
        proptest::option::of(b64(vec![0, 31, 32, 48, 66])),
        proptest::option::of(b64(vec![0, 32, 48])),
        proptest::option::of(select(vec!["RS256", "ES256", "EdDSA", "PS512", "HS256", "RSA-OAEP", "none"])),
        proptest::option::of(select(vec!["sig", "enc", ""])),
        proptest::option::of(select(vec!["j0", "j1", "j2"])),
        prop::collection::btree_map("[a-z]{1,3}", any_json(), 0..2),
    );
    fields.prop_map(|(kty, crv, n, e, x, y, alg, use_, kid, extra)| {
        let mut map: Map<String, Value> = extra.into_iter().collect();
        map.insert("kty".into(), json!(kty));
        let optional = [
            ("crv", crv.map(Value::from)),
            ("n", n),
            ("e", e),
            ("x", x),
            ("y", y),
            ("alg", alg.map(Value::from)),
            ("use", use_.map(Value::from)),
            ("kid", kid.map(Value::from)),
        ];
        for (name, value) in optional {
            match value {
                Some(value) => drop(map.insert(name.into(), value)),
                None => drop(map.remove(name)),
            }
        }
        Value::Object(map)
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// One bad key never poisons the set: the real key among junk still verifies its
    /// tokens (unless the edit made it unusable), junk kids never verify them, and a
    /// document with no usable key fails at build time with `InvalidJwks`.
    #[test]
    fn jwks_is_parsed_leniently(
        key in 0..3usize,
        edit in select(vec![
            JwkEdit::None, JwkEdit::DropAlg, JwkEdit::DropUse, JwkEdit::PadParams, JwkEdit::KeyOpsVerify,
            JwkEdit::UseEnc, JwkEdit::WithPrivate, JwkEdit::KeyOpsEncrypt, JwkEdit::WrongAlg, JwkEdit::DropKty,
        ]),
        before in prop::collection::vec(junk_jwk(), 0..3),
        after in prop::collection::vec(junk_jwk(), 0..3),
        junk_kid in select(vec!["j0", "j1", "j2"]),
    ) {
        let k = &FIXTURE.keys[key];
        let real = edit.apply(k.public_jwk());
        let doc = jwks(before.into_iter().chain([real]).chain(after));
        let token = good_token(key);
        match builder().issuer(Issuer::static_jwks(ISSUER, doc.clone()).audience(AUDIENCE)).build() {
            Ok(validator) => {
                let result = validate(&validator, &token);
                if edit.usable() {
                    prop_assert!(result.is_ok(), "{edit:?}: {result:?}\n{doc}");
                } else {
                    assert_rejected(result, &token);
                }
                // The same claims under a junk kid: never verified by a junk key.
                let header = json!({"alg": k.algorithm().as_str(), "kid": junk_kid}).to_string();
                let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600}).to_string();
                let junk_token = sign(k, header.as_bytes(), claims.as_bytes());
                assert_rejected(validate(&validator, &junk_token), &junk_token);
            }
            Err(ConfigError::InvalidJwks { .. }) => prop_assert!(!edit.usable(), "{edit:?} refused:\n{doc}"),
            Err(other) => prop_assert!(false, "unexpected config error {other:?}"),
        }
    }
}

#[test]
fn tokens_around_the_size_limit() {
    // 16 KiB default: one byte over is TooLarge before any decoding; at the limit the
    // shape is checked (and a dot-flood is refused at the third dot).
    for len in [16_383, 16_384, 16_385, 100_000] {
        for fill in ['A', '.'] {
            let token: String = std::iter::repeat_n(fill, len).collect();
            assert_rejected(validate(&FIXTURE.validator, &token), &token);
        }
    }
}

/// Regression check for a fuzzing finding: scopes were de-duplicated with a linear search
/// per scope before the signature check, so an unauthenticated ~8 KiB token with ~2,000
/// distinct short scopes cost tens of times more to reject than an ordinary one. Fixed
/// (one hash-set pass). Ignored in the normal run because timing assertions are noisy on
/// a shared machine; run with `--ignored`.
#[test]
#[ignore = "timing check; run with --ignored"]
fn scope_heavy_token_costs_like_any_other() {
    let chars: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    let distinct: Vec<String> =
        chars.iter().flat_map(|a| chars.iter().map(move |b| format!("{a}{b}"))).take(1980).collect();
    let token = |scope: &str| {
        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "scope": scope}).to_string();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"es"}"#);
        format!("{header}.{}.{}", URL_SAFE_NO_PAD.encode(claims), URL_SAFE_NO_PAD.encode([7u8; 64]))
    };
    let heavy = token(&distinct.join(" "));
    let plain = token(&vec!["ab"; distinct.len()].join(" "));
    assert!(heavy.len() <= 8192 && plain.len() == heavy.len());
    let time = |token: &str| {
        let start = std::time::Instant::now();
        for _ in 0..5 {
            assert_rejected(validate(&FIXTURE.validator, token), token);
        }
        start.elapsed()
    };
    // Build the fixture (RSA key generation) before timing anything.
    time(&plain);
    let (heavy, plain) = (time(&heavy), time(&plain));
    assert!(heavy < plain * 5, "scope-heavy token: {heavy:?}, same-size ordinary token: {plain:?}");
}
