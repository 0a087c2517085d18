//! Framework-free validation of OAuth 2.0 JWT bearer tokens (RFC 6750, RFC 9068) against
//! an issuer's remote JSON Web Key Set, with scope checks.
//!
//! The adapters `auth-tower` (axum, tonic, hyper) and `auth-actix` call this crate for
//! every decision; it can also be used directly:
//!
//! ```no_run
//! use auth_core::{Issuer, ScopeRequirement, Validator};
//!
//! # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let validator = Validator::builder()
//!     .issuer(Issuer::discovery("https://idp.example.com").audience("orders-api"))
//!     .build()?;
//! let read = ScopeRequirement::all(["orders:read"]);
//! match validator.authorize(token, &read).await {
//!     Ok(principal) => println!("hello {:?}", principal.subject()),
//!     Err(err) => println!("{} {}", err.status(), err.www_authenticate(None)),
//! }
//! # Ok(()) }
//! ```
//!
//! # What is checked
//!
//! Size (16 KiB) and shape before any decoding; `alg` against the issuer's allow-list and
//! the key's type and JWK `alg` (never `none`, never HMAC); `crit` refused; `typ`;
//! `iss` exact; `aud`; `exp` required; `nbf` and `iat` when present; claims with a wrong
//! JSON type are errors, never absent; the signature, with a key found only by `kid` in
//! the issuer's JWKS (never from `jwk`/`jku`/`x5u`/`x5c` headers).
//!
//! # Where each decision is made
//!
//! Following one request (every file is under `src/`):
//!
//! | step | file | decides |
//! | --- | --- | --- |
//! | extract | `request.rs`, `credentials.rs` | what the adapter saw (headers, peer, certificate); the one bearer token, or 400 / a bare 401 |
//! | look up | `cache.rs` | whether this exact token was verified and is still good |
//! | verify | `token.rs`, `claims.rs`, `claim_rules.rs`, `jwks/`, `crypto.rs` | shape and header, typed claims, time/audience rules, the key, the signature |
//! | authorize | `scope.rs`, `actor.rs`, `certificate.rs`, `policy.rs` | scopes, actors, certificate binding; [`AccessPolicy::decide`] runs the steps |
//! | respond | `decision.rs`, `rejection.rs`, `response.rs`, `metrics.rs` | counted and logged once; the table of refusal kinds; status, challenge and body |
//!
//! Set up once: `config.rs` and `validator/` (the builder checks everything), `discovery.rs`
//! and `fetch.rs` (metadata and key documents over HTTP), `readiness.rs`. The calling side
//! is `client/`.
//!
//! # Features
//!
//! - `aws-lc-rs` (default): jsonwebtoken's aws-lc-rs backend.
//! - `rust-crypto`: jsonwebtoken's RustCrypto backend (used when `aws-lc-rs` is off).
//! - `test-util`: [`testkit`], an in-process OpenID issuer for tests.
//! - `metrics`: every decision and key-source event through the `metrics` facade.
//! - `work-counts`: per-thread counts of the per-request work (for the seam's tests).
//! - `client`: [`client`], the calling side: the service's own tokens, refreshed ahead.
//! - `reqwest-middleware`: a `reqwest-middleware` middleware that attaches them.
#![forbid(unsafe_code)]

/// The adapters' `require_scopes` and `require_any_scope` constructors, written once: each
/// adapter invokes it in the `impl` of its middleware, which has `new(AccessPolicy)`.
#[doc(hidden)]
#[macro_export]
macro_rules! scope_constructors {
    () => {
        /// A valid token carrying every one of `scopes` (a shorthand for
        /// `new(AccessPolicy::new(validator.clone()).require_scopes(scopes)?)`).
        pub fn require_scopes(
            validator: &$crate::Validator,
            scopes: impl IntoIterator<Item = impl AsRef<str>>,
        ) -> Result<Self, $crate::ConfigError> {
            $crate::AccessPolicy::new(validator.clone()).require_scopes(scopes).map(Self::new)
        }

        /// A valid token carrying at least one of `scopes`.
        pub fn require_any_scope(
            validator: &$crate::Validator,
            scopes: impl IntoIterator<Item = impl AsRef<str>>,
        ) -> Result<Self, $crate::ConfigError> {
            $crate::AccessPolicy::new(validator.clone()).require_any_scope(scopes).map(Self::new)
        }
    };
}

mod actor;
mod algorithm;
mod cache;
mod certificate;
mod claim_rules;
mod claims;
#[cfg(feature = "client")]
pub mod client;
mod clock;
mod config;
mod credentials;
mod crypto;
mod decision;
mod discovery;
mod fetch;
mod inbound;
mod jwks;
mod metrics;
mod policy;
mod readiness;
mod rejection;
mod request;
mod response;
mod scope;
mod token;
mod validator;
mod warn_budget;
mod work;

#[cfg(feature = "test-util")]
pub mod testkit;

pub use actor::{Actor, ActorMatch, ActorRequirement, MAX_ACTOR_DEPTH};
pub use algorithm::Algorithm;
pub use certificate::{BindingMode, CertificateError, ClientCertificate, tls_server_config};
pub use claims::{Claims, Principal};
pub use config::{ConfigError, Issuer, TypPolicy};
pub use credentials::{CredentialSources, bearer_token};
pub use decision::{Admission, Refusal};
pub use inbound::InboundToken;
pub use metrics::MetricsSnapshot;
pub use policy::{AccessPolicy, Decision, Verification};
pub use readiness::{IssuerReadiness, Readiness};
pub use rejection::{AuthError, ClaimName, RejectReason, RequestError, TokenError};
pub use request::{Headers, RequestContext};
pub use response::Rejection;
pub use scope::{ScopeRequirement, Scopes};
pub use validator::{Validator, ValidatorBuilder};

/// The log target of every decision (`tracing`), and of the one error a misconfigured
/// route logs.
pub const LOG_TARGET: &str = "auth::decision";
