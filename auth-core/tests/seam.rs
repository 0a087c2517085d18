//! The core–adapter seam: each piece of per-request work done once, one exit that counts
//! every outcome once, and the `metrics` facade's names after a known sequence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use auth_core::testkit::{TestIssuer, WorkCounts, take_work_counts};
use auth_core::{AccessPolicy, RejectReason, Validator};
use support::{drive, headers};

fn counts(header_parses: u32, cache_lookups: u32, token_splits: u32, token_hashes: u32) -> WorkCounts {
    let mut counts = WorkCounts::default();
    counts.header_parses = header_parses;
    counts.cache_lookups = cache_lookups;
    counts.token_splits = token_splits;
    counts.token_hashes = token_hashes;
    counts
}

#[tokio::test(flavor = "current_thread")]
async fn a_miss_parses_looks_up_splits_and_hashes_once_each() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    validator.warm_up().await.unwrap();
    let policy = AccessPolicy::new(validator.clone()).require_scopes(["orders:read"]).unwrap();
    let request = headers(&format!("Bearer {}", idp.token().scope("orders:read").sign()));
    take_work_counts();

    let first = drive(&policy, &request).await.unwrap();
    assert!(first.principal.is_some());
    assert_eq!(take_work_counts(), counts(1, 1, 1, 1), "a miss: everything once, the insertion reuses the hash");

    drive(&policy, &request).await.unwrap();
    assert_eq!(take_work_counts(), counts(1, 1, 0, 1), "a hit: no split");

    let malformed = headers("Bearer not a token");
    drive(&policy, &malformed).await.unwrap_err();
    assert_eq!(take_work_counts(), counts(1, 1, 0, 1), "refused by its syntax after the lookup missed");

    let uncached =
        AccessPolicy::new(Validator::builder().issuer(idp.jwks_issuer()).token_cache_capacity(0).build().unwrap());
    drive(&uncached, &request).await.unwrap();
    take_work_counts();
    drive(&uncached, &request).await.unwrap();
    assert_eq!(take_work_counts(), counts(1, 0, 1, 0), "without a cache, nothing is hashed");
}

#[tokio::test(flavor = "current_thread")]
async fn accepted_counts_requests_that_also_met_the_scope_rule() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    let write = AccessPolicy::new(validator.clone()).require_scopes(["orders:write"]).unwrap();
    let reader = headers(&format!("Bearer {}", idp.token().scope("orders:read").sign()));
    for _ in 0..2 {
        let refusal = drive(&write, &reader).await.unwrap_err();
        assert_eq!(refusal.error.reason(), RejectReason::InsufficientScope);
    }
    let m = validator.metrics();
    assert_eq!((m.accepted, m.rejected(RejectReason::InsufficientScope), m.cache_hits), (0, 2, 1), "{m:?}");
    drive(&AccessPolicy::new(validator.clone()), &reader).await.unwrap();
    assert_eq!(validator.metrics().accepted, 1);
}

#[cfg(feature = "metrics")]
#[tokio::test(flavor = "current_thread")]
async fn the_metrics_facade_counts_decisions_and_key_fetches() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let idp = TestIssuer::start().await.unwrap();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // The handles are registered when the validator is built, with the recorder then in place.
    let validator =
        metrics::with_local_recorder(&recorder, || Validator::builder().issuer(idp.jwks_issuer()).build().unwrap());
    let policy = AccessPolicy::new(validator.clone());
    let good = headers(&format!("Bearer {}", idp.token().sign()));
    drive(&policy, &good).await.unwrap();
    drive(&policy, &good).await.unwrap();
    drive(&policy, &headers(&format!("Bearer {}", idp.token().expires_in(-120).sign()))).await.unwrap_err();
    drive(&policy, &http::HeaderMap::new()).await.unwrap_err();

    let mut seen = std::collections::BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let DebugValue::Counter(count) = value else { continue };
        if count == 0 {
            continue;
        }
        let labels: Vec<String> = key.key().labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        seen.insert(format!("{}{{{}}}", key.key().name(), labels.join(",")), count);
    }
    let issuer = idp.issuer();
    let expected: std::collections::BTreeMap<String, u64> = [
        (format!("auth_decisions_total{{outcome=accepted,reason=ok,issuer={issuer}}}"), 2),
        (format!("auth_decisions_total{{outcome=rejected,reason=expired,issuer={issuer}}}"), 1),
        ("auth_decisions_total{outcome=rejected,reason=missing_token,issuer=unknown}".to_owned(), 1),
        (format!("auth_key_source_events_total{{event=jwks_fetch,issuer={issuer}}}"), 1),
        (format!("auth_key_source_events_total{{event=key_set_installed,issuer={issuer}}}"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, expected);
}
