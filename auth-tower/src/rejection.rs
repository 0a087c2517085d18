//! Turning a rejection into a response: JSON by default, gRPC status for tonic, or yours.

use auth_core::{AuthError, Rejection};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// Shapes the response for a rejected request.
///
/// Implemented by [`JsonRejection`] (the default), [`GrpcRejection`], and any
/// `Fn(&AuthError, &Rejection) -> Response<Bytes> + Clone + Send + Sync + 'static`:
///
/// ```
/// use auth_tower::{AuthLayer, AuthError, Rejection};
/// use http::Response;
///
/// # fn f(policy: auth_core::AccessPolicy) {
/// let layer = AuthLayer::new(policy).on_rejection(|err: &AuthError, r: &Rejection| {
///     Response::builder()
///         .status(r.status)
///         .header("www-authenticate", r.www_authenticate())
///         .body(format!("denied: {err}").into())
///         .unwrap_or_default()
/// });
/// # }
/// ```
pub trait OnRejection: Clone + Send + Sync + 'static {
    /// Builds the response for `error`, whose standard rendering is `rejection`.
    fn on_rejection(&self, error: &AuthError, rejection: &Rejection) -> Response<Bytes>;
}

impl<F> OnRejection for F
where
    F: Fn(&AuthError, &Rejection) -> Response<Bytes> + Clone + Send + Sync + 'static,
{
    fn on_rejection(&self, error: &AuthError, rejection: &Rejection) -> Response<Bytes> {
        self(error, rejection)
    }
}

/// The default: the status, `WWW-Authenticate`, `Retry-After` for 503, and a JSON body
/// `{"error": ..., "error_description": ...}`. Identical to `auth-actix`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonRejection;

impl OnRejection for JsonRejection {
    fn on_rejection(&self, _error: &AuthError, rejection: &Rejection) -> Response<Bytes> {
        json_response(rejection)
    }
}

pub(crate) fn json_response(rejection: &Rejection) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(rejection.body.clone()));
    *response.status_mut() = StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    insert_common(headers, rejection);
    response
}

fn insert_common(headers: &mut http::HeaderMap, rejection: &Rejection) {
    // Challenge values are built from fixed texts and validated configuration, so this
    // conversion cannot fail; if it ever did, the status still tells the client enough.
    for challenge in &rejection.challenges {
        if let Ok(value) = HeaderValue::from_str(challenge) {
            headers.append(header::WWW_AUTHENTICATE, value);
        }
    }
    if let Some(secs) = rejection.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

/// For gRPC services (tonic): a trailers-only response, HTTP 200 with `grpc-status`
/// 16 `UNAUTHENTICATED` (400/401), 7 `PERMISSION_DENIED` (403), 14 `UNAVAILABLE` (503)
/// or 13 `INTERNAL` (500), the description in `grpc-message`, and the `WWW-Authenticate`
/// challenge.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcRejection;

impl OnRejection for GrpcRejection {
    fn on_rejection(&self, _error: &AuthError, rejection: &Rejection) -> Response<Bytes> {
        let mut response = Response::new(Bytes::new());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from(u16::from(rejection.grpc_status)));
        if let Ok(value) = HeaderValue::from_str(&percent_encode_grpc_message(&rejection.description)) {
            headers.insert("grpc-message", value);
        }
        insert_common(headers, rejection);
        response
    }
}

/// `grpc-message` is percent-encoded (gRPC over HTTP/2 spec): printable ASCII except `%`.
fn percent_encode_grpc_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth_core::TokenError;

    fn rejection(status: u16) -> Rejection {
        let err = match status {
            503 => AuthError::KeysUnavailable { retry_after: Some(std::time::Duration::from_secs(3)) },
            _ => AuthError::InvalidToken(TokenError::Expired),
        };
        Rejection::from_error(&err, None)
    }

    #[test]
    fn json_response_has_challenge_and_retry_after() {
        let r = json_response(&rejection(503));
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn every_challenge_is_its_own_header() {
        let mut r = rejection(401);
        r.challenges.push(r#"DPoP algs="ES256", error="invalid_token""#.to_owned());
        let response = json_response(&r);
        let values: Vec<_> = response.headers().get_all(header::WWW_AUTHENTICATE).iter().collect();
        assert_eq!(values.len(), 2);
        assert!(
            values[0].to_str().unwrap_or("").starts_with("Bearer ")
                && values[1].to_str().unwrap_or("").starts_with("DPoP ")
        );
    }

    #[test]
    fn grpc_codes() {
        let r = GrpcRejection.on_rejection(&AuthError::MissingToken, &rejection(401));
        assert_eq!((r.status(), &r.headers()["grpc-status"]), (StatusCode::OK, &HeaderValue::from(16u16)));
        assert_eq!(r.headers()["grpc-message"], "the token has expired");
        assert_eq!(percent_encode_grpc_message("a%b\u{e9}"), "a%25b%C3%A9");
    }
}
