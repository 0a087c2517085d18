//! Token exchange (RFC 8693) against a real third-party OpenID provider
//! (panva/oidc-provider 9 with the launcher's token-exchange grant, under Node.js, on
//! loopback): a service admits a caller's token keeping it (`keep_inbound_token`),
//! exchanges it with `auth_core::client::TokenExchange` for a token to the next service
//! (its own client-credentials token as the actor, or none), and that service's policy
//! admits or refuses it by the actor (`require_actor`). Also: the exchange cache (a second
//! call sends no request, counted on the wire), a response without `issued_token_type`,
//! and a re-exchange's nested `act`.
//!
//! These tests fail (never pass by skipping) when Node.js or the npm install is missing,
//! unless `AUTH_SKIP_INTEROP=1` is set, which CI never does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_core::client::{AccessToken, ClientAuth, TokenSource, TokenSourceBuilder, TokenSourceError, TokenTarget};
use auth_core::{
    AccessPolicy, ActorMatch, ActorRequirement, Admission, Decision, InboundToken, Refusal, RejectReason,
    RequestContext,
};
use interop_tests::{
    Api, BILLING_CLIENT, ClientCredentials, ORDERS_CLIENT, Provider, READER_CLIENT, TokenRequest, decode_unverified,
    start_or_skip,
};
use serde_json::{Value, json};

/// Starts the provider, or returns from the test when the developer opted out.
macro_rules! provider {
    ($name:literal) => {
        match start_or_skip($name) {
            Some(provider) => provider,
            None => return,
        }
    };
}

/// The launcher's test-only switch: the exchange response leaves out `issued_token_type`.
const OMIT_ISSUED_TOKEN_TYPE: &str = "x-interop-omit-issued-token-type";

/// The orders service's route that calls others for its caller: `orders:read`, keeping
/// the verified token for the exchange.
fn orders_route(idp: &Provider) -> AccessPolicy {
    AccessPolicy::new(idp.validator(Api::Orders).unwrap()).require_scopes(["orders:read"]).unwrap().keep_inbound_token()
}

/// The billing service's "as caller" route: `billing:read`, acted for by `actor` only.
fn billing_route(idp: &Provider, actor: ActorMatch) -> AccessPolicy {
    AccessPolicy::new(idp.validator(Api::Billing).unwrap())
        .require_scopes(["billing:read"])
        .unwrap()
        .require_actor(ActorRequirement::one_of([actor]))
}

/// One request through `policy`, as the adapters drive it.
async fn drive(policy: &AccessPolicy, token: &str) -> Result<Admission, Refusal> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    match policy.decide(&RequestContext::new("GET", "/", &headers)) {
        Decision::Admit(admission) => Ok(admission),
        Decision::Refuse(refusal) => Err(refusal),
        Decision::Verify(verification) => verification.run().await,
    }
}

/// `policy` admits `token` and keeps it: the `InboundToken` an exchange takes.
async fn admitted_inbound(policy: &AccessPolicy, token: &str) -> InboundToken {
    let admission = drive(policy, token).await.unwrap_or_else(|r| panic!("the caller's token was refused: {r:?}"));
    let inbound = admission.inbound_token.expect("keep_inbound_token keeps the admitted token");
    assert_eq!(inbound.secret(), token);
    inbound
}

/// A caller: `reader-client`'s own token for the orders API (`orders:read`).
async fn caller_token(idp: &Provider) -> String {
    idp.access_token(&TokenRequest::new(READER_CLIENT, Api::Orders, "orders:read")).await.unwrap()
}

/// A `client_secret_basic` source for `client`, the token endpoint found by discovery.
fn basic(idp: &Provider, client: ClientCredentials) -> TokenSourceBuilder {
    TokenSource::builder(client.id).issuer(idp.issuer()).client_auth(ClientAuth::client_secret_basic(client.secret))
}

fn target(api: Api, scope: &str) -> TokenTarget {
    TokenTarget::resource(api.resource()).scope(scope)
}

fn claims(token: &str) -> Value {
    decode_unverified(token).1
}

