//! The downstream call behind `GET /orders/{id}/invoice`, shared by the axum and the
//! actix app: `GET {BILLING_URL}/invoices/{id}` with the service's own token
//! (client credentials, cached and refreshed by [`TokenSource`]), answered the same way
//! whatever the framework. Also the billing stand-in the tests and the demo call.
//!
//! With `?as=caller` the call is made on the caller's behalf instead:
//! `GET {BILLING_URL}/invoices/{id}/as-caller` with a token exchanged (RFC 8693) for the
//! caller's verified token as the subject and the service's own token as the actor, so
//! billing sees `sub` = the caller and `act` = this service. The caller's token itself is
//! never forwarded; exchanged tokens are cached per caller token (see [`TokenExchange`]).
//!
//! | what happened | answer |
//! | --- | --- |
//! | `{id}` is not digits | 404, nothing sent |
//! | a query parameter `as` other than exactly `as=caller` (once) | 400, nothing sent |
//! | the billing service answered 200 with JSON | 200, its body |
//! | the billing service answered 404 | 404 |
//! | no token (own or exchanged): the token endpoint is unreachable or failing | 503 with `Retry-After` |
//! | the billing service refused our token (401, 403) | 502 |
//! | the billing service is unreachable, timed out, or answered otherwise | 502 |
//!
//! Every failure is logged once, at target [`LOG_TARGET`], with its cause.

use std::sync::Arc;
use std::time::Duration;

use auth_core::client::reqwest_middleware::AttachToken;
use auth_core::client::{TokenExchange, TokenSource, TokenSourceError, TokenTarget};
use auth_core::{AccessPolicy, ActorMatch, ActorRequirement, ConfigError, InboundToken, Validator};
use auth_tower::{AuthLayer, Authenticated};
use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::json;

use crate::config::BillingConfig;

/// Where the invoice route logs its failures.
pub const LOG_TARGET: &str = "examples::billing";

/// The largest billing answer passed through.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest invoice id: digits only, at most this many.
const MAX_ID_DIGITS: usize = 20;

/// The billing service's client: its base URL and an HTTP client (timeouts, no
/// redirects) whose [`AttachToken`] middleware puts the service's token on every call and
/// retries once with a new one when billing says `invalid_token`; and, for calls on a
/// caller's behalf, a [`TokenExchange`] (actor: the service's own token) with the same
/// HTTP client without the middleware. Cheap to clone; clones share the tokens and the
/// exchanged-token cache.
#[derive(Debug, Clone)]
pub struct BillingClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: String,
    tokens: TokenSource,
    /// With [`AttachToken`]: the service's own token.
    http: reqwest_middleware::ClientWithMiddleware,
    /// Without it: the as-caller call sets the exchanged token itself.
    plain: reqwest::Client,
    /// Subject: the caller's token; actor: the service's own token for `target`.
    exchange: TokenExchange,
    /// The billing resource and scope, for the service's tokens and the exchanged ones.
    target: TokenTarget,
}

/// How `GET /orders/{id}/invoice` calls billing, from its query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acting {
    /// No `as`: with the service's own token.
    AsService,
    /// `as=caller`: with a token exchanged for the caller's.
    AsCaller,
}

impl Acting {
    /// From the raw query: no `as` parameter, or exactly one, `as=caller` (compared as
    /// sent: no percent-decoding); other parameters are ignored. `None`: anything else.
    pub fn from_query(query: Option<&str>) -> Option<Acting> {
        let mut values = query.unwrap_or("").split('&').filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == "as").then_some(value)
        });
        match (values.next(), values.next()) {
            (None, _) => Some(Acting::AsService),
            (Some("caller"), None) => Some(Acting::AsCaller),
            _ => None,
        }
    }
}

/// What the invoice route answers, for either framework: the status, the `Retry-After`
/// seconds (503 only) and a JSON body (`{"error", "error_description"}` on failures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceReply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, at least 1.
    pub retry_after: Option<u64>,
    /// The body, JSON.
    pub body: Vec<u8>,
}

