//! `GET /orders/{id}/invoice?as=caller` over real loopback HTTP, on axum and on actix:
//! the orders service exchanges the caller's token (RFC 8693; subject: the caller's
//! token, actor: its own) at the test issuer and calls the billing stand-in's
//! `/invoices/{id}/as-caller` with the exchanged token, which requires orders as the
//! current actor. The stand-in here records the `Authorization` headers it receives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_core::client::{ClientAuth, TokenSource, TokenTarget};
use auth_core::testkit::{Outage, TestClient, TestIssuer};
use auth_core::{Issuer, Validator};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use examples::billing::{BillingClient, stand_in_router};
use examples::demo::{
    AUDIENCE, BILLING_RESOURCE, ORDERS_CLIENT_ID, RunningService, start_actix_with_billing, start_axum_with_billing,
};
use serde_json::{Value, json};
use support::{ADAPTERS, Adapter, Reply, SECRET, agreeing, assert_error};

/// Another registered client, allowed the same scope and resource as orders.
const REPORTS_CLIENT_ID: &str = "reports-service";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// (path, `Authorization`) of each request the billing stand-in received.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// The issuer, the recording billing stand-in and one orders service whose billing client
/// is `client_id`'s.
struct World {
    idp: TestIssuer,
    service: RunningService,
    billing: BillingClient,
    /// The stand-in's base URL.
    billing_base: String,
    received: Received,
    client: reqwest::Client,
}

