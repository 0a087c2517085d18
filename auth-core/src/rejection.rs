//! Why a request is refused: the error types, and the one table of refusal kinds
//! ([`RejectReason`]) that says how each is answered. The HTTP rendering of an answer is
//! in `response.rs`.
//!
//! Every description here is a fixed text or a name from the configuration: never a
//! part of the token, never key material, so adapters may send it as it is.

use std::fmt;
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

/// One row per kind of refusal: its label (logs, metric labels), HTTP status, RFC 6750
/// error code (the challenge's `error`, none when there was no bearer credential or the
/// fault is not the client's), the JSON body's `error`, and whether it points at an
/// attack (logged at warn). Every answer is read from here; nothing else lists the kinds.
macro_rules! reject_reasons {
    ($( $(#[$doc:meta])* $kind:ident => $label:literal, $status:literal, $code:expr, $body:literal, $attack:literal; )*) => {
        /// A stable label for counting and logging decisions; one per outcome kind, and
        /// the one table of how each kind is answered.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum RejectReason {
            $( $(#[$doc])* $kind, )*
        }

        const REJECT_REASONS: usize = [$( $label ),*].len();

        impl RejectReason {
            /// Every reason, in a fixed order (the order of [`MetricsSnapshot::rejections`](crate::MetricsSnapshot)).
            pub const ALL: [RejectReason; REJECT_REASONS] = [$( RejectReason::$kind ),*];

            /// A snake_case label, for logs and metric labels.
            pub const fn as_str(self) -> &'static str {
                match self { $( RejectReason::$kind => $label, )* }
            }

            /// The HTTP status: 400, 401, 403 or 503.
            pub const fn status(self) -> u16 {
                match self { $( RejectReason::$kind => $status, )* }
            }

            /// The RFC 6750 error code of the challenge, if any.
            pub const fn error_code(self) -> Option<&'static str> {
                match self { $( RejectReason::$kind => $code, )* }
            }

            /// The `error` member of the JSON error body.
            pub const fn body_code(self) -> &'static str {
                match self { $( RejectReason::$kind => $body, )* }
            }

            /// Whether the refusal points at an attack (a forged or tampered token).
            pub const fn is_attack(self) -> bool {
                match self { $( RejectReason::$kind => $attack, )* }
            }
        }
    };
}

const INVALID_TOKEN: Option<&str> = Some("invalid_token");

