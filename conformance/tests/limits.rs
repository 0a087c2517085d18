//! Resource limits under abuse, through both adapters over loopback HTTP:
//!
//! - a flood of 10,000 requests with random unknown `kid`s causes at most one JWKS
//!   fetch per cooldown, and valid requests keep succeeding meanwhile;
//! - a 2,000 distinct valid tokens keep the verified-token cache within its
//!   capacity (the 100,000-token run is in `auth-core/tests/limits.rs`, without HTTP);
//! - a JWKS of 10 MiB, one of 10,000 keys, and one that never finishes sending are
//!   bounded, reported (`refresh_failures`), and the last good keys keep serving.
//!
//! Latency figures printed here are informational (debug build); the benches own them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auth_core::testkit::{Outage, TestIssuer, TestKey};
use auth_core::{Algorithm, Issuer, RejectReason, Validator};
use common::{Env, b64, bearer, rss_kib};
use examples::demo::{AUDIENCE, start_actix, start_axum};
use serde_json::{Value, json};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// 10,000 requests with random kids (half to each adapter, 32 at a time), one valid
/// request after every 50: at most one JWKS fetch per cooldown; every valid request
/// succeeds; every junk request is 401 `unknown_key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_flood_fetches_at_most_once_per_cooldown() {
    const FLOOD: usize = 10_000;
    const CONCURRENCY: usize = 32;
    const COOLDOWN: Duration = Duration::from_secs(2);
    // No verified-token cache: every valid request takes the full path (signature included).
    let env = Env::with(
        TestIssuer::start().await.unwrap(),
        |issuer| issuer,
        |builder| builder.unknown_kid_cooldown(COOLDOWN).token_cache_capacity(0),
    )
    .await;
    // Let the warm-up fetch leave the cooldown, so that the flood can cause fetches.
    tokio::time::sleep(COOLDOWN + Duration::from_millis(100)).await;
    let fetches_before = env.idp.jwks_fetches();
    let metrics_before = env.validator.metrics();
    let mut it = env.valid.split('.');
    let (_, payload, signature) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let template = Arc::new((payload.to_owned(), signature.to_owned()));
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let bases = Arc::new([env.services[0].base.clone(), env.services[1].base.clone()]);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, bases, next, template) = (env.client.clone(), bases.clone(), next.clone(), template.clone());
            let valid = env.valid.clone();
            tokio::spawn(async move {
                let (mut junk_statuses, mut valid_latencies) = (Vec::new(), Vec::new());
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= FLOOD {
                        break;
                    }
                    let kid = format!("{:x}-{i}", nonce.wrapping_mul(i as u128 + 1) ^ 0x5deece66d);
                    let header = b64(format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"at+jwt"}}"#));
                    let junk = format!("{header}.{}.{}", template.0, template.1);
                    let url = format!("{}/orders", bases[i % 2]);
                    let t = Instant::now();
                    let response = match client.get(&url).bearer_auth(&junk).send().await {
                        Ok(r) => r,
                        Err(e) => panic!(
                            "junk request {i} to {url} ({}) failed after {:?}: {e:?}",
                            ["axum", "actix"][i % 2],
                            t.elapsed()
                        ),
                    };
                    junk_statuses.push(response.status().as_u16());
                    if i % 50 == 0 {
                        let url = format!("{}/orders", bases[(i / 50) % 2]);
                        let t = Instant::now();
                        let response = client.get(&url).bearer_auth(&valid).send().await.unwrap();
                        assert_eq!(response.status(), 200, "a valid request failed during the flood");
                        valid_latencies.push(t.elapsed());
                    }
                }
                (junk_statuses, valid_latencies)
            })
        })
        .collect();
    let (mut statuses, mut latencies) = (Vec::new(), Vec::new());
    for worker in workers {
        let (s, l) = worker.await.unwrap();
        statuses.extend(s);
        latencies.extend(l);
    }
    let elapsed = started.elapsed();
    let fetches = env.idp.jwks_fetches() - fetches_before;
    let after = env.validator.metrics();
    assert_eq!(statuses.len(), FLOOD);
    assert!(
        statuses.iter().all(|&s| s == 401),
        "{:?}",
        statuses.iter().filter(|&&s| s != 401).take(5).collect::<Vec<_>>()
    );
    let unknown = after.rejected(RejectReason::UnknownKey) - metrics_before.rejected(RejectReason::UnknownKey);
    assert_eq!(unknown, FLOOD as u64, "every junk request is unknown_key");
    assert_eq!(latencies.len(), FLOOD / 50, "every valid request succeeded");
    // A fetch at the first unknown kid, then at most one per elapsed cooldown.
    let cooldowns = (elapsed.as_secs_f64() / COOLDOWN.as_secs_f64()).floor() as usize + 1;
    assert!(fetches <= cooldowns, "{fetches} JWKS fetches in {elapsed:?} with a {COOLDOWN:?} cooldown");
    assert!(fetches >= 1, "the first unknown kid after the cooldown refreshes the keys");
    latencies.sort();
    println!(
        "[flood] {FLOOD} unknown-kid requests ({CONCURRENCY} concurrent, both adapters) in {elapsed:.2?} \
         ({:.0} req/s): {fetches} JWKS fetches (cooldown {COOLDOWN:?}, bound {cooldowns})",
        FLOOD as f64 / elapsed.as_secs_f64()
    );
    println!(
        "[flood] {} valid requests during the flood, all 200; latency p50 {:.2?} p99 {:.2?} max {:.2?} (debug build)",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    env.assert_alive().await;
}

