//! axum extractors: the verified principal and your own claims type, required or optional.

use auth_core::{AuthError, Principal, Rejection, TokenError};
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::LayerRan;
use crate::rejection::json_response;

/// The verified caller. Requires an [`AuthLayer`](crate::AuthLayer) on the route; use
/// `Option<Authenticated>` under an optional policy.
///
/// ```
/// use auth_tower::Authenticated;
///
/// async fn handler(Authenticated(caller): Authenticated) -> String {
///     format!("{:?} with {:?}", caller.subject(), caller.scopes())
/// }
/// async fn maybe(caller: Option<Authenticated>) -> &'static str {
///     if caller.is_some() { "hello, caller" } else { "hello, stranger" }
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// The verified token's claims, deserialized into your type.
///
/// ```
/// use auth_tower::TypedClaims;
///
/// #[derive(serde::Deserialize)]
/// struct Tenant { tenant: String }
///
/// async fn handler(TypedClaims(claims): TypedClaims<Tenant>) -> String {
///     claims.tenant
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TypedClaims<T>(pub T);

/// Why an extractor failed: an authentication refusal, answered the way the layer's
/// [`on_rejection`](crate::AuthLayer::on_rejection) answers (JSON, gRPC status, or
/// yours), or a route that has no [`AuthLayer`](crate::AuthLayer) (500: a server
/// configuration error).
#[derive(Debug)]
pub enum ExtractorRejection {
    /// The request is not authenticated, or its claims do not fit the type: the layer's
    /// response for it.
    Auth(Box<http::Response<bytes::Bytes>>),
    /// No `AuthLayer` ran for this request.
    LayerMissing(Box<Rejection>),
}

impl IntoResponse for ExtractorRejection {
    fn into_response(self) -> Response {
        match self {
            ExtractorRejection::Auth(response) => response.map(axum::body::Body::from),
            ExtractorRejection::LayerMissing(rejection) => json_response(&rejection).map(axum::body::Body::from),
        }
    }
}

fn state(parts: &Parts) -> Result<(&LayerRan, Option<&Principal>), ExtractorRejection> {
    let Some(ran) = parts.extensions.get::<LayerRan>() else {
        return Err(ExtractorRejection::LayerMissing(Box::new(Rejection::middleware_missing(parts.uri.path()))));
    };
    Ok((ran, parts.extensions.get::<Principal>()))
}

fn reject(ran: &LayerRan, err: AuthError) -> ExtractorRejection {
    let refusal = ran.0.validator.refusal(err);
    ExtractorRejection::Auth(Box::new((ran.0.render)(&refusal)))
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ExtractorRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match state(parts)? {
            (_, Some(principal)) => Ok(Authenticated(principal.clone())),
            (ran, None) => Err(reject(ran, AuthError::MissingToken)),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Authenticated {
    type Rejection = ExtractorRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(state(parts)?.1.cloned().map(Authenticated))
    }
}

fn claims<T: DeserializeOwned>(ran: &LayerRan, principal: &Principal) -> Result<TypedClaims<T>, ExtractorRejection> {
    principal.custom_claims().map(TypedClaims).map_err(|err| {
        // serde's message may quote claim values: it goes to the debug log, not the client.
        tracing::debug!(error = %err, claims_type = std::any::type_name::<T>(), "claims do not fit the handler's type");
        reject(ran, TokenError::UnexpectedClaims.into())
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for TypedClaims<T> {
    type Rejection = ExtractorRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match state(parts)? {
            (ran, Some(principal)) => claims(ran, principal),
            (ran, None) => Err(reject(ran, AuthError::MissingToken)),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequestParts<S> for TypedClaims<T> {
    type Rejection = ExtractorRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        match state(parts)? {
            (ran, Some(principal)) => claims(ran, principal).map(Some),
            (_, None) => Ok(None),
        }
    }
}

/// The delegation chain of a token obtained by token exchange (RFC 8693 `act`): the
/// current actor first, then the ones before it; empty for a token nobody acts through.
///
/// ```
/// use auth_tower::Delegation;
///
/// async fn audit(Delegation(chain): Delegation) -> String {
///     chain.iter().filter_map(|actor| actor.subject.as_deref()).collect::<Vec<_>>().join(" <- ")
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Delegation(pub Vec<auth_core::Actor>);

impl<S: Send + Sync> FromRequestParts<S> for Delegation {
    type Rejection = ExtractorRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match state(parts)? {
            (_, Some(principal)) => Ok(Delegation(chain_of(principal))),
            (ran, None) => Err(reject(ran, AuthError::MissingToken)),
        }
    }
}

fn chain_of(principal: &Principal) -> Vec<auth_core::Actor> {
    principal.actor().map(|actor| actor.chain().cloned().collect()).unwrap_or_default()
}