impl BillingClient {
    /// Calls the billing service at `base_url` with `tokens`' token for `target`.
    pub fn new(base_url: &str, tokens: &TokenSource, target: TokenTarget) -> Result<BillingClient, String> {
        let token = tokens.target(target.clone()).map_err(|e| format!("billing token target: {e}"))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            // The token must not follow a redirect elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("billing HTTP client: {e}"))?;
        // The actor token of the exchange: the service's own token for billing.
        let exchange = tokens.exchange(Some(token.clone()));
        let plain = http.clone();
        let http = reqwest_middleware::ClientBuilder::new(http).with(AttachToken::new(token)).build();
        let base = base_url.trim_end_matches('/').to_owned();
        Ok(BillingClient { inner: Arc::new(Inner { base, tokens: tokens.clone(), http, plain, exchange, target }) })
    }

    /// From the configuration: a token source for `AUTH_CLIENT_ID` whose token endpoint
    /// is found by discovery of `issuer` (`AUTH_ISSUER`), and the target `BILLING_RESOURCE`
    /// with `AUTH_TOKEN_SCOPE`; the token endpoint trusted through `extra_roots` too
    /// (`AUTH_CA_CERT`, PEM). The error is one line naming the variable.
    pub fn from_config(
        issuer: &str,
        config: &BillingConfig,
        extra_roots: Option<&[u8]>,
    ) -> Result<BillingClient, String> {
        let mut tokens =
            TokenSource::builder(config.client_id.as_str()).issuer(issuer).client_auth(config.client_auth.clone());
        if let Some(pem) = extra_roots {
            tokens = tokens.extra_root_certificates(pem).map_err(|e| format!("AUTH_CA_CERT: {e}"))?;
        }
        let tokens =
            tokens.build().map_err(|e| format!("AUTH_ISSUER (token endpoint discovery) or AUTH_CLIENT_ID: {e}"))?;
        let mut target = TokenTarget::resource(config.resource.as_str());
        if let Some(scope) = &config.scope {
            target = target.scope(scope);
        }
        tokens.target(target.clone()).map_err(|e| format!("BILLING_RESOURCE or AUTH_TOKEN_SCOPE: {e}"))?;
        Self::new(&config.url, &tokens, target)
    }

    /// The token source (for its counters).
    pub fn token_source(&self) -> &TokenSource {
        &self.inner.tokens
    }

    /// The exchange behind [`invoice_as_caller`](Self::invoice_as_caller) (for its cache).
    pub fn exchange(&self) -> &TokenExchange {
        &self.inner.exchange
    }

    /// The answer to `GET /orders/{id}/invoice` at `request_path` (the raw path: the id
    /// is taken as sent, percent-encoding and all, so only plain digits pass) with the raw
    /// `query` (see [`Acting::from_query`]); `caller` is the request's verified token (the
    /// route keeps it: `AccessPolicy::keep_inbound_token`), needed for `?as=caller`.
    pub async fn answer(&self, request_path: &str, query: Option<&str>, caller: Option<&InboundToken>) -> InvoiceReply {
        let id = request_path.strip_prefix("/orders/").and_then(|rest| rest.strip_suffix("/invoice")).unwrap_or("");
        if !is_invoice_id(id) {
            return not_found();
        }
        match (Acting::from_query(query), caller) {
            (Some(Acting::AsService), _) => self.invoice(id).await,
            (Some(Acting::AsCaller), Some(caller)) => self.invoice_as_caller(id, caller).await,
            (Some(Acting::AsCaller), None) => {
                tracing::error!(
                    target: LOG_TARGET,
                    invoice = id,
                    "?as=caller without the caller's token (the route's policy must keep_inbound_token): answering 500"
                );
                reply(500, "internal_error", "the caller's token is not available", None)
            }
            (None, _) => reply(400, "invalid_request", "the only value of `as` is `caller`", None),
        }
    }

    /// Invoice `id` from the billing service with the service's own token (see the
    /// module's table of answers).
    pub async fn invoice(&self, id: &str) -> InvoiceReply {
        if !is_invoice_id(id) {
            return not_found();
        }
        let inner = &self.inner;
        let url = format!("{}/invoices/{id}", inner.base);
        let response = match inner.http.get(&url).header(ACCEPT, "application/json").send().await {
            Ok(response) => response,
            Err(reqwest_middleware::Error::Middleware(err)) => match err.downcast_ref::<TokenSourceError>() {
                Some(err) => return token_unavailable(id, err),
                None => return unreachable(id, err.as_ref()),
            },
            Err(reqwest_middleware::Error::Reqwest(err)) => return unreachable(id, &err),
        };
        finish(id, response).await
    }

