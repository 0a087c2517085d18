//! What a validator trusts and how strictly: issuers, their key sources and policies,
//! and the validator-wide limits. Everything is checked in `build()`; a configuration
//! that cannot work fails there with a [`ConfigError`], never at the first request.

use std::sync::Arc;
use std::time::Duration;

use crate::algorithm::Algorithm;

/// Where an issuer's public keys come from.
#[derive(Debug, Clone)]
pub(crate) enum KeySourceConfig {
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discovery,
    /// A JWKS URL, given directly.
    JwksUrl(String),
    /// A JWKS document, never refreshed.
    Static(String),
}

/// Which `typ` header values are accepted (RFC 8725 §3.11, RFC 9068 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TypPolicy {
    /// `at+jwt`, `application/at+jwt`, `JWT`, `application/jwt`, or no `typ` (the default:
    /// what IdPs send today). Any other type, such as `logout+jwt` or `dpop+jwt`, is refused.
    #[default]
    AccessTokenOrJwt,
    /// Only `at+jwt` / `application/at+jwt` (RFC 9068 access tokens).
    RequireAccessToken,
}

impl TypPolicy {
    pub(crate) fn accepts(self, typ: Option<&str>) -> bool {
        // Media types compare case-insensitively; "application/" may be omitted (RFC 7515 §4.1.9).
        let Some(typ) = typ else { return self == TypPolicy::AccessTokenOrJwt };
        let lower = typ.to_ascii_lowercase();
        let short = lower.strip_prefix("application/").unwrap_or(&lower);
        match self {
            TypPolicy::AccessTokenOrJwt => short == "at+jwt" || short == "jwt",
            TypPolicy::RequireAccessToken => short == "at+jwt",
        }
    }
}

/// One trusted issuer: where its keys are and what its tokens must satisfy.
///
/// ```
/// use std::time::Duration;
/// use auth_core::{Issuer, TypPolicy};
///
/// let issuer = Issuer::discovery("https://idp.example.com/realms/prod")
///     .audience("orders-api")
///     .leeway(Duration::from_secs(30))
///     .typ_policy(TypPolicy::RequireAccessToken);
/// ```
#[derive(Debug, Clone)]
pub struct Issuer {
    pub(crate) issuer: String,
    pub(crate) source: KeySourceConfig,
    pub(crate) audiences: Vec<String>,
    pub(crate) algorithms: Vec<Algorithm>,
    pub(crate) leeway: Duration,
    pub(crate) max_token_age: Option<Duration>,
    pub(crate) required_claims: Vec<Arc<str>>,
    pub(crate) typ: TypPolicy,
}

impl Issuer {
    fn new(issuer: impl Into<String>, source: KeySourceConfig) -> Self {
        Issuer {
            issuer: issuer.into(),
            source,
            audiences: Vec::new(),
            algorithms: Algorithm::ALL.to_vec(),
            leeway: Duration::from_secs(60),
            max_token_age: None,
            required_claims: Vec::new(),
            typ: TypPolicy::default(),
        }
    }

    /// Keys found by OpenID Connect discovery at `{issuer}/.well-known/openid-configuration`.
    ///
    /// The document's `issuer` must equal `issuer`, except that one may end in a slash
    /// where the other does not (operators type the URL one way, providers write it the
    /// other; a documented departure from RFC 8414 §3.3, logged at info). Tokens must
    /// then carry exactly the document's `issuer` in `iss`; until discovery has
    /// succeeded once, requests get 503.
    pub fn discovery(issuer: impl Into<String>) -> Self {
        Self::new(issuer, KeySourceConfig::Discovery)
    }

    /// Keys fetched from a JWKS URL (no discovery). Tokens must carry exactly `issuer`.
    pub fn jwks_url(issuer: impl Into<String>, jwks_url: impl Into<String>) -> Self {
        Self::new(issuer, KeySourceConfig::JwksUrl(jwks_url.into()))
    }

    /// Keys from a JWKS document you hold; never refreshed.
    pub fn static_jwks(issuer: impl Into<String>, jwks_json: impl Into<String>) -> Self {
        Self::new(issuer, KeySourceConfig::Static(jwks_json.into()))
    }

