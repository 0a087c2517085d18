//! Validation cost per algorithm, next to its floors: the raw aws-lc-rs verification with
//! a pre-parsed key and bare `jsonwebtoken::decode`, in the same run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use auth_core::testkit::{DEFAULT_AUDIENCE, TestKey};
use auth_core::{Algorithm, CredentialSources, Issuer, ScopeRequirement, Scopes, Validator, bearer_token};
use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use benches::ready;
use criterion::{Criterion, criterion_group, criterion_main};

const ISSUER: &str = "https://issuer.example";

struct Fixture {
    alg: Algorithm,
    token: String,
    jwk: serde_json::Value,
    validator_nocache: Validator,
    validator_cache: Validator,
    key: TestKey,
}

fn fixture(alg: Algorithm) -> Fixture {
    let key = TestKey::generate(alg, "k1");
    let jwk = key.public_jwk();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = serde_json::json!({
        "jti": "5c1f6f0e-1b7e-4a8e-9a43-1d6c1b0d2f11", "sub": "orders-client", "iat": now, "exp": now + 3600,
        "scope": "orders:read orders:write", "client_id": "orders-client", "iss": ISSUER, "aud": DEFAULT_AUDIENCE,
    });
    let header = serde_json::json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": "k1"});
    let token = auth_core::testkit::sign_raw(Some(&key), &header.to_string(), &claims.to_string());
    let jwks = serde_json::json!({ "keys": [jwk.clone()] }).to_string();
    let build = |capacity| {
        Validator::builder()
            .issuer(Issuer::static_jwks(ISSUER, jwks.clone()).audience(DEFAULT_AUDIENCE))
            .token_cache_capacity(capacity)
            .build()
            .unwrap()
    };
    Fixture { alg, token, jwk, validator_nocache: build(0), validator_cache: build(10_000), key }
}

impl Fixture {
    /// Another token from the same key, for client `sub`.
    fn token_for(&self, sub: &str) -> String {
        let (header, rest) = self.token.split_once('.').unwrap();
        let (payload, _) = rest.split_once('.').unwrap();
        let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["sub"] = sub.into();
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        auth_core::testkit::sign_raw(Some(&self.key), &header, &claims.to_string())
    }
}

fn raw_verifier(f: &Fixture) -> (ParsedPublicKey, Vec<u8>, Vec<u8>) {
    let b64 = |field: &str| URL_SAFE_NO_PAD.decode(f.jwk[field].as_str().unwrap()).unwrap();
    let key = match f.alg {
        Algorithm::RS256 | Algorithm::PS256 => {
            use aws_lc_rs::encoding::AsDer;
            let der = aws_lc_rs::rsa::PublicKeyComponents { n: b64("n"), e: b64("e") }.as_der().unwrap();
            let params: &'static dyn signature::VerificationAlgorithm = if f.alg == Algorithm::RS256 {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else {
                &signature::RSA_PSS_2048_8192_SHA256
            };
            ParsedPublicKey::new(params, der.as_ref()).unwrap()
        }
        Algorithm::ES256 => {
            let point = [vec![4], b64("x"), b64("y")].concat();
            ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).unwrap()
        }
        Algorithm::ES384 => {
            let point = [vec![4], b64("x"), b64("y")].concat();
            ParsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point).unwrap()
        }
        Algorithm::EdDSA => ParsedPublicKey::new(&signature::ED25519, b64("x")).unwrap(),
        other => panic!("no raw floor for {other}"),
    };
    let (input, sig) = f.token.rsplit_once('.').unwrap();
    (key, input.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(sig).unwrap())
}

fn jsonwebtoken_decode(f: &Fixture) -> (jsonwebtoken::DecodingKey, jsonwebtoken::Validation) {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(f.jwk.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(f.alg.to_string().parse().unwrap());
    validation.set_audience(&[DEFAULT_AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    (key, validation)
}

fn validate(c: &mut Criterion) {
    for alg in [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
        let f = fixture(alg);
        let mut group = c.benchmark_group(format!("validate/{alg}"));
        let (key, message, sig) = raw_verifier(&f);
        group.bench_function("raw_aws_lc_verify", |b| {
            b.iter(|| key.verify_sig(black_box(&message), black_box(&sig)).unwrap())
        });
        let (dk, validation) = jsonwebtoken_decode(&f);
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| jsonwebtoken::decode::<serde_json::Value>(black_box(&f.token), &dk, &validation).unwrap())
        });
        group.bench_function("miss", |b| b.iter(|| ready(f.validator_nocache.validate(black_box(&f.token))).unwrap()));
        ready(f.validator_cache.validate(&f.token)).unwrap();
        group.bench_function("hit", |b| b.iter(|| ready(f.validator_cache.validate(black_box(&f.token))).unwrap()));
        group.finish();
    }
}

