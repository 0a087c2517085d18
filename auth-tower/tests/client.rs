//! The client layer over real loopback HTTP: a hyper-util client and a tonic channel
//! calling services that check the token with auth-tower, tokens from the test issuer.
#![cfg(feature = "client")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_core::client::{ClientAuth, TargetToken, TokenSource, TokenTarget};
use auth_core::testkit::{Outage, TestClient, TestIssuer};
use auth_core::{Issuer, Validator};
use auth_tower::client::{AttachTokenLayer, BoxError, NoToken};
use auth_tower::{AuthLayer, Authenticated, GrpcRejection};
use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};

const BILLING: &str = "https://billing.test";

struct World {
    idp: TestIssuer,
    token: TargetToken,
    downstream: String,
    /// The downstream refuses this many more requests as `invalid_token`.
    refuse: Arc<AtomicUsize>,
}

async fn world() -> World {
    let idp = TestIssuer::start().await.unwrap();
    idp.register_client(TestClient::secret("orders", "secret").scopes("invoices:read health:read"));
    let tokens = TokenSource::builder("orders")
        .issuer(idp.issuer())
        .client_auth(ClientAuth::client_secret_basic("secret"))
        .min_lifetime(Duration::from_millis(1))
        .build()
        .unwrap();
    let token = tokens.target(TokenTarget::resource(BILLING).scope("invoices:read")).unwrap();
    let validator = Validator::builder().issuer(Issuer::discovery(idp.issuer()).audience(BILLING)).build().unwrap();
    let refuse = Arc::new(AtomicUsize::new(0));
    let gate = refuse.clone();
    let app = Router::new().route(
        "/invoices",
        post(move |Authenticated(caller): Authenticated, body: String| {
            let gate = gate.clone();
            async move {
                if gate.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                    let challenge = [("www-authenticate", r#"Bearer error="invalid_token""#)];
                    return (StatusCode::UNAUTHORIZED, challenge, String::new());
                }
                (StatusCode::OK, [("x-caller", "")], format!("{}:{body}", caller.claims().client().unwrap_or("?")))
            }
        })
        .route_layer(AuthLayer::require_scopes(&validator, ["invoices:read"]).unwrap()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    World { idp, token, downstream: format!("http://{addr}/invoices"), refuse }
}

fn post_to(url: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::post(url).body(Full::new(Bytes::from_static(body.as_bytes()))).unwrap()
}

async fn text(response: http::Response<hyper::body::Incoming>) -> (StatusCode, String) {
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hyper_client_carries_the_token_and_asks_once() {
    let w = world().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new().layer(AttachTokenLayer::new(w.token.clone())).service(client);
    for _ in 0..10 {
        let response = service.ready().await.unwrap().call(post_to(&w.downstream, "42")).await.unwrap();
        assert_eq!(text(response).await, (StatusCode::OK, "orders:42".into()));
    }
    assert_eq!(w.idp.token_requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_token_drops_the_token_and_replays_a_buffered_request_once() {
    let w = world().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new().layer(AttachTokenLayer::new(w.token.clone())).service(client);
    service.ready().await.unwrap().call(post_to(&w.downstream, "1")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    w.refuse.store(1, Ordering::SeqCst);
    let response = service.ready().await.unwrap().call(post_to(&w.downstream, "2")).await.unwrap();
    assert_eq!(text(response).await, (StatusCode::OK, "orders:2".into()), "replayed with a new token");
    assert_eq!(w.idp.token_requests(), 2);
    // A downstream that refuses every token gets one new token per cooldown, not one per call.
    w.refuse.store(100, Ordering::SeqCst);
    for _ in 0..5 {
        let response = service.ready().await.unwrap().call(post_to(&w.downstream, "3")).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(w.idp.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_body_is_never_replayed() {
    let w = world().await;
    type Streaming = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;
    let client = Client::builder(TokioExecutor::new()).build_http::<Streaming>();
    let mut service = ServiceBuilder::new().layer(AttachTokenLayer::new(w.token.clone())).service(client);
    let request = || Request::post(&w.downstream).body(Full::new(Bytes::from_static(b"s")).boxed()).unwrap();
    service.ready().await.unwrap().call(request()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    w.refuse.store(1, Ordering::SeqCst);
    let response = service.ready().await.unwrap().call(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the 401 comes back; the body is gone");
    // The token was still dropped: the next call carries a new one.
    let response = service.ready().await.unwrap().call(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(w.idp.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_the_request_is_not_sent() {
    let w = world().await;
    w.idp.set_token_outage(Some(Outage::Status(503)));
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new().layer(AttachTokenLayer::new(w.token.clone())).service(client);
    let err: BoxError = service.ready().await.unwrap().call(post_to(&w.downstream, "1")).await.unwrap_err();
    let no_token = err.downcast_ref::<NoToken>().expect("a NoToken error");
    assert!(!no_token.token_error().is_configuration());
    assert!(no_token.token_error().retry_after().is_some());
}

/// A tonic health service behind the layer, requiring `health:read` (gRPC statuses).
async fn health_server(validator: &Validator) -> std::net::SocketAddr {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_serving::<tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>>().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = AuthLayer::require_scopes(validator, ["health:read"]).unwrap().on_rejection(GrpcRejection);
    tokio::spawn(async move {
        let _keep = reporter;
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

/// A health client over a tonic channel to `addr`, with `token`'s token on each call.
async fn health_client(
    addr: std::net::SocketAddr,
    token: auth_core::client::TargetToken,
) -> tonic_health::pb::health_client::HealthClient<auth_tower::client::AttachToken<tonic::transport::Channel>> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    tonic_health::pb::health_client::HealthClient::new(
        ServiceBuilder::new().layer(AttachTokenLayer::new(token)).service(channel),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_channel_carries_the_token_and_reports_unavailable_without_one() {
    let w = world().await;
    let validator = Validator::builder().issuer(Issuer::discovery(w.idp.issuer()).audience(BILLING)).build().unwrap();
    let addr = health_server(&validator).await;
    let tokens = TokenSource::builder("orders")
        .issuer(w.idp.issuer())
        .client_auth(ClientAuth::client_secret_basic("secret"))
        .build()
        .unwrap();
    let target = tokens.target(TokenTarget::resource(BILLING).scope("health:read")).unwrap();
    let mut client = health_client(addr, target).await;
    let request = || tonic_health::pb::HealthCheckRequest { service: String::new() };
    let answer = client.check(request()).await.unwrap().into_inner();
    assert_eq!(answer.status, 1, "SERVING");
    // A token of another target has no health:read: the server says PERMISSION_DENIED.
    let status = health_client(addr, w.token.clone()).await.check(request()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    // No token at all: UNAVAILABLE, and the call is not sent.
    w.idp.set_token_outage(Some(Outage::Refuse));
    let fresh = TokenSource::builder("orders")
        .issuer(w.idp.issuer())
        .client_auth(ClientAuth::client_secret_basic("secret"))
        .build()
        .unwrap()
        .target(TokenTarget::resource(BILLING).scope("health:read"))
        .unwrap();
    let status = health_client(addr, fresh).await.check(request()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unauthenticated_drops_the_token_so_the_next_call_carries_a_new_one() {
    use auth_core::Algorithm;
    use auth_core::testkit::TestKey;
    let w = world().await;
    let validator = Validator::builder()
        .issuer(Issuer::discovery(w.idp.issuer()).audience(BILLING))
        .unknown_kid_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let addr = health_server(&validator).await;
    let tokens = TokenSource::builder("orders")
        .issuer(w.idp.issuer())
        .client_auth(ClientAuth::client_secret_basic("secret"))
        .min_lifetime(Duration::from_millis(1))
        .build()
        .unwrap();
    let target = tokens.target(TokenTarget::resource(BILLING).scope("health:read")).unwrap();
    let mut client = health_client(addr, target).await;
    let request = || tonic_health::pb::HealthCheckRequest { service: String::new() };
    client.check(request()).await.unwrap();
    // The issuer rotates and withdraws the key that signed the cached token.
    w.idp.rotate(TestKey::generate(Algorithm::RS256, "rs256-2"));
    w.idp.unpublish("rs256-1");
    validator.warm_up().await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let status = client.check(request()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "a gRPC body is a stream: not replayed");
    let answer = client.check(request()).await.unwrap().into_inner();
    assert_eq!(answer.status, 1, "the next call carries a new token");
    assert_eq!(w.idp.token_requests(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_behalf_of_attaches_a_token_exchanged_for_the_caller_never_the_callers_own() {
    use auth_core::client::TokenSourceError;
    use auth_core::{AccessPolicy, ActorRequirement, InboundToken};
    use auth_tower::client::OnBehalfOfLayer;
    let w = world().await;
    // The caller's token, as the inbound layer of a keep_inbound_token route keeps it.
    let inbound_validator = Validator::builder().issuer(w.idp.jwks_issuer()).build().unwrap();
    let inbound_policy = AccessPolicy::new(inbound_validator).keep_inbound_token();
    let caller_token = w.idp.token().claim("sub", "customer-app").sign();
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {caller_token}").parse().unwrap());
    let admission = match inbound_policy.decide(&auth_core::RequestContext::new("GET", "/", &headers)) {
        auth_core::Decision::Verify(v) => v.run().await.unwrap(),
        auth_core::Decision::Admit(a) => a,
        auth_core::Decision::Refuse(r) => panic!("{r:?}"),
    };
    let caller: InboundToken = admission.inbound_token.unwrap();
    // Billing: only delegated tokens, and it says who it saw.
    let validator = Validator::builder().issuer(Issuer::discovery(w.idp.issuer()).audience(BILLING)).build().unwrap();
    let policy = AccessPolicy::new(validator).require_actor(ActorRequirement::any());
    let app = Router::new().route(
        "/whoami",
        axum::routing::get(|Authenticated(p): Authenticated| async move {
            format!(
                "{} via {}",
                p.subject().unwrap_or("?"),
                p.actor().and_then(|a| a.subject.clone()).unwrap_or_default()
            )
        })
        .route_layer(AuthLayer::new(policy)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/whoami", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let tokens = TokenSource::builder("orders")
        .issuer(w.idp.issuer())
        .client_auth(ClientAuth::client_secret_basic("secret"))
        .build()
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut service = ServiceBuilder::new()
        .layer(OnBehalfOfLayer::new(tokens.exchange(None), TokenTarget::resource(BILLING)))
        .service(client);
    let mut request = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
    request.extensions_mut().insert(caller);
    let response = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(text(response).await, (StatusCode::OK, "customer-app via orders".into()));
    // No inbound token on the call: nothing is sent, no token of the service's own is used.
    let before = w.idp.token_requests();
    let bare = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
    let err = service.ready().await.unwrap().call(bare).await.unwrap_err();
    assert_eq!(err.downcast_ref::<NoToken>().unwrap().token_error(), &TokenSourceError::MissingSubject);
    assert_eq!(w.idp.token_requests(), before);
}
