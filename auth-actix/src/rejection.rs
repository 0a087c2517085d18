//! Turning a [`Rejection`] into an [`HttpResponse`].
//!
//! The decision (status, challenge, body) is made once, in `auth-core`; this module
//! only copies it into actix-web types, so the actix and tower adapters answer alike.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use auth_core::{AuthError, Rejection};

/// A user-supplied function that shapes the response to a rejected request.
pub(crate) type ErrorHandler = Arc<dyn Fn(&AuthError, &Rejection) -> HttpResponse + Send + Sync>;

/// The default response to a rejected request: the rejection's status,
/// `WWW-Authenticate`, `Content-Type: application/json`, its JSON body, and
/// `Retry-After` when the issuer's keys are unavailable.
///
/// Useful in an [`on_rejection`](crate::AuthMiddleware::on_rejection) handler that only wants to
/// adjust the default, for example to add a header:
///
/// ```
/// use auth_actix::{AuthError, Rejection, rejection_response};
/// use actix_web::HttpResponse;
///
/// fn with_trace_header(_err: &AuthError, rejection: &Rejection) -> HttpResponse {
///     let mut response = rejection_response(rejection);
///     response.headers_mut().insert(
///         actix_web::http::header::HeaderName::from_static("x-auth-rejected"),
///         actix_web::http::header::HeaderValue::from_static("1"),
///     );
///     response
/// }
/// ```
pub fn rejection_response(rejection: &Rejection) -> HttpResponse {
    // auth-core only produces 400, 401, 403 and 503; anything else would be a bug there,
    // and still must not let the request through.
    let status = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = HttpResponse::build(status);
    // Challenges are built from fixed texts and quoted configuration values (auth-core
    // replaces anything not allowed in a header); fall back to the bare scheme regardless.
    for challenge in &rejection.challenges {
        let challenge = HeaderValue::from_str(challenge).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        builder.append_header((header::WWW_AUTHENTICATE, challenge));
    }
    if let Some(seconds) = rejection.retry_after {
        builder.insert_header((header::RETRY_AFTER, seconds));
    }
    builder.content_type(mime_json()).body(rejection.body.clone())
}

fn mime_json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;
    use auth_core::TokenError;

    /// The rejection auth-core renders for `err` without a realm.
    fn parts(err: &AuthError) -> Rejection {
        Rejection::from_error(err, None)
    }

    #[test]
    fn copies_status_challenge_body_and_retry_after() {
        let err = AuthError::KeysUnavailable { retry_after: Some(std::time::Duration::from_secs(3)) };
        let response = rejection_response(&parts(&err));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("3"));
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let body = response.into_body().try_into_bytes().unwrap_or_default();
        assert_eq!(body, err.json_body().as_bytes());

        let err = AuthError::InvalidToken(TokenError::Expired);
        let response = rejection_response(&parts(&err));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()),
            Some(r#"Bearer error="invalid_token", error_description="the token has expired""#)
        );
    }

    #[test]
    fn every_challenge_is_its_own_header() {
        let mut rejection = parts(&AuthError::InvalidToken(TokenError::Expired));
        rejection.challenges.push(r#"DPoP algs="ES256""#.to_owned());
        let response = rejection_response(&rejection);
        let values: Vec<_> = response.headers().get_all(header::WWW_AUTHENTICATE).collect();
        assert_eq!(values.len(), 2);
        assert_eq!(values[1].to_str().ok(), Some(r#"DPoP algs="ES256""#));
    }

    #[test]
    fn an_unsendable_challenge_falls_back_to_the_scheme() {
        let mut rejection = parts(&AuthError::MissingToken);
        rejection.challenges = vec!["Bearer\nInjected: yes".to_owned()];
        let response = rejection_response(&rejection);
        assert_eq!(response.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()), Some("Bearer"));
    }
}
