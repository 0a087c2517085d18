//! Counters a user can read ([`MetricsSnapshot`]) and, with the `metrics` feature, the
//! same counts through the [`metrics`](https://docs.rs/metrics) facade, under fixed,
//! low-cardinality names and labels:
//!
//! - `auth_decisions_total{outcome, reason, issuer}`: every request decided, `outcome`
//!   `accepted` (with `reason="ok"`) or `rejected` (with the [`RejectReason`] label);
//! - `auth_key_source_events_total{event, issuer}`: `jwks_fetch`, `jwks_not_modified`,
//!   `discovery_fetch`, `refresh_failure`, `key_set_installed`, `stale_served`.
//!
//! `issuer` is a configured issuer, or `unknown` for a request refused before its token
//! named one (never the unverified `iss`). The handles are registered when the validator
//! is built (install your recorder first), so counting is one atomic add.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::rejection::RejectReason;

/// What a key source reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceEvent {
    JwksFetch,
    JwksNotModified,
    DiscoveryFetch,
    RefreshFailure,
    KeySetInstalled,
    StaleServed,
}

impl SourceEvent {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    const ALL: [SourceEvent; 6] = [
        SourceEvent::JwksFetch,
        SourceEvent::JwksNotModified,
        SourceEvent::DiscoveryFetch,
        SourceEvent::RefreshFailure,
        SourceEvent::KeySetInstalled,
        SourceEvent::StaleServed,
    ];

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    const fn label(self) -> &'static str {
        match self {
            SourceEvent::JwksFetch => "jwks_fetch",
            SourceEvent::JwksNotModified => "jwks_not_modified",
            SourceEvent::DiscoveryFetch => "discovery_fetch",
            SourceEvent::RefreshFailure => "refresh_failure",
            SourceEvent::KeySetInstalled => "key_set_installed",
            SourceEvent::StaleServed => "stale_served",
        }
    }
}

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) jwks_fetches: AtomicU64,
    pub(crate) jwks_not_modified: AtomicU64,
    pub(crate) discovery_fetches: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) key_sets_installed: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) cache_hits: StripedCounter,
    accepted: StripedCounter,
    rejections: [AtomicU64; RejectReason::ALL.len()],
    #[cfg(feature = "metrics")]
    facade: Option<facade::Handles>,
}

impl Metrics {
    /// Counters for a validator trusting `issuers` (facade handles registered now).
    pub(crate) fn new(issuers: &[Arc<str>]) -> Self {
        #[cfg(not(feature = "metrics"))]
        let _ = issuers;
        Metrics {
            #[cfg(feature = "metrics")]
            facade: Some(facade::Handles::register(issuers)),
            ..Metrics::default()
        }
    }

