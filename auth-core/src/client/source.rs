//! The token source: one cached token per target, refreshed ahead of its expiry in the
//! background, one request at a time per target, backoff when the endpoint fails, and
//! the downstream's refusals.
//!
//! - The hot path ([`TargetToken::cached_header`]) loads the current token (no lock, no
//!   I/O), checks it is usable by the monotonic clock, and clones this thread's copy of
//!   its header.
//! - A token is refreshed at 75–80 % of its lifetime (jittered, so a fleet started together
//!   does not ask together), by a task that holds the target weakly, and only when the
//!   token was used since it was issued. A caller that finds the token due also starts the
//!   refresh (in the background: it goes on with the current token).
//! - Concurrent callers without a usable token share one request (single flight). The
//!   request runs as its own task, so a caller that gives up does not cancel it for the
//!   others, and a guard clears it however it ends (finished, panicked, runtime gone).
//! - After a failure no request starts before the backoff ends (exponential with jitter;
//!   the ceiling at once for a configuration error); meanwhile the current token serves
//!   while it is usable, then callers get the error at once, never an expired token.
//! - No new request starts sooner than `min_lifetime × 0.75` after the last success, so a
//!   server that issues very short-lived tokens, or a downstream that refuses every token,
//!   cannot turn calls into a stream of token requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use http::HeaderValue;
use reqwest::Url;
use tokio::sync::Notify;

use super::client_auth::ClientAuth;
use super::endpoint::{self, Endpoint, Metadata, Origin, Resolved};
use super::error::TokenSourceError;
use super::target::TokenTarget;
use super::token::{AccessToken, forget_local, local_fill, local_hit};
use crate::config::ConfigError;
use crate::discovery::IssuerMetadata;
use crate::fetch::{Fetcher, require_https};

/// Where the calling side logs.
pub const CLIENT_LOG_TARGET: &str = "auth::client";

/// The refresh point, as a fraction of the lifetime: 0.75 plus up to this much jitter.
const REFRESH_JITTER: f64 = 0.05;

/// Service credentials that refresh themselves: client-credentials tokens (RFC 6749
/// §4.4), one cached per [`TokenTarget`]. Clones share everything.
///
/// ```no_run
/// use auth_core::client::{ClientAuth, TokenSource, TokenTarget};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenSource::builder("orders-service")
///     .issuer("https://idp.example.com")
///     .client_auth(ClientAuth::client_secret_basic(std::env::var("CLIENT_SECRET")?))
///     .build()?;
/// let billing = tokens.target(TokenTarget::resource("https://billing.internal").scope("invoices:read"))?;
/// let token = billing.token().await?;
/// let response = reqwest::Client::new()
///     .get("https://billing.internal/invoices/42")
///     .header(http::header::AUTHORIZATION, token.header_value().clone())
///     .send()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<SourceInner>,
}

struct SourceInner {
    engine: Arc<Engine>,
    targets: Mutex<HashMap<TokenTarget, Arc<TargetState>>>,
}

/// What every target of one source shares: the client, its credentials and the settings.
pub(super) struct Engine {
    pub(super) client_id: String,
    pub(super) auth: ClientAuth,
    pub(super) endpoint: Endpoint,
    pub(super) fetcher: Fetcher,
    pub(super) settings: Settings,
    shut_down: AtomicBool,
    shutdown: Notify,
    next_target: AtomicU64,
    pub(super) token_requests: AtomicU64,
    pub(super) failures: AtomicU64,
    waits: AtomicU64,
}

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) max_token_bytes: usize,
    pub(super) default_lifetime: Duration,
    min_lifetime: Duration,
    pub(super) backoff_initial: Duration,
    backoff_max: Duration,
    pub(super) rejection_cooldown: Duration,
}

/// Counters of a [`TokenSource`], for tests and dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TokenSourceStats {
    /// Token requests sent (each target, each attempt, token exchanges included).
    pub token_requests: u64,
    /// Token requests that failed.
    pub failures: u64,
    /// Callers that found no usable token and had to wait for a request (or failed at
    /// once during a backoff). Stays flat in steady state: refreshes happen ahead.
    pub waits: u64,
}

impl TokenSource {
    /// A source for the client `client_id`; see [`TokenSourceBuilder`].
    pub fn builder(client_id: impl Into<String>) -> TokenSourceBuilder {
        TokenSourceBuilder::new(client_id.into())
    }

