//! Token exchange (RFC 8693): a token for the next service on behalf of the caller,
//! cached per (subject token digest, target) until the earlier of both expiries.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use super::endpoint::{self, Grant};
use super::error::TokenSourceError;
use super::source::{CLIENT_LOG_TARGET, Engine, TargetToken};
use super::target::TokenTarget;
use super::token::AccessToken;
use crate::InboundToken;
use crate::clock::unix_now;

/// How many exchanged tokens are kept (one per caller token and target).
pub const DEFAULT_EXCHANGE_CACHE: u64 = 10_000;

/// Exchanges callers' tokens for tokens addressed to another service, with the caller as
/// the subject and (optionally) the service's own token as the actor: the downstream sees
/// who the caller is (`sub`) and who acts for it (`act`). The caller's token itself is
/// never forwarded. Clones share the cache.
///
/// ```no_run
/// use auth_core::client::{ClientAuth, TokenSource, TokenTarget};
///
/// # async fn run(caller: auth_core::InboundToken) -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenSource::builder("orders-service")
///     .issuer("https://idp.example.com")
///     .client_auth(ClientAuth::client_secret_basic("s3cret"))
///     .build()?;
/// let own = tokens.target(TokenTarget::resource("https://idp.example.com/actor"))?;
/// let exchange = tokens.exchange(Some(own));
/// let billing = TokenTarget::resource("https://billing.internal").scope("invoices:read");
/// let token = exchange.token_for(&caller, &billing).await?;
/// # drop(token);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TokenExchange {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<Engine>,
    actor: Option<TargetToken>,
    cache: moka::sync::Cache<Key, Cached>,
    /// A failed exchange is answered from here until the backoff's first step has passed,
    /// so that calls for one caller cannot turn into a stream of requests.
    failed: moka::sync::Cache<Key, TokenSourceError>,
    /// Exchanged tokens a downstream refused lately: at most one drop per key per cooldown.
    rejected: moka::sync::Cache<Key, ()>,
    flights: Mutex<HashMap<Key, SharedExchange>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    /// SHA-256 of the subject token: the cache never holds callers' tokens.
    subject: [u8; 32],
    target: TokenTarget,
}

impl Key {
    fn new(subject: &InboundToken, target: &TokenTarget) -> Key {
        Key { subject: crate::crypto::sha256(subject.secret().as_bytes()), target: target.clone() }
    }
}

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    usable_until: Instant,
}

type SharedExchange = Shared<BoxFuture<'static, Result<Cached, TokenSourceError>>>;

