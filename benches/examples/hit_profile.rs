//! Runs the validation hot paths in a loop, for `valgrind --tool=callgrind` (instruction
//! counts are repeatable on a noisy machine, unlike times):
//! `cargo build --release -p benches --example hit_profile && valgrind --tool=callgrind target/release/examples/hit_profile hit`
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
        .issuer(Issuer::static_jwks("https://issuer.example", jwks).audience(DEFAULT_AUDIENCE))
        .token_cache_capacity(capacity)
        .build()
        .unwrap();
    let mut ok = 0usize;
    for _ in 0..iterations {
        ok += usize::from(ready(validator.validate(&token)).is_ok());
    }
    println!("{mode}: {ok}/{iterations} accepted");
}
