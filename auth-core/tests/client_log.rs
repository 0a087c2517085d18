//! What the calling side logs never holds a secret, an assertion or a token. Alone in its
//! test binary: tracing caches callsite interest per process, and the subscriber is global.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use auth_core::Algorithm;
use auth_core::client::{ClientAuth, ClientKey, TokenSource, TokenTarget};
use auth_core::testkit::{Outage, TestClient, TestIssuer, TestKey};
use serde_json::json;
use support::log::Recorder;

#[test]
fn no_secret_assertion_or_token_in_any_log_line() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (tokens_seen, assertions) = runtime.block_on(async {
        let idp = TestIssuer::start().await.unwrap();
        let secret = "very-secret-client-secret";
        idp.register_client(TestClient::secret("orders", secret).scopes("invoices:read"));
        let key = Arc::new(TestKey::generate(Algorithm::ES256, "k1"));
        idp.register_client(TestClient::private_key_jwt("signer", key.clone()).scopes("invoices:read"));
        let target = TokenTarget::resource("https://billing.test").scope("invoices:read");
        let quick = |builder: auth_core::client::TokenSourceBuilder| {
            builder
                .issuer(idp.issuer())
                .min_lifetime(Duration::from_millis(1))
                .backoff(Duration::from_millis(10), Duration::from_millis(50))
        };
        let basic =
            quick(TokenSource::builder("orders")).client_auth(ClientAuth::client_secret_basic(secret)).build().unwrap();
        let signed = quick(TokenSource::builder("signer"))
            .client_auth(ClientAuth::private_key_jwt(
                ClientKey::from_pem(Algorithm::ES256, key.private_key_pem().as_bytes()).unwrap(),
            ))
            .build()
            .unwrap();
        let mut tokens = Vec::new();
        for source in [&basic, &signed] {
            let handle = source.target(target.clone()).unwrap();
            let token = handle.token().await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            assert!(handle.reject(token.header_value()), "logs the refusal");
            tokens.push(token.secret().to_owned());
        }
        // Failures: refused credentials (the server echoes nothing secret, but check), an
        // outage, and a response that is not a token.
        let wrong = quick(TokenSource::builder("orders"))
            .client_auth(ClientAuth::client_secret_post("wrong-secret-value"))
            .build()
            .unwrap();
        wrong.token(&target).await.unwrap_err();
        idp.set_token_outage(Some(Outage::Status(503)));
        basic.token(&TokenTarget::resource("https://other.test")).await.unwrap_err();
        idp.set_token_outage(None);
        idp.set_token_answer(Some((200, json!({ "access_token": "leaky-token-value", "token_type": "DPoP" }))));
        basic.token(&TokenTarget::resource("https://third.test")).await.unwrap_err();
        let assertions: Vec<String> =
            idp.seen_token_requests().iter().filter_map(|r| r.param("client_assertion").map(str::to_owned)).collect();
        (tokens, assertions)
    });
    let lines: Vec<String> = recorder.events().iter().map(|e| e.text()).collect();
    assert!(lines.iter().any(|l| l.starts_with("auth::client")), "the calling side logged: {lines:#?}");
    let mut secrets =
        vec!["very-secret-client-secret".to_owned(), "wrong-secret-value".to_owned(), "leaky-token-value".to_owned()];
    secrets.extend(tokens_seen);
    secrets.extend(assertions);
    for line in lines.iter() {
        for secret in &secrets {
            // Any 16-character piece would be a leak, not just the whole value.
            let piece = &secret[..secret.len().min(16)];
            assert!(!line.contains(piece), "a secret in a log line: {line}");
        }
    }
}
