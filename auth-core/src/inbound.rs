//! The verified inbound token itself, for a service that calls others on its caller's
//! behalf (token exchange, RFC 8693): its own type, never inside [`Principal`](crate::Principal),
//! so that it is not forwarded, logged or serialized by accident.

use std::fmt;
use std::sync::Arc;

/// The access token a request was admitted with, verified. Put in the request's
/// extensions by the adapters for a policy with
/// [`keep_inbound_token`](crate::AccessPolicy::keep_inbound_token); the calling side's
/// token exchange takes it as the subject token. `Debug` never shows it. Never forward it
/// to another service: exchange it.
#[derive(Clone)]
pub struct InboundToken(Arc<Inner>);

struct Inner {
    token: Box<str>,
    expires_at: i64,
}

impl InboundToken {
    pub(crate) fn new(token: &str, expires_at: i64) -> Self {
        InboundToken(Arc::new(Inner { token: token.into(), expires_at }))
    }

    /// The token (for a token-exchange request).
    pub fn secret(&self) -> &str {
        &self.0.token
    }

    /// Its `exp` (Unix seconds): an exchanged token is not used past it.
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }
}

impl fmt::Debug for InboundToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundToken").field("expires_at", &self.0.expires_at).finish_non_exhaustive()
    }
}