    /// The handle for one target's token (created on first use, then shared: every
    /// handle of a target sees the same cached token). Targets come from configuration;
    /// each one keeps a token.
    pub fn target(&self, target: TokenTarget) -> Result<TargetToken, ConfigError> {
        target.ensure_usable()?;
        let mut targets = self.inner.targets.lock().unwrap_or_else(|p| p.into_inner());
        let state = targets
            .entry(target)
            .or_insert_with_key(|target| {
                Arc::new(TargetState {
                    engine: self.inner.engine.clone(),
                    target: target.clone(),
                    id: self.inner.engine.next_target.fetch_add(1, Ordering::Relaxed),
                    current: ArcSwapOption::empty(),
                    generation: AtomicU64::new(0),
                    used: AtomicBool::new(false),
                    fetching: AtomicBool::new(false),
                    flight: Mutex::new(Flight::default()),
                    stop: Arc::new(Notify::new()),
                })
            })
            .clone();
        Ok(TargetToken { state })
    }

    /// A token for `target`: shorthand for [`TokenSource::target`] then [`TargetToken::token`].
    pub async fn token(&self, target: &TokenTarget) -> Result<AccessToken, TokenSourceError> {
        let handle = self.target(target.clone()).map_err(|e| TokenSourceError::Refused {
            code: "invalid_target".into(),
            description: Some(e.to_string()),
            retry_after: None,
        })?;
        handle.token().await
    }

