//! The one exit of every request: what [`AccessPolicy::decide`](crate::AccessPolicy::decide)
//! and [`Verification::run`](crate::Verification::run) hand back. Each outcome is counted
//! (the snapshot counters and, with the `metrics` feature, the `metrics` facade), logged
//! once under the target `auth::decision`, and rendered (status, challenges, JSON body,
//! gRPC status), so that adapters only copy bytes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::claims::Principal;
use crate::error::{AuthError, RejectReason, TokenError};

/// The log target of every decision.
pub const LOG_TARGET: &str = "auth::decision";

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
        // A refused actor gets no challenge: a new token from the same caller cannot help.
        let challenges = if matches!(err, AuthError::ActorNotAllowed { .. }) {
            Vec::new()
        } else {
            vec![err.www_authenticate(realm)]
        };
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

/// Refusals that point at an attack (a forged or tampered token), logged at warn.
fn security_relevant(reason: RejectReason) -> bool {
    matches!(
        reason,
        RejectReason::InvalidSignature
            | RejectReason::AlgorithmNotAllowed
            | RejectReason::UnsupportedAlgorithm
            | RejectReason::UnsupportedCriticalHeader
            | RejectReason::KeyAlgorithmMismatch
    )
}

/// At most [`WarnBudget::PER_SECOND`] warn lines a second, so that an attack cannot
/// flood the log; the next line allowed reports how many were left out.
#[derive(Default)]
pub(crate) struct WarnBudget {
    /// Seconds since `origin` of the current window, and lines logged in it.
    window: AtomicU64,
    used: AtomicU64,
    suppressed: AtomicU64,
    origin: std::sync::OnceLock<Instant>,
}

impl WarnBudget {
    const PER_SECOND: u64 = 10;

    /// Whether a warn line may be logged now (one of this second's budget).
    pub(crate) fn allow(&self) -> bool {
        self.take().is_some()
    }

    /// `Some(suppressed so far)` when a line may be logged now.
    fn take(&self) -> Option<u64> {
        let second = self.origin.get_or_init(Instant::now).elapsed().as_secs();
        if self.window.swap(second, Relaxed) != second {
            self.used.store(0, Relaxed);
        }
        if self.used.fetch_add(1, Relaxed) < Self::PER_SECOND {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

impl fmt::Debug for WarnBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarnBudget").finish_non_exhaustive()
    }
}

/// Logs a refusal once: security-relevant ones at warn (rate-limited), the rest (expired,
/// absent credentials, scope, keys unavailable) at debug.
pub(crate) fn log_refusal(failure: &Failure, issuer: &str, budget: &WarnBudget) {
    let reason = failure.error.reason();
    let (kid, client) = (failure.kid.as_deref(), failure.client.as_deref());
    let status = failure.error.status();
    if security_relevant(reason) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warn_budget_allows_ten_a_second_and_reports_the_rest() {
        let budget = WarnBudget::default();
        let allowed = (0..25).filter(|_| budget.take().is_some()).count();
        assert_eq!(allowed, 10);
        assert_eq!(budget.suppressed.load(Relaxed), 15);
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