fn assert_forbidden_by_actor(refusal: &Refusal, rule: &str) {
    assert_eq!(refusal.error.reason(), RejectReason::ActorNotAllowed, "{refusal:?}");
    let rejection = &refusal.rejection;
    assert_eq!(rejection.status, 403, "{rejection:?}");
    let body: Value = serde_json::from_str(&rejection.body).unwrap();
    assert_eq!(body["error"], "forbidden", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains(rule), "{body}");
    assert!(rejection.challenges.is_empty(), "a refused actor gets no challenge: {rejection:?}");
}

/// A TCP forwarder to the provider's port that counts the token requests going through
/// it (`POST /token` request lines, keep-alive or not): the exchange cache's witness.
struct CountingForwarder {
    port: u16,
    token_requests: Arc<AtomicUsize>,
}

impl CountingForwarder {
    fn to(upstream: u16) -> CountingForwarder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let token_requests = Arc::new(AtomicUsize::new(0));
        let counter = token_requests.clone();
        // Lives until the test process ends (one accept loop; two pumps per connection).
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let (Ok(client_back), Ok(server_back)) = (client.try_clone(), server.try_clone()) else { continue };
                let counter = counter.clone();
                std::thread::spawn(move || pump(client, server, Some(&counter)));
                std::thread::spawn(move || pump(server_back, client_back, None));
            }
        });
        CountingForwarder { port, token_requests }
    }

    fn token_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }
}

