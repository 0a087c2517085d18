//! Delegated tokens (RFC 8693 §4.1): `act` in the principal, and a route's actor rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use auth_core::testkit::TestIssuer;
use auth_core::{AccessPolicy, ActorMatch, ActorRequirement, MAX_ACTOR_DEPTH, RejectReason, Validator};
use serde_json::{Value, json};
use support::{drive, headers};

async fn setup() -> (TestIssuer, Validator) {
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    (idp, validator)
}

fn delegated(idp: &TestIssuer, act: Value) -> String {
    idp.token().claim("sub", "customer-app").claim("act", act).sign()
}

#[tokio::test]
async fn the_current_actor_decides_and_the_chain_is_kept_for_audit() {
    let (idp, validator) = setup().await;
    let rule = ActorRequirement::one_of([ActorMatch::client_id("orders-service")]);
    let policy = AccessPolicy::new(validator).require_actor(rule);
    let token = delegated(
        &idp,
        json!({"sub": "orders", "client_id": "orders-service", "exp": 1, "act": {"sub": "gateway", "iss": "https://edge"}}),
    );
    let admitted = drive(&policy, &headers(&format!("Bearer {token}"))).await.unwrap();
    let principal = admitted.principal.unwrap();
    assert_eq!(principal.subject(), Some("customer-app"), "the subject stays the original caller");
    let chain: Vec<_> = principal.actor().unwrap().chain().map(|a| a.subject.clone().unwrap()).collect();
    assert_eq!(chain, ["orders", "gateway"]);
    // A nested actor that is allowed does not make an outer one allowed.
    let wrong = delegated(&idp, json!({"sub": "mallory", "act": {"client_id": "orders-service"}}));
    let refusal = drive(&policy, &headers(&format!("Bearer {wrong}"))).await.unwrap_err();
    assert_eq!(refusal.error.reason(), RejectReason::ActorNotAllowed);
    let rejection = &refusal.rejection;
    assert_eq!(rejection.status, 403);
    assert!(rejection.challenges.is_empty(), "no RFC 6750 code: a new token cannot help");
    let body: Value = serde_json::from_str(&rejection.body).unwrap();
    assert_eq!(body["error"], "forbidden");
    assert!(body["error_description"].as_str().unwrap().contains("client_id orders-service"), "{body}");
    assert_eq!(rejection.grpc_status, 7);
    // Not delegated at all: refused by a rule that needs an actor.
    let direct = idp.token().sign();
    assert_eq!(drive(&policy, &headers(&format!("Bearer {direct}"))).await.unwrap_err().rejection.status, 403);
}

#[tokio::test]
async fn subject_matches_default_to_the_tokens_issuer() {
    let (idp, validator) = setup().await;
    let policy = AccessPolicy::new(validator).require_actor(ActorRequirement::one_of([ActorMatch::subject("orders")]));
    let ours = delegated(&idp, json!({"sub": "orders"}));
    drive(&policy, &headers(&format!("Bearer {ours}"))).await.unwrap();
    let theirs = delegated(&idp, json!({"sub": "orders", "iss": "https://elsewhere"}));
    assert_eq!(drive(&policy, &headers(&format!("Bearer {theirs}"))).await.unwrap_err().rejection.status, 403);
}

#[tokio::test]
async fn forbidden_and_any() {
    let (idp, validator) = setup().await;
    let direct_only = AccessPolicy::new(validator.clone()).require_actor(ActorRequirement::forbidden());
    let any = AccessPolicy::new(validator).require_actor(ActorRequirement::any());
    let token = delegated(&idp, json!({"sub": "orders"}));
    let direct = idp.token().sign();
    assert_eq!(drive(&direct_only, &headers(&format!("Bearer {token}"))).await.unwrap_err().rejection.status, 403);
    drive(&direct_only, &headers(&format!("Bearer {direct}"))).await.unwrap();
    drive(&any, &headers(&format!("Bearer {token}"))).await.unwrap();
    // Cached now: the rule is applied on the hit too.
    assert_eq!(drive(&direct_only, &headers(&format!("Bearer {token}"))).await.unwrap_err().rejection.status, 403);
}

#[tokio::test]
async fn a_malformed_or_too_deep_act_is_an_invalid_token() {
    let (idp, validator) = setup().await;
    let mut act = json!({"sub": "a0"});
    for i in 1..=MAX_ACTOR_DEPTH {
        act = json!({"sub": format!("a{i}"), "act": act});
    }
    let deep = delegated(&idp, act);
    let err = validator.validate(&deep).await.unwrap_err();
    assert_eq!((err.status(), err.reason()), (401, RejectReason::Malformed));
    for bad in [json!("orders"), json!({"sub": 7}), json!({})] {
        let err = validator.validate(&delegated(&idp, bad.clone())).await.unwrap_err();
        assert_eq!((err.status(), err.reason()), (401, RejectReason::InvalidClaim), "{bad}");
    }
}
