//! [`ValidatorBuilder`]: the settings, checked once in [`build`](ValidatorBuilder::build),
//! which turns each [`Issuer`] into its policy and key source. No I/O.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use super::{Inner, IssuerPolicy, Validator};
use crate::algorithm::AlgorithmSet;
use crate::cache::TokenCache;
use crate::certificate::{BindingMode, TrustedProxies};
use crate::claim_rules::ClaimRules;
use crate::config::{ConfigError, Issuer, KeySourceConfig, Settings};
use crate::discovery::IssuerMetadata;
use crate::fetch::{Fetcher, require_https};
use crate::jwks::{KeySource, OnKeysRemoved, Origin, parse_jwks};
use crate::metrics::Metrics;
use crate::warn_budget::WarnBudget;

/// Builds a [`Validator`]; every setting has the documented default.
///
/// ```
/// use std::time::Duration;
/// use auth_core::{Issuer, Validator};
///
/// let validator = Validator::builder()
///     .issuer(Issuer::jwks_url("https://idp.example.com", "https://idp.example.com/jwks").audience("api"))
///     .unknown_kid_cooldown(Duration::from_secs(10))
///     .token_cache_capacity(50_000)
///     .build()
///     .unwrap();
/// ```
#[must_use]
pub struct ValidatorBuilder {
    issuers: Vec<Issuer>,
    settings: Settings,
    client: Option<reqwest::Client>,
    binding: BindingMode,
    trusted_proxies: Vec<String>,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for ValidatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The settings hold no secrets; a caller's HTTP client is shown only as present.
        f.debug_struct("ValidatorBuilder")
            .field("issuers", &self.issuers)
            .field("settings", &self.settings)
            .field("custom_http_client", &self.client.is_some())
            .finish()
    }
}