/// Copies `from` to `to` until EOF; with `count`, counts `POST /token` request lines (a
/// form body and a request head never hold "\r\n" in the middle of a line).
fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<&AtomicUsize>) {
    const LINE: &[u8] = b"POST /token HTTP/1.1\r\n";
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(count) = count {
            seen.extend_from_slice(&buf[..n]);
            let hits = seen.windows(LINE.len()).filter(|w| *w == LINE).count();
            count.fetch_add(hits, Ordering::SeqCst);
            // Keep only a tail shorter than the line: a match never counts twice.
            let keep = seen.len().min(LINE.len() - 1);
            seen.drain(..seen.len() - keep);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// (1) The whole path: caller -> orders (keeps the token) -> exchange with orders-client's
/// own token as actor -> billing admits it for the caller, acted for by orders-client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanged_token_carries_the_caller_and_the_actor_and_is_cached() {
    let idp = provider!("exchanged_token_carries_the_caller_and_the_actor_and_is_cached");
    let caller = caller_token(&idp).await;
    let inbound = admitted_inbound(&orders_route(&idp), &caller).await;

    // orders-client's source, its token requests counted on the wire.
    let wire = CountingForwarder::to(idp.port());
    let tokens = TokenSource::builder(ORDERS_CLIENT.id)
        .token_endpoint(wire.token_endpoint())
        .client_auth(ClientAuth::client_secret_basic(ORDERS_CLIENT.secret))
        .build()
        .unwrap();
    let own = tokens.target(target(Api::Orders, "orders:read")).unwrap();
    let exchange = tokens.exchange(Some(own.clone()));
    let billing = target(Api::Billing, "billing:read");

    let token = exchange.token_for(&inbound, &billing).await.unwrap();
    assert_eq!(wire.token_requests(), 2, "the actor's client-credentials token, then the exchange");
    assert_eq!(
        tokens.stats().token_requests,
        2,
        "the exchange counts with the source's requests: {:?}",
        tokens.stats()
    );
    let own_token = own.cached().expect("the actor token is the source's own, cached");
    assert_eq!(claims(own_token.secret())["client_id"], ORDERS_CLIENT.id);

    let c = claims(token.secret());
    let subject = claims(&caller);
    assert_eq!(c["iss"], idp.issuer());
    assert_eq!(c["aud"], "billing-api");
    assert_eq!(c["scope"], "billing:read", "orders-client's delegation scope");
    assert_eq!(token.scope(), Some("billing:read"));
    assert_eq!(c["sub"], READER_CLIENT.id);
    assert_eq!(c["client_id"], READER_CLIENT.id);
    assert_eq!(c["act"], json!({"sub": ORDERS_CLIENT.id, "client_id": ORDERS_CLIENT.id}));
    assert!(c["exp"].as_i64().unwrap() <= subject["exp"].as_i64().unwrap(), "never outlives the caller's token");
    assert!(token.expires_in() > Duration::from_secs(250), "{:?}", token.expires_in());

    // Billing's route: admitted for the caller, acted for by orders-client.
    let route = billing_route(&idp, ActorMatch::client_id(ORDERS_CLIENT.id));
    let admission = drive(&route, token.secret()).await.unwrap_or_else(|r| panic!("billing refused: {r:?}"));
    let principal = admission.principal.unwrap();
    assert_eq!(principal.issuer(), idp.issuer());
    assert_eq!(principal.subject(), Some(READER_CLIENT.id));
    assert_eq!(principal.claims().client_id.as_deref(), Some(READER_CLIENT.id));
    assert!(principal.scopes().contains("billing:read"));
    let actor = principal.actor().expect("a delegated token");
    assert_eq!(actor.client_id.as_deref(), Some(ORDERS_CLIENT.id));
    assert_eq!(actor.subject.as_deref(), Some(ORDERS_CLIENT.id));
    assert_eq!(actor.previous, None);
    assert!(admission.inbound_token.is_none(), "kept only where the policy asks for it");

    // The caller's own token is no way in: billing's route wants a delegated one.
    let refusal = drive(&route, &caller).await.unwrap_err();
    assert_eq!(refusal.rejection.status, 401, "wrong audience first: {refusal:?}");

    // Again, for the same caller token and target: from the exchange cache, no request.
    for _ in 0..3 {
        let again = exchange.token_for(&inbound, &billing).await.unwrap();
        assert!(again.same_as(&token));
    }
    // The same caller token admitted again (another request: a new InboundToken).
    let again = exchange.token_for(&admitted_inbound(&orders_route(&idp), &caller).await, &billing).await.unwrap();
    assert!(again.same_as(&token), "cached by the caller token, not by the InboundToken value");
    assert_eq!(wire.token_requests(), 2, "no request after the first exchange");
    assert_eq!(exchange.cached(), 1);
    assert_eq!(tokens.stats().token_requests, 2);

    // Another caller token: a new exchange (the actor token is reused).
    let other = admitted_inbound(&orders_route(&idp), &caller_token(&idp).await).await;
    let other_token = exchange.token_for(&other, &billing).await.unwrap();
    assert!(!other_token.same_as(&token));
    assert_ne!(claims(other_token.secret())["jti"], c["jti"]);
    assert_eq!(wire.token_requests(), 3);
    assert_eq!(exchange.cached(), 2);
}

/// (2) A token whose actor is not the one the route allows: billing-client exchanged the
/// caller's token for the orders API, and the route wants orders-client as the actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_the_route_does_not_allow_is_forbidden() {
    let idp = provider!("an_actor_the_route_does_not_allow_is_forbidden");
    let caller = caller_token(&idp).await;
    let inbound = admitted_inbound(&orders_route(&idp), &caller).await;

    let tokens = basic(&idp, BILLING_CLIENT).build().unwrap();
    let own = tokens.target(target(Api::Billing, "billing:read")).unwrap();
    let token: AccessToken =
        tokens.exchange(Some(own)).token_for(&inbound, &target(Api::Orders, "orders:read")).await.unwrap();
    let c = claims(token.secret());
    assert_eq!(c["aud"], "orders-api");
    assert_eq!(c["scope"], "orders:read");
    assert_eq!(c["sub"], READER_CLIENT.id);
    assert_eq!(c["act"], json!({"sub": BILLING_CLIENT.id, "client_id": BILLING_CLIENT.id}));

    let orders_validator = idp.validator(Api::Orders).unwrap();
    let as_caller = AccessPolicy::new(orders_validator.clone())
        .require_scopes(["orders:read"])
        .unwrap()
        .require_actor(ActorRequirement::one_of([ActorMatch::client_id(ORDERS_CLIENT.id)]));
    let refusal = drive(&as_caller, token.secret()).await.unwrap_err();
    assert_forbidden_by_actor(&refusal, "client_id orders-client");
    // Once verified, the token is cached; the refusal stays.
    let refusal = drive(&as_caller, token.secret()).await.unwrap_err();
    assert_forbidden_by_actor(&refusal, "client_id orders-client");

    // The token itself is good: a route without an actor rule admits it, one that accepts
    // billing-client admits it, and one that forbids delegation refuses it.
    let plain = AccessPolicy::new(orders_validator.clone()).require_scopes(["orders:read"]).unwrap();
    let principal = drive(&plain, token.secret()).await.unwrap().principal.unwrap();
    assert_eq!(principal.actor().and_then(|a| a.client_id.as_deref()), Some(BILLING_CLIENT.id));
    let billing_ok = plain.clone().require_actor(ActorRequirement::one_of([ActorMatch::client_id(BILLING_CLIENT.id)]));
    assert!(drive(&billing_ok, token.secret()).await.is_ok());
    let direct_only = plain.clone().require_actor(ActorRequirement::forbidden());
    assert_forbidden_by_actor(&drive(&direct_only, token.secret()).await.unwrap_err(), "no actor");
    // And the caller's own (undelegated) token passes that one, but not the as-caller route.
    assert!(drive(&direct_only, &caller).await.is_ok());
    assert_forbidden_by_actor(&drive(&as_caller, &caller).await.unwrap_err(), "client_id orders-client");
}

