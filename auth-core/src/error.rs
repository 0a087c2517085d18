//! The one error type of a rejected request, and how it is spoken over HTTP (RFC 6750 §3).
//!
//! Every description here is a fixed text or a name from the configuration: never a
//! part of the token, never key material, so adapters may send it as it is.

use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use crate::scope::ScopeRequirement;

/// Why a request was not authenticated or not authorized.
///
/// Each variant knows its HTTP status ([`status`](Self::status)), its RFC 6750 error
/// code ([`error_code`](Self::error_code)) and renders the `WWW-Authenticate` value
/// ([`www_authenticate`](Self::www_authenticate)), so adapters only copy them.
///
/// ```
/// use auth_core::{AuthError, TokenError};
///
/// let err = AuthError::InvalidToken(TokenError::Expired);
/// assert_eq!(err.status(), 401);
/// assert_eq!(
///     err.www_authenticate(Some("orders")),
///     r#"Bearer realm="orders", error="invalid_token", error_description="the token has expired""#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The request carries no credentials at all (RFC 6750 §3.1: no error code).
    #[error("a bearer token is required")]
    MissingToken,
    /// The request carries credentials of another scheme (`Basic`, a token without a
    /// scheme): 401 with a bare challenge, like no credentials (RFC 6750 §3.1), but never
    /// anonymous under optional authentication.
    #[error("a bearer token is required; the request uses another authentication scheme")]
    UnsupportedScheme,
    /// The request carries more than one token (400 `invalid_request`).
    #[error(transparent)]
    InvalidRequest(#[from] RequestError),
    /// The token is not acceptable (401 `invalid_token`).
    #[error(transparent)]
    InvalidToken(#[from] TokenError),
    /// The token is valid but lacks a required scope (403 `insufficient_scope`).
    #[error("the token lacks the required scope: {required}")]
    InsufficientScope {
        /// What the route requires.
        required: ScopeRequirement,
    },
    /// The token is valid, but its current actor (`act`, RFC 8693) is not one the route
    /// allows, or the route requires or forbids delegation (403; no RFC 6750 code:
    /// another token from the same caller cannot help).
    #[error("the token's actor is not allowed here: the route requires {required}")]
    ActorNotAllowed {
        /// The route's rule.
        required: crate::ActorRequirement,
    },
    /// The issuer's signing keys cannot be had right now (503); the request may succeed later.
    #[error("the issuer's signing keys are temporarily unavailable")]
    KeysUnavailable {
        /// How long until the library will try to fetch the keys again, when known.
        retry_after: Option<Duration>,
    },
}

/// A request that carries more than one token (RFC 6750 §3.1 `invalid_request`, HTTP 400).
/// A malformed token is not one of these: it is [`TokenError::Malformed`] (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// More than one `Authorization` header.
    #[error("more than one Authorization header")]
    MultipleAuthorizationHeaders,
    /// More than one token: two `Bearer` credentials in one field, a header and a query
    /// token, or two `access_token` parameters (RFC 6750 §2: exactly one method).
    #[error("the request carries more than one token")]
    MultipleTokens,
}

