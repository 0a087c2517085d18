//! Counters a user can read and export: fetches, refresh failures, stale serving,
//! cache hits, and rejections by reason.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::error::RejectReason;

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) jwks_fetches: AtomicU64,
    pub(crate) jwks_not_modified: AtomicU64,
    pub(crate) discovery_fetches: AtomicU64,
    pub(crate) refresh_failures: AtomicU64,
    pub(crate) key_sets_installed: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) cache_hits: StripedCounter,
    pub(crate) accepted: StripedCounter,
    rejections: [AtomicU64; RejectReason::ALL.len()],
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn reject(&self, reason: RejectReason) {
        Self::inc(&self.rejections[reason as usize]);
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
            accepted: self.accepted.sum() + cache_hits,
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
    /// Tokens accepted (cache hits included).
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
