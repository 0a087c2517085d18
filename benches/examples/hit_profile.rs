//! Runs the validation hot paths in a loop, for `valgrind --tool=callgrind` (instruction
//! counts are repeatable on a noisy machine, unlike times):
//! `cargo build --release -p benches --example hit_profile && valgrind --tool=callgrind target/release/examples/hit_profile hit`
//!
//! Modes: `raw`, `jsonwebtoken`, `miss`, `hit` (one RS256 token, N times), `extract`
//! (`bearer_token` on its `Authorization: Bearer` header, N times), `decide` (a request's
//! synchronous step on a cache hit: `AccessPolicy::decide` with a scope rule), and
//! `decide-bound` (the same for a certificate-bound token with the connection's
//! certificate), `distinct-cache` / `distinct-nocache` (N distinct EdDSA tokens, each validated once,
//! through a 500-entry cache or none: the difference is the cost of inserting and
//! evicting when every token is new), `attach` (the calling side: the cached token's
//! header into a request's headers, N times) and `insert` (its floor: a pre-built header
//! value of the same length inserted N times).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_core::testkit::{DEFAULT_AUDIENCE, TestKey};
use auth_core::{Algorithm, Issuer, Validator};
use benches::ready;

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "hit".into());
    let iterations: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(200_000);
    let key = TestKey::generate(Algorithm::RS256, "k1");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "jti": "5c1f6f0e-1b7e-4a8e-9a43-1d6c1b0d2f11", "sub": "orders-client", "iat": now, "exp": now + 3600,
        "scope": "orders:read orders:write", "client_id": "orders-client", "iss": "https://issuer.example",
        "aud": DEFAULT_AUDIENCE,
    });
    let header = r#"{"alg":"RS256","typ":"at+jwt","kid":"k1"}"#;
    let token = auth_core::testkit::sign_raw(Some(&key), header, &claims.to_string());
    let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
    let capacity = if mode == "hit" { 10_000 } else { 0 };
    let validator = Validator::builder()
        .issuer(Issuer::static_jwks("https://issuer.example", jwks.clone()).audience(DEFAULT_AUDIENCE))
        .token_cache_capacity(capacity)
        .build()
        .unwrap();
    // The synchronous step's setup, as both adapters drive it: a policy needing
    // `orders:read` over the static key set, and a request carrying `token`.
    let decide_setup = |token: &str| {
        let validator = Validator::builder()
            .issuer(Issuer::static_jwks("https://issuer.example", jwks.clone()).audience(DEFAULT_AUDIENCE))
            .build()
            .unwrap();
        let policy = auth_core::AccessPolicy::new(validator).require_scopes(["orders:read"]).unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        (policy, headers)
    };
    if mode == "attach" || mode == "insert" {
        return run_attach(&mode, iterations);
    }
    let ok = match mode.as_str() {
        "raw" => {
            // The floor: aws-lc-rs verification with a pre-parsed key, nothing else.
            use aws_lc_rs::encoding::AsDer;
            use base64::Engine as _;
            let b64 = |v: &serde_json::Value| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.as_str().unwrap()).unwrap()
            };
            let jwk = key.public_jwk();
            let der = aws_lc_rs::rsa::PublicKeyComponents { n: b64(&jwk["n"]), e: b64(&jwk["e"]) }.as_der().unwrap();
            let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                der.as_ref(),
            )
            .unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap();
            run_raw(&parsed, input.as_bytes(), &sig, iterations)
        }
        "jsonwebtoken" => {
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk()).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[DEFAULT_AUDIENCE]);
            validation.set_issuer(&["https://issuer.example"]);
            run_jsonwebtoken(&decoding, &validation, &token, iterations)
        }
        "extract" => run_extract(format!("Bearer {token}").as_bytes(), iterations),
        "decide" => {
            // The synchronous step of a request on a cache hit, as both adapters drive it.
            let (policy, headers) = decide_setup(&token);
            if let auth_core::Decision::Verify(verification) =
                policy.decide(&auth_core::RequestContext::new("GET", "/", &headers))
            {
                ready(verification.run()).unwrap();
            }
            run_decide(&policy, &headers, iterations)
        }
        "decide-bound" => {
            // The same step for a certificate-bound token, the connection's certificate read
            // once (as the serving helpers do): what the binding check adds to a hit.
            let ca = auth_core::testkit::TestCa::new("bench CA").unwrap();
            let cert = ca.client_certificate("orders").unwrap();
            let mut bound_claims = claims.clone();
            bound_claims["cnf"] = serde_json::json!({ "x5t#S256": cert.thumbprint() });
            let bound = auth_core::testkit::sign_raw(Some(&key), header, &bound_claims.to_string());
            let (policy, headers) = decide_setup(&bound);
            let certificate = std::sync::Arc::new(auth_core::ClientCertificate::from_der(&cert.der).unwrap());
            let request = auth_core::RequestContext::new("GET", "/", &headers).client_certificate(&certificate);
            if let auth_core::Decision::Verify(verification) = policy.decide(&request) {
                ready(verification.run()).unwrap();
            }
            run_decide_bound(&policy, &headers, &certificate, iterations)
        }
        "distinct-cache" | "distinct-nocache" => {
            let key = TestKey::generate(Algorithm::EdDSA, "ed");
            let tokens: Vec<String> = (0..iterations)
                .map(|i| {
                    let claims = format!(
                        r#"{{"iss":"https://issuer.example","aud":"{DEFAULT_AUDIENCE}","sub":"c{i}","iat":{now},"exp":{}}}"#,
                        now + 3600
                    );
                    auth_core::testkit::sign_raw(Some(&key), r#"{"alg":"EdDSA","typ":"at+jwt","kid":"ed"}"#, &claims)
                })
                .collect();
            let jwks = serde_json::json!({ "keys": [key.public_jwk()] }).to_string();
            let validator = Validator::builder()
                .issuer(Issuer::static_jwks("https://issuer.example", jwks).audience(DEFAULT_AUDIENCE))
                .token_cache_capacity(if mode == "distinct-cache" { 500 } else { 0 })
                .build()
                .unwrap();
            run_distinct(&validator, &tokens)
        }
        _ => run(&validator, &token, iterations),
    };
    println!("{mode}: {ok}/{iterations} accepted");
}