fn request_parts(c: &mut Criterion) {
    let f = fixture(Algorithm::ES256);
    let header = format!("Bearer {}", f.token);
    c.bench_function("extract/bearer_header", |b| {
        b.iter(|| bearer_token([black_box(header.as_bytes())], None, CredentialSources::default()).unwrap())
    });
    let granted: Scopes = ["orders:read orders:write profile email"].into_iter().collect();
    let all = ScopeRequirement::all(["orders:read", "orders:write"]);
    let any = ScopeRequirement::any(["admin", "email"]);
    c.bench_function("scopes/all_of_2", |b| b.iter(|| black_box(&all).is_satisfied_by(black_box(&granted))));
    c.bench_function("scopes/any_of_2", |b| b.iter(|| black_box(&any).is_satisfied_by(black_box(&granted))));
    // A kid the static key set does not have: header, claims and the key lookup, no crypto.
    let unknown = {
        let (_, rest) = f.token.split_once('.').unwrap();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"at+jwt","kid":"nope"}"#);
        format!("{header}.{rest}")
    };
    c.bench_function("key_lookup/unknown_kid_reject", |b| {
        b.iter(|| ready(f.validator_nocache.validate(black_box(&unknown))).unwrap_err())
    });
}

/// Work on 1 and 2 threads at once, each thread doing `iters` operations, so that the
/// time per iteration stays the same when nothing is shared (2x the throughput).
/// "hit/validator_per_thread" is that ceiling on this machine: the same hits, but each
/// thread has a validator of its own, so nothing at all is shared (a 2-vCPU VM can fall
/// well short of 2x even there: the vCPUs may share a physical core).
/// "hit/same_token" is the worst case for the cache (every thread reads one entry);
/// "hit/64_callers" spreads the hits over 64 cached tokens, as many callers would, each
/// caller on both threads; "hit/64_callers_by_thread" keeps each caller on one thread, as
/// a caller's keep-alive connection stays on one worker.
fn hit_scaling(c: &mut Criterion) {
    let f = fixture(Algorithm::ES256);
    let own = [fixture(Algorithm::ES256), fixture(Algorithm::ES256)];
    for f in &own {
        ready(f.validator_cache.validate(&f.token)).unwrap();
    }
    let callers: Vec<String> = (0..64).map(|i| f.token_for(&format!("caller-{i}"))).collect();
    for token in &callers {
        ready(f.validator_cache.validate(token)).unwrap();
    }
    ready(f.validator_cache.validate(&f.token)).unwrap();
    let mut group = c.benchmark_group("hit_scaling");
    for threads in [1, 2] {
        let own = |t: usize, _: usize| drop(ready(own[t].validator_cache.validate(black_box(&own[t].token))).unwrap());
        let same = |_: usize, _: usize| drop(ready(f.validator_cache.validate(black_box(&f.token))).unwrap());
        let spread = |t: usize, i: usize| {
            drop(ready(f.validator_cache.validate(black_box(&callers[(i + t * 7) % callers.len()]))).unwrap())
        };
        on_threads(&mut group, &format!("hit/validator_per_thread/{threads}_threads"), threads, own);
        on_threads(&mut group, &format!("hit/same_token/{threads}_threads"), threads, same);
        // Each caller's keep-alive connection stays on one worker: thread t serves callers
        // t, t + threads, ...
        let split = |t: usize, i: usize| {
            let caller = (i * threads + t) % callers.len();
            drop(ready(f.validator_cache.validate(black_box(&callers[caller]))).unwrap())
        };
        on_threads(&mut group, &format!("hit/64_callers/{threads}_threads"), threads, spread);
        on_threads(&mut group, &format!("hit/64_callers_by_thread/{threads}_threads"), threads, split);
    }
    group.finish();
}

/// Runs `op(thread, i)` for i in 0..iters on `threads` threads started together; the
/// measured time is the slowest thread's.
fn on_threads(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    threads: usize,
    op: impl Fn(usize, usize) + Sync,
) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = std::sync::Barrier::new(threads);
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|t| {
                        let (start, op) = (&start, &op);
                        scope.spawn(move || {
                            start.wait();
                            let began = std::time::Instant::now();
                            for i in 0..iters as usize {
                                op(t, i);
                            }
                            began.elapsed()
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).max().unwrap()
            })
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = validate, request_parts, hit_scaling
}
criterion_main!(benches);