/// Why a token was rejected (RFC 6750 §3.1 `invalid_token`, HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than the configured maximum; rejected before any decoding.
    #[error("the token is too large")]
    TooLarge,
    /// Not three non-empty base64url segments, or a segment is not valid JSON / base64url.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is not an asymmetric algorithm this library implements.
    #[error("the token's signature algorithm is not supported")]
    UnsupportedAlgorithm,
    /// The `alg` is supported but not allowed for this issuer.
    #[error("the token's signature algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The header lists `crit` extensions, or uses `b64`, which this library does not implement.
    #[error("the token uses a critical header extension that is not understood")]
    UnsupportedCriticalHeader,
    /// `typ` is not an accepted access-token type.
    #[error("the token type is not accepted")]
    InvalidType,
    /// `iss` names no configured issuer.
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    /// No key of the issuer has the token's `kid`.
    #[error("the token's signing key is not known")]
    UnknownKey,
    /// The token has no `kid` and the issuer publishes several candidate keys.
    #[error("the token names no key and the issuer publishes several")]
    AmbiguousKey,
    /// The key named by `kid` cannot be used with the token's `alg`.
    #[error("the token's algorithm does not match its signing key")]
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    InvalidSignature,
    /// `exp` has passed (with leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (with leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (with leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `iat` is older than the configured maximum token age.
    #[error("the token is too old")]
    TooOld,
    /// `aud` names none of the accepted audiences.
    #[error("the token is not meant for this audience")]
    InvalidAudience,
    /// A required claim is absent.
    #[error("the token lacks the required claim {0}")]
    MissingClaim(ClaimName),
    /// A claim has the wrong JSON type or an out-of-range value.
    #[error("the token's claim {0} is invalid")]
    InvalidClaim(ClaimName),
    /// The token is bound to a sender in a way that is not checked here (a DPoP key, or a
    /// certificate with [`BindingMode::Off`](crate::BindingMode::Off)): accepting it as a
    /// plain bearer token would defeat the binding (RFC 8705 §3, RFC 9449 §7.2).
    #[error("sender-constrained tokens of this kind are not accepted")]
    SenderConstrained,
    /// The token is bound to a client certificate (RFC 8705 `cnf.x5t#S256`) that the
    /// request did not present (another certificate, or none).
    #[error("the token is bound to a client certificate this request does not present")]
    CertificateMismatch,
    /// The token is not bound to a client certificate, and this API requires that.
    #[error("the token is not bound to a client certificate, as this API requires")]
    CertificateBindingRequired,
    /// The claims do not fit the application's claims type (adapters' typed extractors).
    #[error("the token's claims do not have the expected shape")]
    UnexpectedClaims,
}

/// The name of a claim, as it appears in error descriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimName {
    /// A registered claim name known to this library.
    Registered(&'static str),
    /// A name from the configuration (`Issuer::require_claim`).
    Configured(Arc<str>),
}

impl fmt::Display for ClaimName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClaimName::Registered(name) => name,
            ClaimName::Configured(name) => name,
        })
    }
}

impl TokenError {
    pub(crate) fn missing(name: &'static str) -> Self {
        TokenError::MissingClaim(ClaimName::Registered(name))
    }

    pub(crate) fn invalid(name: &'static str) -> Self {
        TokenError::InvalidClaim(ClaimName::Registered(name))
    }
}

/// A stable label for counting and logging decisions; one per outcome kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum RejectReason {
    MissingToken,
    UnsupportedScheme,
    InvalidRequest,
    TooLarge,
    Malformed,
    UnsupportedAlgorithm,
    AlgorithmNotAllowed,
    UnsupportedCriticalHeader,
    InvalidType,
    UnknownIssuer,
    UnknownKey,
    AmbiguousKey,
    KeyAlgorithmMismatch,
    InvalidSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    TooOld,
    InvalidAudience,
    MissingClaim,
    InvalidClaim,
    SenderConstrained,
    CertificateBinding,
    InsufficientScope,
    ActorNotAllowed,
    KeysUnavailable,
}

impl RejectReason {
    /// Every reason, in a fixed order (the order of [`MetricsSnapshot::rejections`](crate::MetricsSnapshot)).
    pub const ALL: [RejectReason; 26] = [
        RejectReason::MissingToken,
        RejectReason::UnsupportedScheme,
        RejectReason::InvalidRequest,
        RejectReason::TooLarge,
        RejectReason::Malformed,
        RejectReason::UnsupportedAlgorithm,
        RejectReason::AlgorithmNotAllowed,
        RejectReason::UnsupportedCriticalHeader,
        RejectReason::InvalidType,
        RejectReason::UnknownIssuer,
        RejectReason::UnknownKey,
        RejectReason::AmbiguousKey,
        RejectReason::KeyAlgorithmMismatch,
        RejectReason::InvalidSignature,
        RejectReason::Expired,
        RejectReason::NotYetValid,
        RejectReason::IssuedInFuture,
        RejectReason::TooOld,
        RejectReason::InvalidAudience,
        RejectReason::MissingClaim,
        RejectReason::InvalidClaim,
        RejectReason::SenderConstrained,
        RejectReason::CertificateBinding,
        RejectReason::InsufficientScope,
        RejectReason::ActorNotAllowed,
        RejectReason::KeysUnavailable,
    ];

