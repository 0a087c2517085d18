//! The calling side (feature `client`): the service's own access tokens, fetched with the
//! OAuth 2.0 client-credentials grant, cached per target and refreshed before they expire.
//!
//! The flow of an outbound call: a [`TokenSource`] (client id, [`ClientAuth`], token
//! endpoint) hands out a [`TargetToken`] per [`TokenTarget`]; a client layer (tower in
//! `auth-tower`, [`reqwest_middleware`] here) attaches
//! the cached header to each request, and reports a downstream's `invalid_token` back
//! with [`TargetToken::reject`].

mod client_auth;
mod downstream;
mod endpoint;
mod error;
mod exchange;
mod response;
mod source;
mod target;
mod token;

#[cfg(feature = "reqwest-middleware")]
pub mod reqwest_middleware;

pub use client_auth::{AssertionAudience, ClientAuth, ClientKey, ClientKeyProvider, RotatingClientKey, TlsIdentity};
pub use downstream::says_invalid_token;
pub use endpoint::Metadata;
pub use error::TokenSourceError;
pub use exchange::{DEFAULT_EXCHANGE_CACHE, TokenExchange};
pub use source::{CLIENT_LOG_TARGET, TargetToken, TokenSource, TokenSourceBuilder, TokenSourceStats};
pub use target::TokenTarget;
pub use token::AccessToken;
