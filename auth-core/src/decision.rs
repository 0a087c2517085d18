//! The one exit of every request: what [`AccessPolicy::decide`](crate::AccessPolicy::decide)
//! and [`Verification::run`](crate::Verification::run) hand back. Each outcome is counted
//! (the snapshot counters and, with the `metrics` feature, the `metrics` facade), logged
//! once under the target `auth::decision`, and rendered ([`Rejection`], in `response.rs`),
//! so that adapters only copy bytes.

use crate::LOG_TARGET;
use crate::claims::Principal;
use crate::rejection::{AuthError, TokenError};
use crate::response::Rejection;
use crate::warn_budget::WarnBudget;

/// A request let through: the verified caller (`None` for an optional policy and a
/// request without credentials), and headers to add to the response.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Admission {
    /// The verified caller.
    pub principal: Option<Principal>,
    /// Headers for the successful response (for example `DPoP-Nonce`, RFC 9449 §9).
    pub response_headers: Vec<(&'static str, String)>,
    /// The verified token itself, for a policy that keeps it
    /// ([`AccessPolicy::keep_inbound_token`](crate::AccessPolicy::keep_inbound_token)).
    pub inbound_token: Option<crate::InboundToken>,
}

impl Admission {
    pub(crate) fn of(principal: Option<Principal>) -> Self {
        Admission { principal, response_headers: Vec::new(), inbound_token: None }
    }
}

/// A request refused: the error and its rendering, already counted and logged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// Why.
    pub error: AuthError,
    /// How to answer (boxed: a refusal travels in `Result`s whose `Ok` is the hot path).
    pub rejection: Box<Rejection>,
}

/// What is known about a refused request, for the one log line and the metric labels.
/// Every string here is the configuration's or a shortened, attacker-chosen value that
/// is safe to log (never the token).
pub(crate) struct Failure {
    pub(crate) error: AuthError,
    /// The configured issuer the token was routed to, by index.
    pub(crate) issuer: Option<usize>,
    pub(crate) kid: Option<Box<str>>,
    pub(crate) client: Option<Box<str>>,
}

impl From<AuthError> for Failure {
    fn from(error: AuthError) -> Self {
        Failure { error, issuer: None, kid: None, client: None }
    }
}

impl From<TokenError> for Failure {
    fn from(error: TokenError) -> Self {
        AuthError::from(error).into()
    }
}

/// Attacker-chosen strings go to logs only shortened.
pub(crate) fn shortened(s: &str) -> Box<str> {
    match s.char_indices().nth(64) {
        Some((end, _)) => s[..end].into(),
        None => s.into(),
    }
}

/// Logs a refusal once: security-relevant ones at warn (rate-limited), the rest (expired,
/// absent credentials, scope, keys unavailable) at debug.
pub(crate) fn log_refusal(failure: &Failure, issuer: &str, budget: &WarnBudget) {
    let reason = failure.error.reason();
    let (kid, client) = (failure.kid.as_deref(), failure.client.as_deref());
    let status = failure.error.status();
    if reason.is_attack() {
        if let Some(suppressed) = budget.take() {
            tracing::warn!(
                target: LOG_TARGET,
                reason = reason.as_str(),
                status,
                issuer,
                kid,
                client,
                suppressed,
                "request refused"
            );
        }
    } else {
        // An outage is reported once per failed refresh (at warn, by the key source), not
        // once per request it refuses.
        tracing::debug!(target: LOG_TARGET, reason = reason.as_str(), status, issuer, kid, client, "request refused");
    }
}
