//! The orders service on axum with `auth-tower`.

use std::net::SocketAddr;
use std::sync::Arc;

use auth_core::{AccessPolicy, ConfigError, InboundToken, Validator};
use auth_tower::{AuthLayer, Authenticated};
use axum::Extension;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::billing::{BillingClient, InvoiceReply};

/// The router: `GET /health` open, `GET /orders` needs `orders:read`, `POST /orders`
/// needs `orders:write`. No billing client: `GET /orders/{id}/invoice` answers 404.
pub fn router(validator: &Validator) -> Result<Router, ConfigError> {
    router_with_billing(validator, None)
}

/// [`router`], plus `GET /orders/{id}/invoice` (needs `orders:read`) calling the billing
/// service through `billing` when there is one: with the service's own token, or with
/// `?as=caller` with a token exchanged for the caller's (the route keeps the verified
/// inbound token for that; see [`crate::billing`]).
pub fn router_with_billing(validator: &Validator, billing: Option<BillingClient>) -> Result<Router, ConfigError> {
    let read = AuthLayer::require_scopes(validator, ["orders:read"])?;
    let write = AuthLayer::require_scopes(validator, ["orders:write"])?;
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        // Each method gets its own requirement: a layer added with `route_layer` covers
        // the methods registered before it, so the two are built apart and merged.
        .route("/orders", get(list_orders).route_layer(read.clone()).merge(post(create_order).route_layer(write)));
    let Some(billing) = billing else { return Ok(router) };
    // The verified token stays with the request, as the subject of `?as=caller`'s exchange.
    let invoice_read =
        AuthLayer::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:read"])?.keep_inbound_token());
    // The raw path and query, as the actix app reads them: the id is checked as sent.
    let invoice = move |uri: Uri, caller: Option<Extension<InboundToken>>| {
        let billing = billing.clone();
        async move {
            let caller = caller.map(|Extension(token)| token);
            reply(billing.answer(uri.path(), uri.query(), caller.as_ref()).await)
        }
    };
    Ok(router.route("/orders/{id}/invoice", get(invoice).route_layer(invoice_read)))
}

async fn list_orders(Authenticated(caller): Authenticated) -> Json<Value> {
    Json(crate::orders_listing(&caller))
}

async fn create_order(Authenticated(caller): Authenticated) -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(json!({ "caller": caller.claims().client(), "id": 2 })))
}

/// Serves `app` on `listener`: over HTTPS with `tls` (each request with its connection's
/// client certificate, for certificate-bound tokens), else plain HTTP; either way each
/// request knows its peer (forwarded certificates are believed only from trusted proxies).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    match tls {
        Some(config) => auth_tower::tls::serve(listener, config, app).await,
        None => axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await,
    }
}

fn reply(reply: InvoiceReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [(CONTENT_TYPE, "application/json")], reply.body).into_response();
    if let Some(secs) = reply.retry_after {
        response.headers_mut().insert(RETRY_AFTER, secs.into());
    }
    response
}