/// (3) An exchange answer without `issued_token_type` (RFC 8693 §2.2.1 requires it): the
/// launcher's switch, sent as a default header of the source's own HTTP client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_issued_token_type_is_an_invalid_response() {
    let idp = provider!("an_answer_without_issued_token_type_is_an_invalid_response");
    let caller = caller_token(&idp).await;
    let inbound = admitted_inbound(&orders_route(&idp), &caller).await;

    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(OMIT_ISSUED_TOKEN_TYPE, reqwest::header::HeaderValue::from_static("1"));
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap();
    let tokens = basic(&idp, ORDERS_CLIENT).http_client(http).build().unwrap();
    let own = tokens.target(target(Api::Orders, "orders:read")).unwrap();
    let billing = target(Api::Billing, "billing:read");
    let exchange = tokens.exchange(Some(own.clone()));
    for attempt in 0..2 {
        let err = exchange.token_for(&inbound, &billing).await.unwrap_err();
        match &err {
            TokenSourceError::InvalidResponse(why) => assert!(why.contains("issued_token_type"), "{attempt}: {why}"),
            other => panic!("{attempt}: expected InvalidResponse naming issued_token_type, got {other:?}"),
        }
        assert!(err.to_string().contains("issued_token_type"), "{err}");
    }
    assert_eq!(exchange.cached(), 0, "nothing is cached from a refused answer");
    // The header changes nothing else: the client-credentials actor token came through.
    assert_eq!(claims(own.cached().unwrap().secret())["client_id"], ORDERS_CLIENT.id);

    // The same source without the switch: the exchange succeeds.
    let tokens = basic(&idp, ORDERS_CLIENT).build().unwrap();
    let own = tokens.target(target(Api::Orders, "orders:read")).unwrap();
    let token = tokens.exchange(Some(own)).token_for(&inbound, &billing).await.unwrap();
    assert_eq!(claims(token.secret())["aud"], "billing-api");
}

