//! The actix-web adapter over real loopback HTTP: an actix server on its own thread, the
//! in-process issuer for keys and tokens, reqwest as the client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use auth_actix::{
    AccessPolicy, AuthError, AuthMiddleware, Authenticated, MaybeAuthenticated, Rejection, TypedClaims, Validator,
    rejection_response,
};
use auth_core::Algorithm;
use auth_core::testkit::{DEFAULT_CLIENT, Outage, TestIssuer, TestKey};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Harness

/// An actix server on a loopback port, on its own thread and actix system; stopped on drop.
struct Server {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl Server {
    fn start<F>(configure: F) -> Server
    where
        F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || App::new().configure(configure.clone()))
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(0)
                    .bind(("127.0.0.1", 0))
                    .unwrap();
                let addr = server.addrs()[0];
                let server = server.run();
                tx.send((addr, server.handle())).unwrap();
                server.await
            })
        });
        let (addr, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Server { addr, handle }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The stop command is sent at once; there is nothing to wait for here.
        drop(self.handle.stop(false));
    }
}

/// What a client sees.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    challenge: Option<String>,
    retry_after: Option<String>,
    content_type: Option<String>,
    body: Value,
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.timeout(Duration::from_secs(10)).send().await.unwrap();
    let header =
        |name| response.headers().get(name).map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned());
    let (status, challenge, retry_after) = (response.status(), header(WWW_AUTHENTICATE), header(RETRY_AFTER));
    let content_type = header(reqwest::header::CONTENT_TYPE);
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, challenge, retry_after, content_type, body }
}

async fn get(url: String, authorization: Option<&str>) -> Reply {
    let mut request = reqwest::Client::new().get(url);
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    send(request).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An issuer with an ES256 key: much quicker to generate than RSA in a debug build.
/// (auth-core's own tests cover every algorithm; one test here uses the RS256 default.)
async fn issuer() -> TestIssuer {
    TestIssuer::with_keys(vec![TestKey::generate(Algorithm::ES256, "es256-1")]).await.unwrap()
}

/// A validator with short timings, so that outages can be watched in a test.
fn validator(idp: &TestIssuer) -> Validator {
    Validator::builder()
        .issuer(idp.jwks_issuer())
        .unknown_kid_cooldown(Duration::from_millis(200))
        .fetch_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

fn read_orders(validator: &Validator) -> AuthMiddleware {
    AuthMiddleware::require_scopes(validator, ["orders:read"]).unwrap()
}

/// Handlers answer with what they were given, as JSON.
async fn whoami(caller: Authenticated) -> HttpResponse {
    let scopes: Vec<&str> = caller.scopes().iter().collect();
    HttpResponse::Ok().json(json!({ "sub": caller.subject(), "client": caller.claims().client(), "scopes": scopes }))
}

async fn maybe(MaybeAuthenticated(caller): MaybeAuthenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "sub": caller.as_ref().and_then(|p| p.subject()) }))
}

async fn option(caller: Option<Authenticated>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "sub": caller.as_ref().and_then(|p| p.subject()) }))
}

#[derive(serde::Deserialize)]
struct TenantClaims {
    tenant: String,
    client_id: String,
}

async fn tenant(TypedClaims(claims): TypedClaims<TenantClaims>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "tenant": claims.tenant, "client": claims.client_id }))
}

/// `GET /orders` behind `orders:read`.
fn orders_app(validator: Validator) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let read = read_orders(&validator);
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(web::resource("/orders").wrap(read.clone()).get(whoami));
    }
}

fn assert_rejected(reply: &Reply, status: u16, error: &str, challenge: &str) {
    assert_eq!(reply.status.as_u16(), status, "{reply:?}");
    assert_eq!(reply.challenge.as_deref(), Some(challenge), "{reply:?}");
    assert_eq!(reply.content_type.as_deref(), Some("application/json"), "{reply:?}");
    assert_eq!(reply.body["error"], error, "{reply:?}");
    assert!(reply.body["error_description"].is_string(), "{reply:?}");
}

