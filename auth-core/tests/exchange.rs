//! Token exchange (RFC 8693) over loopback against the test issuer: the caller's verified
//! token becomes the subject, the service's own token the actor; the receiving side sees
//! both and applies its actor rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use auth_core::client::{ClientAuth, TokenSource, TokenSourceError, TokenTarget};
use auth_core::testkit::{TestClient, TestIssuer};
use auth_core::{AccessPolicy, ActorMatch, ActorRequirement, InboundToken, Issuer, Validator};
use serde_json::json;
use support::{drive, headers};

const BILLING: &str = "https://billing.test";

struct World {
    idp: TestIssuer,
    tokens: TokenSource,
}

async fn world() -> World {
    let idp = TestIssuer::start().await.unwrap();
    idp.register_client(TestClient::secret("orders", "orders-secret").scopes("invoices:read"));
    let tokens = TokenSource::builder("orders")
        .issuer(idp.issuer())
        .client_auth(ClientAuth::client_secret_basic("orders-secret"))
        .build()
        .unwrap();
    World { idp, tokens }
}

/// What the orders service admits from a caller: the verified token, kept.
async fn inbound(idp: &TestIssuer, caller: &str, expires_in: i64) -> InboundToken {
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    let policy = AccessPolicy::new(validator).keep_inbound_token();
    let token = idp.token().claim("sub", caller).claim("client_id", caller).expires_in(expires_in).sign();
    let admission = drive(&policy, &headers(&format!("Bearer {token}"))).await.unwrap();
    let kept = admission.inbound_token.expect("kept");
    assert_eq!(kept.secret(), token);
    assert!(!format!("{kept:?}").contains(&token[..20]), "Debug never shows it");
    kept
}

