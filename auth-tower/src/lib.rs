//! Tower middleware for JWT bearer-token authentication: one [`AuthLayer`] for axum,
//! tonic and plain hyper services, with per-route scope requirements.
//!
//! Every decision comes from [`auth_core`]; this crate only moves it between HTTP types,
//! so axum and actix-web (`auth-actix`) answer alike.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use auth_tower::{AuthLayer, Authenticated};
//! use auth_core::{Issuer, Validator};
//!
//! async fn orders(Authenticated(caller): Authenticated) -> String {
//!     format!("orders for {}", caller.subject().unwrap_or("?"))
//! }
//!
//! # fn app() -> Result<Router, Box<dyn std::error::Error>> {
//! let validator = Validator::builder()
//!     .issuer(Issuer::discovery("https://idp.example.com").audience("orders-api"))
//!     .build()?;
//! let app = Router::new()
//!     .route("/orders", get(orders))
//!     .route_layer(AuthLayer::require_scopes(&validator, ["orders:read"])?);
//! # Ok(app) }
//! ```
//!
//! Features: `axum` (default: the extractors), `aws-lc-rs` (default) / `rust-crypto`
//! (auth-core's crypto backend), `metrics` (decisions through the `metrics` facade),
//! `original-uri` (axum's `OriginalUri` into the request context), `client` (the calling
//! side: [`client::AttachTokenLayer`] puts the service's own token on outbound requests),
//! `tonic` (with `client`: a missing token is a `tonic::Status` `UNAVAILABLE`),
//! `tonic-tls` (the client certificate of tonic's TLS connections, for certificate-bound
//! tokens), `tls`
//! ([`tls::serve`]: an axum router over HTTPS with each connection's client certificate),
//! `test-util` (`auth_core::testkit`, the in-process issuer, as `auth_tower::testkit`).
//!
//! Files, as in `auth-actix`: `layer.rs` (the middleware), `extract.rs` (extractors),
//! `rejection.rs` (how a refusal becomes a response), `certificate.rs` and `tls.rs` (the
//! connection's client certificate), `client.rs` (the calling side).
//!
//! On success the verified [`Principal`] is in the request extensions (for tonic:
//! `request.extensions().get::<Principal>()`). On failure the inner service is not
//! called and the response carries the status, `WWW-Authenticate` challenge and JSON
//! body decided by `auth-core` (or what your [`OnRejection`] makes of them).
#![forbid(unsafe_code)]

/// `get_ref`, `get_mut` and `into_inner` for a middleware service's `inner` field (as
/// tower-http gives each of its services).
macro_rules! inner_service_accessors {
    () => {
        /// The wrapped service.
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The wrapped service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// The wrapped service, unwrapped.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

mod certificate;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "axum")]
mod extract;
mod layer;
mod rejection;
#[cfg(feature = "tls")]
pub mod tls;

pub use certificate::Connection;
#[cfg(feature = "axum")]
pub use extract::{Authenticated, Delegation, ExtractorRejection, TypedClaims};
pub use layer::{AuthLayer, AuthService, ResponseBody, ResponseFuture};
pub use rejection::{GrpcRejection, JsonRejection, OnRejection};

pub use auth_core::{
    AccessPolicy, Actor, ActorMatch, ActorRequirement, AuthError, BindingMode, Claims, ClientCertificate, ConfigError,
    Issuer, Principal, Refusal, Rejection, ScopeRequirement, Scopes, Validator,
};

#[cfg(feature = "test-util")]
pub use auth_core::testkit;

/// Marks a request the layer has seen (authenticated or, for an optional policy, not).
/// Extractors use it to tell "no token" from "the layer is not configured here", and to
/// answer their own refusals the way the layer would (its `on_rejection`).
#[derive(Clone)]
pub(crate) struct LayerRan(#[cfg_attr(not(feature = "axum"), allow(dead_code))] pub(crate) std::sync::Arc<LayerShared>);

/// What every request a layer let through shares with the extractors.
pub(crate) struct LayerShared {
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) validator: Validator,
    /// The layer's `on_rejection`, type-erased for the extractors.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) render: Render,
}

/// Renders a refusal as the layer's `on_rejection` does.
pub(crate) type Render = Box<dyn Fn(&auth_core::Refusal) -> http::Response<bytes::Bytes> + Send + Sync>;

/// The service that `poll_ready` drove to readiness, leaving a clone in its place for
/// the next call (a clone may not be ready: tower's guidance for `Clone` services).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