/// 2,000 distinct valid EdDSA tokens through both adapters with a cache of 500 entries:
/// the cache never holds more than its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_valid_tokens_keep_the_cache_within_capacity() {
    const TOKENS: usize = 2_000;
    const CAPACITY: u64 = 500;
    const CONCURRENCY: usize = 16;
    let idp = TestIssuer::with_keys(vec![TestKey::generate(Algorithm::EdDSA, "ed-1")]).await.unwrap();
    let env = Env::with(idp, |issuer| issuer, |builder| builder.token_cache_capacity(CAPACITY)).await;
    let tokens: Arc<Vec<String>> =
        Arc::new((0..TOKENS).map(|i| env.token().claim("jti", format!("t{i}")).sign()).collect());
    let accepted_before = env.validator.metrics().accepted;
    let rss_before = rss_kib();
    let bases = Arc::new([env.services[0].base.clone(), env.services[1].base.clone()]);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, bases, next, tokens) = (env.client.clone(), bases.clone(), next.clone(), tokens.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= TOKENS {
                        break;
                    }
                    let url = format!("{}/orders", bases[i % 2]);
                    let response = client.get(&url).bearer_auth(&tokens[i]).send().await.unwrap();
                    assert_eq!(response.status(), 200, "token {i}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let cached = env.validator.cached_tokens();
    let rss_after = rss_kib();
    let accepted = env.validator.metrics().accepted - accepted_before;
    assert_eq!(accepted, TOKENS as u64);
    assert!(cached <= CAPACITY, "{cached} entries cached, capacity {CAPACITY}");
    assert!(cached > 0, "the cache is in use");
    println!(
        "[cache/http] {TOKENS} distinct EdDSA tokens through both adapters in {elapsed:.2?}: {cached} cached \
         (capacity {CAPACITY}); VmRSS {rss_before} -> {rss_after} KiB ({:+} KiB)",
        rss_after as i64 - rss_before as i64
    );
}

/// A validator with short timings whose keys were fetched once, behind both adapters.
async fn fast_env(idp: TestIssuer) -> Env {
    Env::with(
        idp,
        |issuer| issuer,
        |builder| {
            builder
                .fetch_timeout(Duration::from_secs(1))
                .unknown_kid_cooldown(Duration::from_millis(200))
                .token_cache_capacity(0)
        },
    )
    .await
}

/// A 10 MiB JWKS is refused by its declared length without being read: the refresh
/// fails (counted), memory does not grow by the body, and the last good keys serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_mib_jwks_is_refused_and_the_last_good_keys_serve() {
    let env = fast_env(TestIssuer::start().await.unwrap()).await;
    let keys = env.idp.jwks();
    let body = format!(r#"{{"keys":{},"padding":"{}"}}"#, keys["keys"], "x".repeat(10 * 1024 * 1024)).into_bytes();
    env.idp.set_jwks_body(Some(("application/json", body)));
    let before = env.validator.metrics();
    let rss_before = rss_kib();
    let started = Instant::now();
    env.validator.warm_up().await.expect_err("the refresh fails");
    assert!(env.validator.is_ready(), "the last good keys are still in service");
    let elapsed = started.elapsed();
    let after = env.validator.metrics();
    assert_eq!(after.refresh_failures - before.refresh_failures, 1, "the failure is reported");
    assert_eq!(after.key_sets_installed, before.key_sets_installed, "nothing installed");
    env.assert_alive().await;
    // Through the adapters: an unknown kid past the cooldown refreshes, fails, is 401.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let junk = env.token().header("kid", "rotated-in?").sign();
    for service in &env.services {
        let answer = env.send(&service.base, &bearer(&junk)).await.unwrap();
        assert_eq!(answer.status, 401, "{}: {answer:?}", service.name);
    }
    env.assert_alive().await;
    // VmRSS is printed, not asserted: the in-process issuer holds a 10 MiB copy per
    // response it sends, and the other tests of this binary run at the same time.
    let rss_after = rss_kib();
    println!(
        "[jwks 10 MiB] refused by its Content-Length in {elapsed:.2?}; refresh_failures +{}; \
         process VmRSS {rss_before} -> {rss_after} KiB (includes the issuer's copies)",
        env.validator.metrics().refresh_failures - before.refresh_failures
    );
    assert!(elapsed < Duration::from_secs(1), "the body is not read: {elapsed:?}");
}

fn ten_thousand_keys(real: &Value, real_first: bool) -> Vec<u8> {
    let filler = (0..9_999).map(|i| json!({"kty": "OKP", "crv": "Ed25519", "x": real["x"], "kid": format!("k{i}")}));
    let keys: Vec<Value> = if real_first {
        std::iter::once(real.clone()).chain(filler).collect()
    } else {
        filler.chain(std::iter::once(real.clone())).collect()
    };
    let body = json!({ "keys": keys }).to_string().into_bytes();
    assert!(body.len() < 1024 * 1024, "under the byte cap, so that the key cap is what is tested");
    body
}

/// A JWKS of 10,000 keys (under the 1 MiB byte cap) is over `max_jwks_keys` (1,000):
/// the whole document is refused as a failed refresh (counted), the parse stops at the
/// cap, and the last good keys keep serving, wherever the issuer's key is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_key_jwks_keeps_the_last_good_keys() {
    for real_first in [true, false] {
        let idp = TestIssuer::with_keys(vec![TestKey::generate(Algorithm::EdDSA, "ed-1")]).await.unwrap();
        let env = fast_env(idp).await;
        let real = env.idp.key("ed-1").unwrap().public_jwk();
        env.idp.set_jwks_body(Some(("application/json", ten_thousand_keys(&real, real_first))));
        let before = env.validator.metrics();
        let started = Instant::now();
        let _ = env.validator.warm_up().await;
        let elapsed = started.elapsed();
        env.assert_alive().await;
        let after = env.validator.metrics();
        assert_eq!(after.refresh_failures - before.refresh_failures, 1, "the over-limit JWKS is reported: {after:?}");
        assert_eq!(after.key_sets_installed, before.key_sets_installed, "nothing was installed");
        // A filler kid from the refused document is not known.
        let key = env.idp.key("ed-1").unwrap();
        let filler = env.token().key(key).header("kid", "k10").sign();
        for service in &env.services {
            let answer = env.send(&service.base, &bearer(&filler)).await.unwrap();
            assert_eq!(answer.status, 401, "{}: {answer:?}", service.name);
        }
        println!("[jwks 10,000 keys, issuer key first: {real_first}] refused in {elapsed:.2?}; last good keys serve");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}

/// A JWKS response that never finishes: the fetch gives up at the fetch timeout and is
/// counted; requests with known keys are never held up by it; the request that waits
/// on the refresh (unknown kid) is answered once it times out; a cold validator answers
/// 503 with `Retry-After`; nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_finishing_jwks_is_bounded_by_the_fetch_timeout() {
    let env = fast_env(TestIssuer::start().await.unwrap()).await;
    env.idp.set_outage(Some(Outage::Stall)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await; // past the cooldown
    let before = env.validator.metrics();
    // Unknown kids start the stalled refresh and wait on it, on both adapters at once.
    let waiting: Vec<_> = env
        .services
        .iter()
        .map(|service| {
            let (client, base) = (env.client.clone(), service.base.clone());
            let junk = env.token().header("kid", "rotated-in?").sign();
            tokio::spawn(async move {
                let t = Instant::now();
                let response = client.get(format!("{base}/orders")).bearer_auth(junk).send().await.unwrap();
                (response.status().as_u16(), t.elapsed())
            })
        })
        .collect();
    // Meanwhile valid requests with the cached key answer at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        for service in &env.services {
            let t = Instant::now();
            let answer = env.send(&service.base, &bearer(&env.valid)).await.unwrap();
            assert_eq!(answer.status, 200, "{}", service.name);
            slowest = slowest.max(t.elapsed());
        }
    }
    assert!(slowest < Duration::from_millis(800), "a valid request waited {slowest:?} on the stalled fetch");
    let mut waited = Vec::new();
    for task in waiting {
        let (status, elapsed) = task.await.unwrap();
        assert_eq!(status, 401);
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
        waited.push(elapsed);
    }
    let after = env.validator.metrics();
    assert!(after.refresh_failures > before.refresh_failures, "the stalled fetch is reported");
    env.assert_alive().await;
    println!(
        "[jwks stall] valid requests during the stall: slowest {slowest:.2?}; unknown-kid requests waited {waited:.2?} \
         (fetch timeout 1 s); refresh_failures +{}",
        after.refresh_failures - before.refresh_failures
    );

    // Cold start against a stalled issuer: 503 with Retry-After, after the timeout.
    let cold = Validator::builder()
        .issuer(Issuer::discovery(env.idp.issuer()).audience(AUDIENCE))
        .fetch_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let services = [start_axum(&cold).await.unwrap(), start_actix(&cold).unwrap()];
    for service in &services {
        let t = Instant::now();
        let response = env.client.get(format!("{}/orders", service.base)).bearer_auth(&env.valid).send().await.unwrap();
        assert_eq!(response.status(), 503, "{}", service.name);
        assert!(response.headers().contains_key("retry-after"), "{}", service.name);
        println!("[jwks stall] cold {} service: 503 with Retry-After in {:.2?}", service.name, t.elapsed());
        assert!(t.elapsed() < Duration::from_secs(4));
    }
    env.idp.set_outage(None).await.unwrap();
}
