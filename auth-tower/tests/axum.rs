//! auth-tower on an axum router over real loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use auth_core::testkit::{Outage, TestIssuer};
use auth_core::{AccessPolicy, AuthError, Rejection, Validator};
use auth_tower::{AuthLayer, Authenticated, GrpcRejection, TypedClaims};
use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn whoami(Authenticated(p): Authenticated) -> String {
    p.subject().unwrap_or_default().to_string()
}

async fn maybe(p: Option<Authenticated>) -> String {
    p.map_or("anonymous".into(), |Authenticated(p)| p.subject().unwrap_or_default().to_string())
}

#[derive(serde::Deserialize)]
struct Tenant {
    tenant: String,
}

async fn tenant(TypedClaims(t): TypedClaims<Tenant>) -> String {
    t.tenant
}

fn app(validator: &Validator) -> Router {
    Router::new()
        .route("/read", get(whoami).route_layer(AuthLayer::require_scopes(validator, ["orders:read"]).unwrap()))
        .route("/any", get(whoami).route_layer(AuthLayer::require_any_scope(validator, ["a", "orders:read"]).unwrap()))
        .route("/tenant", get(tenant).route_layer(AuthLayer::new(AccessPolicy::new(validator.clone()))))
        .route("/optional", get(maybe).route_layer(AuthLayer::new(AccessPolicy::new(validator.clone()).optional())))
        .route(
            "/optional-required",
            get(whoami).route_layer(AuthLayer::new(AccessPolicy::new(validator.clone()).optional())),
        )
        .route("/no-layer", get(whoami))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/custom",
            get(whoami).route_layer(AuthLayer::new(AccessPolicy::new(validator.clone())).on_rejection(
                |err: &AuthError, r: &Rejection| {
                    http::Response::builder().status(r.status).body(format!("custom: {err}").into()).unwrap()
                },
            )),
        )
        .route(
            "/grpc",
            get(whoami).route_layer(AuthLayer::new(AccessPolicy::new(validator.clone())).on_rejection(GrpcRejection)),
        )
}