#[inline(never)]
fn run_raw(key: &aws_lc_rs::signature::ParsedPublicKey, message: &[u8], sig: &[u8], iterations: usize) -> usize {
    (0..iterations).filter(|_| key.verify_sig(std::hint::black_box(message), sig).is_ok()).count()
}

#[inline(never)]
fn run_jsonwebtoken(
    key: &jsonwebtoken::DecodingKey,
    validation: &jsonwebtoken::Validation,
    token: &str,
    iterations: usize,
) -> usize {
    (0..iterations)
        .filter(|_| jsonwebtoken::decode::<serde_json::Value>(std::hint::black_box(token), key, validation).is_ok())
        .count()
}

/// The measured loop, kept out of line so callgrind can count it alone:
/// `--collect-atstart=no --toggle-collect=hit_profile::run`.
#[inline(never)]
fn run(validator: &Validator, token: &str, iterations: usize) -> usize {
    let mut ok = 0usize;
    for _ in 0..iterations {
        ok += usize::from(ready(validator.validate(std::hint::black_box(token))).is_ok());
    }
    ok
}

#[inline(never)]
fn run_distinct(validator: &Validator, tokens: &[String]) -> usize {
    tokens.iter().filter(|token| ready(validator.validate(std::hint::black_box(token))).is_ok()).count()
}

#[inline(never)]
fn run_decide(policy: &auth_core::AccessPolicy, headers: &http::HeaderMap, iterations: usize) -> usize {
    (0..iterations)
        .filter(|_| {
            let request = auth_core::RequestContext::new("GET", "/", std::hint::black_box(headers));
            matches!(policy.decide(&request), auth_core::Decision::Admit(_))
        })
        .count()
}

#[inline(never)]
fn run_decide_bound(
    policy: &auth_core::AccessPolicy,
    headers: &http::HeaderMap,
    certificate: &std::sync::Arc<auth_core::ClientCertificate>,
    iterations: usize,
) -> usize {
    (0..iterations)
        .filter(|_| {
            let request = auth_core::RequestContext::new("GET", "/", std::hint::black_box(headers))
                .client_certificate(certificate);
            matches!(policy.decide(&request), auth_core::Decision::Admit(_))
        })
        .count()
}

#[inline(never)]
fn run_extract(header: &[u8], iterations: usize) -> usize {
    let sources = auth_core::CredentialSources::default();
    (0..iterations).filter(|_| auth_core::bearer_token([std::hint::black_box(header)], None, sources).is_ok()).count()
}

fn run_attach(mode: &str, iterations: usize) {
    let (_runtime, _idp, target) = benches::attach::cached_target();
    let prebuilt = target.cached_header().unwrap();
    if mode == "attach" {
        attach_loop(&target, iterations);
    } else {
        insert_loop(&prebuilt, iterations);
    }
    println!("{mode}: {} bytes x {iterations}", prebuilt.len());
}

/// The measured loops, apart (`valgrind --toggle-collect='*_loop*'` counts only them:
/// the set-up generates keys, whose cost varies).
#[inline(never)]
fn attach_loop(target: &auth_core::client::TargetToken, iterations: usize) {
    let mut headers = http::HeaderMap::new();
    for _ in 0..iterations {
        headers.insert(http::header::AUTHORIZATION, std::hint::black_box(target).cached_header().unwrap());
        std::hint::black_box(&headers);
    }
}

#[inline(never)]
fn insert_loop(prebuilt: &http::HeaderValue, iterations: usize) {
    let mut headers = http::HeaderMap::new();
    for _ in 0..iterations {
        headers.insert(http::header::AUTHORIZATION, std::hint::black_box(prebuilt).clone());
        std::hint::black_box(&headers);
    }
}
