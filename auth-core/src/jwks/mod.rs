//! An issuer's public keys: parsing a JWK Set, fetching it, and keeping it fresh.

mod fetch;
mod keyset;
mod source;

pub(crate) use fetch::{Fetched, Fetcher, check_url};
pub(crate) use keyset::{KeyId, VerifyingKey, parse_jwks};
pub(crate) use source::{KeySource, Origin};