    /// Stops the background refreshes and forgets every token; from now on every call
    /// fails with [`TokenSourceError::ShutDown`]. Dropping the last handle of a source
    /// stops its tasks too.
    pub fn shutdown(&self) {
        let engine = &self.inner.engine;
        engine.shut_down.store(true, Ordering::SeqCst);
        engine.shutdown.notify_waiters();
        for state in self.inner.targets.lock().unwrap_or_else(|p| p.into_inner()).values() {
            state.drop_current(&mut state.flight());
            state.stop.notify_waiters();
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> TokenSourceStats {
        let e = &self.inner.engine;
        TokenSourceStats {
            token_requests: e.token_requests.load(Ordering::Relaxed),
            failures: e.failures.load(Ordering::Relaxed),
            waits: e.waits.load(Ordering::Relaxed),
        }
    }

    /// Token exchange (RFC 8693) with this client's credentials: tokens for another
    /// service on behalf of a caller, acted for by `actor`'s token (the service's own, as
    /// `actor_token`) when given. See [`TokenExchange`](super::TokenExchange).
    pub fn exchange(&self, actor: Option<TargetToken>) -> super::TokenExchange {
        super::TokenExchange::new(self.inner.engine.clone(), actor)
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.engine.client_id
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.inner.engine;
        f.debug_struct("TokenSource")
            .field("client_id", &e.client_id)
            .field("client_auth", &e.auth)
            .field("endpoint", &e.endpoint.describe())
            .finish_non_exhaustive()
    }
}

/// One target's token: what a client layer or middleware holds. Cheap to clone.
#[derive(Clone)]
pub struct TargetToken {
    state: Arc<TargetState>,
}

struct TargetState {
    engine: Arc<Engine>,
    target: TokenTarget,
    /// Tells this target's header copies apart in the per-thread cache.
    id: u64,
    current: ArcSwapOption<Current>,
    /// The generation of `current` (a new one for every token and every drop): what the
    /// hot path compares with its thread's copy.
    generation: AtomicU64,
    /// Whether the current token was handed out since it was issued.
    used: AtomicBool,
    /// A request is in flight: callers past the refresh point need not take the lock.
    fetching: AtomicBool,
    flight: Mutex<Flight>,
    /// Wakes this target's scheduled refresh to end it (target dropped, source shut down).
    stop: Arc<Notify>,
}

struct Current {
    token: AccessToken,
    generation: u64,
    usable_until: Instant,
    refresh_at: Instant,
}

type SharedFetch = Shared<BoxFuture<'static, Result<AccessToken, TokenSourceError>>>;

#[derive(Default)]
struct Flight {
    in_flight: Option<SharedFetch>,
    /// Numbers requests, so that a finished one clears only its own `in_flight`.
    request: u64,
    /// Numbers installed tokens (the per-thread header copies follow it).
    generation: u64,
    /// No request starts before this (backoff after a failure, the floor after a success).
    not_before: Option<Instant>,
    failures: u32,
    last_error: Option<TokenSourceError>,
    /// A configuration error is logged once until the next success.
    refusal_logged: bool,
    last_rejection: Option<Instant>,
}

impl TargetToken {
    /// The current token's `Authorization` header value, if a usable token is cached:
    /// no lock, no I/O, no wait. Starts a background refresh when the token is due.
    pub fn cached_header(&self) -> Option<HeaderValue> {
        let state = &*self.state;
        let generation = state.generation.load(Ordering::Acquire);
        let now = Instant::now();
        let (header, due) = match local_hit(state.id, generation, now) {
            Some(hit) => hit,
            None => {
                let guard = state.current.load();
                let current = guard.as_ref().filter(|c| now < c.usable_until)?;
                let header = local_fill(
                    state.id,
                    current.generation,
                    current.usable_until,
                    current.refresh_at,
                    current.token.header_value(),
                );
                (header, now >= current.refresh_at)
            }
        };
        state.mark_used();
        if due && !state.fetching.load(Ordering::Relaxed) {
            self.state.refresh_in_background();
        }
        Some(header)
    }

    /// The current token, if a usable one is cached (see [`TargetToken::cached_header`]).
    pub fn cached(&self) -> Option<AccessToken> {
        let now = Instant::now();
        let guard = self.state.current.load();
        let current = guard.as_ref().filter(|c| now < c.usable_until)?;
        self.state.mark_used();
        if now >= current.refresh_at && !self.state.fetching.load(Ordering::Relaxed) {
            self.state.refresh_in_background();
        }
        Some(current.token.clone())
    }

    /// A usable token: the cached one, else the result of the one request in flight for
    /// this target (started if there is none). Fails at once during a backoff, and
    /// otherwise within the request timeout (twice it when the metadata must be read).
    pub async fn token(&self) -> Result<AccessToken, TokenSourceError> {
        if let Some(token) = self.cached() {
            return Ok(token);
        }
        if self.state.engine.shut_down.load(Ordering::SeqCst) {
            return Err(TokenSourceError::ShutDown);
        }
        self.state.engine.waits.fetch_add(1, Ordering::Relaxed);
        let token = self.state.begin_request()?.await?;
        self.state.mark_used();
        Ok(token)
    }

    /// [`TargetToken::token`]'s header value, from this thread's copy when cached.
    pub async fn header(&self) -> Result<HeaderValue, TokenSourceError> {
        if let Some(header) = self.cached_header() {
            return Ok(header);
        }
        Ok(self.token().await?.header_value().clone())
    }

    /// The downstream answered `401` with `error="invalid_token"` (gRPC: status 16) to a
    /// call that carried `sent`. Drops the cached token if `sent` is still it, at most
    /// once per cooldown (a hostile downstream cannot turn every call into a token
    /// request). Returns whether the token was dropped, i.e. whether a retry would carry
    /// a different token.
    pub fn reject(&self, sent: &HeaderValue) -> bool {
        let now = Instant::now();
        let mut flight = self.state.flight();
        let cooldown = self.state.engine.settings.rejection_cooldown;
        if flight.last_rejection.is_some_and(|at| now.duration_since(at) < cooldown) {
            return false;
        }
        let guard = self.state.current.load();
        let Some(current) = guard.as_ref() else { return false };
        if current.token.header_value().as_bytes() != sent.as_bytes() {
            return false;
        }
        drop(guard);
        self.state.drop_current(&mut flight);
        flight.last_rejection = Some(now);
        tracing::info!(
            target: CLIENT_LOG_TARGET,
            client_id = %self.state.engine.client_id,
            target = %self.state.target,
            "the downstream refused our token as invalid; it is dropped and the next call asks for a new one"
        );
        true
    }

    /// What this handle requests tokens for.
    pub fn target(&self) -> &TokenTarget {
        &self.state.target
    }
}

impl fmt::Debug for TargetToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetToken")
            .field("client_id", &self.state.engine.client_id)
            .field("target", &self.state.target)
            .finish_non_exhaustive()
    }
}

