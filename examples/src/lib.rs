//! The `orders` example service, built twice — on axum with `auth-tower` and on
//! actix-web with `auth-actix` — from one configuration, plus the demo's client.
//!
//! Routes: `GET /health` (open), `GET /orders` (scope `orders:read`), `POST /orders`
//! (scope `orders:write`), and with `BILLING_URL` `GET /orders/{id}/invoice` (scope
//! `orders:read`), which calls the billing service with the service's own token, or
//! with `?as=caller` with one exchanged for the caller's (RFC 8693; [`billing`]). Served over HTTP, or HTTPS with client certificates for
//! certificate-bound tokens (RFC 8705; see [`config`]).

// The README's code blocks are compiled as doc tests of this crate, so the quick starts
// cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod actix_app;
pub mod axum_app;
pub mod billing;
pub mod config;
pub mod demo;
pub mod grpc_app;

/// The `GET /orders` answer of both services: the caller's client id, and the SPIFFE ID
/// of its client certificate (`spiffe_id`, only when it has one), and the orders.
pub fn orders_listing(caller: &auth_core::Principal) -> serde_json::Value {
    let mut body = serde_json::json!({ "caller": caller.claims().client(), "orders": [{ "id": 1, "item": "coffee" }] });
    if let Some(spiffe_id) = caller.spiffe_id() {
        body["spiffe_id"] = spiffe_id.into();
    }
    body
}
