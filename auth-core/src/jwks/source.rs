//! One issuer's key source at run time: an immutable snapshot swapped atomically, and
//! the refresh rules around it.
//!
//! - The hot path loads the snapshot (no lock, no I/O) and looks the key up.
//! - A snapshot past its refresh time triggers one background refresh; requests go on
//!   with the keys they have.
//! - An unknown `kid` triggers a refresh that every concurrent caller shares (single
//!   flight); at most one starts per cooldown, counted from the last attempt whether it
//!   failed or not. Inside the cooldown an unknown kid fails at once and schedules one
//!   fetch for the end of the cooldown, so that a key the issuer started signing with
//!   right after our last fetch is served from the first request after the cooldown.
//! - A kid is remembered as unknown (refused without a fetch) only after a successful
//!   fetch that started after the kid was first seen did not contain it, and for one
//!   cooldown at most: a kid refused inside the cooldown, or while the issuer is down,
//!   was never proven absent.
//! - When the issuer fails, the last good keys serve until `max_stale` past their
//!   expiry; then lookups fail closed with `KeysUnavailable` until a fetch succeeds.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use reqwest::Url;

use super::jwk::parse_jwks;
use super::keyset::{KeyId, KeySet, LookupError, VerifyingKey};
use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::config::Settings;
use crate::discovery::IssuerMetadata;
use crate::fetch::{FetchError, Fetched, Fetcher};
use crate::metrics::{Metrics, SourceEvent};
use crate::readiness::IssuerReadiness;
use crate::rejection::{AuthError, TokenError};

/// How many kids proven unknown are remembered (each for one cooldown at most, and
/// forgotten as soon as a different key set arrives).
const NEGATIVE_CACHE_CAPACITY: u64 = 1024;

/// Where the keys come from.
pub(crate) enum Origin {
    Static,
    JwksUrl(Url),
    Discovery(Arc<IssuerMetadata>),
}

/// The keys in service, with the times that govern them. `None` times: never (static).
pub(crate) struct Snapshot {
    keys: Arc<KeySet>,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    stale_until: Option<Instant>,
    etag: Option<String>,
}

/// What a finished refresh tells the requests that waited on it.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// When the fetch started: a kid first seen before then, and absent from the keys it
    /// installed, is proven unknown.
    started: Instant,
    /// Whether the issuer answered with a key set (new, or confirmed by a 304).
    succeeded: bool,
}

type RefreshFuture = Shared<BoxFuture<'static, Outcome>>;

#[derive(Default)]
struct RefreshState {
    in_flight: Option<RefreshFuture>,
    last_attempt: Option<Instant>,
    /// A fetch is scheduled for the end of the cooldown.
    refresh_scheduled: bool,
    /// Numbers refreshes, so that a finished one clears only its own `in_flight`.
    generation: u64,
}

pub(crate) struct KeySource {
    /// The configured issuer, and its place in the validator's list (for metrics).
    issuer: Arc<str>,
    index: usize,
    /// With discovery, the document's exact `issuer`, which tokens must carry.
    discovered_issuer: ArcSwapOption<String>,
    origin: Origin,
    allowed: AlgorithmSet,
    snapshot: ArcSwapOption<Snapshot>,
    refresh: Mutex<RefreshState>,
    unknown_kids: moka::sync::Cache<Box<str>, ()>,
    settings: Arc<Settings>,
    fetcher: Fetcher,
    metrics: Arc<Metrics>,
    /// Told which keys left the set (the validator drops their cached tokens).
    on_removed: Option<OnKeysRemoved>,
}

/// What a key source calls with the keys a newly installed set no longer has.
pub(crate) type OnKeysRemoved = Box<dyn Fn(&[KeyId]) + Send + Sync>;