    /// Invoice `id` from the billing service on `caller`'s behalf:
    /// `GET {base}/invoices/{id}/as-caller` with a token exchanged for `caller`'s (subject)
    /// and the service's own (actor), for the same resource and scope as the service's
    /// token. Answered as [`invoice`](Self::invoice) is; `caller`'s token is never sent.
    /// A refused exchanged token is not retried (it stays cached for this caller token).
    pub async fn invoice_as_caller(&self, id: &str, caller: &InboundToken) -> InvoiceReply {
        if !is_invoice_id(id) {
            return not_found();
        }
        let inner = &self.inner;
        let token = match inner.exchange.token_for(caller, &inner.target).await {
            Ok(token) => token,
            Err(err) => return token_unavailable(id, &err),
        };
        let url = format!("{}/invoices/{id}/as-caller", inner.base);
        let request = inner
            .plain
            .get(&url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, token.header_value().clone());
        match request.send().await {
            Ok(response) => finish(id, response).await,
            Err(err) => unreachable(id, &err),
        }
    }
}

/// Billing's answer, as the module's table says.
async fn finish(id: &str, response: reqwest::Response) -> InvoiceReply {
    let status = response.status().as_u16();
    match status {
        200 => match read_json(response).await {
            Ok(body) => InvoiceReply { status: 200, retry_after: None, body },
            Err(why) => {
                tracing::warn!(
                    target: LOG_TARGET,
                    invoice = id,
                    error = %why,
                    "unusable answer from the billing service: answering 502"
                );
                bad_gateway("the billing service's answer is not usable")
            }
        },
        404 => {
            tracing::debug!(target: LOG_TARGET, invoice = id, "no such invoice at the billing service");
            not_found()
        }
        401 | 403 => {
            let challenge = response.headers().get(WWW_AUTHENTICATE).map(|v| printable(v.as_bytes()));
            tracing::warn!(
                target: LOG_TARGET,
                invoice = id,
                status,
                challenge = challenge.as_deref().unwrap_or(""),
                "the billing service refused our credentials: answering 502"
            );
            refused()
        }
        _ => {
            tracing::warn!(
                target: LOG_TARGET,
                invoice = id,
                status,
                "unexpected answer from the billing service: answering 502"
            );
            bad_gateway("the billing service answered with an error")
        }
    }
}

/// Digits only, at most [`MAX_ID_DIGITS`]: nothing else goes into the billing URL.
fn is_invoice_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_DIGITS && id.bytes().all(|b| b.is_ascii_digit())
}

