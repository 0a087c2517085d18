//! The verification keys of one issuer (parsed from its JWKS in `jwk.rs`), and the
//! lookup a token makes in them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use foldhash::fast::RandomState;

use crate::algorithm::{Algorithm, AlgorithmSet, KeyKind};
use crate::crypto::KeyVerifier;

/// Names one parsed key for as long as it stays published: a refresh that republishes a
/// key unchanged keeps the old [`VerifyingKey`], and so its id. The verified-token cache
/// holds this id rather than an `Arc`, so that a cache hit does not write a reference
/// count shared by every request the key verified (a cache line bounced between cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct KeyId(u64);

impl KeyId {
    pub(super) fn next() -> KeyId {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        KeyId(NEXT.fetch_add(1, Relaxed))
    }
}

/// One public key, ready to verify: its type, the algorithms it may be used with, and
/// the key itself, parsed once when the key set is loaded.
pub(crate) struct VerifyingKey {
    pub(crate) id: KeyId,
    pub(crate) kid: Option<Box<str>>,
    pub(crate) kind: KeyKind,
    /// Key type ∩ the JWK's `alg` (when present) ∩ the issuer's allow-list.
    pub(crate) algorithms: AlgorithmSet,
    pub(super) verifier: KeyVerifier,
    /// The public key bytes, to tell whether a key survived a refresh unchanged.
    pub(super) material: Box<[u8]>,
}

impl VerifyingKey {
    /// Verifies `signature` over `message` with `alg`, which the caller has already
    /// checked against [`algorithms`](Self::algorithms).
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify(alg, message, signature)
    }

    /// The same key, usable the same way: type (and curve), kid, bytes, and the
    /// algorithms it may verify (a JWK re-pinned to another `alg` is another key).
    pub(crate) fn same_key(&self, other: &VerifyingKey) -> bool {
        self.kind == other.kind
            && self.kid == other.kid
            && self.algorithms == other.algorithms
            && self.material == other.material
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// Why a token found no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupError {
    /// No key has the token's kid (or, without kid, no key fits the alg).
    NotFound,
    /// No kid, and several keys fit.
    Ambiguous,
    /// Keys with the kid exist, but none may be used with the token's alg.
    AlgorithmMismatch,
}

/// An immutable set of verification keys. Replaced whole on refresh, never mutated.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<Box<str>, Vec<Arc<VerifyingKey>>, RandomState>,
    all: Vec<Arc<VerifyingKey>>,
}

impl KeySet {
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &Arc<VerifyingKey>> {
        self.all.iter()
    }

