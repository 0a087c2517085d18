//! The verified-token cache: the same token, seen again, skips the signature check.
//!
//! Keyed by the whole token string, so only the exact same token hits (no digest
//! collisions to reason about). An entry never outlives the token's `exp` (nor its
//! maximum age), is re-checked against the clock on every hit, and is dropped when the
//! key that verified it leaves the issuer's key set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;

use crate::claims::Principal;
use crate::jwks::VerifyingKey;

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) principal: Principal,
    pub(crate) issuer: usize,
    pub(crate) key: Arc<VerifyingKey>,
    /// Unix seconds after which the entry must not be served: min(exp, iat + max age).
    pub(crate) valid_until: i64,
}

#[derive(Clone)]
pub(crate) struct TokenCache {
    // foldhash, not SipHash: hashing a 700-byte token with SipHash costs about as much as
    // the rest of a hit. Flooding is not a concern: only verified tokens are inserted.
    entries: moka::sync::Cache<Box<str>, Entry, foldhash::fast::RandomState>,
}

struct UntilValid {
    max_ttl: Duration,
}

impl Expiry<Box<str>, Entry> for UntilValid {
    fn expire_after_create(&self, _token: &Box<str>, entry: &Entry, _now: Instant) -> Option<Duration> {
        let left = u64::try_from(entry.valid_until - crate::clock::unix_now()).unwrap_or(0);
        Some(Duration::from_secs(left).min(self.max_ttl))
    }
}

impl TokenCache {
    pub(crate) fn new(capacity: u64, max_ttl: Duration) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .expire_after(UntilValid { max_ttl })
            .support_invalidation_closures()
            .build_with_hasher(foldhash::fast::RandomState::default());
        TokenCache { entries }
    }

    pub(crate) fn get(&self, token: &str) -> Option<Entry> {
        self.entries.get(token)
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry) {
        self.entries.insert(token.into(), entry);
    }

    pub(crate) fn remove(&self, token: &str) {
        self.entries.invalidate(token);
    }

    /// Drops every entry verified by one of `removed`.
    pub(crate) fn drop_keys(&self, removed: Vec<Arc<VerifyingKey>>) {
        if removed.is_empty() {
            return;
        }
        let result =
            self.entries.invalidate_entries_if(move |_, entry| removed.iter().any(|key| Arc::ptr_eq(key, &entry.key)));
        if result.is_err() {
            // Only possible without support_invalidation_closures; hits re-check the key anyway.
            tracing::debug!("token cache could not drop entries of removed keys");
        }
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}
