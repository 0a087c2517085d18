//! One table of HTTP cases, run against the axum and the actix service over real
//! loopback HTTP. Each answer must be the expected one, and the two adapters must
//! answer every case identically (status, `WWW-Authenticate`, body).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use auth_core::testkit::{Outage, TestIssuer};
use auth_core::{Issuer, Validator};
use examples::demo::{AUDIENCE, Answer, Case, RunningService, call, demo_cases, start_actix, start_axum};
use reqwest::Method;

fn get(name: &'static str, authorization: Vec<String>, expect: u16) -> Case {
    Case { name, method: Method::GET, path: "/orders", authorization, expect }
}

async fn services(validator: &Validator) -> [RunningService; 2] {
    [start_axum(validator).await.unwrap(), start_actix(validator).unwrap()]
}

async fn run_table(services: &[RunningService; 2], cases: &[Case], expect_challenge: impl Fn(&Case, &Answer)) {
    let client = reqwest::Client::new();
    for case in cases {
        let axum = call(&client, &services[0].base, case).await.unwrap();
        let actix = call(&client, &services[1].base, case).await.unwrap();
        assert_eq!(axum.status, case.expect, "{}: axum answered {axum:?}", case.name);
        assert_eq!(axum, actix, "{}: axum and actix differ", case.name);
        if case.expect >= 400 {
            let body: serde_json::Value = serde_json::from_str(&axum.body).unwrap();
            assert!(body["error"].is_string() && body["error_description"].is_string(), "{}: {body}", case.name);
            assert!(axum.challenge.as_deref().unwrap_or("").starts_with("Bearer"), "{}: {axum:?}", case.name);
        }
        expect_challenge(case, &axum);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_adapters_answer_the_table_alike() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(Issuer::discovery(idp.issuer()).audience(AUDIENCE)).build().unwrap();
    let services = services(&validator).await;
    let token = || idp.token().audience(AUDIENCE);
    let reader = token().scope("orders:read").sign();
    let mut cases = demo_cases(&idp, AUDIENCE);
    cases.extend([
        get("bad scheme", vec!["Basic dXNlcjpwYXNz".into()], 401),
        get("another scheme with a JWT", vec![format!("Token {reader}")], 401),
        get("a JWT without a scheme", vec![reader.clone()], 401),
        get("scheme only", vec!["Bearer".into()], 401),
        get("space inside the token", vec![format!("Bearer {}", reader.replacen('.', ". ", 1))], 401),
        get("two headers", vec![format!("Bearer {reader}"), format!("Bearer {reader}")], 400),
        get("two headers merged by a proxy", vec![format!("Bearer {reader}, Bearer {reader}")], 400),
        get("garbage token", vec!["Bearer not-a-jwt".into()], 401),
        get("alg none", vec![format!("Bearer {}", token().header("alg", "none").sign())], 401),
        get(
            "wrong audience",
            vec![format!("Bearer {}", idp.token().audience("billing-api").scope("orders:read").sign())],
            401,
        ),
        get("missing scope", vec![format!("Bearer {}", token().sign())], 403),
        get("lowercase scheme", vec![format!("bearer {reader}")], 200),
        get("oversized token", vec![format!("Bearer {}", "a".repeat(20_000))], 401),
    ]);
    cases.push(Case {
        name: "header and query token",
        method: Method::GET,
        path: "/orders?access_token=a.b.c",
        authorization: vec![format!("Bearer {reader}")],
        expect: 400,
    });
    run_table(&services, &cases, |case, answer| {
        let challenge = answer.challenge.as_deref().unwrap_or("");
        match case.expect {
            400 => assert!(challenge.contains(r#"error="invalid_request""#), "{}: {challenge}", case.name),
            // No credentials, or another scheme: a bare challenge (RFC 6750 §3.1).
            401 if case.authorization.first().is_none_or(|v| !v.to_ascii_lowercase().starts_with("bearer")) => {
                assert_eq!(challenge, "Bearer", "{}", case.name)
            }
            401 => assert!(challenge.contains(r#"error="invalid_token""#), "{}: {challenge}", case.name),
            403 => assert!(
                challenge.contains(r#"error="insufficient_scope""#) && challenge.contains("scope=\"orders:"),
                "{}",
                case.name
            ),
            _ => assert!(answer.challenge.is_none(), "{}", case.name),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_unavailable_is_503_on_both() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_outage(Some(Outage::Refuse)).await.unwrap();
    let validator = Validator::builder()
        .issuer(Issuer::discovery(idp.issuer()).audience(AUDIENCE))
        .unknown_kid_cooldown(Duration::from_secs(30))
        .build()
        .unwrap();
    let services = services(&validator).await;
    let token = idp.token().audience(AUDIENCE).scope("orders:read").sign();
    let case = get("keys unavailable", vec![format!("Bearer {token}")], 503);
    // The first call tries the fetch and fails; the next ones fail fast in the cooldown.
    run_table(&services, &[case], |_, answer| {
        assert!(answer.body.contains("temporarily_unavailable"));
    })
    .await;
    let client = reqwest::Client::new();
    for service in &services {
        let response = client.get(format!("{}/orders", service.base)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"), "{}", service.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_passes() {
    assert!(examples::demo::run().await.unwrap());
}