impl Drop for TargetState {
    fn drop(&mut self) {
        self.stop.notify_waiters();
        forget_local(self.id);
    }
}

impl TargetState {
    fn flight(&self) -> MutexGuard<'_, Flight> {
        // Never held across an await or a panic-prone call; recover anyway.
        self.flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No token in service any more (refused downstream, or shut down).
    fn drop_current(&self, flight: &mut Flight) {
        flight.generation += 1;
        self.current.store(None);
        self.generation.store(flight.generation, Ordering::Release);
    }

    fn mark_used(&self) {
        // Read first: a store on every call would bounce the line between cores.
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }

    fn refresh_in_background(self: &Arc<Self>) {
        // The result is picked up by later calls; a refusal (backoff) is already logged.
        drop(self.begin_request());
    }

    /// Joins the request in flight, or starts one unless a backoff forbids it.
    fn begin_request(self: &Arc<Self>) -> Result<SharedFetch, TokenSourceError> {
        let engine = &self.engine;
        if engine.shut_down.load(Ordering::SeqCst) {
            return Err(TokenSourceError::ShutDown);
        }
        let mut flight = self.flight();
        if let Some(in_flight) = &flight.in_flight {
            if in_flight.peek().is_none() {
                return Ok(in_flight.clone());
            }
            flight.in_flight = None;
        }
        let now = Instant::now();
        if let Some(not_before) = flight.not_before.filter(|at| now < *at) {
            let retry_after = not_before.duration_since(now);
            let last = flight.last_error.clone().unwrap_or_else(|| TokenSourceError::Unavailable {
                cause: "a new token may not be requested this soon after the last one".into(),
                retry_after: None,
            });
            return Err(last.with_retry_after(retry_after));
        }
        // A request needs a tokio runtime (reqwest does too); outside one, fail instead of
        // panicking in `tokio::spawn`.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(TokenSourceError::Unavailable {
                cause: "not running inside a tokio runtime".into(),
                retry_after: None,
            });
        };
        flight.request += 1;
        let request = flight.request;
        self.fetching.store(true, Ordering::Relaxed);
        let this = self.clone();
        let task = runtime.spawn(async move {
            let mut guard = InFlight { state: &this, request, finished: false };
            let result = this.request().await;
            guard.finished = true;
            drop(guard);
            result
        });
        let shared = async move {
            task.await.unwrap_or_else(|_| {
                Err(TokenSourceError::Unavailable {
                    cause: "the token request ended before finishing".into(),
                    retry_after: None,
                })
            })
        }
        .boxed()
        .shared();
        flight.in_flight = Some(shared.clone());
        Ok(shared)
    }

    async fn request(self: &Arc<Self>) -> Result<AccessToken, TokenSourceError> {
        let engine = &self.engine;
        engine.token_requests.fetch_add(1, Ordering::Relaxed);
        let result = async {
            let resolved = engine.endpoint.resolve(&engine.fetcher).await?;
            endpoint::request_token(
                &engine.fetcher,
                &resolved,
                &engine.client_id,
                &engine.auth,
                &endpoint::Grant::ClientCredentials,
                &self.target,
                engine.settings.max_token_bytes,
                engine.settings.default_lifetime,
            )
            .await
        }
        .await;
        match result.and_then(|answer| self.install(answer)) {
            Ok(token) => Ok(token),
            Err(err) => {
                let delay = self.record_failure(&err);
                Err(err.with_retry_after(delay))
            }
        }
    }

    fn install(self: &Arc<Self>, answer: endpoint::Answer) -> Result<AccessToken, TokenSourceError> {
        let s = &self.engine.settings;
        let lifetime = answer.issued.lifetime;
        let arrived = answer.arrived;
        let expires_at = arrived + lifetime;
        // Not handed out in its last tenth (at most 5 s): it must still be valid when the
        // downstream checks it.
        let usable_until = expires_at - (lifetime / 10).min(Duration::from_secs(5));
        let fraction = 0.75 + fastrand::f64() * REFRESH_JITTER;
        let refresh_at = (arrived + lifetime.max(s.min_lifetime).mul_f64(fraction)).min(usable_until);
        let token = AccessToken::new(&answer.issued.access_token, expires_at, answer.issued.scope)
            .ok_or_else(|| TokenSourceError::InvalidResponse("the token does not fit a header".into()))?;
        let generation = {
            let mut flight = self.flight();
            flight.generation += 1;
            flight.failures = 0;
            flight.last_error = None;
            flight.refusal_logged = false;
            flight.not_before = Some(arrived + s.min_lifetime.mul_f64(0.75));
            self.used.store(false, Ordering::Relaxed);
            self.current.store(Some(Arc::new(Current {
                token: token.clone(),
                generation: flight.generation,
                usable_until,
                refresh_at,
            })));
            self.generation.store(flight.generation, Ordering::Release);
            flight.generation
        };
        tracing::debug!(
            target: CLIENT_LOG_TARGET,
            client_id = %self.engine.client_id,
            target = %self.target,
            lifetime_secs = lifetime.as_secs(),
            "token obtained"
        );
        self.schedule(refresh_at, generation);
        Ok(token)
    }

    /// Counts, logs and backs off; returns the backoff.
    fn record_failure(self: &Arc<Self>, err: &TokenSourceError) -> Duration {
        let engine = &self.engine;
        let s = &engine.settings;
        engine.failures.fetch_add(1, Ordering::Relaxed);
        if matches!(err, TokenSourceError::Unavailable { .. }) {
            // The endpoint may have moved: read the metadata again next time.
            engine.endpoint.forget();
        }
        let now = Instant::now();
        let (delay, log) = {
            let mut flight = self.flight();
            flight.failures = flight.failures.saturating_add(1);
            let delay = if err.is_configuration() {
                s.backoff_max
            } else {
                let exponent = flight.failures.saturating_sub(1).min(20);
                let base = s.backoff_initial.saturating_mul(1 << exponent).min(s.backoff_max);
                // Jitter: between half and all of the step, so clients that failed together
                // do not retry together.
                base.mul_f64(0.5 + fastrand::f64() * 0.5)
            };
            let delay = delay.max(err.retry_after().unwrap_or_default().min(s.backoff_max));
            flight.not_before = Some(now + delay);
            flight.last_error = Some(err.clone());
            let log = !(err.is_configuration() && flight.refusal_logged);
            if err.is_configuration() {
                flight.refusal_logged = true;
            }
            (delay, log)
        };
        let serving = self.current.load().as_ref().is_some_and(|c| now < c.usable_until);
        if log {
            if err.is_configuration() {
                tracing::error!(
                    target: CLIENT_LOG_TARGET,
                    client_id = %engine.client_id,
                    target = %self.target,
                    error = %err,
                    retry_in_secs = delay.as_secs(),
                    "the token endpoint refused our client: check its id, credentials, scopes and resources"
                );
            } else {
                tracing::warn!(
                    target: CLIENT_LOG_TARGET,
                    client_id = %engine.client_id,
                    target = %self.target,
                    error = %err,
                    retry_in_secs = delay.as_secs_f32(),
                    serving_current_token = serving,
                    "token request failed"
                );
            }
        }
        // While the current token serves, try again in the background after the backoff.
        if serving && self.used.load(Ordering::Relaxed) {
            let generation = self.flight().generation;
            self.schedule(now + delay, generation);
        }
        delay
    }

    /// A refresh of token `generation` at `at`, by a task that holds the target weakly and
    /// ends early when the target is dropped or the source shut down.
    fn schedule(self: &Arc<Self>, at: Instant, generation: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let target: Weak<TargetState> = Arc::downgrade(self);
        let stop = self.stop.clone();
        runtime.spawn(async move {
            let stopped = stop.notified();
            tokio::select! {
                () = tokio::time::sleep_until(at.into()) => {}
                () = stopped => return,
            }
            let Some(state) = target.upgrade() else { return };
            if state.engine.shut_down.load(Ordering::SeqCst) || state.flight().generation != generation {
                return;
            }
            if state.used.load(Ordering::Relaxed) {
                state.refresh_in_background();
            } else {
                tracing::debug!(
                    target: CLIENT_LOG_TARGET,
                    client_id = %state.engine.client_id,
                    target = %state.target,
                    "token not used since it was issued: not refreshed"
                );
            }
        });
    }
}