    /// Finds the key for a token. With a `kid`, only keys with that kid are candidates
    /// and one must allow `alg`. Without, exactly one key in the set must allow `alg`:
    /// trying several would let a token make us verify many times.
    pub(crate) fn find(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Arc<VerifyingKey>, LookupError> {
        match kid {
            Some(kid) => {
                let candidates = self.by_kid.get(kid).ok_or(LookupError::NotFound)?;
                candidates.iter().find(|k| k.algorithms.contains(alg)).ok_or(LookupError::AlgorithmMismatch)
            }
            None => {
                let mut fitting = self.all.iter().filter(|k| k.algorithms.contains(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    (None, _) => Err(LookupError::NotFound),
                    (Some(_), Some(_)) => Err(LookupError::Ambiguous),
                }
            }
        }
    }

    /// Whether `key` is still in this set, unchanged.
    pub(crate) fn contains(&self, key: &VerifyingKey) -> bool {
        match &key.kid {
            Some(kid) => {
                self.by_kid.get(kid).is_some_and(|keys| keys.iter().any(|k| std::ptr::eq(&**k, key) || k.same_key(key)))
            }
            None => self.all.iter().any(|k| std::ptr::eq(&**k, key) || k.same_key(key)),
        }
    }

    /// Whether the key `id` (published under `kid`) is in this set.
    pub(crate) fn contains_id(&self, kid: Option<&str>, id: KeyId) -> bool {
        match kid {
            Some(kid) => self.by_kid.get(kid).is_some_and(|keys| keys.iter().any(|k| k.id == id)),
            None => self.all.iter().any(|k| k.id == id),
        }
    }

    /// Puts `old`'s key in place of each key this set republishes unchanged, so that the
    /// key keeps its [`KeyId`] (and the tokens it verified stay cached) across a refresh.
    pub(crate) fn keep_unchanged(&mut self, old: &KeySet) {
        if old.is_empty() {
            return;
        }
        for slot in self.all.iter_mut().chain(self.by_kid.values_mut().flatten()) {
            if let Some(same) = old.all.iter().find(|k| k.same_key(slot)) {
                *slot = same.clone();
            }
        }
    }

    /// Whether this set holds exactly `old`'s keys (after [`keep_unchanged`](Self::keep_unchanged),
    /// an unchanged key is `old`'s own, so ids compare).
    pub(crate) fn same_keys_as(&self, old: &KeySet) -> bool {
        if self.all.len() != old.all.len() {
            return false;
        }
        let old: std::collections::HashSet<KeyId, RandomState> = old.all.iter().map(|k| k.id).collect();
        self.all.iter().all(|k| old.contains(&k.id))
    }

    pub(super) fn insert(&mut self, key: VerifyingKey) {
        let key = Arc::new(key);
        if let Some(kid) = &key.kid {
            self.by_kid.entry(kid.clone()).or_default().push(key.clone());
        }
        self.all.push(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::jwk::parse_jwks;
    use crate::jwks::jwk::tests::{all, jwk};

    #[test]
    fn algorithm_binding_and_lookup() {
        let doc = format!(
            r#"{{"keys":[{},{},{}]}}"#,
            jwk(Algorithm::RS256, "rs", serde_json::json!({})),
            jwk(Algorithm::PS256, "any-rsa", serde_json::json!({"alg": null})),
            jwk(Algorithm::ES384, "p384", serde_json::json!({}))
        );
        let set = parse_jwks(doc.as_bytes(), all(), 10).unwrap();
        assert!(set.find(Some("rs"), Algorithm::RS256).is_ok());
        assert_eq!(set.find(Some("rs"), Algorithm::PS256).unwrap_err(), LookupError::AlgorithmMismatch);
        assert!(set.find(Some("any-rsa"), Algorithm::PS512).is_ok());
        assert_eq!(set.find(Some("any-rsa"), Algorithm::ES256).unwrap_err(), LookupError::AlgorithmMismatch);
        assert_eq!(set.find(Some("p384"), Algorithm::ES256).unwrap_err(), LookupError::AlgorithmMismatch);
        assert_eq!(set.find(Some("nope"), Algorithm::RS256).unwrap_err(), LookupError::NotFound);
        // Without kid: exactly one fitting key, or nothing.
        assert!(set.find(None, Algorithm::ES384).is_ok());
        assert_eq!(set.find(None, Algorithm::RS256).unwrap_err(), LookupError::Ambiguous);
        assert_eq!(set.find(None, Algorithm::EdDSA).unwrap_err(), LookupError::NotFound);
    }

    #[test]
    fn contains_checks_material_not_only_kid() {
        let a = parse_jwks(
            format!(r#"{{"keys":[{}]}}"#, jwk(Algorithm::ES256, "k", serde_json::json!({}))).as_bytes(),
            all(),
            10,
        )
        .unwrap();
        let b = parse_jwks(
            format!(r#"{{"keys":[{}]}}"#, jwk(Algorithm::ES256, "k", serde_json::json!({}))).as_bytes(),
            all(),
            10,
        )
        .unwrap();
        let key = a.keys().next().unwrap();
        assert!(a.contains(key));
        assert!(!b.contains(key));
    }

    #[test]
    fn republished_keys_keep_their_id() {
        let (kept, rotated) =
            (jwk(Algorithm::ES256, "kept", serde_json::json!({})), jwk(Algorithm::EdDSA, "r", serde_json::json!({})));
        let old = parse_jwks(format!(r#"{{"keys":[{kept},{rotated}]}}"#).as_bytes(), all(), 10).unwrap();
        let new_rotated = jwk(Algorithm::EdDSA, "r", serde_json::json!({}));
        let mut new = parse_jwks(format!(r#"{{"keys":[{new_rotated},{kept}]}}"#).as_bytes(), all(), 10).unwrap();
        let id = |set: &KeySet, kid: &str| {
            set.find(Some(kid), set.by_kid[kid][0].algorithms.iter().next().unwrap()).unwrap().id
        };
        let (kept_id, rotated_id) = (id(&old, "kept"), id(&old, "r"));
        assert_ne!(id(&new, "kept"), kept_id, "a fresh parse makes fresh ids");
        new.keep_unchanged(&old);
        assert_eq!(id(&new, "kept"), kept_id);
        assert!(new.contains_id(Some("kept"), kept_id) && new.contains_id(None, kept_id));
        assert_ne!(id(&new, "r"), rotated_id, "same kid, other key material: a new key");
        assert!(!new.contains_id(Some("r"), rotated_id) && !new.contains_id(None, rotated_id));
        assert!(!new.contains_id(Some("r"), kept_id), "an id is looked up under its own kid");
        assert!(new.keys().any(|k| std::ptr::eq(&**k, &**old.find(Some("kept"), Algorithm::ES256).unwrap())));
    }
}