/// Serves the billing stand-in, recording what it receives.
async fn start_recording_stand_in(validator: &Validator) -> (String, Received) {
    let received: Received = Arc::default();
    let record = received.clone();
    let app = stand_in_router(validator).unwrap().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let record = record.clone();
            async move {
                let authorization =
                    req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                record.lock().unwrap().push((req.uri().path().to_owned(), authorization));
                next.run(req).await
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

impl World {
    async fn start(adapter: Adapter, client_id: &str) -> World {
        let idp = TestIssuer::start().await.unwrap();
        for id in [ORDERS_CLIENT_ID, REPORTS_CLIENT_ID] {
            idp.register_client(TestClient::secret(id, SECRET).scopes("invoices:read").resources([BILLING_RESOURCE]));
        }
        let validator_for = |audience: &str| {
            Validator::builder().issuer(Issuer::discovery(idp.issuer()).audience(audience)).build().unwrap()
        };
        let (billing_base, received) = start_recording_stand_in(&validator_for(BILLING_RESOURCE)).await;
        let tokens = TokenSource::builder(client_id)
            .issuer(idp.issuer())
            .client_auth(ClientAuth::client_secret_basic(SECRET))
            .build()
            .unwrap();
        let target = TokenTarget::resource(BILLING_RESOURCE).scope("invoices:read");
        let billing = BillingClient::new(&billing_base, &tokens, target).unwrap();
        let validator = validator_for(AUDIENCE);
        let service = match adapter {
            Adapter::Axum => start_axum_with_billing(&validator, Some(billing.clone())).await.unwrap(),
            Adapter::Actix => start_actix_with_billing(&validator, Some(billing.clone())).unwrap(),
        };
        // actix-web closes idle keep-alive connections after 5 s: drop ours sooner.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        World { idp, service, billing, billing_base, received, client }
    }

    /// A token for the orders service with `orders:read`, for user `sub`.
    fn caller(&self, sub: &str) -> String {
        self.idp.token().audience(AUDIENCE).scope("orders:read").claim("sub", sub).sign()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        support::get(&self.client, &self.service, path, token).await
    }

    fn token_requests(&self) -> usize {
        self.idp.token_requests()
    }

    fn exchanges(&self) -> Vec<auth_core::testkit::SeenTokenRequest> {
        self.idp.seen_token_requests().into_iter().filter(|r| r.param("grant_type") == Some(TOKEN_EXCHANGE)).collect()
    }

    fn received(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }
}

/// A JWT's claims, unverified.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Runs `check` on a fresh world per adapter (billing client: `client_id`'s) and returns
/// both answers, which must agree (status, body, content type, whether `Retry-After`).
async fn on_both<F, Fut>(client_id: &str, check: F) -> Reply
where
    F: Fn(World) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let mut replies = Vec::new();
    for adapter in ADAPTERS {
        replies.push(check(World::start(adapter, client_id).await).await);
    }
    let [axum, _] = agreeing(replies);
    axum
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_caller_carries_the_callers_identity() {
    let reply = on_both(ORDERS_CLIENT_ID, |world| async move {
        let caller = world.caller("alice");
        let reply = world.get("/orders/42/invoice?as=caller", Some(&caller)).await;
        // The service's own token (the actor token), then the exchange.
        assert_eq!(world.token_requests(), 2, "{}", world.service.name);
        let seen = world.idp.seen_token_requests();
        assert_eq!(seen[0].param("grant_type"), Some("client_credentials"));
        let exchange = &seen[1];
        assert_eq!(exchange.param("grant_type"), Some(TOKEN_EXCHANGE));
        assert_eq!(exchange.param("subject_token"), Some(caller.as_str()));
        assert_eq!(exchange.param("subject_token_type"), Some(ACCESS_TOKEN_TYPE));
        let actor = claims_of(exchange.param("actor_token").expect("an actor token"));
        assert_eq!((actor["sub"].as_str(), actor["aud"].as_str()), (Some(ORDERS_CLIENT_ID), Some(BILLING_RESOURCE)));
        assert_eq!(exchange.params("resource"), [BILLING_RESOURCE]);
        assert_eq!(exchange.param("scope"), Some("invoices:read"));
        assert!(exchange.authorization.as_deref().unwrap_or("").starts_with("Basic "), "{exchange:?}");
        // Billing got the exchanged token, at the as-caller route; never the caller's own.
        let received = world.received();
        assert_eq!(received.len(), 1, "{received:?}");
        assert_eq!(received[0].0, "/invoices/42/as-caller");
        let sent = received[0].1.strip_prefix("Bearer ").unwrap();
        assert_ne!(sent, caller, "the inbound token was forwarded");
        let claims = claims_of(sent);
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["aud"], BILLING_RESOURCE);
        assert_eq!(claims["act"], json!({ "sub": ORDERS_CLIENT_ID, "client_id": ORDERS_CLIENT_ID }));
        // The plain route still calls billing with the service's own token.
        let own = world.get("/orders/42/invoice", Some(&caller)).await;
        assert_eq!(own.json(), json!({ "invoice": "42", "caller": ORDERS_CLIENT_ID }), "{own:?}");
        assert_eq!(world.token_requests(), 2, "the own token is cached");
        assert_eq!(world.received()[1].0, "/invoices/42");
        reply
    })
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(reply.json(), json!({ "invoice": "42", "caller": "alice", "actor": ORDERS_CLIENT_ID }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exchange_per_caller_token() {
    on_both(ORDERS_CLIENT_ID, |world| async move {
        let world = Arc::new(world);
        let (alice, bob) = (world.caller("alice"), world.caller("bob"));
        let first = world.get("/orders/1/invoice?as=caller", Some(&alice)).await;
        assert_eq!(first.status, 200, "{first:?}");
        assert_eq!(world.token_requests(), 2);
        // The same caller again (another invoice too): the cached exchanged token.
        for id in [1, 2, 3] {
            let again = world.get(&format!("/orders/{id}/invoice?as=caller"), Some(&alice)).await;
            assert_eq!(again.json()["caller"], "alice", "{again:?}");
        }
        assert_eq!(world.token_requests(), 2, "{}: no new token request", world.service.name);
        // Another caller: one more exchange, and only that.
        let other = world.get("/orders/1/invoice?as=caller", Some(&bob)).await;
        assert_eq!(other.json(), json!({ "invoice": "1", "caller": "bob", "actor": ORDERS_CLIENT_ID }));
        assert_eq!(world.token_requests(), 3, "{}", world.service.name);
        assert_eq!(world.exchanges().len(), 2);
        assert_eq!(world.exchanges()[1].param("subject_token"), Some(bob.as_str()));
        // Each caller's call carried its own exchanged token.
        let sent: Vec<Value> =
            world.received().iter().map(|(_, auth)| claims_of(auth.strip_prefix("Bearer ").unwrap())).collect();
        assert_eq!(sent.iter().filter(|c| c["sub"] == "alice").count(), 4);
        assert_eq!(sent.iter().filter(|c| c["sub"] == "bob").count(), 1);
        // A burst of first calls for a new caller shares one exchange.
        let carol = world.caller("carol");
        let mut burst = tokio::task::JoinSet::new();
        for id in 0..8 {
            let (world, carol) = (world.clone(), carol.clone());
            burst.spawn(async move { world.get(&format!("/orders/{id}/invoice?as=caller"), Some(&carol)).await });
        }
        while let Some(reply) = burst.join_next().await {
            let reply = reply.unwrap();
            assert_eq!(reply.json()["caller"], "carol", "{reply:?}");
        }
        assert_eq!(world.token_requests(), 4, "{}: one exchange for the burst", world.service.name);
        assert_eq!(world.billing.exchange().cached(), 3);
        other
    })
    .await;
}

/// The exchange is made by another registered client (reports): billing's as-caller
/// route refuses the token (403: the current actor is not orders), the service answers
/// 502. Its own token still works on the plain route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billing_refuses_another_actor_with_502() {
    let reply = on_both(REPORTS_CLIENT_ID, |world| async move {
        let caller = world.caller("alice");
        let reply = world.get("/orders/42/invoice?as=caller", Some(&caller)).await;
        assert_eq!(world.token_requests(), 2);
        let sent = world.received()[0].1.strip_prefix("Bearer ").unwrap().to_owned();
        assert_eq!(claims_of(&sent)["act"]["client_id"], REPORTS_CLIENT_ID);
        // What billing answered that token.
        let direct = world
            .client
            .get(format!("{}/invoices/42/as-caller", world.billing_base))
            .bearer_auth(&sent)
            .send()
            .await
            .unwrap();
        assert_eq!(direct.status().as_u16(), 403);
        assert_eq!(direct.json::<Value>().await.unwrap()["error"], "forbidden");
        let own = world.get("/orders/42/invoice", Some(&caller)).await;
        assert_eq!(own.json(), json!({ "invoice": "42", "caller": REPORTS_CLIENT_ID }), "{own:?}");
        reply
    })
    .await;
    assert_error(&reply, 502, "bad_gateway");
    assert!(reply.retry_after.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_down_is_503_with_retry_after() {
    on_both(ORDERS_CLIENT_ID, |world| async move {
        // Nothing cached: the actor token cannot be had.
        world.idp.set_token_outage(Some(Outage::Refuse));
        let alice = world.caller("alice");
        let first = world.get("/orders/42/invoice?as=caller", Some(&alice)).await;
        assert_error(&first, 503, "temporarily_unavailable");
        let wait = first.retry_after_secs();
        assert!((1..=60).contains(&wait), "{first:?}");
        assert!(world.received().is_empty(), "billing was called without a token");
        world.idp.set_token_outage(None);
        tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
        let recovered = world.get("/orders/42/invoice?as=caller", Some(&alice)).await;
        assert_eq!(recovered.status, 200, "{}: {recovered:?}", world.service.name);
        // The own (actor) token is cached now; the exchange itself fails for a new caller.
        world.idp.set_token_outage(Some(Outage::Refuse));
        let bob = world.caller("bob");
        let exchange_down = world.get("/orders/42/invoice?as=caller", Some(&bob)).await;
        assert_error(&exchange_down, 503, "temporarily_unavailable");
        assert!(exchange_down.retry_after_secs() >= 1, "{exchange_down:?}");
        // A caller whose exchanged token is cached is not affected.
        assert_eq!(world.get("/orders/43/invoice?as=caller", Some(&alice)).await.status, 200);
        world.idp.set_token_outage(None);
        let mut ok = false;
        for _ in 0..20 {
            if world.get("/orders/42/invoice?as=caller", Some(&bob)).await.status == 200 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(ok, "{}: the exchange did not recover", world.service.name);
        first
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_as_values_are_400_and_bad_ids_404() {
    for (path, status, code) in [
        ("/orders/42/invoice?as=admin", 400, "invalid_request"),
        ("/orders/42/invoice?as=", 400, "invalid_request"),
        ("/orders/42/invoice?as=Caller", 400, "invalid_request"),
        ("/orders/42/invoice?as=caller&as=caller", 400, "invalid_request"),
        ("/orders/4x/invoice?as=caller", 404, "not_found"),
        ("/orders/4%32/invoice?as=caller", 404, "not_found"),
        ("/orders/4x/invoice?as=admin", 404, "not_found"),
    ] {
        let reply = on_both(ORDERS_CLIENT_ID, |world| async move {
            let reply = world.get(path, Some(&world.caller("alice"))).await;
            assert_eq!(world.token_requests(), 0, "{}: {path}: nothing may be asked for", world.service.name);
            assert!(world.received().is_empty(), "{path}: nothing may be sent");
            reply
        })
        .await;
        assert_error(&reply, status, code);
    }
    // Without a token, or without orders:read: refused before anything else.
    let reply = on_both(ORDERS_CLIENT_ID, |world| async move {
        let anonymous = world.get("/orders/42/invoice?as=caller", None).await;
        assert_eq!(anonymous.status, 401, "{anonymous:?}");
        let writer = world.idp.token().audience(AUDIENCE).scope("orders:write").sign();
        let reply = world.get("/orders/42/invoice?as=caller", Some(&writer)).await;
        assert_eq!(world.token_requests(), 0);
        reply
    })
    .await;
    assert_eq!(reply.status, 403, "{reply:?}");
}

/// The stand-in's rules, called directly with tokens made by the test issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_checks_the_actor() {
    let world = World::start(Adapter::Axum, ORDERS_CLIENT_ID).await;
    let base = &world.billing_base;
    let token = |act: Option<Value>| {
        let token = world.idp.token().audience(BILLING_RESOURCE).scope("invoices:read").claim("sub", "alice");
        match act {
            Some(act) => token.claim("act", act),
            None => token,
        }
        .sign()
    };
    let orders = json!({ "sub": ORDERS_CLIENT_ID, "client_id": ORDERS_CLIENT_ID });
    let reports = json!({ "sub": REPORTS_CLIENT_ID, "client_id": REPORTS_CLIENT_ID });
    let by_sub_only = json!({ "sub": ORDERS_CLIENT_ID });
    for (path, act, status) in [
        ("/invoices/7/as-caller", Some(orders.clone()), 200),
        ("/invoices/7/as-caller", Some(reports), 403),
        ("/invoices/7/as-caller", Some(by_sub_only), 403),
        ("/invoices/7/as-caller", None, 403),
        // The plain route is for the service's own (undelegated) tokens.
        ("/invoices/7", Some(orders), 403),
        ("/invoices/7", None, 200),
    ] {
        let response = world.client.get(format!("{base}{path}")).bearer_auth(token(act.clone())).send().await.unwrap();
        let got = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(got, status, "{path} act {act:?}: {body}");
        match status {
            200 if path.ends_with("as-caller") => {
                assert_eq!(body, json!({ "invoice": "7", "caller": "alice", "actor": ORDERS_CLIENT_ID }))
            }
            200 => assert_eq!(body["invoice"], "7"),
            _ => assert_eq!(body["error"], "forbidden", "{path}: {body}"),
        }
    }
}
