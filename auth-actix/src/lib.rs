//! actix-web 4 middleware and extractors for OAuth 2.0 JWT bearer tokens (RFC 6750),
//! validated by [`auth_core`] against the issuer's cached JWKS, with scope checks.
//!
//! - [`AuthMiddleware`] (a `Transform`, for `App::wrap`, `Scope::wrap`, `Resource::wrap`
//!   and `Route::wrap`) enforces an [`AccessPolicy`] and answers rejected requests itself:
//!   400 `invalid_request`, 401 (no token, or `invalid_token`), 403 `insufficient_scope`
//!   or 503 (keys unavailable, with `Retry-After`), each with a `WWW-Authenticate: Bearer`
//!   challenge and a JSON body. [`AuthMiddleware::on_rejection`] shapes your own response.
//! - [`Authenticated`], [`MaybeAuthenticated`] and [`TypedClaims`] give handlers the
//!   verified caller.
//!
//! Files, as in `auth-tower`: `middleware.rs` (the middleware), `extract.rs` (extractors),
//! `rejection.rs` (how a refusal becomes a response), `tls.rs` (the connection's client
//! certificate).
//!
//! Every decision (which status, which challenge) is made in `auth-core`, so this crate
//! and `auth-tower` answer the same request the same way.
//!
//! ```no_run
//! use actix_web::{App, HttpResponse, HttpServer, web};
//! use auth_actix::{AccessPolicy, AuthMiddleware, Authenticated, Issuer, MaybeAuthenticated, Validator};
//!
//! async fn list_orders(caller: Authenticated) -> HttpResponse {
//!     HttpResponse::Ok().body(format!("orders of {:?}", caller.claims().client()))
//! }
//!
//! async fn catalogue(MaybeAuthenticated(caller): MaybeAuthenticated) -> HttpResponse {
//!     HttpResponse::Ok().body(if caller.is_some() { "partner prices" } else { "list prices" })
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // No I/O here: the service starts even when the identity provider is down.
//!     let validator = Validator::builder()
//!         .issuer(Issuer::discovery("https://idp.example.com").audience("orders-api"))
//!         .build()?;
//!     let orders = AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:read"])?);
//!     let anyone = AuthMiddleware::new(AccessPolicy::new(validator).optional());
//!
//!     HttpServer::new(move || {
//!         App::new()
//!             .service(web::scope("/orders").wrap(orders.clone()).route("", web::get().to(list_orders)))
//!             .service(web::resource("/catalogue").wrap(anyone.clone()).get(catalogue))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Optional authentication
//!
//! With [`AccessPolicy::optional`], a request without any token reaches the handler
//! unauthenticated; a request with an invalid token is still rejected. Ask for
//! [`MaybeAuthenticated`]: it is `None` only in that case, and answers 500 when the route
//! is not behind the middleware. actix-web's `Option<Authenticated>` works too, but
//! actix-web maps every extractor error to `None`, so a route that forgot the middleware
//! would look anonymous (the extractor still logs it with `tracing::error!`).
//!
//! # Certificate-bound tokens (RFC 8705)
//!
//! Tokens bound to a client certificate (`cnf.x5t#S256`) are checked against the
//! request's certificate, as [`ValidatorBuilder::certificate_binding`](auth_core::ValidatorBuilder::certificate_binding)
//! says. With TLS terminated in the service, the `rustls` feature's [`client_certificate`]
//! hook (`HttpServer::on_connect(auth_actix::client_certificate)`) reads the connection's
//! certificate once; behind a proxy that terminates TLS, the validator's
//! [`trusted_proxies`](auth_core::ValidatorBuilder::trusted_proxies) believe its
//! `Client-Cert` or `x-forwarded-client-cert` header.
//!
//! # Features
//!
//! - `aws-lc-rs` (default) / `rust-crypto`: auth-core's crypto backend.
//! - `metrics`: auth-core's decisions through the `metrics` facade.
//! - `rustls`: [`client_certificate`], the `on_connect` hook for `bind_rustls_0_23`
//!   (enables actix-web's `rustls-0_23`; no rustls crypto provider is chosen).
//! - `test-util`: re-exports [`auth_core::testkit`] as `auth_actix::testkit`, an
//!   in-process OpenID issuer for your tests.
#![forbid(unsafe_code)]

mod extract;
mod middleware;
mod rejection;
#[cfg(feature = "rustls")]
mod tls;

pub use extract::{Authenticated, Delegation, MaybeAuthenticated, TypedClaims};
pub use middleware::{AuthMiddleware, AuthMiddlewareService};
pub use rejection::rejection_response;
#[cfg(feature = "rustls")]
pub use tls::client_certificate;

pub use auth_core::{
    AccessPolicy, Actor, ActorMatch, ActorRequirement, AuthError, BindingMode, Claims, ClientCertificate, ConfigError,
    Issuer, Principal, Refusal, Rejection, ScopeRequirement, Scopes, Validator,
};

#[cfg(feature = "test-util")]
pub use auth_core::testkit;