impl ValidatorBuilder {
    /// Trust an issuer (call once per issuer).
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Fetch keys with your own client (custom CA, proxy, mTLS). The fetch timeout and
    /// body cap still apply around it; its redirect policy is yours.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Total time for one discovery or JWKS fetch (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.settings.fetch_timeout = timeout;
        self
    }

    /// Largest accepted JWKS or discovery document (default 1 MiB).
    pub fn max_jwks_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_jwks_bytes = bytes;
        self
    }

    /// Most usable keys in one JWKS (default 1000). A larger document is refused as a
    /// failed refresh: the last good keys stay in service.
    pub fn max_jwks_keys(mut self, keys: usize) -> Self {
        self.settings.max_jwks_keys = keys;
        self
    }

    /// Bounds for the key-set lifetime taken from `Cache-Control`/`Expires`, and the
    /// lifetime when the issuer sends neither (defaults 1 min, 1 h, 10 min).
    ///
    /// The maximum bounds how long a key the issuer removed keeps validating: at most
    /// `max` after the removal while the issuer is reachable; during an outage the last
    /// good keys may serve up to [`max_stale`](Self::max_stale) longer.
    pub fn refresh_interval(mut self, min: Duration, max: Duration, default: Duration) -> Self {
        self.settings.min_refresh = min;
        self.settings.max_refresh = max;
        self.settings.default_refresh = default;
        self
    }

    /// Least time between two fetches not forced by [`Validator::warm_up`]: bounds the
    /// refetches that unknown `kid`s (or an outage) can cause (default 30 s).
    pub fn unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.unknown_kid_cooldown = cooldown;
        self
    }

    /// How long past their expiry the last good keys keep serving while the issuer
    /// cannot be reached (default 24 h). Afterwards requests get 503.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.settings.max_stale = max_stale;
        self
    }

    /// Allow plain-http key URLs to non-loopback hosts (default: only https, or http to loopback).
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.settings.allow_insecure_http = allow;
        self
    }

    /// Longest accepted token, checked before any decoding (default 16 KiB: tokens with
    /// many groups or roles reach 8–10 KB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_token_bytes = bytes;
        self
    }

    /// Entries in the verified-token cache (default 10,000; 0 turns it off).
    pub fn token_cache_capacity(mut self, entries: u64) -> Self {
        self.settings.token_cache_capacity = entries;
        self
    }

    /// Bytes the verified-token cache may hold, about (default 64 MiB): with large tokens
    /// this binds before the entry count does. Each entry counts the token, its claims and
    /// payload, and at least `max_bytes / capacity`.
    pub fn token_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.settings.token_cache_max_bytes = bytes;
        self
    }

    /// Longest time a verified token stays cached, even when it expires later (default 1 h).
    pub fn token_cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.settings.token_cache_max_ttl = ttl;
        self
    }

    /// The `realm` auth-param of the challenges the adapters send (default: none).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.settings.realm = Some(realm.into());
        self
    }

    /// Trust these CA certificates (PEM) for discovery and key fetches, besides the
    /// platform's (an issuer with a private CA), keeping the default client's other rules.
    pub fn extra_root_certificates(mut self, pem: &[u8]) -> Result<Self, ConfigError> {
        self.extra_roots.extend(crate::crypto::pem_certificates(pem, "root certificates")?);
        Ok(self)
    }

    /// How certificate-bound tokens (RFC 8705, `cnf.x5t#S256`) are treated (default
    /// [`BindingMode::IfPresent`]: a bound token must come with its certificate).
    pub fn certificate_binding(mut self, mode: BindingMode) -> Self {
        self.binding = mode;
        self
    }

    /// The proxies (CIDRs, or single addresses) whose forwarded client certificates are
    /// believed: RFC 9440 `Client-Cert` and Envoy's `x-forwarded-client-cert`, when the
    /// socket peer is in one of these ranges. From anyone else those headers are ignored
    /// (and logged at `warn`). Default: none (the headers are not read).
    pub fn trusted_proxies<I, S>(mut self, ranges: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.trusted_proxies = ranges.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the configuration and builds the validator. Does no network I/O.
    pub fn build(self) -> Result<Validator, ConfigError> {
        // Fails without a backend; installs jsonwebtoken's default (see `crypto`).
        crate::crypto::provider()?;
        self.settings.ensure_usable()?;
        let trusted = TrustedProxies::parse(&self.trusted_proxies)?;
        let binding = self.binding;
        if self.issuers.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        let settings = Arc::new(self.settings);
        // Building the default client reads the system's CA store; a validator with only
        // static key sets never fetches, so it does not pay for that.
        let remote = self.issuers.iter().any(|i| !matches!(i.source, KeySourceConfig::Static(_)));
        let client = match self.client {
            Some(client) => Some(client),
            None if remote => Some(Fetcher::default_client(settings.fetch_timeout, self.extra_roots)?),
            None => None,
        };
        let fetcher = Fetcher {
            client,
            timeout: settings.fetch_timeout,
            max_body: settings.max_jwks_bytes,
            allow_http: settings.allow_insecure_http,
        };
        let names: Vec<Arc<str>> = self.issuers.iter().map(|i| Arc::from(i.issuer.as_str())).collect();
        let metrics = Arc::new(Metrics::new(&names));
        let cache = (settings.token_cache_capacity > 0).then(|| {
            TokenCache::new(settings.token_cache_capacity, settings.token_cache_max_bytes, settings.token_cache_max_ttl)
        });
        let mut issuers = Vec::with_capacity(self.issuers.len());
        let mut by_name = HashMap::default();
        for (issuer, name) in self.issuers.into_iter().zip(names) {
            issuer.ensure_usable()?;
            for id in issuer.routing_names() {
                if by_name.insert(Arc::from(id.as_str()), issuers.len()).is_some() {
                    return Err(ConfigError::DuplicateIssuer(id));
                }
            }
            let algorithms = AlgorithmSet::of(issuer.algorithms.iter().copied());
            let url = |what: &'static str, s: &str| -> Result<Url, ConfigError> {
                let url = Url::parse(s).map_err(|e| ConfigError::InvalidUrl { what, reason: e.to_string() })?;
                require_https(&url, settings.allow_insecure_http)
                    .map_err(|reason| ConfigError::InvalidUrl { what, reason })?;
                Ok(url)
            };
            let (origin, static_keys) = match &issuer.source {
                KeySourceConfig::Discovery => {
                    // OIDC Discovery §4: append the well-known path to the issuer, without doubling '/'.
                    let base = issuer.issuer.trim_end_matches('/');
                    let url = url("discovery", &format!("{base}/.well-known/openid-configuration"))?;
                    (Origin::Discovery(IssuerMetadata::new(url, issuer.issuer.as_str())), None)
                }
                KeySourceConfig::JwksUrl(jwks) => (Origin::JwksUrl(url("jwks_url", jwks)?), None),
                KeySourceConfig::Static(doc) => {
                    let keys = parse_jwks(doc.as_bytes(), algorithms, settings.max_jwks_keys).map_err(|e| {
                        ConfigError::InvalidJwks { issuer: issuer.issuer.clone(), reason: e.to_string() }
                    })?;
                    (Origin::Static, Some(keys))
                }
            };
            let keys = Arc::new(KeySource::new(
                name.clone(),
                issuers.len(),
                origin,
                algorithms,
                static_keys,
                settings.clone(),
                fetcher.clone(),
                metrics.clone(),
                cache.clone().map(|cache| -> OnKeysRemoved { Box::new(move |removed| cache.drop_keys(removed)) }),
            ));
            issuers.push(IssuerPolicy {
                name,
                algorithms,
                typ: issuer.typ,
                rules: ClaimRules::new(issuer.audiences, issuer.leeway, issuer.max_token_age, issuer.required_claims),
                keys,
            });
        }
        let warn_budget = WarnBudget::default();
        Ok(Validator {
            inner: Arc::new(Inner {
                issuers,
                by_name,
                cache,
                settings,
                metrics,
                warn_budget,
                binding,
                trusted,
                proxy_warnings: WarnBudget::default(),
            }),
        })
    }
}

impl Validator {
    /// Starts a builder with the defaults.
    pub fn builder() -> ValidatorBuilder {
        ValidatorBuilder {
            issuers: Vec::new(),
            settings: Settings::default(),
            client: None,
            binding: BindingMode::default(),
            trusted_proxies: Vec::new(),
            extra_roots: Vec::new(),
        }
    }
}
