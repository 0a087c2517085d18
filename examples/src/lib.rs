//! The `orders` example service, built twice — on axum with `auth-tower` and on
//! actix-web with `auth-actix` — from one configuration, plus the demo's client.
//!
//! Routes: `GET /health` (open), `GET /orders` (scope `orders:read`), `POST /orders`
//! (scope `orders:write`), and with `BILLING_URL` `GET /orders/{id}/invoice` (scope
//! `orders:read`), which calls the billing service with the service's own token
//! ([`billing`]).

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
