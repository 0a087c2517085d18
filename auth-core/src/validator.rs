//! The validator: one call from a bearer token to a verified [`Principal`] or an [`AuthError`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use serde::de::IgnoredAny;

use crate::algorithm::AlgorithmSet;
use crate::cache::{Entry, TokenCache, TokenHash};
use crate::certificate::{BindingMode, ClientCertificate, TrustedProxies};
use crate::claims::{Claims, Principal};
use crate::clock::unix_now;
use crate::config::{Issuer, KeySourceConfig, Settings, TypPolicy};
use crate::decision::{Failure, Refusal, Rejection, WarnBudget, shortened};
use crate::discovery::IssuerMetadata;
use crate::error::{AuthError, ClaimName, ConfigError, TokenError};
use crate::jwks::{Fetcher, KeySource, Origin, check_url, parse_jwks};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::readiness::Readiness;
use crate::scope::ScopeRequirement;
use crate::token::{self, Header, RawClaims};

/// Validates bearer tokens against one or more trusted issuers.
///
/// Cheap to clone; share one per process. Building it does no I/O: keys are fetched at
/// the first request (or by [`warm_up`](Self::warm_up)), so a service starts even when
/// its identity provider is down, and recovers by itself when it comes back.
///
/// ```no_run
/// use auth_core::{Issuer, Validator};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let validator = Validator::builder()
///     .issuer(Issuer::discovery("https://idp.example.com").audience("orders-api"))
///     .build()?;
/// let principal = validator.validate("eyJhbGciOi...").await?;
/// println!("caller: {:?}", principal.claims().client());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

struct Inner {
    issuers: Vec<IssuerPolicy>,
    by_name: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    cache: Option<TokenCache>,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    warn_budget: WarnBudget,
    binding: BindingMode,
    trusted: TrustedProxies,
    /// Forwarded-certificate headers from untrusted peers: logged at a bounded rate.
    proxy_warnings: WarnBudget,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let issuers: Vec<&str> = self.inner.issuers.iter().map(|i| &*i.name).collect();
        f.debug_struct("Validator")
            .field("issuers", &issuers)
            .field("cached_tokens", &self.cached_tokens())
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// The certificate a request comes with (see [`crate::certificate::presented`]).
    pub(crate) fn presented_certificate<H: crate::Headers + ?Sized>(
        &self,
        request: &crate::RequestContext<'_, H>,
    ) -> Option<Arc<ClientCertificate>> {
        crate::certificate::presented(request, &self.inner.trusted, &self.inner.proxy_warnings).certificate
    }

    /// The metadata document of `issuer` when its keys come by discovery (shared with a
    /// token source of the same issuer).
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn metadata_for(&self, issuer: &str) -> Option<Arc<IssuerMetadata>> {
        self.inner.issuers.iter().find_map(|i| i.keys.metadata().filter(|m| m.issuer() == issuer).cloned())
    }
}

/// What [`Validator::lookup`] found.
pub(crate) enum Lookup {
    /// A verified token, still good, with its issuer's index.
    Hit { principal: Principal, issuer: usize },
    /// Not cached: verify it (`None` when the cache is off).
    Miss(Option<TokenHash>),
    /// Over the size cap: never hashed nor looked up.
    TooLarge,
}

/// A token that passed every check.
struct Verified {
    principal: Principal,
    issuer: usize,
    key: crate::jwks::KeyId,
    valid_until: i64,
}