    /// A snake_case label, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::MissingToken => "missing_token",
            RejectReason::UnsupportedScheme => "unsupported_scheme",
            RejectReason::InvalidRequest => "invalid_request",
            RejectReason::TooLarge => "too_large",
            RejectReason::Malformed => "malformed",
            RejectReason::UnsupportedAlgorithm => "unsupported_algorithm",
            RejectReason::AlgorithmNotAllowed => "algorithm_not_allowed",
            RejectReason::UnsupportedCriticalHeader => "unsupported_critical_header",
            RejectReason::InvalidType => "invalid_type",
            RejectReason::UnknownIssuer => "unknown_issuer",
            RejectReason::UnknownKey => "unknown_key",
            RejectReason::AmbiguousKey => "ambiguous_key",
            RejectReason::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            RejectReason::InvalidSignature => "invalid_signature",
            RejectReason::Expired => "expired",
            RejectReason::NotYetValid => "not_yet_valid",
            RejectReason::IssuedInFuture => "issued_in_future",
            RejectReason::TooOld => "too_old",
            RejectReason::InvalidAudience => "invalid_audience",
            RejectReason::MissingClaim => "missing_claim",
            RejectReason::InvalidClaim => "invalid_claim",
            RejectReason::SenderConstrained => "sender_constrained",
            RejectReason::CertificateBinding => "certificate_binding",
            RejectReason::InsufficientScope => "insufficient_scope",
            RejectReason::ActorNotAllowed => "actor_not_allowed",
            RejectReason::KeysUnavailable => "keys_unavailable",
        }
    }
}

impl AuthError {
    /// The HTTP status to answer with: 400, 401, 403 or 503.
    pub const fn status(&self) -> u16 {
        match self {
            AuthError::InvalidRequest(_) => 400,
            AuthError::MissingToken | AuthError::UnsupportedScheme | AuthError::InvalidToken(_) => 401,
            AuthError::InsufficientScope { .. } | AuthError::ActorNotAllowed { .. } => 403,
            AuthError::KeysUnavailable { .. } => 503,
        }
    }

