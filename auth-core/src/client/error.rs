//! Why a token could not be had.

use std::time::Duration;

/// Why a [`TokenSource`](super::TokenSource) has no token to give.
///
/// Nothing secret is in it: no client secret, assertion or token, and the server's
/// `error_description` only shortened and stripped of control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenSourceError {
    /// The token endpoint could not be reached, timed out, or answered with a server
    /// error; the current token (if any) has expired. Transient: retry after
    /// `retry_after`.
    #[error("the token endpoint is unavailable: {cause}")]
    Unavailable {
        /// What failed (the transport error or the HTTP status).
        cause: String,
        /// When the next attempt is due.
        retry_after: Option<Duration>,
    },
    /// The authorization server refused the client (RFC 6749 §5.2: `invalid_client`,
    /// `unauthorized_client`, `invalid_scope`, `invalid_grant`, RFC 8707 `invalid_target`,
    /// …): a configuration error, retried only at the backoff ceiling.
    #[error("the token endpoint refused the request: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        /// The OAuth error code.
        code: String,
        /// The server's `error_description`, shortened.
        description: Option<String>,
        /// When the next attempt is due.
        retry_after: Option<Duration>,
    },
    /// The token endpoint answered 200 with something that is not a usable token
    /// response (no `access_token`, a `token_type` other than `Bearer`, a token too large).
    #[error("the token response is not usable: {0}")]
    InvalidResponse(String),
    /// A client assertion (`private_key_jwt`) could not be signed.
    #[error("cannot sign the client assertion: {0}")]
    Assertion(String),
    /// An on-behalf-of call carries no [`InboundToken`](crate::InboundToken) to exchange
    /// (the inbound route's policy must `keep_inbound_token`, and the outbound request
    /// carry it): nothing is sent, and the service's own token is never used instead.
    #[error("no inbound token on the request to exchange")]
    MissingSubject,
    /// The token source was shut down.
    #[error("the token source is shut down")]
    ShutDown,
}

impl TokenSourceError {
    /// When to try again, for a `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TokenSourceError::Unavailable { retry_after, .. } | TokenSourceError::Refused { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The same error, due again in `delay` (at least 1 s, as `Retry-After` counts seconds);
    /// kinds without a retry time are unchanged.
    pub(crate) fn with_retry_after(self, delay: Duration) -> Self {
        let at = Some(delay.max(Duration::from_secs(1)));
        match self {
            TokenSourceError::Unavailable { cause, .. } => TokenSourceError::Unavailable { cause, retry_after: at },
            TokenSourceError::Refused { code, description, .. } => {
                TokenSourceError::Refused { code, description, retry_after: at }
            }
            other => other,
        }
    }

    /// Whether waiting cannot help: the configuration (client id, credentials, scopes,
    /// resources) is wrong.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            TokenSourceError::Refused { .. }
                | TokenSourceError::Assertion(_)
                | TokenSourceError::ShutDown
                | TokenSourceError::MissingSubject
        )
    }
}

/// At most `max` characters, printable ASCII only: server-provided text goes into logs.
pub(crate) fn printable(text: &str, max: usize) -> String {
    text.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(max).collect()
}