impl TokenExchange {
    pub(super) fn new(engine: Arc<Engine>, actor: Option<TargetToken>) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(DEFAULT_EXCHANGE_CACHE)
            // An upper bound; each entry is also checked against its own expiry.
            .time_to_live(Duration::from_secs(3600))
            .build();
        let failed = moka::sync::Cache::builder()
            .max_capacity(DEFAULT_EXCHANGE_CACHE)
            .time_to_live(engine.settings.backoff_initial)
            .build();
        let rejected = moka::sync::Cache::builder()
            .max_capacity(DEFAULT_EXCHANGE_CACHE)
            .time_to_live(engine.settings.rejection_cooldown.max(Duration::from_millis(1)))
            .build();
        let flights = Mutex::new(HashMap::new());
        TokenExchange { inner: Arc::new(Inner { engine, actor, cache, failed, rejected, flights }) }
    }

    /// A token for `target` on behalf of `subject` (the caller's verified token): cached
    /// until the earlier of its own expiry and the caller's, one request per (caller token,
    /// target) at a time.
    pub async fn token_for(
        &self,
        subject: &InboundToken,
        target: &TokenTarget,
    ) -> Result<AccessToken, TokenSourceError> {
        let key = Key::new(subject, target);
        if let Some(cached) = self.inner.cache.get(&key).filter(|c| Instant::now() < c.usable_until) {
            return Ok(cached.token);
        }
        if let Some(err) = self.inner.failed.get(&key) {
            return Err(err);
        }
        let flight = self.begin(key, subject)?;
        flight.await.map(|cached| cached.token)
    }

    fn flights(&self) -> std::sync::MutexGuard<'_, HashMap<Key, SharedExchange>> {
        self.inner.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn begin(&self, key: Key, subject: &InboundToken) -> Result<SharedExchange, TokenSourceError> {
        let mut flights = self.flights();
        if let Some(flight) = flights.get(&key).filter(|f| f.peek().is_none()) {
            return Ok(flight.clone());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(TokenSourceError::Unavailable {
                cause: "not running inside a tokio runtime".into(),
                retry_after: None,
            });
        };
        // As its own task: a caller that gives up does not cancel it for the others; the
        // guard removes the flight however the task ends.
        let this = self.clone();
        let (task_key, subject) = (key.clone(), subject.clone());
        let task = runtime.spawn(async move {
            let _guard = FlightGuard { exchange: &this, key: &task_key };
            let result = this.request(&task_key, &subject).await;
            match &result {
                Ok(cached) => this.inner.cache.insert(task_key.clone(), cached.clone()),
                Err(err) => {
                    let retry = err.clone().with_retry_after(this.inner.engine.settings.backoff_initial);
                    this.inner.failed.insert(task_key.clone(), retry);
                }
            }
            result
        });
        let shared = async move {
            task.await.unwrap_or_else(|_| {
                Err(TokenSourceError::Unavailable {
                    cause: "the token exchange ended before finishing".into(),
                    retry_after: None,
                })
            })
        }
        .boxed()
        .shared();
        flights.insert(key, shared.clone());
        Ok(shared)
    }

    async fn request(&self, key: &Key, subject: &InboundToken) -> Result<Cached, TokenSourceError> {
        let engine = &self.inner.engine;
        let actor = match &self.inner.actor {
            Some(actor) => Some(actor.token().await?),
            None => None,
        };
        engine.token_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resolved = engine.endpoint.resolve(&engine.fetcher).await.inspect_err(|_| {
            engine.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })?;
        let grant = Grant::TokenExchange { subject: subject.secret(), actor: actor.as_ref().map(AccessToken::secret) };
        let answer = endpoint::request_token(
            &engine.fetcher,
            &resolved,
            &engine.client_id,
            &engine.auth,
            &grant,
            &key.target,
            engine.settings.max_token_bytes,
            engine.settings.default_lifetime,
        )
        .await
        .inspect_err(|err| {
            engine.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                target: CLIENT_LOG_TARGET,
                client_id = %engine.client_id,
                target = %key.target,
                error = %err,
                "token exchange failed"
            );
        })?;
        let lifetime = answer.issued.lifetime;
        let expires_at = answer.arrived + lifetime;
        // Never past the caller's own token: the downstream must not outlive it.
        let subject_left =
            Duration::from_secs(u64::try_from(subject.expires_at().saturating_sub(unix_now())).unwrap_or(0));
        let usable_until =
            (expires_at - (lifetime / 10).min(Duration::from_secs(5))).min(answer.arrived + subject_left);
        let token = AccessToken::new(&answer.issued.access_token, expires_at, answer.issued.scope)
            .ok_or_else(|| TokenSourceError::InvalidResponse("the token does not fit a header".into()))?;
        Ok(Cached { token, usable_until })
    }

    /// The downstream answered `401 invalid_token` to a call on behalf of `subject` that
    /// carried `sent`: drops that exchanged token if it is still the cached one, at most
    /// once per (caller token, target) per cooldown. Returns whether it was dropped.
    pub fn reject(&self, subject: &InboundToken, target: &TokenTarget, sent: &http::HeaderValue) -> bool {
        let key = Key::new(subject, target);
        let Some(cached) = self.inner.cache.get(&key) else { return false };
        if cached.token.header_value().as_bytes() != sent.as_bytes() || self.inner.rejected.contains_key(&key) {
            return false;
        }
        self.inner.rejected.insert(key.clone(), ());
        self.inner.cache.invalidate(&key);
        tracing::info!(
            target: CLIENT_LOG_TARGET,
            client_id = %self.inner.engine.client_id,
            target = %key.target,
            "the downstream refused an exchanged token as invalid; it is dropped"
        );
        true
    }

    /// Exchanged tokens held now.
    pub fn cached(&self) -> u64 {
        self.inner.cache.run_pending_tasks();
        self.inner.cache.entry_count()
    }
}

struct FlightGuard<'a> {
    exchange: &'a TokenExchange,
    key: &'a Key,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.exchange.flights().remove(self.key);
    }
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("client_id", &self.inner.engine.client_id)
            .field("actor", &self.inner.actor.as_ref().map(TargetToken::target))
            .finish_non_exhaustive()
    }
}
