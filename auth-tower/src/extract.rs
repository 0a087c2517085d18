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

/// Why an extractor failed: an authentication error (rendered like the layer's), or a
/// route that has no [`AuthLayer`](crate::AuthLayer) (500: a server configuration error).
#[derive(Debug)]
pub enum ExtractorRejection {
    /// The request is not authenticated, or its claims do not fit the type.
    Auth(Rejection),
    /// No `AuthLayer` ran for this request.
    LayerMissing,
}

impl IntoResponse for ExtractorRejection {
    fn into_response(self) -> Response {
        match self {
            ExtractorRejection::Auth(rejection) => json_response(&rejection).map(axum::body::Body::from),
            ExtractorRejection::LayerMissing => {
                tracing::error!("an auth extractor was used on a route without AuthLayer");
                let body = r#"{"error":"server_error","error_description":"authentication middleware is not configured for this route"}"#;
                (http::StatusCode::INTERNAL_SERVER_ERROR, [(http::header::CONTENT_TYPE, "application/json")], body)
                    .into_response()
            }
        }
    }
}

fn state(parts: &Parts) -> Result<(&LayerRan, Option<&Principal>), ExtractorRejection> {
    let ran = parts.extensions.get::<LayerRan>().ok_or(ExtractorRejection::LayerMissing)?;
    Ok((ran, parts.extensions.get::<Principal>()))
}

fn reject(ran: &LayerRan, err: AuthError) -> ExtractorRejection {
    ran.validator.record(&err);
    ExtractorRejection::Auth(Rejection::from_error(&err, ran.validator.realm()))
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
    principal.custom_claims().map(TypedClaims).map_err(|_| reject(ran, TokenError::UnexpectedClaims.into()))
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
