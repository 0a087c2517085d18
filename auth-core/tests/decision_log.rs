//! The one exit logs every refusal once, under `auth::decision`, and attacks at a bounded
//! rate. Alone in its test binary: tracing caches callsite interest per process, and a
//! scoped subscriber sees every event only when no other test thread races it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use auth_core::testkit::TestIssuer;
use auth_core::{AccessPolicy, RejectReason, Validator};
use support::log::Recorder;
use support::{drive, headers};

#[test]
fn every_refusal_is_logged_once_and_attacks_at_a_bounded_rate() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let recorder = Recorder::default();
    tracing::subscriber::with_default(recorder.clone(), || {
        runtime.block_on(async {
            let idp = TestIssuer::start().await.unwrap();
            let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
            let policy = AccessPolicy::new(validator.clone()).require_scopes(["orders:read"]).unwrap();
            let expired = headers(&format!("Bearer {}", idp.token().scope("orders:read").expires_in(-120).sign()));
            drive(&policy, &expired).await.unwrap_err();
            drive(&policy, &http::HeaderMap::new()).await.unwrap_err();
            drive(&policy, &headers(&format!("Bearer {}", idp.token().sign()))).await.unwrap_err();
            let token = idp.token().scope("orders:read").sign();
            let forged = format!("{}AAAA", &token[..token.len() - 4]);
            for _ in 0..50 {
                drive(&policy, &headers(&format!("Bearer {forged}"))).await.unwrap_err();
            }
            assert_eq!(validator.metrics().rejected(RejectReason::InvalidSignature), 50, "counted every time");
        })
    });
    let events: Vec<(tracing::Level, String)> = recorder
        .events()
        .into_iter()
        .filter(|e| e.target == auth_core::LOG_TARGET)
        .map(|e| (e.level, e.field("reason").unwrap_or_default().to_owned()))
        .collect();
    let debug: Vec<&str> =
        events.iter().filter(|(level, _)| *level == tracing::Level::DEBUG).map(|(_, r)| r.as_str()).collect();
    assert_eq!(debug, ["expired", "missing_token", "insufficient_scope"], "once each, at debug");
    let warned = events.iter().filter(|(level, r)| *level == tracing::Level::WARN && r == "invalid_signature").count();
    assert!((1..=10).contains(&warned), "forgeries at warn, at most 10 a second: {warned}");
}