    /// Accept tokens whose `aud` contains `audience` (several calls: any of them).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accept tokens whose `aud` contains any of `audiences`.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Replace the allowed algorithms (default: RS256/384/512, PS256/384/512, ES256, ES384, EdDSA).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew tolerated for `exp`, `nbf` and `iat` (default 60 s, at most 10 min).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Refuse tokens whose `iat` is older than `age` (then `iat` is required).
    pub fn max_token_age(mut self, age: Duration) -> Self {
        self.max_token_age = Some(age);
        self
    }

    /// Require a claim to be present (`iss`, `aud` and `exp` always are).
    pub fn require_claim(mut self, name: impl AsRef<str>) -> Self {
        self.required_claims.push(name.as_ref().into());
        self
    }

    /// Which `typ` values are accepted.
    pub fn typ_policy(mut self, typ: TypPolicy) -> Self {
        self.typ = typ;
        self
    }

    /// The `iss` values routed to this issuer before any key is looked up: exactly the
    /// configured one, and for discovery also its other trailing-slash form (the exact
    /// value is then pinned by the discovery document).
    pub(crate) fn routing_names(&self) -> Vec<String> {
        let bare = self.issuer.strip_suffix('/').unwrap_or(&self.issuer);
        if !matches!(self.source, KeySourceConfig::Discovery) || bare.is_empty() {
            return vec![self.issuer.clone()];
        }
        vec![bare.to_owned(), format!("{bare}/")]
    }

    pub(crate) fn ensure_usable(&self) -> Result<(), ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::NoAudience(self.issuer.clone()));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithm(self.issuer.clone()));
        }
        if self.leeway > Duration::from_secs(600) {
            return Err(ConfigError::InvalidSetting { name: "leeway", reason: "at most 10 minutes" });
        }
        Ok(())
    }
}

/// Validator-wide settings; see [`ValidatorBuilder`](crate::ValidatorBuilder) for each.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_jwks_bytes: usize,
    pub(crate) max_jwks_keys: usize,
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) default_refresh: Duration,
    pub(crate) unknown_kid_cooldown: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) allow_insecure_http: bool,
    pub(crate) max_token_bytes: usize,
    pub(crate) token_cache_capacity: u64,
    pub(crate) token_cache_max_bytes: u64,
    pub(crate) token_cache_max_ttl: Duration,
    pub(crate) realm: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            fetch_timeout: Duration::from_secs(5),
            max_jwks_bytes: 1024 * 1024,
            max_jwks_keys: 1000,
            min_refresh: Duration::from_secs(60),
            // Some issuers send a max-age of days; a removed (compromised) key must stop
            // validating sooner. With ETag revalidation an hourly check costs little.
            max_refresh: Duration::from_secs(3600),
            default_refresh: Duration::from_secs(600),
            unknown_kid_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(24 * 3600),
            allow_insecure_http: false,
            // Real tokens reach 8–10 KB (Entra ID, Keycloak with many groups or roles).
            max_token_bytes: 16 * 1024,
            token_cache_capacity: 10_000,
            token_cache_max_bytes: 64 * 1024 * 1024,
            token_cache_max_ttl: Duration::from_secs(3600),
            realm: None,
        }
    }
}