async fn get_with(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

fn challenge(r: &reqwest::Response) -> String {
    r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_on_axum() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).realm("orders").build().unwrap();
    let base = serve(app(&validator)).await;
    let good = idp.token().scope("orders:read").claim("tenant", "acme").sign();
    let unscoped = idp.token().sign();

    let r = get_with(&format!("{base}/read"), Some(&good)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "test-client");
    assert_eq!(get_with(&format!("{base}/any"), Some(&good)).await.status(), 200);
    assert_eq!(get_with(&format!("{base}/tenant"), Some(&good)).await.text().await.unwrap(), "acme");

    let r = get_with(&format!("{base}/read"), None).await;
    assert_eq!(r.status(), 401);
    assert_eq!(challenge(&r), r#"Bearer realm="orders""#);

    let r = get_with(&format!("{base}/read"), Some(&unscoped)).await;
    assert_eq!(r.status(), 403);
    assert!(challenge(&r).contains(r#"error="insufficient_scope""#));
    assert!(challenge(&r).contains(r#"scope="orders:read""#));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");

    let r = get_with(&format!("{base}/read"), Some("garbage")).await;
    assert_eq!(r.status(), 401);
    assert!(challenge(&r).starts_with(r#"Bearer realm="orders", error="invalid_token""#));

    // Typed claims that do not fit: 401, not 500.
    let r = get_with(&format!("{base}/tenant"), Some(&unscoped)).await;
    assert_eq!(r.status(), 401);

    // Optional authentication: absent is fine, invalid is not.
    assert_eq!(get_with(&format!("{base}/optional"), None).await.text().await.unwrap(), "anonymous");
    assert_eq!(get_with(&format!("{base}/optional"), Some(&good)).await.text().await.unwrap(), "test-client");
    assert_eq!(get_with(&format!("{base}/optional"), Some("bad.token.here")).await.status(), 401);
    let expired = idp.token().expires_in(-3600).sign();
    assert_eq!(get_with(&format!("{base}/optional"), Some(&expired)).await.status(), 401);
    // Required extractor under an optional layer, no token: 401 with the challenge.
    let r = get_with(&format!("{base}/optional-required"), None).await;
    assert_eq!((r.status(), challenge(&r)), (StatusCode::UNAUTHORIZED, r#"Bearer realm="orders""#.to_string()));

    // Extractor without the layer: a clear 500, not a panic.
    let r = get_with(&format!("{base}/no-layer"), Some(&good)).await;
    assert_eq!(r.status(), 500);
    assert!(r.text().await.unwrap().contains("not configured"));
    assert_eq!(get_with(&format!("{base}/health"), None).await.text().await.unwrap(), "ok");

    // Custom and gRPC rejections.
    let r = get_with(&format!("{base}/custom"), None).await;
    assert_eq!(
        (r.status(), r.text().await.unwrap()),
        (StatusCode::UNAUTHORIZED, "custom: a bearer token is required".into())
    );
    let r = get_with(&format!("{base}/grpc"), Some("garbage")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["grpc-status"], "16");
    assert_eq!(r.headers()["content-type"], "application/grpc");

    // Two Authorization headers, or a header plus a query token: 400. A Basic credential
    // is no bearer token: 401 with a bare challenge.
    let two = reqwest::Client::new()
        .get(format!("{base}/read"))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", format!("Bearer {good}"))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 400);
    let basic = reqwest::Client::new().get(format!("{base}/read")).basic_auth("u", Some("p")).send().await.unwrap();
    assert_eq!(basic.status(), 401);
    assert_eq!(challenge(&basic), r#"Bearer realm="orders""#, "a bare challenge, with the realm");
    let both = get_with(&format!("{base}/read?access_token={good}"), Some(&good)).await;
    assert_eq!(both.status(), 400);
    assert_eq!(get_with(&format!("{base}/read?access_token={good}"), None).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_unavailable_is_503_with_retry_after() {
    let idp = TestIssuer::start().await.unwrap();
    idp.set_outage(Some(Outage::Refuse)).await.unwrap();
    let validator =
        Validator::builder().issuer(idp.jwks_issuer()).unknown_kid_cooldown(Duration::from_secs(5)).build().unwrap();
    let base = serve(app(&validator)).await;
    let r = get_with(&format!("{base}/read"), Some(&idp.token().scope("orders:read").sign())).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn plain_tower_service() {
    use tower::{ServiceBuilder, ServiceExt};
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    let service = ServiceBuilder::new().layer(AuthLayer::new(AccessPolicy::new(validator))).service_fn(
        |req: http::Request<String>| async move {
            let who = req.extensions().get::<auth_core::Principal>().and_then(|p| p.subject().map(str::to_owned));
            Ok::<_, std::convert::Infallible>(http::Response::new(who.unwrap_or_default()))
        },
    );
    let token = idp.token().sign();
    let req = http::Request::builder().header("authorization", format!("Bearer {token}")).body(String::new()).unwrap();
    let response = service.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let req = http::Request::builder().body(String::new()).unwrap();
    assert_eq!(service.oneshot(req).await.unwrap().status(), 401);
}

/// Extractor refusals are answered by the layer's `on_rejection`: a gRPC route answers
/// gRPC (status 16), a custom route its own body, never the default JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractor_rejections_go_through_the_layers_on_rejection() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    let grpc = AuthLayer::new(AccessPolicy::new(validator.clone()).optional()).on_rejection(GrpcRejection);
    let custom = AuthLayer::new(AccessPolicy::new(validator.clone())).on_rejection(|err: &AuthError, r: &Rejection| {
        http::Response::builder().status(r.status).body(format!("custom: {}", err.reason().as_str()).into()).unwrap()
    });
    let base = serve(
        Router::new()
            .route("/grpc-tenant", get(tenant).route_layer(grpc.clone()))
            .route("/grpc-whoami", get(whoami).route_layer(grpc))
            .route("/custom-tenant", get(tenant).route_layer(custom)),
    )
    .await;
    let client = reqwest::Client::new();
    let no_tenant = idp.token().sign();
    let r = client.get(format!("{base}/grpc-tenant")).bearer_auth(&no_tenant).send().await.unwrap();
    assert_eq!((r.status(), r.headers()["content-type"].to_str().unwrap()), (StatusCode::OK, "application/grpc"));
    assert_eq!(r.headers()["grpc-status"], "16");
    let r = client.get(format!("{base}/grpc-whoami")).send().await.unwrap();
    assert_eq!(
        (r.headers()["content-type"].to_str().unwrap(), r.headers()["grpc-status"].to_str().unwrap()),
        ("application/grpc", "16")
    );
    let r = client.get(format!("{base}/custom-tenant")).bearer_auth(&no_tenant).send().await.unwrap();
    assert_eq!((r.status(), r.text().await.unwrap()), (StatusCode::UNAUTHORIZED, "custom: invalid_claim".to_owned()));
    let m = validator.metrics();
    assert_eq!(m.rejected(auth_core::RejectReason::InvalidClaim), 2, "each extractor refusal counted once");
    assert_eq!(m.rejected(auth_core::RejectReason::MissingToken), 1);
}

/// Through the tower service, on one thread: a miss parses the header, looks the cache
/// up, splits and hashes the token once each; a hit does not split.
#[tokio::test(flavor = "current_thread")]
async fn the_layer_does_each_piece_of_work_once() {
    use auth_core::testkit::take_work_counts;
    use tower::Layer as _;
    use tower::ServiceExt as _;

    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    validator.warm_up().await.unwrap();
    let service = AuthLayer::new(AccessPolicy::new(validator.clone())).layer(tower::service_fn(
        |_request: http::Request<()>| async { Ok::<_, std::convert::Infallible>(http::Response::new(())) },
    ));
    let token = idp.token().sign();
    let request =
        || http::Request::builder().uri("/orders").header("authorization", format!("Bearer {token}")).body(()).unwrap();
    take_work_counts();
    let response = service.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), 200);
    let miss = take_work_counts();
    assert_eq!((miss.header_parses, miss.cache_lookups, miss.token_splits, miss.token_hashes), (1, 1, 1, 1));
    service.clone().oneshot(request()).await.unwrap();
    let hit = take_work_counts();
    assert_eq!((hit.header_parses, hit.cache_lookups, hit.token_splits, hit.token_hashes), (1, 1, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_rules_answer_403_forbidden_and_the_handler_sees_the_chain() {
    use auth_tower::{ActorMatch, ActorRequirement, Delegation};
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    let rule = ActorRequirement::one_of([ActorMatch::client_id("orders-service")]);
    let layer = AuthLayer::new(AccessPolicy::new(validator).require_actor(rule));
    let app = Router::new().route(
        "/invoices",
        get(|Delegation(chain): Delegation| async move {
            chain.iter().filter_map(|a| a.client_id.clone()).collect::<Vec<_>>().join(",")
        })
        .route_layer(layer),
    );
    let base = serve(app).await;
    let client = reqwest::Client::new();
    let allowed = idp.token().claim("act", serde_json::json!({"sub": "orders", "client_id": "orders-service"})).sign();
    let response = client.get(format!("{base}/invoices")).bearer_auth(allowed).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "orders-service");
    let other = idp.token().claim("act", serde_json::json!({"sub": "mallory"})).sign();
    let response = client.get(format!("{base}/invoices")).bearer_auth(other).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("www-authenticate").is_none());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "forbidden");
}