reject_reasons! {
    // kind => label, status, RFC 6750 code, body `error`, attack;
    /// No credentials (RFC 6750 §3.1: a bare challenge).
    MissingToken => "missing_token", 401, None, "unauthorized", false;
    /// Credentials of another scheme: answered like none.
    UnsupportedScheme => "unsupported_scheme", 401, None, "unauthorized", false;
    /// More than one token.
    InvalidRequest => "invalid_request", 400, Some("invalid_request"), "invalid_request", false;
    /// [`TokenError::TooLarge`].
    TooLarge => "too_large", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::Malformed`].
    Malformed => "malformed", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::UnsupportedAlgorithm`].
    UnsupportedAlgorithm => "unsupported_algorithm", 401, INVALID_TOKEN, "invalid_token", true;
    /// [`TokenError::AlgorithmNotAllowed`].
    AlgorithmNotAllowed => "algorithm_not_allowed", 401, INVALID_TOKEN, "invalid_token", true;
    /// [`TokenError::UnsupportedCriticalHeader`].
    UnsupportedCriticalHeader => "unsupported_critical_header", 401, INVALID_TOKEN, "invalid_token", true;
    /// [`TokenError::InvalidType`].
    InvalidType => "invalid_type", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::UnknownIssuer`].
    UnknownIssuer => "unknown_issuer", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::UnknownKey`].
    UnknownKey => "unknown_key", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::AmbiguousKey`].
    AmbiguousKey => "ambiguous_key", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::KeyAlgorithmMismatch`].
    KeyAlgorithmMismatch => "key_algorithm_mismatch", 401, INVALID_TOKEN, "invalid_token", true;
    /// [`TokenError::InvalidSignature`].
    InvalidSignature => "invalid_signature", 401, INVALID_TOKEN, "invalid_token", true;
    /// [`TokenError::Expired`].
    Expired => "expired", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::NotYetValid`].
    NotYetValid => "not_yet_valid", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::IssuedInFuture`].
    IssuedInFuture => "issued_in_future", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::TooOld`].
    TooOld => "too_old", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::InvalidAudience`].
    InvalidAudience => "invalid_audience", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::MissingClaim`].
    MissingClaim => "missing_claim", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::InvalidClaim`] and [`TokenError::UnexpectedClaims`].
    InvalidClaim => "invalid_claim", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::SenderConstrained`].
    SenderConstrained => "sender_constrained", 401, INVALID_TOKEN, "invalid_token", false;
    /// [`TokenError::CertificateMismatch`] and [`TokenError::CertificateBindingRequired`].
    CertificateBinding => "certificate_binding", 401, INVALID_TOKEN, "invalid_token", false;
    /// A required scope is missing.
    InsufficientScope => "insufficient_scope", 403, Some("insufficient_scope"), "insufficient_scope", false;
    /// The token's actor is not allowed (no challenge: another token cannot help).
    ActorNotAllowed => "actor_not_allowed", 403, None, "forbidden", false;
    /// The issuer's keys cannot be had (503 with `Retry-After`).
    KeysUnavailable => "keys_unavailable", 503, None, "temporarily_unavailable", false;
}

impl RejectReason {
    /// Whether the answer carries a `WWW-Authenticate: Bearer` challenge: every one but a
    /// 403 without an RFC 6750 code (a refused actor), where another token from the same
    /// caller cannot help.
    pub const fn has_challenge(self) -> bool {
        !(self.status() == 403 && self.error_code().is_none())
    }

    /// Whether the challenge is the bare `Bearer` (no error, no description): a request
    /// without a bearer credential (RFC 6750 §3.1).
    pub const fn bare_challenge(self) -> bool {
        self.status() == 401 && self.error_code().is_none()
    }
}

impl TokenError {
    /// The row of the [`RejectReason`] table this error is answered by.
    pub const fn reason(&self) -> RejectReason {
        match self {
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
        }
    }
}

impl AuthError {
    /// The row of the [`RejectReason`] table this error is answered by.
    pub const fn reason(&self) -> RejectReason {
        match self {
            AuthError::MissingToken => RejectReason::MissingToken,
            AuthError::UnsupportedScheme => RejectReason::UnsupportedScheme,
            AuthError::InvalidRequest(_) => RejectReason::InvalidRequest,
            AuthError::InvalidToken(err) => err.reason(),
            AuthError::InsufficientScope { .. } => RejectReason::InsufficientScope,
            AuthError::ActorNotAllowed { .. } => RejectReason::ActorNotAllowed,
            AuthError::KeysUnavailable { .. } => RejectReason::KeysUnavailable,
        }
    }

    /// The HTTP status to answer with: 400, 401, 403 or 503.
    pub const fn status(&self) -> u16 {
        self.reason().status()
    }

    /// The RFC 6750 error code for the challenge, if any. A request without credentials
    /// gets none (RFC 6750 §3.1), nor does an outage, which is not the client's fault.
    pub const fn error_code(&self) -> Option<&'static str> {
        self.reason().error_code()
    }

    /// The `error` member of the JSON error body: the RFC 6750 code where there is one,
    /// `unauthorized` for a missing token and `temporarily_unavailable` for an outage.
    pub const fn body_code(&self) -> &'static str {
        self.reason().body_code()
    }

    /// A human-readable description that is safe to send to the client.
    pub fn description(&self) -> String {
        self.to_string()
    }
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
    fn every_reason_has_a_distinct_label() {
        let labels: std::collections::HashSet<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), RejectReason::ALL.len());
    }

    #[test]
    fn the_table_keeps_rfc_6750s_pairs() {
        for reason in RejectReason::ALL {
            let expected = match reason.status() {
                400 => Some("invalid_request"),
                401 if reason.bare_challenge() => None,
                401 => Some("invalid_token"),
                403 if reason == RejectReason::InsufficientScope => Some("insufficient_scope"),
                403 | 503 => None,
                other => panic!("{reason:?}: status {other}"),
            };
            assert_eq!(reason.error_code(), expected, "{reason:?}");
            if let Some(code) = reason.error_code() {
                assert_eq!(reason.body_code(), code, "{reason:?}");
            }
        }
        let bare: Vec<_> = RejectReason::ALL.into_iter().filter(|r| r.bare_challenge()).collect();
        assert_eq!(bare, [RejectReason::MissingToken, RejectReason::UnsupportedScheme]);
        let unchallenged: Vec<_> = RejectReason::ALL.into_iter().filter(|r| !r.has_challenge()).collect();
        assert_eq!(unchallenged, [RejectReason::ActorNotAllowed]);
    }
}
