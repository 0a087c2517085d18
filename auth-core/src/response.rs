//! How a refusal is spoken over HTTP (RFC 6750 §3): the `WWW-Authenticate` challenge,
//! the JSON body, `Retry-After`, and the whole answer ([`Rejection`]) that every adapter
//! copies as it is.

use std::fmt::{self, Write as _};

use crate::LOG_TARGET;
use crate::rejection::AuthError;

impl AuthError {
    /// The `WWW-Authenticate` header value (RFC 6750 §3), auth-params separated by
    /// commas (RFC 7235 §4.1). `realm` is included when given.
    pub fn www_authenticate(&self, realm: Option<&str>) -> String {
        let mut params: Vec<(&str, String)> = Vec::with_capacity(4);
        if let Some(realm) = realm {
            params.push(("realm", realm.to_owned()));
        }
        if let Some(code) = self.error_code() {
            params.push(("error", code.to_owned()));
        }
        // A request without a bearer credential gets the bare challenge (RFC 6750 §3.1).
        if !self.reason().bare_challenge() {
            params.push(("error_description", self.description()));
        }
        if let AuthError::InsufficientScope { required } = self {
            params.push(("scope", required.to_string()));
        }
        let mut out = String::from("Bearer");
        for (i, (name, value)) in params.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            let _ = write!(out, "{name}=\"{}\"", QuotedString(value));
        }
        out
    }

    /// `{"error": ..., "error_description": ...}`, the default error body of both adapters.
    pub fn json_body(&self) -> String {
        serde_json::json!({
            "error": self.body_code(),
            "error_description": self.description(),
        })
        .to_string()
    }

    /// Seconds for a `Retry-After` header, for an outage.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::KeysUnavailable { retry_after: Some(after) } => {
                Some(after.as_secs() + u64::from(after.subsec_nanos() > 0))
            }
            _ => None,
        }
    }
}

/// Renders a value as the inside of an RFC 7230 quoted-string; characters that RFC 6750
/// forbids in these params (`"`, `\`, controls) are replaced, never passed through.
struct QuotedString<'a>(&'a str);

impl fmt::Display for QuotedString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            let allowed = c == ' ' || c == '!' || (('#'..='~').contains(&c) && c != '\\');
            f.write_char(if allowed { c } else { '?' })?;
        }
        Ok(())
    }
}

/// How a refused request is answered; identical in every adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// 400, 401, 403, 503 (or 500 for a route whose middleware is missing).
    pub status: u16,
    /// The `WWW-Authenticate` values, one challenge each (`Bearer`; later `DPoP` too,
    /// RFC 9449 §7.2). Empty for a 500.
    pub challenges: Vec<String>,
    /// `{"error": ..., "error_description": ...}` (`application/json`).
    pub body: String,
    /// The description alone (for `grpc-message`): fixed texts and configured names,
    /// never the token.
    pub description: String,
    /// `Retry-After` seconds, for 503.
    pub retry_after: Option<u64>,
    /// The gRPC status: 16 `UNAUTHENTICATED` (400, 401), 7 `PERMISSION_DENIED` (403),
    /// 14 `UNAVAILABLE` (503), 13 `INTERNAL` (500).
    pub grpc_status: u8,
}

impl Rejection {
    /// The standard rendering of `err`, with `realm` in the challenge when given.
    pub fn from_error(err: &AuthError, realm: Option<&str>) -> Rejection {
        let status = err.status();
        let challenges = if err.reason().has_challenge() { vec![err.www_authenticate(realm)] } else { Vec::new() };
        Rejection {
            status,
            challenges,
            body: err.json_body(),
            description: err.description(),
            retry_after: err.retry_after_secs(),
            grpc_status: grpc_status(status),
        }
    }

    /// The first challenge (`Bearer`), or `""` for a 500.
    pub fn www_authenticate(&self) -> &str {
        self.challenges.first().map_or("", String::as_str)
    }

    /// The 500 for a route whose handler asks for the caller without the middleware in
    /// front: a configuration error, never a silent pass. Logged at error.
    pub fn middleware_missing(route: &str) -> Rejection {
        tracing::error!(
            target: LOG_TARGET,
            route = route,
            "{MIDDLEWARE_MISSING}: put the authentication layer or middleware in front of this route"
        );
        Rejection {
            status: 500,
            challenges: Vec::new(),
            body: serde_json::json!({"error": "server_error", "error_description": MIDDLEWARE_MISSING}).to_string(),
            description: MIDDLEWARE_MISSING.to_owned(),
            retry_after: None,
            grpc_status: 13,
        }
    }
}

const MIDDLEWARE_MISSING: &str = "authentication middleware is not configured for this route";

const fn grpc_status(status: u16) -> u8 {
    match status {
        403 => 7,
        503 => 14,
        500 => 13,
        _ => 16,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rejection::{ClaimName, RequestError, TokenError};
    use crate::scope::ScopeRequirement;

    #[test]
    fn challenges_are_comma_separated_and_name_the_scope() {
        assert_eq!(AuthError::MissingToken.www_authenticate(None), "Bearer");
        assert_eq!(AuthError::MissingToken.www_authenticate(Some("api")), r#"Bearer realm="api""#);
        let err = AuthError::InsufficientScope { required: ScopeRequirement::all(["orders:read", "orders:write"]) };
        assert_eq!(
            err.www_authenticate(None),
            r#"Bearer error="insufficient_scope", error_description="the token lacks the required scope: orders:read orders:write", scope="orders:read orders:write""#
        );
        assert_eq!(AuthError::UnsupportedScheme.www_authenticate(None), "Bearer");
        assert_eq!(
            AuthError::from(RequestError::MultipleTokens).www_authenticate(None),
            r#"Bearer error="invalid_request", error_description="the request carries more than one token""#
        );
    }

    #[test]
    fn quoted_values_cannot_break_out() {
        let err = AuthError::InvalidToken(TokenError::MissingClaim(ClaimName::Configured("a\"b\\c\nd".into())));
        let header = err.www_authenticate(Some("r\"x"));
        assert_eq!(
            header,
            r#"Bearer realm="r?x", error="invalid_token", error_description="the token lacks the required claim a?b?c?d""#
        );
    }

    #[test]
    fn json_body_and_retry_after() {
        let err = AuthError::KeysUnavailable { retry_after: Some(Duration::from_millis(1500)) };
        assert_eq!(err.retry_after_secs(), Some(2));
        let body: serde_json::Value = serde_json::from_str(&err.json_body()).unwrap_or_default();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert_eq!(AuthError::from(TokenError::Expired).retry_after_secs(), None);
    }

    #[test]
    fn renderings() {
        let r = Rejection::from_error(&AuthError::MissingToken, Some("api"));
        assert_eq!((r.status, r.grpc_status, r.www_authenticate()), (401, 16, r#"Bearer realm="api""#));
        let r = Rejection::from_error(&AuthError::KeysUnavailable { retry_after: None }, None);
        assert_eq!((r.status, r.grpc_status), (503, 14));
        let r = Rejection::from_error(&TokenError::Expired.into(), None);
        assert_eq!((r.status, r.grpc_status, r.description.as_str()), (401, 16, "the token has expired"));
        let r = Rejection::middleware_missing("/x");
        assert_eq!((r.status, r.grpc_status, r.challenges.len()), (500, 13, 0));
    }
}