struct IssuerPolicy {
    name: Arc<str>,
    audiences: Vec<String>,
    algorithms: AlgorithmSet,
    leeway: i64,
    max_age: Option<i64>,
    required: Vec<Arc<str>>,
    typ: TypPolicy,
    keys: Arc<KeySource>,
}

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
        self.settings.check()?;
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
            issuer.check()?;
            for id in issuer.routing_names() {
                if by_name.insert(Arc::from(id.as_str()), issuers.len()).is_some() {
                    return Err(ConfigError::DuplicateIssuer(id));
                }
            }
            let algorithms = AlgorithmSet::of(issuer.algorithms.iter().copied());
            let url = |what: &'static str, s: &str| -> Result<Url, ConfigError> {
                let url = Url::parse(s).map_err(|e| ConfigError::InvalidUrl { what, reason: e.to_string() })?;
                check_url(&url, settings.allow_insecure_http)
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
                cache.clone(),
            ));
            let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            issuers.push(IssuerPolicy {
                name,
                audiences: issuer.audiences,
                algorithms,
                leeway: secs(issuer.leeway),
                max_age: issuer.max_token_age.map(secs),
                required: issuer.required_claims,
                typ: issuer.typ,
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

    /// Validates a bearer token: shape, header, issuer, claims, key and signature.
    ///
    /// Returns quickly without I/O when the key is cached. May fetch the issuer's keys
    /// (shared with concurrent callers, bounded by the cooldown and the fetch timeout).
    /// The outcome is counted and logged like a request's.
    ///
    /// No client certificate comes with it: a certificate-bound token is refused (see
    /// [`Validator::validate_with_certificate`]).
    pub async fn validate(&self, token: &str) -> Result<Principal, AuthError> {
        self.decide_token(token, None, None).await.map_err(|refusal| refusal.error)
    }

    /// Validates a token presented with `certificate` (the request's client certificate):
    /// a token bound to it (RFC 8705) passes.
    pub async fn validate_with_certificate(
        &self,
        token: &str,
        certificate: &Arc<ClientCertificate>,
    ) -> Result<Principal, AuthError> {
        self.decide_token(token, None, Some(certificate.clone())).await.map_err(|refusal| refusal.error)
    }

    /// Validates, then checks the scope requirement (403 `insufficient_scope` when unmet).
    pub async fn authorize(&self, token: &str, required: &ScopeRequirement) -> Result<Principal, AuthError> {
        self.decide_token(token, Some(required), None).await.map_err(|refusal| refusal.error)
    }

    async fn decide_token(
        &self,
        token: &str,
        scopes: Option<&ScopeRequirement>,
        certificate: Option<Arc<ClientCertificate>>,
    ) -> Result<Principal, Refusal> {
        let hash = match self.lookup(token.as_bytes()) {
            Lookup::Hit { principal, issuer } => {
                return self.authorize_principal(principal, issuer, scopes, None, certificate);
            }
            Lookup::TooLarge => return Err(self.refuse(TokenError::TooLarge.into())),
            Lookup::Miss(hash) => hash,
        };
        let segments = token::split(token).map_err(|err| self.refuse(err.into()))?;
        self.verify_and_admit(token, segments, hash, scopes, None, certificate).await
    }

    /// The step every request takes first, without I/O: the size cap, then the
    /// verified-token cache (hashing the token once). A hit is re-checked against the
    /// clock and the issuer's current keys.
    pub(crate) fn lookup(&self, token: &[u8]) -> Lookup {
        let inner = &*self.inner;
        if token.len() > inner.settings.max_token_bytes {
            return Lookup::TooLarge;
        }
        let Some(cache) = inner.cache.as_ref() else { return Lookup::Miss(None) };
        let hash = cache.hash(token);
        let Some(entry) = cache.get(token, hash) else { return Lookup::Miss(Some(hash)) };
        if unix_now() < entry.valid_until
            && inner.issuers[entry.issuer].keys.still_trusts(entry.principal.key_id(), entry.key)
        {
            inner.metrics.cache_hits.add_one();
            return Lookup::Hit { principal: entry.principal, issuer: entry.issuer };
        }
        cache.remove(token, hash);
        Lookup::Miss(Some(hash))
    }

    /// Verifies a token the cache did not have, caches it (under the hash `lookup`
    /// computed), and applies the scope rule.
    pub(crate) async fn verify_and_admit(
        &self,
        token: &str,
        segments: token::Segments<'_>,
        hash: Option<TokenHash>,
        scopes: Option<&ScopeRequirement>,
        actor: Option<&crate::ActorRequirement>,
        certificate: Option<Arc<ClientCertificate>>,
    ) -> Result<Principal, Refusal> {
        match self.verify(segments).await {
            Ok(verified) => {
                if let (Some(cache), Some(hash)) = (&self.inner.cache, hash) {
                    let entry =
                        Entry::new(verified.principal.clone(), verified.issuer, verified.key, verified.valid_until);
                    cache.insert(token, hash, entry);
                }
                self.authorize_principal(verified.principal, verified.issuer, scopes, actor, certificate)
            }
            Err(failure) => Err(self.refuse(failure)),
        }
    }

    /// The route's scope rule on a verified principal; an admission is counted here.
    pub(crate) fn authorize_principal(
        &self,
        principal: Principal,
        issuer: usize,
        scopes: Option<&ScopeRequirement>,
        actor: Option<&crate::ActorRequirement>,
        certificate: Option<Arc<ClientCertificate>>,
    ) -> Result<Principal, Refusal> {
        // The binding first, on every request (cache hit or not): RFC 8705 §3.
        let binding = match (self.inner.binding, principal.bound_to(), certificate.as_deref()) {
            (BindingMode::Off, Some(_), _) => Err(TokenError::SenderConstrained),
            (BindingMode::Required, None, _) => Err(TokenError::CertificateBindingRequired),
            (_, Some(digest), Some(presented)) if presented.matches(digest) => Ok(()),
            (_, Some(_), _) => Err(TokenError::CertificateMismatch),
            (_, None, _) => Ok(()),
        };
        if let Err(err) = binding {
            return Err(self.refuse(Failure {
                error: err.into(),
                issuer: Some(issuer),
                kid: principal.key_id().map(Into::into),
                client: principal.claims().client().map(shortened),
            }));
        }
        let principal = principal.with_certificate(certificate);
        // Then who acts (a delegated token's current actor), then what it may do.
        if let Some(required) = actor
            && !required.allows(principal.actor(), principal.issuer())
        {
            return Err(self.refuse(Failure {
                error: AuthError::ActorNotAllowed { required: required.clone() },
                issuer: Some(issuer),
                kid: None,
                client: principal.claims().client().map(shortened),
            }));
        }
        if let Some(required) = scopes
            && !required.is_satisfied_by(principal.scopes())
        {
            return Err(self.refuse(Failure {
                error: AuthError::InsufficientScope { required: required.clone() },
                issuer: Some(issuer),
                kid: None,
                client: principal.claims().client().map(shortened),
            }));
        }
        self.inner.metrics.accepted(issuer);
        Ok(principal)
    }

    /// The exit of every refusal: counted, logged once, rendered.
    pub(crate) fn refuse(&self, failure: Failure) -> Refusal {
        let inner = &*self.inner;
        let issuer = failure.issuer.and_then(|index| inner.issuers.get(index)).map_or("unknown", |i| &*i.name);
        inner.metrics.rejected(failure.error.reason(), failure.issuer);
        crate::decision::log_refusal(&failure, issuer, &inner.warn_budget);
        Refusal { rejection: Box::new(Rejection::from_error(&failure.error, self.realm())), error: failure.error }
    }

    /// Refuses a request for `error` decided outside the validator (an extractor that
    /// finds no caller behind an optional policy, or claims that do not fit a type):
    /// counted, logged and rendered like every other refusal.
    pub fn refusal(&self, error: AuthError) -> Refusal {
        self.refuse(error.into())
    }

    /// Fetches every remote issuer's keys now (ignoring the cooldown). Use it at start-up
    /// if you prefer to know early; a failure here is not fatal to the validator.
    pub async fn warm_up(&self) -> Result<(), AuthError> {
        let mut result = Ok(());
        for issuer in &self.inner.issuers {
            if let Err(err) = issuer.keys.refresh_now().await {
                result = Err(err);
            }
        }
        result
    }

    /// The state of every issuer's keys, for probes. An issuer without keys in service
    /// gets a fetch first (respecting the cooldown, bounded by the fetch timeout), so an
    /// instance that started while its identity provider was down becomes ready when the
    /// provider returns, even if no request reaches it.
    ///
    /// Gate readiness on [`Readiness::keys_loaded`], not on
    /// [`keys_usable`](Readiness::keys_usable): see [`Readiness`] for why.
    pub async fn readiness(&self) -> Readiness {
        let mut issuers = Vec::with_capacity(self.inner.issuers.len());
        for issuer in &self.inner.issuers {
            issuers.push(issuer.keys.readiness().await);
        }
        Readiness { issuers }
    }

    /// Whether every issuer has keys in service now, without fetching (see
    /// [`readiness`](Self::readiness) for the probe to use).
    pub fn is_ready(&self) -> bool {
        self.inner.issuers.iter().all(|issuer| issuer.keys.is_ready())
    }

    /// The counters so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Entries in the verified-token cache (0 when it is off).
    pub fn cached_tokens(&self) -> u64 {
        self.inner.cache.as_ref().map_or(0, TokenCache::entry_count)
    }

    /// The configured realm for challenges.
    pub fn realm(&self) -> Option<&str> {
        self.inner.settings.realm.as_deref()
    }

    /// The `WWW-Authenticate` value for `err`, with this validator's realm.
    pub fn challenge(&self, err: &AuthError) -> String {
        err.www_authenticate(self.realm())
    }

    /// Every check of a split token. Nothing is counted or logged here: the caller's
    /// exit does that once.
    async fn verify(&self, segments: token::Segments<'_>) -> Result<Verified, Failure> {
        let inner = &*self.inner;
        let header = token::parse_header(segments.header)?;
        let payload = token::decode_payload(segments.payload)?;
        let raw = token::parse_raw_claims(&payload)?;
        let claims = Claims::from_raw(&raw)
            .map_err(|err| Failure { kid: header.kid.as_deref().map(shortened), ..Failure::from(err) })?;
        let failure = |index: Option<usize>, error: AuthError| Failure {
            error,
            issuer: index,
            kid: header.kid.as_deref().map(shortened),
            client: claims.client().map(shortened),
        };
        let Some(&index) = inner.by_name.get(claims.issuer.as_str()) else {
            return Err(failure(None, TokenError::UnknownIssuer.into()));
        };
        let issuer = &inner.issuers[index];
        match self.check(issuer, &header, &claims, &raw, &payload, segments).await {
            Ok((key, valid_until)) => Ok(Verified {
                principal: Principal::new(claims, header.alg, header.kid, payload),
                issuer: index,
                key: key.id,
                valid_until,
            }),
            Err(err) => Err(failure(Some(index), err)),
        }
    }

    /// The issuer's policy, then the key and the signature. Cheap checks come first so
    /// that a token failing them never causes a key fetch.
    async fn check(
        &self,
        issuer: &IssuerPolicy,
        header: &Header,
        claims: &Claims,
        raw: &RawClaims<'_>,
        payload: &str,
        segments: token::Segments<'_>,
    ) -> Result<(Arc<crate::jwks::VerifyingKey>, i64), AuthError> {
        if !issuer.algorithms.contains(header.alg) {
            return Err(TokenError::AlgorithmNotAllowed.into());
        }
        if !issuer.typ.accepts(header.typ.as_deref()) {
            return Err(TokenError::InvalidType.into());
        }
        let valid_until = check_claims(issuer, claims, raw, payload, unix_now())?;
        // `iss` must be exactly the issuer's identifier; with discovery that is the
        // document's, known once discovery has succeeded (before, the key lookup is 503).
        if issuer.keys.issuer_matches(&claims.issuer) == Some(false) {
            return Err(TokenError::UnknownIssuer.into());
        }
        let key = issuer.keys.key(header.kid.as_deref(), header.alg).await?;
        if issuer.keys.issuer_matches(&claims.issuer) != Some(true) {
            return Err(TokenError::UnknownIssuer.into());
        }
        let signature = token::decode_segment(segments.signature, "the signature is not base64url")?;
        if !key.verify(header.alg, segments.signing_input.as_bytes(), &signature) {
            return Err(TokenError::InvalidSignature.into());
        }
        Ok((key, valid_until))
    }
}

/// Time, audience and required-claim rules. Returns until when the token may be
/// served from the cache.
fn check_claims(
    issuer: &IssuerPolicy,
    claims: &Claims,
    raw: &RawClaims<'_>,
    payload: &str,
    now: i64,
) -> Result<i64, TokenError> {
    // A certificate binding (`cnf.x5t#S256`) is checked per request, cache hit or not
    // (`Validator::authorize_principal`): a cached token is only as good as the
    // certificate presented with it.
    let leeway = issuer.leeway;
    // RFC 7519 §4.1.4: not accepted on or after exp.
    if now >= claims.expires_at.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if claims.not_before.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(TokenError::NotYetValid);
    }
    if claims.issued_at.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(TokenError::IssuedInFuture);
    }
    let mut valid_until = claims.expires_at;
    if let Some(max_age) = issuer.max_age {
        let iat = claims.issued_at.ok_or(TokenError::missing("iat"))?;
        if now.saturating_sub(iat) > max_age.saturating_add(leeway) {
            return Err(TokenError::TooOld);
        }
        valid_until = valid_until.min(iat.saturating_add(max_age));
    }
    if !claims.audience.iter().any(|aud| issuer.audiences.contains(aud)) {
        return Err(TokenError::InvalidAudience);
    }
    if !issuer.required.is_empty() {
        let mut members: Option<HashMap<Cow<'_, str>, IgnoredAny>> = None;
        for name in &issuer.required {
            let present = match &**name {
                "iss" | "aud" | "exp" => true,
                "sub" => raw.sub.is_some(),
                "nbf" => raw.nbf.is_some(),
                "iat" => raw.iat.is_some(),
                "jti" => raw.jti.is_some(),
                "client_id" => raw.client_id.is_some(),
                "azp" => raw.azp.is_some(),
                "scope" => raw.scope.is_some(),
                "scp" => raw.scp.is_some(),
                other => {
                    let members = match &mut members {
                        Some(members) => members,
                        None => members.insert(
                            serde_json::from_str(payload)
                                .map_err(|_| TokenError::Malformed("the claims are not a JSON object"))?,
                        ),
                    };
                    members.contains_key(other)
                }
            };
            if !present {
                return Err(TokenError::MissingClaim(ClaimName::Configured(name.clone())));
            }
        }
    }
    Ok(valid_until)
}