/// Marks a request task: when it ends, `in_flight` is cleared (if still its own), and a
/// task that ended without finishing is reported.
struct InFlight<'a> {
    state: &'a TargetState,
    request: u64,
    finished: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut flight = self.state.flight();
        if flight.request == self.request {
            flight.in_flight = None;
            self.state.fetching.store(false, Ordering::Relaxed);
        }
        drop(flight);
        if !self.finished {
            tracing::error!(
                target: CLIENT_LOG_TARGET,
                client_id = %self.state.engine.client_id,
                target = %self.state.target,
                "a token request ended before finishing (it panicked, or its runtime shut down); the next call asks again"
            );
        }
    }
}

/// Configures a [`TokenSource`]: the client, its authentication and where the token
/// endpoint is. Everything else has a default.
#[must_use]
pub struct TokenSourceBuilder {
    client_id: String,
    auth: Option<ClientAuth>,
    issuer: Option<String>,
    metadata: Metadata,
    token_endpoint: Option<String>,
    http_client: Option<reqwest::Client>,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    shared_metadata: Option<crate::Validator>,
    timeout: Duration,
    max_response_bytes: usize,
    settings: Settings,
    allow_insecure_http: bool,
}

impl fmt::Debug for TokenSourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSourceBuilder")
            .field("client_id", &self.client_id)
            .field("client_auth", &self.auth)
            .field("issuer", &self.issuer)
            .field("token_endpoint", &self.token_endpoint)
            .finish_non_exhaustive()
    }
}

