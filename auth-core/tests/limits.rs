//! Resource limits at the validator level: the verified-token cache stays within its
//! configured capacity however many distinct valid tokens arrive, and memory with it.
//!
//! 100,000 distinct, validly signed tokens go through `Validator::validate` directly
//! (no HTTP: minting and verifying 100k tokens over loopback in a debug build would
//! not fit the CI budget; `conformance/tests/limits.rs` sends a few thousand through both
//! adapters). Ed25519 keys sign and verify fastest, and a static JWKS keeps the
//! network out of the measurement. Run with `--nocapture` for the RSS figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use auth_core::testkit::{TestKey, sign_raw};
use auth_core::{Algorithm, Issuer, Validator};
use serde_json::json;

const ISSUER: &str = "https://idp.example.com";
const AUDIENCE: &str = "api";

/// `VmRSS` of this process in KiB (Linux), 0 elsewhere.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_distinct_tokens_stay_within_the_cache_capacity() {
    const TOKENS: usize = 100_000;
    const CAPACITY: u64 = 1_000;
    const WORKERS: usize = 4;
    let key = TestKey::generate(Algorithm::EdDSA, "ed");
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let validator = Validator::builder()
        .issuer(Issuer::static_jwks(ISSUER, jwks).audience(AUDIENCE))
        .token_cache_capacity(CAPACITY)
        .build()
        .unwrap();
    let key = std::sync::Arc::new(key);
    let (iat, exp) = (now(), now() + 3600);
    let mint = move |key: &TestKey, i: usize| {
        sign_raw(
            Some(key),
            r#"{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}"#,
            &format!(r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","sub":"c{i}","iat":{iat},"exp":{exp},"jti":"{i:08}"}}"#),
        )
    };
    // Mints and validates tokens `range`, on `WORKERS` tasks (both cores of a CI runner).
    let run = |range: std::ops::Range<usize>| {
        let tasks: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (validator, key) = (validator.clone(), key.clone());
                let range = range.clone();
                tokio::spawn(async move {
                    for i in range.skip(w).step_by(WORKERS) {
                        validator.validate(&mint(&key, i)).await.unwrap();
                    }
                })
            })
            .collect();
        async move {
            for task in tasks {
                task.await.unwrap();
            }
        }
    };
    // Warm the allocator and the code paths before the first reading.
    run(TOKENS..TOKENS + 2_000).await;
    let started = Instant::now();
    let rss_start = rss_kib();
    let mut readings = Vec::new();
    for phase in 0..5 {
        let end = (phase + 1) * TOKENS / 5;
        run(phase * TOKENS / 5..end).await;
        let cached = validator.cached_tokens();
        assert!(cached <= CAPACITY, "{cached} cached after {end} tokens, capacity {CAPACITY}");
        readings.push((end, cached, rss_kib()));
    }
    let elapsed = started.elapsed();
    let metrics = validator.metrics();
    assert_eq!(metrics.accepted, (TOKENS + 2_000) as u64);
    assert_eq!(metrics.cache_hits, 0, "every token is distinct");
    println!("[cache] capacity {CAPACITY}, {TOKENS} distinct EdDSA tokens in {elapsed:.1?} (mint + validate)");
    println!("[cache] VmRSS after warm-up (2,000 tokens): {rss_start} KiB");
    for (n, cached, rss) in &readings {
        println!(
            "[cache] after {n:>7} tokens: {cached:>5} cached, VmRSS {rss} KiB ({:+} KiB)",
            *rss as i64 - rss_start as i64
        );
    }
    // Bounded by the capacity, not by the number of tokens seen: what the first 20,000
    // cost is all the last 80,000 may add, within allocator noise.
    let first = readings[0].2;
    let last = readings.last().unwrap().2;
    assert!(last <= first + 16 * 1024, "VmRSS grew from {first} to {last} KiB after the cache was full");
}