impl KeySource {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        issuer: Arc<str>,
        index: usize,
        origin: Origin,
        allowed: AlgorithmSet,
        static_keys: Option<KeySet>,
        settings: Arc<Settings>,
        fetcher: Fetcher,
        metrics: Arc<Metrics>,
        on_removed: Option<OnKeysRemoved>,
    ) -> Self {
        let snapshot = static_keys.map(|keys| {
            Arc::new(Snapshot {
                keys: Arc::new(keys),
                refresh_at: None,
                expires_at: None,
                stale_until: None,
                etag: None,
            })
        });
        KeySource {
            issuer,
            index,
            discovered_issuer: ArcSwapOption::empty(),
            origin,
            allowed,
            snapshot: ArcSwapOption::new(snapshot),
            refresh: Mutex::new(RefreshState::default()),
            unknown_kids: moka::sync::Cache::builder()
                .max_capacity(NEGATIVE_CACHE_CAPACITY)
                .time_to_live(settings.unknown_kid_cooldown.max(Duration::from_millis(1)))
                .build(),
            settings,
            fetcher,
            metrics,
            on_removed,
        }
    }

    /// The key a token names, fetching the key set when it is unknown or unusable.
    pub(crate) async fn key(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        let seen = Instant::now();
        // The snapshot guard is a cheap, lock-free read; it must not live across an await.
        let found = self.with_usable(|keys| keys.find(kid, alg).cloned());
        let outcome = match found {
            Some(Ok(key)) => return Ok(key),
            Some(Err(LookupError::NotFound)) => {
                if matches!(self.origin, Origin::Static) || kid.is_some_and(|kid| self.unknown_kids.contains_key(kid)) {
                    return Err(TokenError::UnknownKey.into());
                }
                match self.begin_refresh(false) {
                    Some(refresh) => refresh.await,
                    None => {
                        // Inside the cooldown. Nothing proved the kid absent: refuse it now,
                        // do not remember it, and look again when the cooldown ends.
                        self.refresh_when_cooldown_ends();
                        return Err(TokenError::UnknownKey.into());
                    }
                }
            }
            Some(Err(other)) => return Err(lookup_error(other)),
            None => match self.begin_refresh(false) {
                Some(refresh) => refresh.await,
                None => {
                    self.refresh_when_cooldown_ends();
                    return Err(self.unavailable());
                }
            },
        };
        match self.with_usable(|keys| keys.find(kid, alg).cloned()) {
            None => Err(self.unavailable()),
            Some(Ok(key)) => Ok(key),
            Some(Err(LookupError::NotFound)) => {
                if outcome.succeeded && outcome.started >= seen {
                    self.remember_unknown(kid);
                }
                Err(TokenError::UnknownKey.into())
            }
            Some(Err(other)) => Err(lookup_error(other)),
        }
    }

    /// Whether a token's `iss` is this issuer's identifier: the configured one, or with
    /// discovery the document's exact value (`None` until discovery has succeeded).
    pub(crate) fn issuer_matches(&self, iss: &str) -> Option<bool> {
        match self.origin {
            Origin::Discovery(_) => self.discovered_issuer.load().as_deref().map(|pinned| pinned == iss),
            Origin::Static | Origin::JwksUrl(_) => Some(*self.issuer == *iss),
        }
    }

    /// For a cache hit: whether `key` is still in service, unchanged.
    pub(crate) fn still_trusts(self: &Arc<Self>, kid: Option<&str>, key: KeyId) -> bool {
        self.with_usable(|keys| keys.contains_id(kid, key)).unwrap_or(false)
    }

    /// Whether keys are in service now.
    pub(crate) fn is_ready(&self) -> bool {
        let now = Instant::now();
        self.snapshot.load().as_ref().is_some_and(|s| s.stale_until.is_none_or(|until| now < until))
    }

    /// The state of the keys, fetching them first when none are in service (respecting
    /// the cooldown: inside it, a fetch is scheduled for its end instead).
    pub(crate) async fn readiness(self: &Arc<Self>) -> IssuerReadiness {
        if !self.is_ready() {
            match self.begin_refresh(false) {
                Some(refresh) => drop(refresh.await),
                None => self.refresh_when_cooldown_ends(),
            }
        }
        let now = Instant::now();
        let snapshot = self.snapshot.load();
        let usable = self.is_ready();
        IssuerReadiness {
            issuer: self.issuer.to_string(),
            loaded: snapshot.is_some(),
            usable,
            keys: snapshot.as_ref().filter(|_| usable).map_or(0, |s| s.keys.len()),
            expires_in: snapshot.as_ref().and_then(|s| s.expires_at).map(|at| at.saturating_duration_since(now)),
        }
    }

    /// Fetches now, ignoring the cooldown (joining a fetch already in flight).
    pub(crate) async fn refresh_now(self: &Arc<Self>) -> Result<(), AuthError> {
        if let Some(refresh) = self.begin_refresh(true)
            && !refresh.await.succeeded
        {
            return Err(self.unavailable());
        }
        if self.is_ready() { Ok(()) } else { Err(self.unavailable()) }
    }

    /// Runs `f` on the keys if they may still be used (`None` otherwise), and schedules a
    /// background refresh when they are due.
    fn with_usable<T>(self: &Arc<Self>, f: impl FnOnce(&KeySet) -> T) -> Option<T> {
        let guard = self.snapshot.load();
        let snapshot = guard.as_ref()?;
        if snapshot.refresh_at.is_some() {
            let now = Instant::now();
            if snapshot.stale_until.is_some_and(|until| now >= until) {
                return None;
            }
            if snapshot.refresh_at.is_some_and(|at| now >= at) {
                // Background: the result is picked up by later requests.
                drop(self.begin_refresh(false));
            }
            if snapshot.expires_at.is_some_and(|at| now >= at) {
                self.metrics.source(SourceEvent::StaleServed, self.index);
            }
        }
        Some(f(&snapshot.keys))
    }

    fn state(&self) -> MutexGuard<'_, RefreshState> {
        // The lock is never held across an await or a panic-prone call; recover anyway.
        self.refresh.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins the refresh in flight, or starts one unless the cooldown forbids it.
    fn begin_refresh(self: &Arc<Self>, force: bool) -> Option<RefreshFuture> {
        if matches!(self.origin, Origin::Static) {
            return None;
        }
        let mut state = self.state();
        if let Some(in_flight) = &state.in_flight {
            // A finished future is not a fetch in flight, whatever left it there.
            if in_flight.peek().is_none() {
                return Some(in_flight.clone());
            }
            state.in_flight = None;
        }
        let now = Instant::now();
        if !force
            && state.last_attempt.is_some_and(|last| now.duration_since(last) < self.settings.unknown_kid_cooldown)
        {
            return None;
        }
        // Fetching needs a tokio runtime (reqwest does too); outside one, fail closed
        // (keys unavailable) instead of panicking in `tokio::spawn`.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!(issuer = %self.issuer, "cannot fetch keys: not running inside a tokio runtime");
            return None;
        };
        state.last_attempt = Some(now);
        state.generation += 1;
        let generation = state.generation;
        // The fetch runs as its own task so that a caller giving up (a dropped request)
        // does not cancel it for everybody else waiting on it. The guard clears
        // `in_flight` however the task ends: finished, panicked, or dropped with its
        // runtime (a validator shared across runtimes), so the next request fetches anew.
        let this = self.clone();
        let task = runtime.spawn(async move {
            let mut guard = InFlight { source: &this, generation, finished: false };
            let succeeded = this.fetch_and_install().await;
            guard.finished = true;
            drop(guard);
            Outcome { started: now, succeeded }
        });
        let shared = async move { task.await.unwrap_or(Outcome { started: now, succeeded: false }) }.boxed().shared();
        state.in_flight = Some(shared.clone());
        Some(shared)
    }

    /// Schedules one fetch for the moment the cooldown ends (unless one is scheduled or in
    /// flight already). The task holds the source weakly: it never keeps a dropped
    /// validator alive, and its flag is cleared however the task ends.
    fn refresh_when_cooldown_ends(self: &Arc<Self>) {
        let (at, runtime) = {
            let mut state = self.state();
            if state.refresh_scheduled || state.in_flight.is_some() {
                return;
            }
            let Some(last) = state.last_attempt else { return };
            let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
            state.refresh_scheduled = true;
            (last.checked_add(self.settings.unknown_kid_cooldown).unwrap_or(last), runtime)
        };
        let source = Arc::downgrade(self);
        runtime.spawn(async move {
            let flag = ScheduledFlag(source.clone());
            tokio::time::sleep_until(at.into()).await;
            drop(flag);
            if let Some(refresh) = source.upgrade().and_then(|source| source.begin_refresh(false)) {
                refresh.await;
            }
        });
    }

    fn unavailable(&self) -> AuthError {
        let retry_after = self
            .state()
            .last_attempt
            .map(|last| self.settings.unknown_kid_cooldown.saturating_sub(last.elapsed()).max(Duration::from_secs(1)));
        AuthError::KeysUnavailable { retry_after }
    }

    fn remember_unknown(&self, kid: Option<&str>) {
        if let Some(kid) = kid.filter(|_| !self.settings.unknown_kid_cooldown.is_zero()) {
            self.unknown_kids.insert(kid.into(), ());
        }
    }

    /// Whether the issuer answered with a key set.
    async fn fetch_and_install(&self) -> bool {
        let Err(err) = self.try_fetch_and_install().await else { return true };
        self.metrics.source(SourceEvent::RefreshFailure, self.index);
        let stale = self.snapshot.load().is_some();
        tracing::warn!(issuer = %self.issuer, error = %err, serving_last_good_keys = stale, "JWKS refresh failed");
        false
    }

    async fn try_fetch_and_install(&self) -> Result<(), String> {
        let url = self.jwks_url().await?;
        let current = self.snapshot.load_full();
        let etag = current.as_ref().and_then(|s| s.etag.as_deref());
        self.metrics.source(SourceEvent::JwksFetch, self.index);
        let fetched = self.fetcher.get(&url, etag).await;
        if matches!(fetched, Err(FetchError::Status(404 | 410)))
            && let Origin::Discovery(metadata) = &self.origin
        {
            // The discovered jwks_uri may have moved: discover again next time.
            metadata.forget();
        }
        match fetched.map_err(|e| format!("JWKS fetch: {e}"))? {
            Fetched::NotModified { max_age } => {
                let Some(current) = current else { return Err("304 without a cached JWKS".into()) };
                self.metrics.source(SourceEvent::JwksNotModified, self.index);
                self.install(current.keys.clone(), current.etag.clone(), max_age, &current.keys);
                Ok(())
            }
            Fetched::Document { body, etag, max_age } => {
                let mut keys =
                    parse_jwks(&body, self.allowed, self.settings.max_jwks_keys).map_err(|e| e.to_string())?;
                let old = current.map(|s| s.keys.clone()).unwrap_or_default();
                keys.keep_unchanged(&old);
                self.install(Arc::new(keys), etag, max_age, &old);
                Ok(())
            }
        }
    }

    fn install(&self, keys: Arc<KeySet>, etag: Option<String>, max_age: Option<Duration>, old: &Arc<KeySet>) {
        let s = &self.settings;
        let ttl = max_age.unwrap_or(s.default_refresh).clamp(s.min_refresh, s.max_refresh);
        // Refresh ahead of expiry, at 75–90% of the lifetime, jittered so that a fleet
        // started together does not fetch together.
        let ahead = ttl.mul_f64(0.75 + fastrand::f64() * 0.15);
        let now = Instant::now();
        // A document that republishes the same keys (a 200 without ETag support, keys
        // reordered) is not a new key set: nothing to log, count or forget.
        let changed = !Arc::ptr_eq(&keys, old) && !keys.same_keys_as(old);
        let keys = if changed { keys } else { old.clone() };
        let removed: Vec<KeyId> =
            if changed { old.keys().filter(|k| !keys.contains(k)).map(|k| k.id).collect() } else { Vec::new() };
        let count = keys.len();
        self.snapshot.store(Some(Arc::new(Snapshot {
            keys,
            refresh_at: now.checked_add(ahead),
            expires_at: now.checked_add(ttl),
            stale_until: now.checked_add(ttl).and_then(|t| t.checked_add(s.max_stale)),
            etag,
        })));
        if changed {
            self.metrics.source(SourceEvent::KeySetInstalled, self.index);
            self.unknown_kids.invalidate_all();
            tracing::info!(issuer = %self.issuer, keys = count, removed = removed.len(), ttl_secs = ttl.as_secs(), "JWKS installed");
            if let Some(on_removed) = &self.on_removed {
                on_removed(&removed);
            }
        }
    }

    async fn jwks_url(&self) -> Result<Url, String> {
        let metadata = match &self.origin {
            Origin::Static => return Err("static key set".into()),
            Origin::JwksUrl(url) => return Ok(url.clone()),
            Origin::Discovery(metadata) => metadata,
        };
        if !metadata.is_cached() {
            // Counted as an attempt, whether it succeeds or not.
            self.metrics.source(SourceEvent::DiscoveryFetch, self.index);
        }
        let (url, issuer) = metadata
            .jwks_uri(&self.fetcher, self.settings.allow_insecure_http)
            .await
            .map_err(|e| format!("discovery: {e}"))?;
        if self.discovered_issuer.load().as_deref() != Some(&issuer) {
            self.discovered_issuer.store(Some(Arc::new(issuer)));
        }
        Ok(url)
    }

    /// The metadata this source discovers its keys from, if it does.
    pub(crate) fn metadata(&self) -> Option<&Arc<IssuerMetadata>> {
        match &self.origin {
            Origin::Discovery(metadata) => Some(metadata),
            Origin::Static | Origin::JwksUrl(_) => None,
        }
    }
}

/// Marks a refresh task: when it ends, `in_flight` is cleared (if still its own), and a
/// task that ended without finishing is reported.
struct InFlight<'a> {
    source: &'a KeySource,
    generation: u64,
    finished: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.source.state();
        if state.generation == self.generation {
            state.in_flight = None;
        }
        drop(state);
        if !self.finished {
            tracing::error!(
                issuer = %self.source.issuer,
                "a JWKS refresh ended before finishing (it panicked, or its runtime shut down); the next request fetches again"
            );
        }
    }
}

/// Clears [`RefreshState::refresh_scheduled`] when the scheduled task ends, whether it
/// ran, was cancelled with its runtime, or panicked.
struct ScheduledFlag(std::sync::Weak<KeySource>);

impl Drop for ScheduledFlag {
    fn drop(&mut self) {
        if let Some(source) = self.0.upgrade() {
            source.state().refresh_scheduled = false;
        }
    }
}

fn lookup_error(err: LookupError) -> AuthError {
    match err {
        LookupError::NotFound => TokenError::UnknownKey.into(),
        LookupError::Ambiguous => TokenError::AmbiguousKey.into(),
        LookupError::AlgorithmMismatch => TokenError::KeyAlgorithmMismatch.into(),
    }
}