impl TokenSourceBuilder {
    fn new(client_id: String) -> Self {
        TokenSourceBuilder {
            client_id,
            auth: None,
            issuer: None,
            metadata: Metadata::default(),
            token_endpoint: None,
            http_client: None,
            extra_roots: Vec::new(),
            shared_metadata: None,
            timeout: Duration::from_secs(10),
            max_response_bytes: 64 * 1024,
            settings: Settings {
                max_token_bytes: 16 * 1024,
                default_lifetime: Duration::from_secs(60),
                min_lifetime: Duration::from_secs(10),
                backoff_initial: Duration::from_secs(1),
                backoff_max: Duration::from_secs(60),
                rejection_cooldown: Duration::from_secs(30),
            },
            allow_insecure_http: false,
        }
    }

    /// How the client authenticates (required).
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// The authorization server's issuer identifier. Without [`token_endpoint`], the
    /// token endpoint is read from its metadata (OpenID discovery unless
    /// [`metadata`](Self::metadata) says otherwise), whose `issuer` must be this one;
    /// `private_key_jwt` assertions name it as their audience.
    ///
    /// [`token_endpoint`]: Self::token_endpoint
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Which metadata document names the token endpoint (default: OpenID discovery).
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Read the issuer's metadata document through `validator`'s key source for the same
    /// issuer (configured by discovery): one fetch serves both sides, and a failure on
    /// either makes both read it again. The validator must have that issuer.
    pub fn share_metadata_with(mut self, validator: &crate::Validator) -> Self {
        self.shared_metadata = Some(validator.clone());
        self
    }

    /// The token endpoint URL, given directly (no metadata is read).
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// Send requests with this client instead of the default one (which has timeouts,
    /// no redirects, and this build's TLS). With `tls_client_auth`, the client must carry
    /// the identity itself.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Trust these CA certificates (PEM) for the token endpoint, besides the platform's.
    pub fn extra_root_certificates(mut self, pem: &[u8]) -> Result<Self, ConfigError> {
        self.extra_roots.extend(crate::crypto::pem_certificates(pem, "root certificates")?);
        Ok(self)
    }