// ---------------------------------------------------------------------------------------
// Required policy

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_is_401_with_a_bare_bearer_challenge() {
    let idp = issuer().await;
    let server = Server::start(orders_app(validator(&idp)));
    let reply = get(server.url("/orders"), None).await;
    assert_rejected(&reply, 401, "unauthorized", "Bearer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_schemes_are_401_bare_and_several_tokens_400_invalid_request() {
    let idp = issuer().await;
    let server = Server::start(orders_app(validator(&idp)));
    let token = idp.token().scope("orders:read").sign();

    let reply = get(server.url("/orders"), Some("Basic dXNlcjpwYXNz")).await;
    assert_rejected(&reply, 401, "unauthorized", "Bearer");
    let reply = get(server.url("/orders"), Some("Bearer a b")).await;
    assert_rejected(
        &reply,
        401,
        "invalid_token",
        r#"Bearer error="invalid_token", error_description="the token is malformed: the bearer token is not a b64token""#,
    );

    let two = reqwest::Client::new()
        .get(server.url("/orders"))
        .header(AUTHORIZATION, bearer(&token))
        .header(AUTHORIZATION, bearer(&token));
    let reply = send(two).await;
    assert_rejected(
        &reply,
        400,
        "invalid_request",
        r#"Bearer error="invalid_request", error_description="more than one Authorization header""#,
    );

    // A header and a query token: one method per request (RFC 6750 §2), even when query
    // tokens are not accepted.
    let reply = get(server.url(&format!("/orders?access_token={token}")), Some(&bearer(&token))).await;
    assert_rejected(
        &reply,
        400,
        "invalid_request",
        r#"Bearer error="invalid_request", error_description="the request carries more than one token""#,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_tokens_are_401_invalid_token_and_never_echoed() {
    let idp = issuer().await;
    let server = Server::start(orders_app(validator(&idp)));
    let cases = [
        ("garbage.token.here".to_owned(), "the token is malformed"),
        ("not-a-jwt".to_owned(), "the token is malformed"),
        (idp.token().scope("orders:read").expires_in(-100).sign(), "the token has expired"),
        (idp.token().scope("orders:read").audience("someone-else").sign(), "the token is not meant for this audience"),
    ];
    for (token, description) in cases {
        let reply = get(server.url("/orders"), Some(&bearer(&token))).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}: {reply:?}");
        let challenge = reply.challenge.clone().unwrap_or_default();
        assert!(challenge.starts_with(r#"Bearer error="invalid_token", error_description=""#), "{challenge}");
        assert_eq!(reply.body["error"], "invalid_token");
        let text = reply.body["error_description"].as_str().unwrap_or_default();
        assert!(text.starts_with(description), "{token}: {text}");
        assert!(!challenge.contains(&token) && !reply.body.to_string().contains(&token), "the token is never echoed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scope_is_403_naming_the_scope() {
    let idp = issuer().await;
    let server = Server::start(orders_app(validator(&idp)));
    let token = idp.token().scope("orders:write profile").sign();
    let reply = get(server.url("/orders"), Some(&bearer(&token))).await;
    assert_rejected(
        &reply,
        403,
        "insufficient_scope",
        r#"Bearer error="insufficient_scope", error_description="the token lacks the required scope: orders:read", scope="orders:read""#,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_reaches_the_handler_with_its_principal() {
    let idp = TestIssuer::start().await.unwrap(); // RS256, the common case
    let server = Server::start(orders_app(validator(&idp)));
    let token = idp.token().scope("orders:read orders:write").sign();
    let reply = get(server.url("/orders"), Some(&bearer(&token))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.challenge, None);
    assert_eq!(
        reply.body,
        json!({ "sub": DEFAULT_CLIENT, "client": DEFAULT_CLIENT, "scopes": ["orders:read", "orders:write"] })
    );
    // Scheme is case-insensitive.
    let reply = get(server.url("/orders"), Some(&format!("bearer {token}"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_never_reach_the_handler() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let idp = issuer().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let read = read_orders(&validator(&idp));
    let counter = calls.clone();
    let server = Server::start(move |cfg: &mut web::ServiceConfig| {
        let counter = counter.clone();
        cfg.service(web::resource("/orders").wrap(read.clone()).get(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                HttpResponse::Ok().finish()
            }
        }));
    });
    for auth in [None, Some("Basic abc".to_owned()), Some(bearer("a.b.c")), Some(bearer(&idp.token().sign()))] {
        let reply = get(server.url("/orders"), auth.as_deref()).await;
        assert!(reply.status.is_client_error(), "{reply:?}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let reply = get(server.url("/orders"), Some(&bearer(&idp.token().scope("orders:read").sign()))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Per-route policies

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_scope_and_resource_has_its_own_policy() {
    let idp = issuer().await;
    let validator = validator(&idp);
    let read = read_orders(&validator);
    let write = AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:write"]).unwrap());
    let admin = AuthMiddleware::require_any_scope(&validator, ["admin", "root"]).unwrap();
    let server = Server::start(move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::resource("/orders")
                .route(web::get().to(whoami).wrap(read.clone()))
                .route(web::post().to(whoami).wrap(write.clone())),
        )
        .service(web::scope("/admin").wrap(admin.clone()).route("/stats", web::get().to(whoami)))
        .route("/public", web::get().to(|| async { HttpResponse::Ok().body("hello") }));
    });
    let reader = bearer(&idp.token().scope("orders:read").sign());
    let writer = bearer(&idp.token().scope("orders:write").sign());
    let root = bearer(&idp.token().scope("root").sign());
    let client = reqwest::Client::new();

    assert_eq!(get(server.url("/orders"), Some(&reader)).await.status, StatusCode::OK);
    let reply = get(server.url("/orders"), Some(&writer)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.challenge.unwrap_or_default().ends_with(r#"scope="orders:read""#));

    let reply = send(client.post(server.url("/orders")).header(AUTHORIZATION, &reader)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.challenge.unwrap_or_default().ends_with(r#"scope="orders:write""#));
    let reply = send(client.post(server.url("/orders")).header(AUTHORIZATION, &writer)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");

    let reply = get(server.url("/admin/stats"), Some(&reader)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.challenge.unwrap_or_default().ends_with(r#"scope="admin root""#));
    assert_eq!(get(server.url("/admin/stats"), Some(&root)).await.status, StatusCode::OK);
    assert_eq!(get(server.url("/admin/stats"), None).await.status, StatusCode::UNAUTHORIZED);

    assert_eq!(get(server.url("/public"), None).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_wide_middleware_preserves_the_inner_body_and_status() {
    let idp = issuer().await;
    let read = read_orders(&validator(&idp));
    let server = Server::start(move |cfg: &mut web::ServiceConfig| {
        cfg.service(web::scope("").wrap(read.clone()).route(
            "/stream",
            web::get().to(|| async {
                let chunks = ["a", "b", "c"].map(|c| Ok::<_, actix_web::Error>(web::Bytes::from_static(c.as_bytes())));
                HttpResponse::Accepted().streaming(futures_util::stream::iter(chunks))
            }),
        ));
    });
    let token = bearer(&idp.token().scope("orders:read").sign());
    let reply = get(server.url("/stream"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.body, Value::String("abc".into()));
    // An unknown path behind the wrapped scope is still authenticated first.
    assert_eq!(get(server.url("/nowhere"), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(get(server.url("/nowhere"), Some(&token)).await.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------
// Optional policy and the extractors

fn optional_app(validator: Validator) -> impl Fn(&mut web::ServiceConfig) + Send + Clone + 'static {
    let anyone = AuthMiddleware::new(AccessPolicy::new(validator).optional());
    move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::scope("/optional")
                .wrap(anyone.clone())
                .route("/maybe", web::get().to(maybe))
                .route("/option", web::get().to(option))
                .route("/required", web::get().to(whoami))
                .route("/tenant", web::get().to(tenant)),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_policy_without_token_reaches_the_handler_as_none() {
    let idp = issuer().await;
    let server = Server::start(optional_app(validator(&idp)));
    for path in ["/optional/maybe", "/optional/option"] {
        let reply = get(server.url(path), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
        assert_eq!(reply.body, json!({ "sub": null }), "{path}");

        let token = bearer(&idp.token().sign());
        let reply = get(server.url(path), Some(&token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {reply:?}");
        assert_eq!(reply.body, json!({ "sub": DEFAULT_CLIENT }), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_policy_never_treats_an_invalid_token_as_absent() {
    let idp = issuer().await;
    let server = Server::start(optional_app(validator(&idp)));
    let expired = bearer(&idp.token().expires_in(-100).sign());
    for path in ["/optional/maybe", "/optional/option"] {
        let reply = get(server.url(path), Some(&expired)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}: {reply:?}");
        assert_eq!(reply.body["error"], "invalid_token");
        // Credentials of another scheme are present-but-unusable: 401, never anonymous.
        let reply = get(server.url(path), Some("Basic abc")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}: {reply:?}");
        assert_eq!(reply.challenge.as_deref(), Some("Bearer"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_behind_an_optional_policy_demands_a_token() {
    let idp = issuer().await;
    let server = Server::start(optional_app(validator(&idp)));
    let reply = get(server.url("/optional/required"), None).await;
    assert_rejected(&reply, 401, "unauthorized", "Bearer");
    let reply = get(server.url("/optional/tenant"), None).await;
    assert_rejected(&reply, 401, "unauthorized", "Bearer");
    let reply = get(server.url("/optional/required"), Some(&bearer(&idp.token().sign()))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_claims_deserialize_or_reject_with_a_safe_description() {
    let idp = issuer().await;
    let server = Server::start(optional_app(validator(&idp)));
    let token = idp.token().claim("tenant", "acme").sign();
    let reply = get(server.url("/optional/tenant"), Some(&bearer(&token))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!({ "tenant": "acme", "client": DEFAULT_CLIENT }));

    // A claim the handler's type needs has the wrong type: 401, the value is not echoed.
    let token = idp.token().claim("tenant", 42).sign();
    let reply = get(server.url("/optional/tenant"), Some(&bearer(&token))).await;
    assert_rejected(
        &reply,
        401,
        "invalid_token",
        r#"Bearer error="invalid_token", error_description="the token's claims do not have the expected shape""#,
    );
    // And missing entirely.
    let token = idp.token().sign();
    let reply = get(server.url("/optional/tenant"), Some(&bearer(&token))).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(!reply.body.to_string().contains("tenant"), "serde's message stays in the log: {reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractors_without_the_middleware_are_a_clear_500() {
    let idp = issuer().await;
    let server = Server::start(|cfg: &mut web::ServiceConfig| {
        cfg.route("/authenticated", web::get().to(whoami))
            .route("/maybe", web::get().to(maybe))
            .route("/tenant", web::get().to(tenant))
            .route("/option", web::get().to(option));
    });
    let token = bearer(&idp.token().claim("tenant", "acme").sign());
    let want = json!({
        "error": "server_error",
        "error_description": "authentication middleware is not configured for this route",
    });
    for path in ["/authenticated", "/maybe", "/tenant"] {
        for auth in [None, Some(token.as_str())] {
            let reply = get(server.url(path), auth).await;
            assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {reply:?}");
            assert_eq!(reply.content_type.as_deref(), Some("application/json"));
            assert_eq!(reply.body, want, "{path}");
        }
    }
    // actix-web's own Option<T> extractor turns every error into None (documented); the
    // principal is never made up, the handler sees an anonymous request.
    let reply = get(server.url("/option"), Some(&token)).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, json!({ "sub": null })));
}

// ---------------------------------------------------------------------------------------
// Outages, error handler, realm, query tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_unavailable_from_a_cold_start_is_503_with_retry_after_then_recovers() {
    let idp = issuer().await;
    idp.set_outage(Some(Outage::Refuse)).await.unwrap();
    let server = Server::start(orders_app(validator(&idp)));
    let token = bearer(&idp.token().scope("orders:read").sign());
    for _ in 0..2 {
        // The first request tries the fetch, the second fails fast inside the cooldown.
        let reply = get(server.url("/orders"), Some(&token)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply:?}");
        assert_eq!(
            reply.challenge.as_deref(),
            Some(r#"Bearer error_description="the issuer's signing keys are temporarily unavailable""#)
        );
        assert_eq!(reply.body["error"], "temporarily_unavailable");
        let retry_after: u64 = reply.retry_after.as_deref().unwrap_or_default().parse().unwrap();
        assert_eq!(retry_after, 1, "the cooldown (200 ms) rounded up to a whole second");
    }
    idp.set_outage(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await; // past the cooldown
    let reply = get(server.url("/orders"), Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "recovers without a restart: {reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_error_handler_shapes_every_rejection() {
    let idp = issuer().await;
    let validator = validator(&idp);
    let handler = |err: &AuthError, rejection: &Rejection| {
        let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(rejection.status).unwrap())
            .insert_header(("WWW-Authenticate", rejection.www_authenticate()))
            .insert_header(("X-Reason", err.reason().as_str()))
            .body(format!("nope: {}", err.body_code()));
        if rejection.status == 503 {
            response = rejection_response(rejection);
        }
        response
    };
    let read = read_orders(&validator).on_rejection(handler);
    let anyone = AuthMiddleware::new(AccessPolicy::new(validator).optional()).on_rejection(handler);
    let server = Server::start(move |cfg: &mut web::ServiceConfig| {
        cfg.service(web::resource("/orders").wrap(read.clone()).get(whoami))
            .service(web::resource("/optional").wrap(anyone.clone()).get(whoami));
    });
    let client = reqwest::Client::new();

    let response = client.get(server.url("/orders")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["x-reason"], "missing_token");
    assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
    assert_eq!(response.text().await.unwrap(), "nope: unauthorized");

    let token = bearer(&idp.token().scope("profile").sign());
    let response = client.get(server.url("/orders")).header(AUTHORIZATION, token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(response.headers()["x-reason"], "insufficient_scope");
    assert_eq!(response.text().await.unwrap(), "nope: insufficient_scope");

    // The extractor's rejection goes through the same handler.
    let response = client.get(server.url("/optional")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["x-reason"], "missing_token");
    assert_eq!(response.text().await.unwrap(), "nope: unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_realm_is_in_every_challenge() {
    let idp = issuer().await;
    let validator = Validator::builder().issuer(idp.jwks_issuer()).realm("orders").build().unwrap();
    let server = Server::start(orders_app(validator));
    let reply = get(server.url("/orders"), None).await;
    assert_rejected(&reply, 401, "unauthorized", r#"Bearer realm="orders""#);
    let reply = get(server.url("/orders"), Some(&bearer(&idp.token().sign()))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.challenge.unwrap_or_default().starts_with(r#"Bearer realm="orders", error="insufficient_scope""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_tokens_only_when_the_policy_allows_them() {
    let idp = issuer().await;
    let validator = validator(&idp);
    let strict = read_orders(&validator);
    let lenient =
        AuthMiddleware::new(AccessPolicy::new(validator).require_scopes(["orders:read"]).unwrap().allow_query_token());
    let server = Server::start(move |cfg: &mut web::ServiceConfig| {
        cfg.service(web::resource("/strict").wrap(strict.clone()).get(whoami))
            .service(web::resource("/lenient").wrap(lenient.clone()).get(whoami));
    });
    let token = idp.token().scope("orders:read").sign();
    let reply = get(server.url(&format!("/strict?access_token={token}")), None).await;
    assert_rejected(&reply, 401, "unauthorized", "Bearer");
    let reply = get(server.url(&format!("/lenient?page=2&access_token={token}")), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body["sub"], DEFAULT_CLIENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_middlewares_each_decide_and_the_innermost_feeds_the_extractors() {
    let idp = issuer().await;
    let validator = validator(&idp);
    let anyone = AuthMiddleware::new(AccessPolicy::new(validator.clone()).optional());
    let read = read_orders(&validator);
    let server = Server::start(move |cfg: &mut web::ServiceConfig| {
        cfg.service(
            web::scope("/api")
                .wrap(anyone.clone())
                .route("/catalogue", web::get().to(maybe))
                .service(web::resource("/orders").wrap(read.clone()).get(whoami)),
        );
    });
    assert_eq!(get(server.url("/api/catalogue"), None).await.body, json!({ "sub": null }));
    let reply = get(server.url("/api/orders"), None).await;
    assert_rejected(&reply, 401, "unauthorized", "Bearer");
    let reply = get(server.url("/api/orders"), Some(&bearer(&idp.token().sign()))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = get(server.url("/api/orders"), Some(&bearer(&idp.token().scope("orders:read").sign()))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["scopes"], json!(["orders:read"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actor_rules_answer_403_forbidden_and_the_handler_sees_the_chain() {
    use auth_actix::{ActorMatch, ActorRequirement, Delegation};
    let idp = issuer().await;
    let rule = ActorRequirement::one_of([ActorMatch::client_id("orders-service")]);
    let policy = AccessPolicy::new(validator(&idp)).require_actor(rule);
    let middleware = AuthMiddleware::new(policy);
    let server = Server::start(move |cfg: &mut web::ServiceConfig| {
        cfg.service(web::resource("/invoices").wrap(middleware.clone()).get(
            |Delegation(chain): Delegation| async move {
                HttpResponse::Ok().json(chain.iter().map(|a| a.client_id.clone()).collect::<Vec<_>>())
            },
        ));
    });
    let allowed = idp.token().claim("act", json!({"sub": "orders", "client_id": "orders-service"})).sign();
    let reply = get(server.url("/invoices"), Some(&bearer(&allowed))).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, json!(["orders-service"])));
    let other = idp.token().claim("act", json!({"sub": "mallory", "client_id": "mallory"})).sign();
    let reply = get(server.url("/invoices"), Some(&bearer(&other))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.challenge, None, "no RFC 6750 challenge");
    assert_eq!(reply.body["error"], "forbidden");
    assert!(reply.body["error_description"].as_str().unwrap().contains("client_id orders-service"));
}