    /// A request let through (after the route's scope rule), by issuer index.
    pub(crate) fn accepted(&self, issuer: usize) {
        self.accepted.add_one();
        #[cfg(feature = "metrics")]
        if let Some(facade) = &self.facade {
            facade.accepted(issuer);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = issuer;
    }

    /// A request refused, by issuer index when its token was routed to one.
    pub(crate) fn rejected(&self, reason: RejectReason, issuer: Option<usize>) {
        self.rejections[reason as usize].fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(facade) = &self.facade {
            facade.rejected(reason, issuer);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = issuer;
    }

    /// Something a key source did, by issuer index.
    pub(crate) fn source(&self, event: SourceEvent, issuer: usize) {
        let counter = match event {
            SourceEvent::JwksFetch => &self.jwks_fetches,
            SourceEvent::JwksNotModified => &self.jwks_not_modified,
            SourceEvent::DiscoveryFetch => &self.discovery_fetches,
            SourceEvent::RefreshFailure => &self.refresh_failures,
            SourceEvent::KeySetInstalled => &self.key_sets_installed,
            SourceEvent::StaleServed => &self.stale_served,
        };
        counter.fetch_add(1, Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(facade) = &self.facade {
            facade.source(event, issuer);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = issuer;
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let cache_hits = self.cache_hits.sum();
        MetricsSnapshot {
            jwks_fetches: self.jwks_fetches.load(Relaxed),
            jwks_not_modified: self.jwks_not_modified.load(Relaxed),
            discovery_fetches: self.discovery_fetches.load(Relaxed),
            refresh_failures: self.refresh_failures.load(Relaxed),
            key_sets_installed: self.key_sets_installed.load(Relaxed),
            stale_served: self.stale_served.load(Relaxed),
            cache_hits,
            accepted: self.accepted.sum(),
            rejections: RejectReason::ALL.map(|r| (r, self.rejections[r as usize].load(Relaxed))),
        }
    }
}

/// A counter bumped on every request from every worker thread. Each thread adds to its
/// own cache line, so concurrent requests never write the same memory; a read sums the
/// lines. (One shared `AtomicU64` would bounce its cache line between cores on every hit.)
#[derive(Default)]
pub(crate) struct StripedCounter {
    stripes: [Stripe; STRIPES],
}

#[derive(Default)]
#[repr(align(128))] // two 64-byte lines: adjacent-line prefetchers pair them
struct Stripe(AtomicU64);

const STRIPES: usize = 8;

fn stripe_of_this_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

impl StripedCounter {
    pub(crate) fn add_one(&self) {
        self.stripes[stripe_of_this_thread()].0.fetch_add(1, Relaxed);
    }

    pub(crate) fn sum(&self) -> u64 {
        self.stripes.iter().map(|stripe| stripe.0.load(Relaxed)).fold(0, u64::wrapping_add)
    }
}

/// A point-in-time copy of a validator's counters (all issuers together).
///
/// ```
/// # fn f(validator: &auth_core::Validator) {
/// let m = validator.metrics();
/// println!("fetches={} failures={} expired={}", m.jwks_fetches, m.refresh_failures,
///          m.rejected(auth_core::RejectReason::Expired));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// JWKS requests sent (including conditional ones).
    pub jwks_fetches: u64,
    /// JWKS requests answered 304 Not Modified.
    pub jwks_not_modified: u64,
    /// Discovery documents requested.
    pub discovery_fetches: u64,
    /// Refreshes that failed (network, status, size, content, parse).
    pub refresh_failures: u64,
    /// New key sets put in service.
    pub key_sets_installed: u64,
    /// Lookups answered from keys past their freshness (within the stale bound).
    pub stale_served: u64,
    /// Validations answered by the verified-token cache.
    pub cache_hits: u64,
    /// Requests let through: the token verified (from the cache or not) and, behind an
    /// [`AccessPolicy`](crate::AccessPolicy), the route's scope rule met.
    pub accepted: u64,
    /// Rejections, per reason, in [`RejectReason::ALL`] order.
    pub rejections: [(RejectReason, u64); RejectReason::ALL.len()],
}

impl MetricsSnapshot {
    /// How many requests were rejected for `reason`.
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejections[reason as usize].1
    }
}

/// The `metrics` facade's handles, one per (issuer, outcome) and (issuer, event).
#[cfg(feature = "metrics")]
mod facade {
    use std::sync::Arc;

    use metrics::Counter;

    use super::SourceEvent;
    use crate::rejection::RejectReason;

    pub(super) struct Handles {
        /// Per configured issuer, then one for `unknown`.
        decisions: Vec<Decisions>,
        /// Per configured issuer.
        sources: Vec<[Counter; SourceEvent::ALL.len()]>,
    }

    struct Decisions {
        accepted: Counter,
        rejected: [Counter; RejectReason::ALL.len()],
    }

    impl Handles {
        pub(super) fn register(issuers: &[Arc<str>]) -> Self {
            let names = issuers.iter().map(|i| i.to_string()).chain(["unknown".to_owned()]);
            let decisions = names
                .map(|issuer| Decisions {
                    accepted: metrics::counter!("auth_decisions_total", "outcome" => "accepted", "reason" => "ok", "issuer" => issuer.clone()),
                    rejected: RejectReason::ALL.map(|reason| {
                        metrics::counter!("auth_decisions_total", "outcome" => "rejected", "reason" => reason.as_str(), "issuer" => issuer.clone())
                    }),
                })
                .collect();
            let sources = issuers
                .iter()
                .map(|issuer| {
                    SourceEvent::ALL.map(|event| {
                        metrics::counter!("auth_key_source_events_total", "event" => event.label(), "issuer" => issuer.to_string())
                    })
                })
                .collect();
            Handles { decisions, sources }
        }

        fn decisions(&self, issuer: Option<usize>) -> Option<&Decisions> {
            let unknown = self.decisions.len() - 1;
            self.decisions.get(issuer.unwrap_or(unknown).min(unknown))
        }

        pub(super) fn accepted(&self, issuer: usize) {
            if let Some(d) = self.decisions(Some(issuer)) {
                d.accepted.increment(1);
            }
        }

        pub(super) fn rejected(&self, reason: RejectReason, issuer: Option<usize>) {
            if let Some(d) = self.decisions(issuer) {
                d.rejected[reason as usize].increment(1);
            }
        }

        pub(super) fn source(&self, event: SourceEvent, issuer: usize) {
            if let Some(counters) = self.sources.get(issuer) {
                counters[event as usize].increment(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_counter_sums_every_thread() {
        let counter = std::sync::Arc::new(StripedCounter::default());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let counter = counter.clone();
                std::thread::spawn(move || (0..1_000).for_each(|_| counter.add_one()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(counter.sum(), 20_000);
    }
}
