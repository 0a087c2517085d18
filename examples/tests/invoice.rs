//! `GET /orders/{id}/invoice` over real loopback HTTP, on axum and on actix: the orders
//! service calls the billing stand-in with its own client-credentials token from the
//! test issuer, configured from the environment variables as the binaries are.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use auth_core::Algorithm;
use auth_core::testkit::{Outage, TestClient, TestIssuer, TestKey};
use examples::billing::{BillingClient, start_stand_in};
use examples::config::ServiceConfig;
use examples::demo::{
    AUDIENCE, BILLING_RESOURCE, ORDERS_CLIENT_ID, RunningService, start_actix_with_billing, start_axum_with_billing,
};
use serde_json::json;
use support::{ADAPTERS, Adapter, Reply, SECRET, agreeing, assert_error};

/// Where `BILLING_URL` points.
#[derive(Debug, Clone, Copy)]
enum Downstream {
    /// The stand-in, validating tokens for this audience.
    StandIn(&'static str),
    /// A loopback port nobody listens on.
    Closed,
    /// No `BILLING_URL`.
    None,
}

/// How the orders service authenticates to the token endpoint.
#[derive(Debug, Clone, Copy)]
enum Credential {
    Secret,
    /// `AUTH_CLIENT_KEY` (a PEM file) with `AUTH_CLIENT_KEY_ID`, for this algorithm.
    Key(Algorithm),
}

struct Setup {
    downstream: Downstream,
    credential: Credential,
    /// The scopes the issuer lets the client have.
    client_scopes: &'static str,
    /// `AUTH_TOKEN_SCOPE`.
    token_scope: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            downstream: Downstream::StandIn(BILLING_RESOURCE),
            credential: Credential::Secret,
            client_scopes: "invoices:read",
            token_scope: "invoices:read",
        }
    }
}

/// The issuer, the billing stand-in and one orders service around them.
struct World {
    idp: TestIssuer,
    service: RunningService,
    billing: Option<BillingClient>,
    client: reqwest::Client,
    /// A token for the orders service with `orders:read`.
    reader: String,
    _key_file: Option<KeyFile>,
}

/// A PEM file in the temp directory, removed on drop.
struct KeyFile(std::path::PathBuf);

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl World {
    async fn start(adapter: Adapter, setup: Setup) -> World {
        let idp = TestIssuer::start().await.unwrap();
        let (client, key_file) = match setup.credential {
            Credential::Secret => (TestClient::secret(ORDERS_CLIENT_ID, SECRET), None),
            Credential::Key(alg) => {
                let key = Arc::new(TestKey::generate(alg, "orders-1"));
                let path = std::env::temp_dir().join(format!(
                    "examples-invoice-{}-{:?}-{}.pem",
                    std::process::id(),
                    adapter,
                    alg.as_str()
                ));
                std::fs::write(&path, key.private_key_pem()).unwrap();
                (TestClient::private_key_jwt(ORDERS_CLIENT_ID, key), Some(KeyFile(path)))
            }
        };
        idp.register_client(client.scopes(setup.client_scopes).resources([BILLING_RESOURCE]));
        let billing_url = match setup.downstream {
            Downstream::StandIn(audience) => {
                let validator = auth_core::Validator::builder()
                    .issuer(auth_core::Issuer::discovery(idp.issuer()).audience(audience))
                    .build()
                    .unwrap();
                Some(start_stand_in(&validator).await.unwrap())
            }
            Downstream::Closed => {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                drop(listener);
                Some(format!("http://{addr}"))
            }
            Downstream::None => None,
        };
        let mut env: Vec<(&str, String)> = vec![
            ("AUTH_ISSUER", idp.issuer().to_owned()),
            ("AUTH_AUDIENCE", AUDIENCE.to_owned()),
            ("AUTH_CLIENT_ID", ORDERS_CLIENT_ID.to_owned()),
            ("BILLING_RESOURCE", BILLING_RESOURCE.to_owned()),
            ("AUTH_TOKEN_SCOPE", setup.token_scope.to_owned()),
        ];
        match &key_file {
            None => env.push(("AUTH_CLIENT_SECRET", SECRET.to_owned())),
            Some(file) => {
                env.push(("AUTH_CLIENT_KEY", file.0.to_str().unwrap().to_owned()));
                env.push(("AUTH_CLIENT_KEY_ID", "orders-1".to_owned()));
            }
        }
        if let Some(url) = billing_url {
            env.push(("BILLING_URL", url));
        }
        let config =
            ServiceConfig::from_lookup(|name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())).unwrap();
        let validator = config.validator().unwrap();
        let billing = config.billing_client().unwrap();
        let service = match adapter {
            Adapter::Axum => start_axum_with_billing(&validator, billing.clone()).await.unwrap(),
            Adapter::Actix => start_actix_with_billing(&validator, billing.clone()).unwrap(),
        };
        // actix-web closes idle keep-alive connections after 5 s: drop ours sooner.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let reader = idp.token().audience(AUDIENCE).scope("orders:read").sign();
        World { idp, service, billing, client, reader, _key_file: key_file }
    }

    async fn get_with(&self, path: &str, token: Option<&str>) -> Reply {
        support::get(&self.client, &self.service, path, token).await
    }

    /// `GET path` with the `orders:read` token.
    async fn get(&self, path: &str) -> Reply {
        self.get_with(path, Some(&self.reader)).await
    }

    fn token_requests(&self) -> usize {
        self.idp.token_requests()
    }
}

