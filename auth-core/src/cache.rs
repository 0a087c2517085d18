//! The verified-token cache: the same token, seen again, skips the signature check.
//!
//! Keyed by the whole token string, so only the exact same token hits (no digest
//! collisions to reason about). An entry never outlives the token's `exp` (nor its
//! maximum age), is re-checked against the clock on every hit, and is dropped when the
//! key that verified it leaves the issuer's key set.
//!
//! Bounded in entries and in bytes: each entry weighs its approximate size (the token,
//! its claims and payload), and at least `max_bytes / capacity`, so the cache holds at
//! most `capacity` entries and about `max_bytes` of tokens, whichever binds first
//! (10,000 entries of 17 KB tokens would otherwise take 170 MB).
//!
//! Built on `quick_cache` rather than moka: a hit is one read of a sharded lock whose
//! readers write only their own thread's shard (no shared write, so hits scale across
//! cores), and an insert is a synchronous bucket and queue update instead of moka's
//! recorded operations and housekeeping. Its S3-FIFO policy keeps tokens seen once
//! (every token distinct, as under a flood) in a small probation queue, so they evict
//! each other, not the tokens callers keep reusing.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{Equivalent, OptionsBuilder, Weighter};

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
    /// Set by [`TokenCache::insert`]: what the entry counts against the byte budget.
    weight: u64,
}

impl Entry {
    pub(crate) fn new(principal: Principal, issuer: usize, key: KeyId, valid_until: i64) -> Self {
        Entry { principal, issuer, key, valid_until, weight: 0 }
    }
}

/// Reads the weight computed once at insertion (quick_cache calls this while evicting).
#[derive(Clone, Copy)]
struct EntryWeight;

impl Weighter<Key, Entry> for EntryWeight {
    fn weight(&self, _token: &Key, entry: &Entry) -> u64 {
        entry.weight
    }
}

/// A token's hash, computed once per request ([`TokenCache::hash`]) and used for the
/// lookup and, on a miss, for the insertion after verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenHash(u64);

/// A cached token with its hash; hashing a key only passes the stored hash on.
#[derive(PartialEq, Eq)]
pub(crate) struct Key {
    hash: u64,
    token: Box<str>,
}

impl Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A lookup key: the request's token bytes, borrowed, with their hash.
struct KeyRef<'a> {
    hash: u64,
    token: &'a [u8],
}

impl Hash for KeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.hash == key.hash && self.token == key.token.as_bytes()
    }
}

/// The cache's hasher: the hash a [`Key`] or [`KeyRef`] carries, as it is.
#[derive(Clone, Copy, Default)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

#[derive(Default)]
struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by the keys above; fold anything else in regardless.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

// foldhash, not SipHash: hashing a 700-byte token with SipHash costs about as much as the
// rest of a hit. Flooding is not a concern: only verified tokens are inserted.
type TokenHasher = foldhash::fast::RandomState;
type Entries = Cache<Key, Entry, EntryWeight, PassThrough, DefaultLifecycle<Key, Entry>>;

#[derive(Clone)]
pub(crate) struct TokenCache {
    entries: Arc<Entries>,
    hasher: TokenHasher,
    max_ttl: i64,
    /// The least an entry weighs: `max_bytes / capacity`, so that weights bound the count.
    min_weight: u64,
}

/// Shards of at least this many entries: fewer, larger shards evict closer to a global
/// least-recently-used order; more shards spread writers. Eight is plenty for the few
/// cores a service runs on, since readers do not contend at all.
const MIN_SHARD_ENTRIES: u64 = 64;
const MAX_SHARDS: u64 = 8;

impl TokenCache {
    pub(crate) fn new(capacity: u64, max_bytes: u64, max_ttl: Duration) -> Self {
        let shards = (capacity / MIN_SHARD_ENTRIES).clamp(1, MAX_SHARDS);
        let shards = if shards.is_power_of_two() { shards } else { shards.next_power_of_two() / 2 };
        // Each shard holds capacity / shards minimum-weight entries, rounded down, and
        // max_bytes / shards bytes, so the whole cache never holds more than `capacity`
        // entries nor more than `max_bytes` of weight.
        let per_shard = capacity / shards;
        let min_weight = (max_bytes / capacity.max(1)).max(1);
        let shard_weight = per_shard.saturating_mul(min_weight).min(max_bytes / shards).max(1);
        let options = OptionsBuilder::new()
            .shards(shards as usize)
            .estimated_items_capacity((per_shard * shards) as usize)
            .weight_capacity(shard_weight * shards)
            .build();
        let entries = match options {
            Ok(options) => Cache::with_options(options, EntryWeight, PassThrough, DefaultLifecycle::default()),
            // Unreachable with the values above (the builder only rejects missing capacities or
            // out-of-range allocations); fall back to the library's own sizing, still bounded.
            Err(_) => Cache::with(
                capacity as usize,
                shard_weight * shards,
                EntryWeight,
                PassThrough,
                DefaultLifecycle::default(),
            ),
        };
        let max_ttl = i64::try_from(max_ttl.as_secs()).unwrap_or(i64::MAX);
        TokenCache { entries: Arc::new(entries), hasher: TokenHasher::default(), max_ttl, min_weight }
    }

    /// The token's hash: computed once per request, used by [`get`](Self::get) and
    /// [`insert`](Self::insert).
    pub(crate) fn hash(&self, token: &[u8]) -> TokenHash {
        crate::work::count(crate::work::Work::TokenHash);
        TokenHash(self.hasher.hash_one(token))
    }

    pub(crate) fn get(&self, token: &[u8], hash: TokenHash) -> Option<Entry> {
        crate::work::count(crate::work::Work::CacheLookup);
        self.entries.get(&KeyRef { hash: hash.0, token })
    }

    pub(crate) fn insert(&self, token: &str, hash: TokenHash, mut entry: Entry) {
        entry.valid_until = entry.valid_until.min(crate::clock::unix_now().saturating_add(self.max_ttl));
        let bytes = (token.len() + entry.principal.heap_bytes()) as u64;
        entry.weight = bytes.max(self.min_weight);
        self.entries.insert(Key { hash: hash.0, token: token.into() }, entry);
    }

    pub(crate) fn remove(&self, token: &[u8], hash: TokenHash) {
        self.entries.remove(&KeyRef { hash: hash.0, token });
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
    fn byte_budget_binds_before_the_entry_count_for_large_entries() {
        let cache = TokenCache::new(10_000, 1 << 20, Duration::from_secs(60));
        assert_eq!(cache.min_weight, (1 << 20) / 10_000);
        assert!(cache.entries.capacity() <= 1 << 20);
        let tiny = TokenCache::new(1_000, 100, Duration::from_secs(60));
        assert!(tiny.entries.capacity() <= 100, "{}", tiny.entries.capacity());
    }

    #[test]
    fn shard_sizing_never_exceeds_the_capacity() {
        for capacity in [1, 2, 31, 63, 64, 100, 500, 1_000, 1_023, 10_000, 100_001] {
            let cache = TokenCache::new(capacity, 64 << 20, Duration::from_secs(60));
            let entries = cache.entries.capacity() / cache.min_weight;
            assert!(entries <= capacity, "{capacity}: {entries}");
            assert!(entries * 10 >= capacity * 9, "{capacity}: {entries}");
            assert!(cache.entries.capacity() <= 64 << 20);
        }
    }
}