/// The body, at most [`MAX_BODY_BYTES`], if it is JSON.
async fn read_json(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(format!("the body is larger than {MAX_BODY_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the body: {}", chain(&e)))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("the body is larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|e| format!("the body is not JSON: {e}"))?;
    Ok(body)
}

fn reply(status: u16, error: &str, description: &str, retry_after: Option<u64>) -> InvoiceReply {
    let body = json!({ "error": error, "error_description": description }).to_string().into_bytes();
    InvoiceReply { status, retry_after, body }
}

fn not_found() -> InvoiceReply {
    reply(404, "not_found", "no such invoice", None)
}

fn bad_gateway(description: &str) -> InvoiceReply {
    reply(502, "bad_gateway", description, None)
}

fn refused() -> InvoiceReply {
    bad_gateway("the billing service refused our credentials")
}

fn unreachable(id: &str, err: &(dyn std::error::Error + 'static)) -> InvoiceReply {
    tracing::warn!(
        target: LOG_TARGET,
        invoice = id,
        error = %chain(err),
        "the billing service is unreachable: answering 502"
    );
    bad_gateway("the billing service is unreachable")
}

fn token_unavailable(id: &str, err: &TokenSourceError) -> InvoiceReply {
    let secs = err.retry_after().map_or(1, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1);
    if err.is_configuration() {
        tracing::error!(
            target: LOG_TARGET,
            invoice = id,
            error = %err,
            retry_after_secs = secs,
            "no token for the billing service (check AUTH_CLIENT_ID, its credentials, BILLING_RESOURCE, \
             AUTH_TOKEN_SCOPE): answering 503"
        );
    } else {
        tracing::warn!(
            target: LOG_TARGET,
            invoice = id,
            error = %err,
            retry_after_secs = secs,
            "no token for the billing service: answering 503"
        );
    }
    reply(503, "temporarily_unavailable", "no token for the billing service yet; try again later", Some(secs))
}

/// An error with its sources, `a: b: c`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Server-sent text for a log line: printable ASCII, at most 200 characters.
fn printable(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).filter(|c| c.is_ascii_graphic() || *c == ' ').take(200).collect()
}

/// The billing stand-in, two routes, both needing a token with scope `invoices:read`
/// (its audience is `validator`'s: the billing resource):
///
/// - `GET /invoices/{id}`: the service's own token, not a delegated one (no `act`);
///   answers `{"invoice": id, "caller": <the token's client id>}`.
/// - `GET /invoices/{id}/as-caller`: a token exchanged on a caller's behalf whose current
///   actor is the orders service (`act.client_id` = [`ORDERS_CLIENT_ID`](crate::demo::ORDERS_CLIENT_ID));
///   answers `{"invoice": id, "caller": <the token's sub>, "actor": <act.client_id, or
///   act.sub>}`.
///
/// A token refused by a route's actor rule is 403 `forbidden`.
pub fn stand_in_router(validator: &Validator) -> Result<Router, ConfigError> {
    let read = || AccessPolicy::new(validator.clone()).require_scopes(["invoices:read"]);
    let direct = AuthLayer::new(read()?.require_actor(ActorRequirement::forbidden()));
    let orders_acting = ActorRequirement::one_of([ActorMatch::client_id(crate::demo::ORDERS_CLIENT_ID)]);
    let as_caller = AuthLayer::new(read()?.require_actor(orders_acting));
    Ok(Router::new()
        .route("/invoices/{id}", get(stand_in_invoice).route_layer(direct))
        .route("/invoices/{id}/as-caller", get(stand_in_invoice_as_caller).route_layer(as_caller)))
}

async fn stand_in_invoice(Authenticated(caller): Authenticated, Path(id): Path<String>) -> Response {
    if !is_invoice_id(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(json!({ "invoice": id, "caller": caller.claims().client() })).into_response()
}

async fn stand_in_invoice_as_caller(Authenticated(caller): Authenticated, Path(id): Path<String>) -> Response {
    if !is_invoice_id(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    // The current actor (the route's rule let only orders through).
    let actor = caller.actor().and_then(|actor| actor.client_id.as_deref().or(actor.subject.as_deref()));
    axum::Json(json!({ "invoice": id, "caller": caller.subject(), "actor": actor })).into_response()
}

/// Serves [`stand_in_router`] on a loopback port (on the current tokio runtime); returns
/// its base URL, `http://127.0.0.1:PORT`.
pub async fn start_stand_in(validator: &Validator) -> Result<String, String> {
    let app = stand_in_router(validator).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("billing stand-in stopped: {err}");
        }
    });
    Ok(format!("http://{addr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_ids() {
        for good in ["0", "42", "007", "12345678901234567890"] {
            assert!(is_invoice_id(good), "{good}");
        }
        for bad in ["", "abc", "4a", "-1", "1.5", "4%32", "42/x", " 42", "123456789012345678901", "٤٢"] {
            assert!(!is_invoice_id(bad), "{bad}");
        }
    }

    #[test]
    fn acting_from_the_query() {
        for (query, acting) in [
            (None, Some(Acting::AsService)),
            (Some(""), Some(Acting::AsService)),
            (Some("x=1"), Some(Acting::AsService)),
            (Some("ask=caller"), Some(Acting::AsService)),
            (Some("as=caller"), Some(Acting::AsCaller)),
            (Some("x=1&as=caller"), Some(Acting::AsCaller)),
            (Some("as=service"), None),
            (Some("as="), None),
            (Some("as"), None),
            (Some("as=Caller"), None),
            (Some("as=%63aller"), None),
            (Some("as=caller&as=caller"), None),
            (Some("as=caller&as=other"), None),
        ] {
            assert_eq!(Acting::from_query(query), acting, "{query:?}");
        }
    }
}
