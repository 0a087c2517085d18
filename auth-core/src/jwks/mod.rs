//! An issuer's public keys: parsing a JWK Set (`jwk.rs`), the set and its lookup
//! (`keyset.rs`), and keeping it fresh (`source.rs`, fetching through `crate::fetch`).

mod jwk;
mod keyset;
mod source;

pub(crate) use jwk::parse_jwks;
pub(crate) use keyset::{KeyId, VerifyingKey};
pub(crate) use source::{KeySource, OnKeysRemoved, Origin};