/// Runs `check` on a fresh world per adapter and returns both answers of interest, which
/// must agree (status, body, whether there is a `Retry-After`).
async fn on_both<F, Fut>(setup: impl Fn() -> Setup, check: F) -> [Reply; 2]
where
    F: Fn(World) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let mut replies = Vec::new();
    for adapter in ADAPTERS {
        let world = World::start(adapter, setup()).await;
        replies.push(check(world).await);
    }
    agreeing(replies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoice_passes_through() {
    let [axum, _] = on_both(Setup::default, |world| async move {
        let reply = world.get("/orders/42/invoice").await;
        assert_eq!(world.token_requests(), 1);
        // What the service asked for: its resource and scope, with client_secret_basic.
        let seen = world.idp.seen_token_requests();
        assert_eq!(seen[0].param("grant_type"), Some("client_credentials"));
        assert_eq!(seen[0].params("resource"), [BILLING_RESOURCE]);
        assert_eq!(seen[0].param("scope"), Some("invoices:read"));
        assert!(seen[0].authorization.as_deref().unwrap_or("").starts_with("Basic "), "{:?}", seen[0]);
        reply
    })
    .await;
    assert_eq!(axum.status, 200, "{axum:?}");
    assert_eq!(axum.content_type.as_deref(), Some("application/json"));
    assert_eq!(axum.json(), json!({ "invoice": "42", "caller": ORDERS_CLIENT_ID }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_from_a_key_file() {
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let setup = || Setup { credential: Credential::Key(alg), ..Setup::default() };
        let [axum, _] = on_both(setup, |world| async move {
            let reply = world.get("/orders/7/invoice").await;
            let seen = world.idp.seen_token_requests();
            let (header, _) = seen[0].assertion.clone().expect("a client assertion");
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(header["kid"], "orders-1");
            reply
        })
        .await;
        assert_eq!(axum.status, 200, "{alg}: {axum:?}");
        assert_eq!(axum.json(), json!({ "invoice": "7", "caller": ORDERS_CLIENT_ID }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_one_token_request() {
    on_both(Setup::default, |world| async move {
        let world = Arc::new(world);
        // A burst of concurrent first calls shares one request, and later calls use the
        // cached token.
        let mut burst = tokio::task::JoinSet::new();
        for id in 0..16 {
            let world = world.clone();
            burst.spawn(async move { world.get(&format!("/orders/{id}/invoice")).await });
        }
        while let Some(reply) = burst.join_next().await {
            assert_eq!(reply.unwrap().status, 200);
        }
        let mut last = None;
        for id in 100..120 {
            let reply = world.get(&format!("/orders/{id}/invoice")).await;
            assert_eq!(reply.status, 200, "{reply:?}");
            assert_eq!(reply.json()["invoice"], id.to_string());
            last = Some(reply);
        }
        assert_eq!(world.token_requests(), 1, "{}", world.service.name);
        let billing = world.billing.as_ref().unwrap();
        assert_eq!(billing.token_source().stats().token_requests, 1);
        last.unwrap()
    })
    .await;
}

/// The billing service refuses the token (401 `invalid_token`: wrong audience): 502.
/// The token is dropped once and a new one asked for (too soon after the last, so the
/// refusal stands).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_401_is_502() {
    let setup = || Setup { downstream: Downstream::StandIn("https://elsewhere.test"), ..Setup::default() };
    let [axum, _] = on_both(setup, |world| async move {
        let reply = world.get("/orders/42/invoice").await;
        assert_eq!(world.token_requests(), 1, "the new token may not be asked for this soon");
        reply
    })
    .await;
    assert_error(&axum, 502, "bad_gateway");
    assert!(axum.retry_after.is_none());
}

/// The billing service refuses the token (403 `insufficient_scope`): 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_403_is_502() {
    let setup =
        || Setup { client_scopes: "invoices:read invoices:write", token_scope: "invoices:write", ..Setup::default() };
    let [axum, _] = on_both(setup, |world| async move {
        let reply = world.get("/orders/42/invoice").await;
        // insufficient_scope does not make a new token any better: none is asked for.
        assert_eq!(world.token_requests(), 1);
        reply
    })
    .await;
    assert_error(&axum, 502, "bad_gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_down_is_503_with_retry_after() {
    on_both(Setup::default, |world| async move {
        world.idp.set_token_outage(Some(Outage::Refuse));
        let first = world.get("/orders/42/invoice").await;
        assert_error(&first, 503, "temporarily_unavailable");
        assert!(first.retry_after_secs() >= 1, "{first:?}");
        // During the backoff: at once, with the time left.
        let again = world.get("/orders/42/invoice").await;
        assert_error(&again, 503, "temporarily_unavailable");
        let wait = again.retry_after_secs();
        assert!((1..=60).contains(&wait), "{again:?}");
        assert!(world.token_requests() >= 1);
        // The endpoint recovers: after Retry-After, the call goes through.
        world.idp.set_token_outage(None);
        tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(100)).await;
        let recovered = world.get("/orders/42/invoice").await;
        assert_eq!(recovered.status, 200, "{}: {recovered:?}", world.service.name);
        first
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downstream_unreachable_is_502() {
    let setup = || Setup { downstream: Downstream::Closed, ..Setup::default() };
    let [axum, _] = on_both(setup, |world| async move { world.get("/orders/42/invoice").await }).await;
    assert_error(&axum, 502, "bad_gateway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_billing_url_the_route_is_404() {
    let setup = || Setup { downstream: Downstream::None, ..Setup::default() };
    let [axum, _] = on_both(setup, |world| async move {
        assert!(world.billing.is_none());
        assert_eq!(world.get("/orders").await.status, 200);
        let reply = world.get("/orders/42/invoice").await;
        assert_eq!(world.token_requests(), 0);
        reply
    })
    .await;
    assert_eq!(axum.status, 404, "{axum:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_needs_orders_read() {
    let [axum, _] = on_both(Setup::default, |world| async move {
        let writer = world.idp.token().audience(AUDIENCE).scope("orders:write").sign();
        let anonymous = world.get_with("/orders/42/invoice", None).await;
        assert_eq!(anonymous.status, 401, "{anonymous:?}");
        let reply = world.get_with("/orders/42/invoice", Some(&writer)).await;
        assert_eq!(world.token_requests(), 0, "nothing is called for a refused request");
        reply
    })
    .await;
    assert_eq!(axum.status, 403, "{axum:?}");
    assert_eq!(axum.json()["error"], "insufficient_scope");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_that_is_not_digits_is_404() {
    const PATHS: [&str; 9] = [
        "/orders/abc/invoice",
        "/orders/4x/invoice",
        "/orders/-1/invoice",
        "/orders/1.5/invoice",
        "/orders/4%32/invoice",
        "/orders/42%2F..%2Fadmin/invoice",
        "/orders/42%3Fx=1/invoice",
        "/orders/%20/invoice",
        "/orders/123456789012345678901/invoice",
    ];
    let mut per_adapter: Vec<Vec<Reply>> = Vec::new();
    for adapter in ADAPTERS {
        let world = World::start(adapter, Setup::default()).await;
        let mut replies = Vec::new();
        for path in PATHS {
            let reply = world.get(path).await;
            assert_error(&reply, 404, "not_found");
            replies.push(reply);
        }
        assert_eq!(world.token_requests(), 0, "{}: nothing may be sent", world.service.name);
        // A digit id still goes through.
        assert_eq!(world.get("/orders/42/invoice").await.status, 200);
        per_adapter.push(replies);
    }
    assert_eq!(per_adapter[0], per_adapter[1], "axum and actix differ");
}
