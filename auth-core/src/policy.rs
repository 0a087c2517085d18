//! What a route demands of a request: a valid token (or none, for optional
//! authentication) and scopes. Both adapters call [`AccessPolicy::check`], so the
//! decision and its HTTP rendering are made once.

use crate::claims::Principal;
use crate::credentials::{Credential, CredentialSources, bearer_credential};
use crate::error::{AuthError, ConfigError};
use crate::scope::ScopeRequirement;
use crate::validator::Validator;

/// A route's authentication policy: which validator, which scopes, whether a token is
/// required, and where a token may be found.
///
/// ```
/// # fn f(validator: auth_core::Validator) -> Result<(), auth_core::ConfigError> {
/// use auth_core::AccessPolicy;
///
/// let read = AccessPolicy::new(validator.clone()).require_scopes(["orders:read"])?;
/// let either = AccessPolicy::new(validator.clone()).require_any_scope(["orders:read", "admin"])?;
/// let optional = AccessPolicy::new(validator).optional();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AccessPolicy {
    validator: Validator,
    scopes: Option<ScopeRequirement>,
    optional: bool,
    sources: CredentialSources,
}

impl AccessPolicy {
    /// A valid token is required; no scope is.
    pub fn new(validator: Validator) -> Self {
        AccessPolicy { validator, scopes: None, optional: false, sources: CredentialSources::default() }
    }

    /// Every listed scope is required. Fails on a scope name RFC 6749 does not allow.
    pub fn require_scopes<I, S>(self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.require(ScopeRequirement::all(scopes))
    }

    /// At least one listed scope is required.
    pub fn require_any_scope<I, S>(self, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.require(ScopeRequirement::any(scopes))
    }

    /// Requires `requirement`.
    pub fn require(mut self, requirement: ScopeRequirement) -> Result<Self, ConfigError> {
        requirement.validate()?;
        self.scopes = Some(requirement);
        Ok(self)
    }

    /// A request without any token passes, unauthenticated. A request *with* a token
    /// must still carry a valid one: an invalid token is never treated as absent.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// Also accept `?access_token=` (RFC 6750 §2.3); off by default.
    pub fn allow_query_token(mut self) -> Self {
        self.sources.query = true;
        self
    }

    /// The validator behind this policy.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Decides a request from its `Authorization` header values and query string.
    /// `Ok(None)`: no token, and the policy is optional.
    pub async fn check<'a, I>(&self, authorization: I, query: Option<&'a str>) -> Result<Option<Principal>, AuthError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let Some(credential) = self.credential(authorization, query)? else { return Ok(None) };
        // The cache first: a hit is a token that passed every check, its alphabet included
        // (see `Credential`), so the scan of the whole token is for misses only.
        let principal = match self.validator.cached(credential.token) {
            Some(principal) => principal,
            None => {
                let token = credential.checked().inspect_err(|err| self.validator.record(err))?;
                self.validator.validate_uncached(token).await?
            }
        };
        self.authorize(principal).map(Some)
    }

    /// [`check`](Self::check) when the answer needs neither a signature check nor a key
    /// fetch: a request refused by its headers alone, an optional policy's request without
    /// a token, or a token from the verified-token cache. `None`: call `check`.
    ///
    /// Adapters answer the common case, a caller reusing its token, without an `async`
    /// state machine or a boxed future.
    ///
    /// ```
    /// # async fn f(policy: auth_core::AccessPolicy, header: &[u8]) {
    /// let decision = match policy.check_cached([header], None) {
    ///     Some(decision) => decision,
    ///     None => policy.check([header], None).await,
    /// };
    /// # }
    /// ```
    pub fn check_cached<'a, I>(
        &self,
        authorization: I,
        query: Option<&'a str>,
    ) -> Option<Result<Option<Principal>, AuthError>>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let credential = match self.credential(authorization, query) {
            Ok(Some(credential)) => credential,
            Ok(None) => return Some(Ok(None)),
            Err(err) => return Some(Err(err)),
        };
        let principal = self.validator.cached(credential.token)?;
        Some(self.authorize(principal).map(Some))
    }

    /// The request's credential; `Ok(None)` when there is none and the policy is optional.
    fn credential<'a, I>(&self, authorization: I, query: Option<&'a str>) -> Result<Option<Credential<'a>>, AuthError>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        match bearer_credential(authorization, query, self.sources) {
            Ok(credential) => Ok(Some(credential)),
            Err(AuthError::MissingToken) if self.optional => Ok(None),
            Err(err) => {
                self.validator.record(&err);
                Err(err)
            }
        }
    }

    /// The scope requirement, on a verified principal.
    fn authorize(&self, principal: Principal) -> Result<Principal, AuthError> {
        if let Some(scopes) = &self.scopes {
            self.validator.check_scopes(&principal, scopes)?;
        }
        Ok(principal)
    }

    /// The response parts for `err`: status, `WWW-Authenticate` value (with the
    /// validator's realm), JSON body, and `Retry-After` seconds for an outage.
    pub fn rejection(&self, err: &AuthError) -> Rejection {
        Rejection::from_error(err, self.validator.realm())
    }
}

/// How a rejected request is answered; identical in every adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// 400, 401, 403 or 503.
    pub status: u16,
    /// The `WWW-Authenticate` header value.
    pub www_authenticate: String,
    /// `{"error": ..., "error_description": ...}` (`application/json`).
    pub body: String,
    /// `Retry-After` seconds, for 503.
    pub retry_after: Option<u64>,
}

impl Rejection {
    /// The standard rendering of `err`, with `realm` in the challenge when given.
    pub fn from_error(err: &AuthError, realm: Option<&str>) -> Rejection {
        Rejection {
            status: err.status(),
            www_authenticate: err.www_authenticate(realm),
            body: err.json_body(),
            retry_after: err.retry_after_secs(),
        }
    }
}
