//! The one exit logs every refusal once, under `auth::decision`, and attacks at a bounded
//! rate. Alone in its test binary: tracing caches callsite interest per process, and a
//! scoped subscriber sees every event only when no other test thread races it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use auth_core::testkit::TestIssuer;
use auth_core::{AccessPolicy, RejectReason, Validator};
use support::{drive, headers};

/// Every `auth::decision` event: (level, reason).
#[derive(Clone, Default)]
struct Decisions(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl tracing::Subscriber for Decisions {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() != auth_core::LOG_TARGET {
            return;
        }
        struct Reason(String);
        impl tracing::field::Visit for Reason {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "reason" {
                    self.0 = value.to_owned();
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut reason = Reason(String::new());
        event.record(&mut reason);
        self.0.lock().unwrap().push((*event.metadata().level(), reason.0));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn every_refusal_is_logged_once_and_attacks_at_a_bounded_rate() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let decisions = Decisions::default();
    tracing::subscriber::with_default(decisions.clone(), || {
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
    let events = decisions.0.lock().unwrap().clone();
    let debug: Vec<&str> =
        events.iter().filter(|(level, _)| *level == tracing::Level::DEBUG).map(|(_, r)| r.as_str()).collect();
    assert_eq!(debug, ["expired", "missing_token", "insufficient_scope"], "once each, at debug");
    let warned = events.iter().filter(|(level, r)| *level == tracing::Level::WARN && r == "invalid_signature").count();
    assert!((1..=10).contains(&warned), "forgeries at warn, at most 10 a second: {warned}");
}