    /// Bound on each request, connection included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Lifetime assumed when a response has no `expires_in` and the token is not a JWT
    /// with `exp` (default 60 s).
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.default_lifetime = lifetime;
        self
    }

    /// The shortest lifetime refreshes are planned for (default 10 s): no request starts
    /// sooner than three quarters of it after the last success. A token that lives less
    /// is used until it expires, then callers fail until that point.
    pub fn min_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.min_lifetime = lifetime;
        self
    }

    /// Backoff after a failed request: the first step and the ceiling (defaults 1 s and
    /// 60 s). A configuration error waits the ceiling at once.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.settings.backoff_initial = initial;
        self.settings.backoff_max = max;
        self
    }

    /// How often a downstream's `invalid_token` may drop a target's token (default 30 s).
    pub fn rejection_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.rejection_cooldown = cooldown;
        self
    }

    /// The largest access token accepted (default 16 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.settings.max_token_bytes = bytes;
        self
    }

    /// Allow plain-http endpoints on hosts other than loopback (default: refused).
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// Checks the configuration and builds the source. Nothing is fetched yet.
    pub fn build(self) -> Result<TokenSource, ConfigError> {
        let setting = |name: &'static str, reason: &'static str| ConfigError::InvalidSetting { name, reason };
        if self.client_id.is_empty() {
            return Err(setting("client_id", "must not be empty"));
        }
        let auth = self.auth.ok_or(setting("client_auth", "a client authentication method is required"))?;
        let s = &self.settings;
        if self.timeout.is_zero() {
            return Err(setting("timeout", "must be positive"));
        }
        if s.default_lifetime.is_zero() || s.min_lifetime.is_zero() {
            return Err(setting("default_lifetime/min_lifetime", "must be positive"));
        }
        if s.backoff_initial.is_zero() || s.backoff_max < s.backoff_initial {
            return Err(setting("backoff", "initial must be positive and at most max"));
        }
        if s.max_token_bytes == 0 || s.max_token_bytes > self.max_response_bytes {
            return Err(setting("max_token_bytes", "must be positive and below the response limit (64 KiB)"));
        }
        let parse = |what: &'static str, url: &str| -> Result<Url, ConfigError> {
            let parsed = Url::parse(url).map_err(|e| ConfigError::InvalidUrl { what, reason: e.to_string() })?;
            require_https(&parsed, self.allow_insecure_http)
                .map_err(|reason| ConfigError::InvalidUrl { what, reason })?;
            Ok(parsed)
        };
        let origin = match (&self.token_endpoint, &self.issuer) {
            (Some(url), issuer) => Origin::Given(Arc::new(Resolved {
                token_endpoint: parse("token endpoint", url)?,
                issuer: issuer.clone(),
            })),
            (None, Some(issuer)) => {
                let issuer_url = parse("issuer", issuer)?;
                let url = self.metadata.url(&issuer_url);
                let shared = match &self.shared_metadata {
                    None => None,
                    Some(validator) => Some(
                        validator
                            .metadata_for(issuer)
                            .filter(|shared| *shared.url() == url)
                            .ok_or(setting(
                                "share_metadata_with",
                                "the validator has no issuer with this identifier whose keys come by the same discovery document",
                            ))?,
                    ),
                };
                Origin::Discovered(shared.unwrap_or_else(|| IssuerMetadata::new(url, issuer.as_str())))
            }
            (None, None) => return Err(setting("issuer/token_endpoint", "one of them is required")),
        };
        if auth.needs_issuer() && self.issuer.is_none() {
            return Err(setting(
                "issuer",
                "private_key_jwt names the issuer as the assertion's audience: configure it, or use AssertionAudience::TokenEndpoint",
            ));
        }
        let client = match self.http_client {
            Some(client) => client,
            None => default_client(self.timeout, self.extra_roots, &auth)?,
        };
        let fetcher = Fetcher {
            client: Some(client),
            timeout: self.timeout,
            max_body: self.max_response_bytes,
            allow_http: self.allow_insecure_http,
        };
        let mtls = auth.tls_identity().is_some();
        let engine = Arc::new(Engine {
            client_id: self.client_id,
            auth,
            endpoint: Endpoint::new(origin, mtls),
            fetcher,
            settings: self.settings,
            shut_down: AtomicBool::new(false),
            shutdown: Notify::new(),
            next_target: AtomicU64::new(1),
            token_requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        });
        Ok(TokenSource { inner: Arc::new(SourceInner { engine, targets: Mutex::new(HashMap::new()) }) })
    }
}

/// Timeouts, no redirects (a token request carries credentials and must not be bounced
/// elsewhere), this build's TLS with the client certificate for `tls_client_auth`, and no
/// idle connections (requests are minutes apart, and a pooled connection belongs to the
/// runtime that opened it).
fn default_client(
    timeout: Duration,
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    auth: &ClientAuth,
) -> Result<reqwest::Client, ConfigError> {
    let identity = auth.tls_identity().map(|id| (id.chain.clone(), id.key.clone_key()));
    let tls = crate::crypto::tls_client_config_with(extra_roots, identity)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .user_agent(concat!("auth-core/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::HttpClient(e.to_string()))
}