/// (4) Without an actor token, the exchanging client itself is the actor: the provider
/// writes `act: {"sub": "orders-client"}` (no `client_id` member).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_actor_token_the_exchanging_client_is_the_actor() {
    let idp = provider!("without_an_actor_token_the_exchanging_client_is_the_actor");
    let caller = caller_token(&idp).await;
    let inbound = admitted_inbound(&orders_route(&idp), &caller).await;

    let tokens = basic(&idp, ORDERS_CLIENT).build().unwrap();
    let exchange = tokens.exchange(None);
    let token = exchange.token_for(&inbound, &target(Api::Billing, "billing:read")).await.unwrap();
    assert_eq!(
        tokens.stats().token_requests,
        1,
        "the exchange alone, no client-credentials token: {:?}",
        tokens.stats()
    );
    let c = claims(token.secret());
    assert_eq!(c["sub"], READER_CLIENT.id);
    assert_eq!(c["client_id"], READER_CLIENT.id);
    assert_eq!(c["act"], json!({"sub": ORDERS_CLIENT.id}));

    // Matched by the actor's sub (identified by the token's issuer).
    let by_sub = billing_route(&idp, ActorMatch::subject(ORDERS_CLIENT.id));
    let principal = drive(&by_sub, token.secret()).await.unwrap_or_else(|r| panic!("{r:?}")).principal.unwrap();
    assert_eq!(principal.subject(), Some(READER_CLIENT.id));
    assert_eq!(principal.claims().client_id.as_deref(), Some(READER_CLIENT.id));
    let actor = principal.actor().unwrap();
    assert_eq!(actor.subject.as_deref(), Some(ORDERS_CLIENT.id));
    assert_eq!((actor.client_id.as_deref(), actor.issuer.as_deref()), (None, None));
    let by_issuer = billing_route(&idp, ActorMatch::issued_by(idp.issuer(), ORDERS_CLIENT.id));
    assert!(drive(&by_issuer, token.secret()).await.is_ok());
    // A client_id rule does not match an actor that has no client_id.
    let by_client_id = billing_route(&idp, ActorMatch::client_id(ORDERS_CLIENT.id));
    assert_forbidden_by_actor(&drive(&by_client_id, token.secret()).await.unwrap_err(), "client_id orders-client");
    // Another client's sub is not this actor.
    let other = billing_route(&idp, ActorMatch::subject(BILLING_CLIENT.id));
    assert_forbidden_by_actor(&drive(&other, token.secret()).await.unwrap_err(), "sub billing-client");
}

/// A re-exchange: the billing service exchanges the delegated token it was called with
/// for the orders API; the provider nests the previous actor (RFC 8693 §4.1) and
/// `Actor::chain` lists both, the current one first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_exchange_nests_the_previous_actor() {
    let idp = provider!("a_re_exchange_nests_the_previous_actor");
    let caller = caller_token(&idp).await;
    let inbound = admitted_inbound(&orders_route(&idp), &caller).await;
    let orders_tokens = basic(&idp, ORDERS_CLIENT).build().unwrap();
    let first = orders_tokens.exchange(None).token_for(&inbound, &target(Api::Billing, "billing:read")).await.unwrap();

    let billing_keeps = billing_route(&idp, ActorMatch::subject(ORDERS_CLIENT.id)).keep_inbound_token();
    let at_billing = admitted_inbound(&billing_keeps, first.secret()).await;
    let billing_tokens = basic(&idp, BILLING_CLIENT).build().unwrap();
    let own = billing_tokens.target(target(Api::Billing, "billing:read")).unwrap();
    let second =
        billing_tokens.exchange(Some(own)).token_for(&at_billing, &target(Api::Orders, "orders:read")).await.unwrap();
    let c = claims(second.secret());
    assert_eq!(c["sub"], READER_CLIENT.id);
    assert_eq!(
        c["act"],
        json!({"sub": BILLING_CLIENT.id, "client_id": BILLING_CLIENT.id, "act": {"sub": ORDERS_CLIENT.id}})
    );
    assert!(c["exp"].as_i64().unwrap() <= claims(first.secret())["exp"].as_i64().unwrap());

    // Only the current actor decides; the chain is for audit.
    let orders_as_billing = AccessPolicy::new(idp.validator(Api::Orders).unwrap())
        .require_scopes(["orders:read"])
        .unwrap()
        .require_actor(ActorRequirement::one_of([ActorMatch::client_id(BILLING_CLIENT.id)]));
    let principal =
        drive(&orders_as_billing, second.secret()).await.unwrap_or_else(|r| panic!("{r:?}")).principal.unwrap();
    assert_eq!(principal.subject(), Some(READER_CLIENT.id));
    let chain: Vec<_> = principal.actor().unwrap().chain().map(|a| a.subject.as_deref()).collect();
    assert_eq!(chain, [Some(BILLING_CLIENT.id), Some(ORDERS_CLIENT.id)]);
    let orders_as_orders = AccessPolicy::new(idp.validator(Api::Orders).unwrap())
        .require_actor(ActorRequirement::one_of([ActorMatch::subject(ORDERS_CLIENT.id)]));
    assert_forbidden_by_actor(&drive(&orders_as_orders, second.secret()).await.unwrap_err(), "sub orders-client");
}
