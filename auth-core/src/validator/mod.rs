//! The validator: one call from a bearer token to a verified [`Principal`] or an
//! [`AuthError`]. Built by [`ValidatorBuilder`] (`builder.rs`); the claim rules it applies
//! are in `claim_rules.rs`.

mod builder;

pub use builder::ValidatorBuilder;

use std::collections::HashMap;
use std::sync::Arc;

use crate::algorithm::AlgorithmSet;
use crate::cache::{Entry, TokenCache, TokenHash};
use crate::certificate::{BindingMode, ClientCertificate, TrustedProxies};
use crate::claim_rules::ClaimRules;
use crate::claims::{Claims, Principal};
use crate::clock::unix_now;
use crate::config::{Settings, TypPolicy};
use crate::decision::{Failure, Refusal, shortened};
use crate::discovery::IssuerMetadata;
use crate::jwks::KeySource;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::readiness::Readiness;
use crate::rejection::{AuthError, TokenError};
use crate::response::Rejection;
use crate::scope::ScopeRequirement;
use crate::token::{self, Header, RawClaims};
use crate::warn_budget::WarnBudget;

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
    /// The certificate a request comes with (see [`crate::request::presented_certificate`]).
    pub(crate) fn presented_certificate<H: crate::Headers + ?Sized>(
        &self,
        request: &crate::RequestContext<'_, H>,
    ) -> Option<Arc<ClientCertificate>> {
        crate::request::presented_certificate(request, &self.inner.trusted, &self.inner.proxy_warnings)
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

/// One trusted issuer, as built: its header rules, claim rules and key source.
struct IssuerPolicy {
    name: Arc<str>,
    algorithms: AlgorithmSet,
    typ: TypPolicy,
    rules: ClaimRules,
    keys: Arc<KeySource>,
}

impl Validator {
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
        match self.verify_token(segments).await {
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
    async fn verify_token(&self, segments: token::Segments<'_>) -> Result<Verified, Failure> {
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
        match self.verify_for_issuer(issuer, &header, &claims, &raw, &payload, segments).await {
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
    async fn verify_for_issuer(
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
        let valid_until = issuer.rules.apply(claims, raw, payload, unix_now())?;
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