    /// The RFC 6750 error code for the challenge, if any. A request without credentials
    /// gets none (RFC 6750 §3.1), nor does an outage, which is not the client's fault.
    pub const fn error_code(&self) -> Option<&'static str> {
        match self {
            AuthError::InvalidRequest(_) => Some("invalid_request"),
            AuthError::InvalidToken(_) => Some("invalid_token"),
            AuthError::InsufficientScope { .. } => Some("insufficient_scope"),
            AuthError::MissingToken
            | AuthError::UnsupportedScheme
            | AuthError::KeysUnavailable { .. }
            | AuthError::ActorNotAllowed { .. } => None,
        }
    }

    /// The `error` member of the JSON error body: the RFC 6750 code where there is one,
    /// `unauthorized` for a missing token and `temporarily_unavailable` for an outage.
    pub const fn body_code(&self) -> &'static str {
        match self {
            AuthError::MissingToken | AuthError::UnsupportedScheme => "unauthorized",
            AuthError::KeysUnavailable { .. } => "temporarily_unavailable",
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::InsufficientScope { .. } => "insufficient_scope",
            AuthError::ActorNotAllowed { .. } => "forbidden",
        }
    }

    /// A human-readable description that is safe to send to the client.
    pub fn description(&self) -> String {
        self.to_string()
    }

    /// The outcome kind, for counting and logging.
    pub fn reason(&self) -> RejectReason {
        match self {
            AuthError::MissingToken => RejectReason::MissingToken,
            AuthError::UnsupportedScheme => RejectReason::UnsupportedScheme,
            AuthError::InvalidRequest(_) => RejectReason::InvalidRequest,
            AuthError::InsufficientScope { .. } => RejectReason::InsufficientScope,
            AuthError::KeysUnavailable { .. } => RejectReason::KeysUnavailable,
            AuthError::ActorNotAllowed { .. } => RejectReason::ActorNotAllowed,
            AuthError::InvalidToken(err) => match err {
                TokenError::TooLarge => RejectReason::TooLarge,
                TokenError::Malformed(_) => RejectReason::Malformed,
                TokenError::UnsupportedAlgorithm => RejectReason::UnsupportedAlgorithm,
                TokenError::AlgorithmNotAllowed => RejectReason::AlgorithmNotAllowed,
                TokenError::UnsupportedCriticalHeader => RejectReason::UnsupportedCriticalHeader,
                TokenError::InvalidType => RejectReason::InvalidType,
                TokenError::UnknownIssuer => RejectReason::UnknownIssuer,
                TokenError::UnknownKey => RejectReason::UnknownKey,
                TokenError::AmbiguousKey => RejectReason::AmbiguousKey,
                TokenError::KeyAlgorithmMismatch => RejectReason::KeyAlgorithmMismatch,
                TokenError::InvalidSignature => RejectReason::InvalidSignature,
                TokenError::Expired => RejectReason::Expired,
                TokenError::NotYetValid => RejectReason::NotYetValid,
                TokenError::IssuedInFuture => RejectReason::IssuedInFuture,
                TokenError::TooOld => RejectReason::TooOld,
                TokenError::InvalidAudience => RejectReason::InvalidAudience,
                TokenError::MissingClaim(_) => RejectReason::MissingClaim,
                TokenError::InvalidClaim(_) | TokenError::UnexpectedClaims => RejectReason::InvalidClaim,
                TokenError::SenderConstrained => RejectReason::SenderConstrained,
                TokenError::CertificateMismatch | TokenError::CertificateBindingRequired => {
                    RejectReason::CertificateBinding
                }
            },
        }
    }

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
        if !matches!(self, AuthError::MissingToken | AuthError::UnsupportedScheme) {
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

/// A configuration that cannot work; returned by the builders, never at request time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No issuer was configured.
    #[error("no issuer configured")]
    NoIssuer,
    /// An issuer was configured twice.
    #[error("issuer {0:?} is configured more than once")]
    DuplicateIssuer(String),
    /// The issuer identifier is empty.
    #[error("an issuer identifier is empty")]
    EmptyIssuer,
    /// An issuer has no accepted audience.
    #[error("issuer {0:?} has no accepted audience")]
    NoAudience(String),
    /// An issuer allows no algorithm.
    #[error("issuer {0:?} allows no algorithm")]
    NoAlgorithm(String),
    /// A URL does not parse or is not allowed (for example plain http to a remote host).
    #[error("invalid URL for {what}: {reason}")]
    InvalidUrl {
        /// Which URL.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A static JWKS document does not parse or has no usable key.
    #[error("invalid static JWKS for issuer {issuer:?}: {reason}")]
    InvalidJwks {
        /// The issuer.
        issuer: String,
        /// Why.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The builder method.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A scope name has characters RFC 6749 §3.3 does not allow.
    #[error("invalid scope name {0:?}")]
    InvalidScope(String),
    /// No crypto backend feature (`aws-lc-rs` or `rust-crypto`) is enabled.
    #[error("no crypto backend: enable the `aws-lc-rs` or `rust-crypto` feature of auth-core")]
    NoCryptoBackend,
    /// The default HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// A client key, certificate or CA certificate (calling side) does not load.
    #[error("invalid client key or certificate: {0}")]
    ClientKey(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_codes() {
        let cases = [
            (AuthError::MissingToken, 401, None),
            (AuthError::UnsupportedScheme, 401, None),
            (RequestError::MultipleAuthorizationHeaders.into(), 400, Some("invalid_request")),
            (TokenError::Expired.into(), 401, Some("invalid_token")),
            (AuthError::InsufficientScope { required: ScopeRequirement::all(["a"]) }, 403, Some("insufficient_scope")),
            (AuthError::KeysUnavailable { retry_after: None }, 503, None),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status(), status, "{err:?}");
            assert_eq!(err.error_code(), code, "{err:?}");
        }
    }

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
    fn every_reason_has_a_distinct_label() {
        let labels: std::collections::HashSet<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), RejectReason::ALL.len());
    }
}
