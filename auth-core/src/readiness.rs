//! Whether a validator can verify tokens: its issuers' keys, for readiness probes.
//!
//! Two questions, two answers. [`Readiness::keys_loaded`] — every issuer's keys were
//! loaded at least once — is the one to gate a readiness probe on: it turns true once and
//! stays true, so an identity-provider outage never takes a fleet out of its load
//! balancer (the last good keys keep serving for `max_stale`). [`Readiness::keys_usable`]
//! — keys in service right now — ties readiness to the provider: during a long outage
//! every instance would report unready at once, turning an IdP outage into a deploy
//! outage. Use it for alerts, not for traffic.

use std::fmt;
use std::time::Duration;

/// The state of every issuer's keys; see [`Validator::readiness`](crate::Validator::readiness).
///
/// ```no_run
/// # async fn probe(validator: auth_core::Validator) -> u16 {
/// // A readiness probe: ready once keys were loaded, whatever the IdP does later.
/// if validator.readiness().await.keys_loaded() { 200 } else { 503 }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub(crate) issuers: Vec<IssuerReadiness>,
}

impl Readiness {
    /// Every issuer's keys were loaded at least once (they may be stale now). The
    /// recommended readiness probe.
    pub fn keys_loaded(&self) -> bool {
        self.issuers.iter().all(IssuerReadiness::keys_loaded)
    }

    /// Every issuer has keys in service now: fresh, or stale within `max_stale`.
    pub fn keys_usable(&self) -> bool {
        self.issuers.iter().all(IssuerReadiness::keys_usable)
    }

    /// Each issuer, in the order they were configured.
    pub fn issuers(&self) -> &[IssuerReadiness] {
        &self.issuers
    }
}

/// One issuer's keys.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuerReadiness {
    pub(crate) issuer: String,
    pub(crate) loaded: bool,
    pub(crate) usable: bool,
    pub(crate) keys: usize,
    pub(crate) expires_in: Option<Duration>,
}

impl IssuerReadiness {
    /// The issuer, as configured.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Keys were loaded at least once.
    pub fn keys_loaded(&self) -> bool {
        self.loaded
    }

    /// Keys are in service now.
    pub fn keys_usable(&self) -> bool {
        self.usable
    }

    /// How many keys are in service (0 when none are).
    pub fn key_count(&self) -> usize {
        self.keys
    }

    /// Time left in the key set's lifetime (the issuer's `Cache-Control`, clamped to the
    /// configured bounds); zero once past it (stale keys serving during an outage).
    /// `None` for a static key set, or when no keys were loaded.
    pub fn expires_in(&self) -> Option<Duration> {
        self.expires_in
    }
}

impl fmt::Debug for IssuerReadiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerReadiness")
            .field("issuer", &self.issuer)
            .field("loaded", &self.loaded)
            .field("usable", &self.usable)
            .field("keys", &self.keys)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}
