//! Extractors for handlers behind [`AuthMiddleware`](crate::AuthMiddleware):
//! [`Authenticated`], [`MaybeAuthenticated`] and [`TypedClaims`].
//!
//! Each one reads what the middleware stored for the request. A route whose handler asks
//! for one of them without the middleware in front is a configuration error: the request
//! is answered 500 `server_error` (and logged with `tracing::error!`), never let through.

use std::fmt;
use std::future::{Ready, ready};
use std::ops::{Deref, DerefMut};

use actix_web::dev::Payload;
use actix_web::error::InternalError;
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest};
use auth_core::{AuthError, Principal, Rejection, TokenError};
use serde::de::DeserializeOwned;

use crate::middleware::AuthOutcome;
use crate::rejection::rejection_response;

/// The verified caller. Rejects the request when there is none.
///
/// - Behind a required policy, always present (the middleware rejected every other request).
/// - Behind an [optional](auth_core::AccessPolicy::optional) policy and a request without
///   a token: 401 with `WWW-Authenticate: Bearer` (the missing-token rejection, through
///   the middleware's [`on_rejection`](crate::AuthMiddleware::on_rejection) handler if any).
/// - Without the middleware: 500 `server_error`, logged.
///
/// Dereferences to [`Principal`].
///
/// ```
/// use actix_web::HttpResponse;
/// use auth_actix::Authenticated;
///
/// async fn whoami(caller: Authenticated) -> HttpResponse {
///     HttpResponse::Ok().body(format!(
///         "client {:?} with scopes {:?}",
///         caller.claims().client(),
///         caller.scopes().iter().collect::<Vec<_>>()
///     ))
/// }
/// ```
///
/// `Option<Authenticated>` is actix-web's own `Option` extractor, which turns *every*
/// rejection into `None`, including a missing middleware (still logged as an error).
/// Prefer [`MaybeAuthenticated`] for optional authentication: it keeps the 500.
#[derive(Clone, Debug, PartialEq)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// The verified caller.
    pub fn into_inner(self) -> Principal {
        self.0
    }
}

impl Deref for Authenticated {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

impl FromRequest for Authenticated {
    type Error = Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(required_principal(req).map(Authenticated))
    }
}

/// The verified caller, or `None` when an [optional](auth_core::AccessPolicy::optional)
/// policy let a request without any token through.
///
/// `None` means exactly that: a request with an invalid token never reaches the handler
/// (the middleware answers 401), and a route without the middleware is answered 500
/// `server_error` instead of being treated as anonymous.
///
/// ```
/// use actix_web::HttpResponse;
/// use auth_actix::MaybeAuthenticated;
///
/// async fn greet(MaybeAuthenticated(caller): MaybeAuthenticated) -> HttpResponse {
///     match caller {
///         Some(principal) => HttpResponse::Ok().body(format!("hello {:?}", principal.subject())),
///         None => HttpResponse::Ok().body("hello, anonymous"),
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MaybeAuthenticated(pub Option<Principal>);

impl MaybeAuthenticated {
    /// The verified caller, if the request carried a token.
    pub fn into_inner(self) -> Option<Principal> {
        self.0
    }
}

impl Deref for MaybeAuthenticated {
    type Target = Option<Principal>;

    fn deref(&self) -> &Option<Principal> {
        &self.0
    }
}

impl FromRequest for MaybeAuthenticated {
    type Error = Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(outcome(req).map(|outcome| MaybeAuthenticated(outcome.principal)))
    }
}

/// The verified token's claims, deserialized into your own type `T`.
///
/// Rejects the request like [`Authenticated`] when there is no caller. When the claims
/// do not deserialize into `T` (a claim your type requires is absent or has another
/// type), answers 401 `invalid_token` with a fixed description (never the token or its
/// claims; `TokenError::UnexpectedClaims`) and logs the serde error at debug level.
///
/// As with [`Authenticated`], `Option<TypedClaims<T>>` is actix-web's own `Option`
/// extractor: `None` for *any* failure, claims that do not fit `T` included. To accept
/// requests without a token but reject ill-shaped claims, take [`MaybeAuthenticated`] and
/// call [`Principal::custom_claims`].
///
/// ```
/// use actix_web::HttpResponse;
/// use auth_actix::TypedClaims;
///
/// #[derive(serde::Deserialize)]
/// struct TenantClaims {
///     tenant: String,
///     client_id: String,
/// }
///
/// async fn tenant(TypedClaims(claims): TypedClaims<TenantClaims>) -> HttpResponse {
///     HttpResponse::Ok().body(format!("{} calls for {}", claims.client_id, claims.tenant))
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedClaims<T>(pub T);

impl<T> TypedClaims<T> {
    /// The claims.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for TypedClaims<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for TypedClaims<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: DeserializeOwned> FromRequest for TypedClaims<T> {
    type Error = Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(typed_claims(req).map(TypedClaims))
    }
}

fn typed_claims<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, Error> {
    let outcome = outcome(req)?;
    let principal = principal_of(&outcome)?;
    principal.custom_claims::<T>().map_err(|err| {
        // serde's message may quote claim values: it goes to the debug log, not the client.
        tracing::debug!(error = %err, claims_type = std::any::type_name::<T>(), "claims do not fit the handler's type");
        reject(&outcome, AuthError::InvalidToken(TokenError::UnexpectedClaims))
    })
}

fn required_principal(req: &HttpRequest) -> Result<Principal, Error> {
    principal_of(&outcome(req)?)
}

fn principal_of(outcome: &AuthOutcome) -> Result<Principal, Error> {
    outcome.principal.clone().ok_or_else(|| reject(outcome, AuthError::MissingToken))
}

/// Refuses for `err` (counted and logged at the one exit) and answers like the
/// middleware that let the request through.
fn reject(outcome: &AuthOutcome, err: AuthError) -> Error {
    let refusal = outcome.shared.policy.validator().refusal(err);
    let response = outcome.shared.respond(&refusal);
    InternalError::from_response(refusal.error, response).into()
}

/// What the middleware stored, or the 500 for a route it does not guard.
fn outcome(req: &HttpRequest) -> Result<AuthOutcome, Error> {
    if let Some(outcome) = req.extensions().get::<AuthOutcome>() {
        return Ok(outcome.clone());
    }
    let route = req.match_pattern();
    let rejection = Rejection::middleware_missing(route.as_deref().unwrap_or("<unmatched>"));
    Err(InternalError::from_response(MiddlewareMissing, rejection_response(&rejection)).into())
}

/// The cause of the 500 answered when an extractor runs without the middleware.
#[derive(Debug)]
struct MiddlewareMissing;

impl fmt::Display for MiddlewareMissing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("authentication middleware is not configured for this route")
    }
}

/// The delegation chain of a token obtained by token exchange (RFC 8693 `act`): the
/// current actor first, then the ones before it; empty for a token nobody acts through.
///
/// ```
/// use actix_web::HttpResponse;
/// use auth_actix::Delegation;
///
/// async fn audit(Delegation(chain): Delegation) -> HttpResponse {
///     let names: Vec<_> = chain.iter().filter_map(|actor| actor.subject.as_deref()).collect();
///     HttpResponse::Ok().body(names.join(" <- "))
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Delegation(pub Vec<auth_core::Actor>);

impl FromRequest for Delegation {
    type Error = Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(required_principal(req).map(|principal| {
            Delegation(principal.actor().map(|actor| actor.chain().cloned().collect()).unwrap_or_default())
        }))
    }
}
