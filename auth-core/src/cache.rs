//! The verified-token cache: the same token, seen again, skips the signature check.
//!
//! Keyed by the whole token string, so only the exact same token hits (no digest
//! collisions to reason about). An entry never outlives the token's `exp` (nor its
//! maximum age), is re-checked against the clock on every hit, and is dropped when the
//! key that verified it leaves the issuer's key set.
//!
//! Built on `quick_cache` rather than moka: a hit is one read of a sharded lock whose
//! readers write only their own thread's shard (no shared write, so hits scale across
//! cores), and an insert is a synchronous bucket and queue update instead of moka's
//! recorded operations and housekeeping. Its S3-FIFO policy keeps tokens seen once
//! (every token distinct, as under a flood) in a small probation queue, so they evict
//! each other, not the tokens callers keep reusing.

use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{OptionsBuilder, UnitWeighter};

use crate::claims::Principal;
use crate::jwks::KeyId;

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) principal: Principal,
    pub(crate) issuer: usize,
    /// The key that verified the token (its `kid` is the principal's).
    pub(crate) key: KeyId,
    /// Unix seconds after which the entry must not be served: min(exp, iat + max age,
    /// insertion + the cache's maximum entry lifetime).
    pub(crate) valid_until: i64,
}

// foldhash, not SipHash: hashing a 700-byte token with SipHash costs about as much as the
// rest of a hit. Flooding is not a concern: only verified tokens are inserted.
type Hasher = foldhash::fast::RandomState;
type Entries = Cache<Box<str>, Entry, UnitWeighter, Hasher, DefaultLifecycle<Box<str>, Entry>>;

#[derive(Clone)]
pub(crate) struct TokenCache {
    entries: Arc<Entries>,
    max_ttl: i64,
}

/// Shards of at least this many entries: fewer, larger shards evict closer to a global
/// least-recently-used order; more shards spread writers. Eight is plenty for the few
/// cores a service runs on, since readers do not contend at all.
const MIN_SHARD_ENTRIES: u64 = 64;
const MAX_SHARDS: u64 = 8;

impl TokenCache {
    pub(crate) fn new(capacity: u64, max_ttl: Duration) -> Self {
        let shards = (capacity / MIN_SHARD_ENTRIES).clamp(1, MAX_SHARDS);
        let shards = if shards.is_power_of_two() { shards } else { shards.next_power_of_two() / 2 };
        // Each shard holds capacity / shards entries, rounded down, so the whole cache never
        // holds more than `capacity`.
        let per_shard = capacity / shards;
        let options = OptionsBuilder::new()
            .shards(shards as usize)
            .estimated_items_capacity((per_shard * shards) as usize)
            .weight_capacity(per_shard * shards)
            .build();
        let entries = match options {
            Ok(options) => Cache::with_options(options, UnitWeighter, Hasher::default(), DefaultLifecycle::default()),
            // Unreachable with the values above (the builder only rejects missing capacities or
            // out-of-range allocations); fall back to the library's own sizing, still bounded.
            Err(_) => {
                Cache::with(capacity as usize, capacity, UnitWeighter, Hasher::default(), DefaultLifecycle::default())
            }
        };
        let max_ttl = i64::try_from(max_ttl.as_secs()).unwrap_or(i64::MAX);
        TokenCache { entries: Arc::new(entries), max_ttl }
    }

    pub(crate) fn get(&self, token: &str) -> Option<Entry> {
        self.entries.get(token)
    }

    pub(crate) fn insert(&self, token: &str, mut entry: Entry) {
        entry.valid_until = entry.valid_until.min(crate::clock::unix_now().saturating_add(self.max_ttl));
        self.entries.insert(token.into(), entry);
    }

    pub(crate) fn remove(&self, token: &str) {
        self.entries.remove(token);
    }

    /// Drops every entry verified by one of `removed`.
    pub(crate) fn drop_keys(&self, removed: &[KeyId]) {
        if removed.is_empty() {
            return;
        }
        self.entries.retain(|_, entry| !removed.contains(&entry.key));
    }

    pub(crate) fn entry_count(&self) -> u64 {
        self.entries.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_sizing_never_exceeds_the_capacity() {
        for capacity in [1, 2, 31, 63, 64, 100, 500, 1_000, 1_023, 10_000, 100_001] {
            let cache = TokenCache::new(capacity, Duration::from_secs(60));
            assert!(cache.entries.capacity() <= capacity, "{capacity}: {}", cache.entries.capacity());
            assert!(cache.entries.capacity() * 10 >= capacity * 9, "{capacity}: {}", cache.entries.capacity());
        }
    }
}