impl Settings {
    pub(crate) fn ensure_usable(&self) -> Result<(), ConfigError> {
        let bad = |name, reason| Err(ConfigError::InvalidSetting { name, reason });
        if self.fetch_timeout.is_zero() {
            return bad("fetch_timeout", "must be positive");
        }
        if self.max_jwks_bytes < 64 {
            return bad("max_jwks_bytes", "must be at least 64");
        }
        if self.max_jwks_keys == 0 {
            return bad("max_jwks_keys", "must be positive");
        }
        if self.min_refresh > self.max_refresh {
            return bad("refresh_interval", "min must not exceed max");
        }
        if self.default_refresh < self.min_refresh || self.default_refresh > self.max_refresh {
            return bad("refresh_interval", "the default must lie within [min, max]");
        }
        if self.token_cache_capacity > 0 && self.token_cache_max_bytes < 1024 {
            return bad(
                "token_cache_max_bytes",
                "must be at least 1 KiB (token_cache_capacity(0) turns the cache off)",
            );
        }
        if self.max_token_bytes < 16 {
            return bad("max_token_bytes", "must be at least 16");
        }
        if let Some(realm) = &self.realm
            && realm.bytes().any(|b| b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b))
        {
            return bad("realm", "must be printable ASCII without quotes or backslashes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_policies() {
        let lenient = TypPolicy::AccessTokenOrJwt;
        for ok in
            [None, Some("at+jwt"), Some("AT+JWT"), Some("application/at+jwt"), Some("JWT"), Some("application/jwt")]
        {
            assert!(lenient.accepts(ok), "{ok:?}");
        }
        for bad in [Some("logout+jwt"), Some("dpop+jwt"), Some(""), Some("at+jwt "), Some("secevent+jwt")] {
            assert!(!lenient.accepts(bad), "{bad:?}");
        }
        let strict = TypPolicy::RequireAccessToken;
        assert!(strict.accepts(Some("at+jwt")) && strict.accepts(Some("Application/At+JWT")));
        assert!(!strict.accepts(None) && !strict.accepts(Some("JWT")));
    }

    #[test]
    fn issuer_checks() {
        assert!(Issuer::discovery("https://i").audience("a").ensure_usable().is_ok());
        assert!(matches!(Issuer::discovery("https://i").ensure_usable(), Err(ConfigError::NoAudience(_))));
        assert!(matches!(Issuer::discovery("").audience("a").ensure_usable(), Err(ConfigError::EmptyIssuer)));
        assert!(matches!(
            Issuer::discovery("i").audience("a").algorithms([]).ensure_usable(),
            Err(ConfigError::NoAlgorithm(_))
        ));
        assert!(Issuer::discovery("i").audience("a").leeway(Duration::from_secs(3600)).ensure_usable().is_err());
    }

    #[test]
    fn settings_checks() {
        assert!(Settings::default().ensure_usable().is_ok());
        let s = Settings {
            min_refresh: Duration::from_secs(10),
            max_refresh: Duration::from_secs(5),
            ..Settings::default()
        };
        assert!(s.ensure_usable().is_err());
        let s = Settings { realm: Some("a\"b".into()), ..Settings::default() };
        assert!(s.ensure_usable().is_err());
    }
}

/// A configuration that cannot work; returned by the builders, never at request time.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No issuer was configured.
    #[error("no issuer configured")]
    NoIssuer,
    /// An issuer was configured twice.
    #[error("issuer {0:?} is configured more than once")]
    DuplicateIssuer(String),
    /// The issuer identifier is empty.
    #[error("an issuer identifier is empty")]
    EmptyIssuer,
    /// An issuer has no accepted audience.
    #[error("issuer {0:?} has no accepted audience")]
    NoAudience(String),
    /// An issuer allows no algorithm.
    #[error("issuer {0:?} allows no algorithm")]
    NoAlgorithm(String),
    /// A URL does not parse or is not allowed (for example plain http to a remote host).
    #[error("invalid URL for {what}: {reason}")]
    InvalidUrl {
        /// Which URL.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A static JWKS document does not parse or has no usable key.
    #[error("invalid static JWKS for issuer {issuer:?}: {reason}")]
    InvalidJwks {
        /// The issuer.
        issuer: String,
        /// Why.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The builder method.
        name: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A scope name has characters RFC 6749 §3.3 does not allow.
    #[error("invalid scope name {0:?}")]
    InvalidScope(String),
    /// No crypto backend feature (`aws-lc-rs` or `rust-crypto`) is enabled.
    #[error("no crypto backend: enable the `aws-lc-rs` or `rust-crypto` feature of auth-core")]
    NoCryptoBackend,
    /// The default HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// A client key, certificate or CA certificate (calling side) does not load.
    #[error("invalid client key or certificate: {0}")]
    ClientKey(String),
}