fn billing_policy(idp: &TestIssuer) -> AccessPolicy {
    let validator = Validator::builder().issuer(Issuer::discovery(idp.issuer()).audience(BILLING)).build().unwrap();
    AccessPolicy::new(validator)
        .require_scopes(["invoices:read"])
        .unwrap()
        .require_actor(ActorRequirement::one_of([ActorMatch::client_id("orders")]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_downstream_sees_the_caller_as_subject_and_the_service_as_actor() {
    let w = world().await;
    let caller = inbound(&w.idp, "customer-app", 300).await;
    let own = w.tokens.target(TokenTarget::resource("https://actor.test")).unwrap();
    let exchange = w.tokens.exchange(Some(own));
    let billing = TokenTarget::resource(BILLING).scope("invoices:read");
    let token = exchange.token_for(&caller, &billing).await.unwrap();
    let admitted = drive(&billing_policy(&w.idp), &headers(token.header_value().to_str().unwrap())).await.unwrap();
    let principal = admitted.principal.unwrap();
    assert_eq!(principal.subject(), Some("customer-app"));
    let actor = principal.actor().unwrap();
    assert_eq!((actor.subject.as_deref(), actor.client_id.as_deref()), (Some("orders"), Some("orders")));
    // The request carried the caller's token as subject and the service's own as actor.
    let seen = w.idp.seen_token_requests();
    let exchange_request = seen.iter().find(|r| r.param("subject_token").is_some()).unwrap();
    assert_eq!(exchange_request.param("subject_token"), Some(caller.secret()));
    assert_eq!(exchange_request.param("subject_token_type"), Some("urn:ietf:params:oauth:token-type:access_token"));
    assert!(exchange_request.param("actor_token").is_some());
    assert_eq!(exchange_request.params("resource"), [BILLING]);
    // Cached per (caller token, target): the same call asks nothing more.
    let requests = w.idp.token_requests();
    assert_eq!(exchange.token_for(&caller, &billing).await.unwrap().secret(), token.secret());
    assert_eq!(w.idp.token_requests(), requests);
    // Another caller is another exchange.
    let other = inbound(&w.idp, "another-app", 300).await;
    let theirs = exchange.token_for(&other, &billing).await.unwrap();
    assert_ne!(theirs.secret(), token.secret());
    assert_eq!(exchange.cached(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_actor_token_the_exchanging_client_acts_and_a_wrong_actor_is_403() {
    let w = world().await;
    w.idp.register_client(TestClient::secret("mallory", "m").scopes("invoices:read"));
    let mallory = TokenSource::builder("mallory")
        .issuer(w.idp.issuer())
        .client_auth(ClientAuth::client_secret_basic("m"))
        .build()
        .unwrap();
    let caller = inbound(&w.idp, "customer-app", 300).await;
    let token = mallory
        .exchange(None)
        .token_for(&caller, &TokenTarget::resource(BILLING).scope("invoices:read"))
        .await
        .unwrap();
    let refusal = drive(&billing_policy(&w.idp), &headers(token.header_value().to_str().unwrap())).await.unwrap_err();
    assert_eq!(refusal.rejection.status, 403);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&refusal.rejection.body).unwrap()["error"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_for_one_caller_make_one_exchange() {
    let w = world().await;
    let caller = inbound(&w.idp, "customer-app", 300).await;
    let exchange = w.tokens.exchange(None);
    w.idp.set_token_outage(Some(auth_core::testkit::Outage::Slow(Duration::from_millis(200))));
    let before = w.idp.token_requests();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (exchange, caller) = (exchange.clone(), caller.clone());
        calls.spawn(async move {
            exchange.token_for(&caller, &TokenTarget::resource(BILLING)).await.map(|t| t.secret().to_owned())
        });
    }
    let mut seen = std::collections::HashSet::new();
    while let Some(result) = calls.join_next().await {
        seen.insert(result.unwrap().unwrap());
    }
    assert_eq!(seen.len(), 1);
    assert_eq!(w.idp.token_requests() - before, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchanged_token_never_outlives_the_callers() {
    let w = world().await;
    let caller = inbound(&w.idp, "customer-app", 3).await;
    let exchange = w.tokens.exchange(None);
    let target = TokenTarget::resource(BILLING);
    let first = exchange.token_for(&caller, &target).await.unwrap();
    assert!(first.expires_in() <= Duration::from_secs(3), "{:?}", first.expires_in());
    tokio::time::sleep(Duration::from_millis(3200)).await;
    // The caller's token has expired: the cached exchange is not used past it.
    let again = exchange.token_for(&caller, &target).await;
    assert!(again.is_err() || again.unwrap().secret() != first.secret());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_must_name_the_issued_token_type() {
    let w = world().await;
    let caller = inbound(&w.idp, "customer-app", 300).await;
    w.idp.set_token_answer(Some((200, json!({"access_token": "abc", "token_type": "Bearer", "expires_in": 60}))));
    let exchange = w.tokens.exchange(None);
    let err = exchange.token_for(&caller, &TokenTarget::resource(BILLING)).await.unwrap_err();
    assert!(matches!(&err, TokenSourceError::InvalidResponse(m) if m.contains("issued_token_type")), "{err:?}");
    // A failure is answered again for the backoff's first step without a request.
    let requests = w.idp.token_requests();
    assert_eq!(exchange.token_for(&caller, &TokenTarget::resource(BILLING)).await.unwrap_err(), err);
    assert_eq!(w.idp.token_requests(), requests);
    assert_eq!(w.tokens.stats().failures, 1, "exchanges are counted with the source's requests");
    w.idp.set_token_answer(None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    exchange.token_for(&caller, &TokenTarget::resource(BILLING)).await.unwrap();
}

#[cfg(feature = "reqwest-middleware")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reqwest_middleware_sends_the_exchanged_token_and_never_the_callers() {
    use auth_core::client::reqwest_middleware::ExchangeToken;
    let w = world().await;
    let caller = inbound(&w.idp, "customer-app", 300).await;
    // A downstream that echoes the Authorization header it got.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/echo", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let auth =
                        req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                    Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from(auth),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let exchange = w.tokens.exchange(None);
    let target = TokenTarget::resource(BILLING);
    let client = ::reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ExchangeToken::new(exchange.clone(), target.clone()))
        .build();
    let sent = client.get(&url).with_extension(caller.clone()).send().await.unwrap().text().await.unwrap();
    let expected = exchange.token_for(&caller, &target).await.unwrap();
    assert_eq!(sent, format!("Bearer {}", expected.secret()));
    assert!(!sent.contains(caller.secret()));
    let err = client.get(&url).send().await.unwrap_err();
    assert!(err.to_string().contains("no inbound token"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_exchanged_token_is_dropped_once_per_cooldown() {
    let w = world().await;
    let caller = inbound(&w.idp, "customer-app", 300).await;
    let exchange = w.tokens.exchange(None);
    let target = TokenTarget::resource(BILLING);
    let first = exchange.token_for(&caller, &target).await.unwrap();
    let stale = http::HeaderValue::from_static("Bearer something-else");
    assert!(!exchange.reject(&caller, &target, &stale), "not the cached token");
    assert!(exchange.reject(&caller, &target, first.header_value()));
    let second = exchange.token_for(&caller, &target).await.unwrap();
    assert_ne!(second.secret(), first.secret());
    // Inside the cooldown a downstream cannot force another exchange.
    assert!(!exchange.reject(&caller, &target, second.header_value()));
    assert_eq!(exchange.token_for(&caller, &target).await.unwrap().secret(), second.secret());
}
