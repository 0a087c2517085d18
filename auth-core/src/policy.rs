//! What a route demands of a request, and the one protocol both adapters drive:
//! [`AccessPolicy::decide`] answers whatever needs no I/O (the header syntax, a cached
//! token, a refusal) or hands back a [`Verification`] that owns the token, already split
//! and hashed; [`Verification::run`] finishes it. Nothing is parsed, looked up or hashed
//! twice, and every outcome leaves through the exit in `decision.rs`.

use crate::ActorRequirement;
use crate::config::ConfigError;
use crate::credentials::{CredentialSources, bearer_credential};
use crate::decision::{Admission, Refusal};
use crate::rejection::{AuthError, TokenError};
use crate::request::{Headers, RequestContext};
use crate::scope::ScopeRequirement;
use crate::token::{self, SplitToken};
use crate::validator::{Lookup, Validator};

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
#[derive(Clone, Debug)]
pub struct AccessPolicy {
    validator: Validator,
    scopes: Option<ScopeRequirement>,
    actor: Option<ActorRequirement>,
    keep_inbound: bool,
    optional: bool,
    sources: CredentialSources,
}

impl AccessPolicy {
    /// A valid token is required; no scope is.
    pub fn new(validator: Validator) -> Self {
        AccessPolicy {
            validator,
            scopes: None,
            actor: None,
            keep_inbound: false,
            optional: false,
            sources: CredentialSources::default(),
        }
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

    /// Who may act on behalf of the token's subject (RFC 8693 `act`): the current actor of
    /// a delegated token must fit `requirement`, or delegation is required or forbidden.
    /// A refusal is 403 `forbidden`, naming the rule.
    ///
    /// ```
    /// # fn f(validator: auth_core::Validator) -> Result<(), auth_core::ConfigError> {
    /// use auth_core::{AccessPolicy, ActorMatch, ActorRequirement};
    ///
    /// let as_caller = AccessPolicy::new(validator)
    ///     .require_scopes(["invoices:read"])?
    ///     .require_actor(ActorRequirement::one_of([ActorMatch::client_id("orders-service")]));
    /// # Ok(()) }
    /// ```
    pub fn require_actor(mut self, requirement: ActorRequirement) -> Self {
        self.actor = Some(requirement);
        self
    }

    /// Admitted requests carry their verified token as an [`InboundToken`](crate::InboundToken)
    /// (in the adapters: a request extension), for calling others on the caller's behalf
    /// by token exchange. Off by default: only the routes that exchange pay for the copy.
    pub fn keep_inbound_token(mut self) -> Self {
        self.keep_inbound = true;
        self
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

    /// The synchronous step: decides a request from what needs no I/O, or hands back the
    /// [`Verification`] to run.
    ///
    /// ```
    /// # async fn f(policy: auth_core::AccessPolicy, headers: http::HeaderMap) {
    /// use auth_core::{Decision, RequestContext};
    ///
    /// let request = RequestContext::new("GET", "/orders", &headers);
    /// let outcome = match policy.decide(&request) {
    ///     Decision::Admit(admission) => Ok(admission),
    ///     Decision::Refuse(refusal) => Err(refusal),
    ///     Decision::Verify(verification) => verification.run().await,
    /// };
    /// # }
    /// ```
    pub fn decide<H: Headers + ?Sized>(&self, request: &RequestContext<'_, H>) -> Decision {
        crate::work::count(crate::work::Work::HeaderParse);
        let validator = &self.validator;
        let credential = match bearer_credential(request.header_values("authorization"), request.query(), self.sources)
        {
            Ok(credential) => credential,
            Err(AuthError::MissingToken) if self.optional => return Decision::Admit(Admission::of(None)),
            Err(err) => return Decision::Refuse(validator.refuse(err.into())),
        };
        // The cache first: a hit is a token that passed every check, its alphabet included
        // (see `Credential`), so the scan of the whole token is for misses only.
        let certificate = validator.presented_certificate(request);
        let hash = match validator.lookup(credential.token) {
            Lookup::Hit { principal, issuer } => {
                let (scopes, actor) = (self.scopes.as_ref(), self.actor.as_ref());
                return match validator.authorize_principal(principal, issuer, scopes, actor, certificate) {
                    Ok(principal) => {
                        let mut admission = Admission::of(Some(principal));
                        if self.keep_inbound {
                            admission.inbound_token = inbound(credential.token, admission.principal.as_ref());
                        }
                        Decision::Admit(admission)
                    }
                    Err(refusal) => Decision::Refuse(refusal),
                };
            }
            // Too large to look up: still the syntax first, so that a malformed value is
            // answered as malformed whatever its length.
            Lookup::TooLarge => {
                let err = credential.b64token().err().unwrap_or_else(|| TokenError::TooLarge.into());
                return Decision::Refuse(validator.refuse(err.into()));
            }
            Lookup::Miss(hash) => hash,
        };
        let split = credential.b64token().and_then(|token| {
            token::split(token).map(|segments| SplitToken::new(token, segments)).map_err(AuthError::from)
        });
        match split {
            Ok(token) => Decision::Verify(Verification { policy: self.clone(), token, hash, certificate }),
            Err(err) => Decision::Refuse(validator.refuse(err.into())),
        }
    }
}

/// What [`AccessPolicy::decide`] found.
#[derive(Debug)]
#[must_use]
pub enum Decision {
    /// Let the request through.
    Admit(Admission),
    /// Answer it with the rejection.
    Refuse(Refusal),
    /// The token needs verifying (a signature check, maybe a key fetch): run this.
    Verify(Verification),
}

/// A token that needs verifying, owned (split and hashed already): the asynchronous
/// step of [`AccessPolicy::decide`].
#[must_use]
pub struct Verification {
    policy: AccessPolicy,
    token: SplitToken,
    hash: Option<crate::cache::TokenHash>,
    certificate: Option<std::sync::Arc<crate::ClientCertificate>>,
}

impl Verification {
    /// Verifies the token (fetching keys if needed), caches it, applies the route's
    /// scope rule.
    pub async fn run(self) -> Result<Admission, Refusal> {
        let policy = &self.policy;
        policy
            .validator
            .verify_and_admit(
                self.token.as_str(),
                self.token.segments(),
                self.hash,
                policy.scopes.as_ref(),
                policy.actor.as_ref(),
                self.certificate.clone(),
            )
            .await
            .map(|principal| {
                let mut admission = Admission::of(Some(principal));
                if policy.keep_inbound {
                    admission.inbound_token = inbound(self.token.as_str().as_bytes(), admission.principal.as_ref());
                }
                admission
            })
    }
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verification").finish_non_exhaustive()
    }
}

/// The admitted token as an [`InboundToken`](crate::InboundToken) (it passed every check,
/// so it is ASCII).
fn inbound(token: &[u8], principal: Option<&crate::Principal>) -> Option<crate::InboundToken> {
    let (token, principal) = (std::str::from_utf8(token).ok()?, principal?);
    Some(crate::InboundToken::new(token, principal.claims().expires_at))
}
