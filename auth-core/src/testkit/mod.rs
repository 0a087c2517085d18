//! An in-process OpenID issuer for tests (feature `test-util`): real keys, a real HTTP
//! server on a loopback port serving discovery and JWKS, token minting with any header
//! and claims, key rotation, simulated outages, and fetch counters.
//!
//! ```
//! use auth_core::testkit::TestIssuer;
//! use auth_core::Validator;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let idp = TestIssuer::start().await?;
//! let validator = Validator::builder().issuer(idp.discovery_issuer()).build()?;
//! let token = idp.token().scope("orders:read").sign();
//! let principal = validator.validate(&token).await?;
//! assert!(principal.scopes().contains("orders:read"));
//! # Ok(()) }
//! ```

// Test support: a failure to generate or sign with a fresh key is a broken machine,
// and panicking there is the clearest report a test can give.
#![allow(clippy::expect_used)]

mod key;
mod pki;
mod server;
mod token_endpoint;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

pub use key::TestKey;
pub use pki::{IssuedCertificate, PkiError, TestCa, thumbprint};
pub use token_endpoint::{ExpiresIn, SeenTokenRequest, TestClient};

use crate::Issuer;
use crate::algorithm::Algorithm;
use crate::clock::unix_now;

/// The audience tokens get unless told otherwise.
pub const DEFAULT_AUDIENCE: &str = "test-api";
/// The `sub` and `client_id` tokens get unless told otherwise.
pub const DEFAULT_CLIENT: &str = "test-client";

/// The per-request work done on this thread since the last call (feature `work-counts`):
/// what the seam promises to do once per request.
#[cfg(feature = "work-counts")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WorkCounts {
    /// Credentials read from a request's headers and query.
    pub header_parses: u32,
    /// Verified-token cache lookups.
    pub cache_lookups: u32,
    /// Tokens split into their segments.
    pub token_splits: u32,
    /// Tokens hashed for the cache.
    pub token_hashes: u32,
}

/// Takes this thread's [`WorkCounts`] (and starts them again from zero).
#[cfg(feature = "work-counts")]
pub fn take_work_counts() -> WorkCounts {
    let [header_parses, cache_lookups, token_splits, token_hashes] = crate::work::take();
    WorkCounts { header_parses, cache_lookups, token_splits, token_hashes }
}

/// How the issuer misbehaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outage {
    /// Connections are refused (the listener is closed) and open ones are dropped.
    Refuse,
    /// Every request is answered with this status and an empty JSON object.
    Status(u16),
    /// `200 application/json` with a body that is not JSON.
    Garbage,
    /// Answers normally, after this delay.
    Slow(Duration),
    /// Sends the headers and the first bytes of the body, then never finishes.
    Stall,
}

/// A running in-process issuer. Dropping it stops the server.
pub struct TestIssuer {
    shared: Arc<Shared>,
    server: server::Server,
    ca: Option<Arc<TestCa>>,
}

pub(crate) struct Shared {
    pub(crate) issuer: String,
    pub(crate) state: Mutex<State>,
    pub(crate) jwks_hits: AtomicUsize,
    pub(crate) discovery_hits: AtomicUsize,
    pub(crate) token_hits: AtomicUsize,
    /// Served over https (discovery then names the mutual-TLS alias).
    pub(crate) tls: bool,
}

pub(crate) struct State {
    keys: HashMap<String, Arc<TestKey>>,
    published: Vec<String>,
    signing: String,
    pub(crate) outage: Option<Outage>,
    pub(crate) cache_control: Option<String>,
    pub(crate) etag: bool,
    pub(crate) jwks_override: Option<(String, Vec<u8>)>,
    pub(crate) discovery_issuer: Option<String>,
    /// Members that replace the discovery document's (`null` removes one).
    pub(crate) discovery_members: Option<Value>,
    pub(crate) jwks_redirect: Option<String>,
    pub(crate) tokens: token_endpoint::TokenEndpointState,
    pub(crate) token_outage: Option<Outage>,
}

impl State {
    pub(crate) fn jwks(&self) -> Value {
        let keys: Vec<Value> =
            self.published.iter().filter_map(|kid| self.keys.get(kid)).map(|key| key.public_jwk()).collect();
        json!({ "keys": keys })
    }
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl TestIssuer {
    /// Starts an issuer on `127.0.0.1` with one RS256 key, `rs256-1`.
    pub async fn start() -> std::io::Result<TestIssuer> {
        Self::with_keys(vec![TestKey::generate(Algorithm::RS256, "rs256-1")]).await
    }

    /// Starts an issuer publishing `keys`; the last one signs by default.
    pub async fn with_keys(keys: Vec<TestKey>) -> std::io::Result<TestIssuer> {
        Self::listen(keys, None).await
    }

    /// Starts an issuer on `https://127.0.0.1:PORT` with one RS256 key, its certificate
    /// from [`TestIssuer::ca`] (trust it with [`TestIssuer::ca_pem`]). Connections may
    /// present a client certificate from that CA: the token endpoint's alias for mutual
    /// TLS (`mtls_endpoint_aliases.token_endpoint`, `{issuer}/mtls/token`, in discovery)
    /// serves `tls_client_auth` clients and certificate-bound tokens.
    pub async fn start_tls() -> std::io::Result<TestIssuer> {
        let ca = TestCa::new("auth test CA").map_err(std::io::Error::other)?;
        let server = ca.server_certificate().map_err(std::io::Error::other)?;
        let config = server::tls_config(&ca, &server).map_err(std::io::Error::other)?;
        let mut idp = Self::listen(vec![TestKey::generate(Algorithm::RS256, "rs256-1")], Some(config)).await?;
        idp.ca = Some(Arc::new(ca));
        Ok(idp)
    }

    async fn listen(keys: Vec<TestKey>, tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<TestIssuer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let issuer = format!("{}://{addr}", if tls.is_some() { "https" } else { "http" });
        let mut map = HashMap::new();
        let mut published = Vec::new();
        for key in keys {
            published.push(key.kid().to_owned());
            map.insert(key.kid().to_owned(), Arc::new(key));
        }
        let signing = published.last().cloned().unwrap_or_default();
        let shared = Arc::new(Shared {
            issuer,
            state: Mutex::new(State {
                keys: map,
                published,
                signing,
                outage: None,
                cache_control: None,
                etag: false,
                jwks_override: None,
                discovery_issuer: None,
                discovery_members: None,
                jwks_redirect: None,
                tokens: token_endpoint::TokenEndpointState::default(),
                token_outage: None,
            }),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
            tls: tls.is_some(),
        });
        let server = server::Server::start(listener, shared.clone(), tls);
        Ok(TestIssuer { shared, server, ca: None })
    }

    /// The CA of an https issuer ([`TestIssuer::start_tls`]): it issues the client
    /// certificates the issuer accepts.
    pub fn ca(&self) -> Option<&TestCa> {
        self.ca.as_deref()
    }

    /// The PEM of the https issuer's CA (empty for a plain-http issuer).
    pub fn ca_pem(&self) -> &str {
        self.ca.as_deref().map_or("", TestCa::cert_pem)
    }

    /// `{issuer}/mtls/token`: the token endpoint's mutual-TLS alias (https issuers).
    pub fn mtls_token_endpoint(&self) -> String {
        format!("{}/mtls/token", self.shared.issuer)
    }

    /// The issuer identifier, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// `{issuer}/jwks`.
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared.issuer)
    }

    /// An [`Issuer`] configured by discovery, accepting [`DEFAULT_AUDIENCE`].
    pub fn discovery_issuer(&self) -> Issuer {
        Issuer::discovery(self.issuer()).audience(DEFAULT_AUDIENCE)
    }

    /// An [`Issuer`] configured with the JWKS URL, accepting [`DEFAULT_AUDIENCE`].
    pub fn jwks_issuer(&self) -> Issuer {
        Issuer::jwks_url(self.issuer(), self.jwks_url()).audience(DEFAULT_AUDIENCE)
    }

    /// Publishes a key (it can sign too).
    pub fn add_key(&self, key: TestKey) {
        let mut state = self.shared.state();
        let kid = key.kid().to_owned();
        state.published.retain(|k| *k != kid);
        state.published.push(kid.clone());
        state.keys.insert(kid, Arc::new(key));
    }

    /// Publishes `key` and makes it the default signing key; old keys stay published.
    pub fn rotate(&self, key: TestKey) {
        let kid = key.kid().to_owned();
        self.add_key(key);
        self.shared.state().signing = kid;
    }

    /// Removes a key from the JWKS. It can still sign, to test that its tokens fail.
    pub fn unpublish(&self, kid: &str) {
        self.shared.state().published.retain(|k| k != kid);
    }

    /// The published JWKS document.
    pub fn jwks(&self) -> Value {
        self.shared.state().jwks()
    }

    /// A key by kid (published or not).
    pub fn key(&self, kid: &str) -> Option<Arc<TestKey>> {
        self.shared.state().keys.get(kid).cloned()
    }

    /// Starts a token signed by the default key, with claims `iss`, `sub`, `client_id`,
    /// `aud` ([`DEFAULT_AUDIENCE`]), `iat`, `exp` (in 5 minutes) and `jti`, and header
    /// `alg`, `kid`, `typ: at+jwt`.
    pub fn token(&self) -> TokenBuilder {
        let key = {
            let state = self.shared.state();
            state.keys.get(&state.signing).cloned()
        };
        TokenBuilder::new(self.issuer(), key)
    }

    /// Misbehave (or, with `None`, recover).
    pub async fn set_outage(&self, outage: Option<Outage>) -> std::io::Result<()> {
        let refuse = outage == Some(Outage::Refuse);
        self.shared.state().outage = outage;
        if refuse { self.server.stop() } else { self.server.resume().await }
    }

    /// The `Cache-Control` header of JWKS responses (default: none, like oidc-provider).
    pub fn set_cache_control(&self, value: Option<&str>) {
        self.shared.state().cache_control = value.map(str::to_owned);
    }

    /// Send an `ETag` and answer `If-None-Match` with 304 (default: off).
    pub fn set_etag(&self, on: bool) {
        self.shared.state().etag = on;
    }

    /// Serve this body and content type at the JWKS URL instead of the keys.
    pub fn set_jwks_body(&self, body: Option<(&str, Vec<u8>)>) {
        self.shared.state().jwks_override = body.map(|(ct, b)| (ct.to_owned(), b));
    }

    /// Answer the JWKS URL with `302 Found` to `location` (or, with `None`, serve the keys).
    pub fn set_jwks_redirect(&self, location: Option<&str>) {
        self.shared.state().jwks_redirect = location.map(str::to_owned);
    }

    /// Make discovery claim another `issuer` (an impersonation attempt).
    pub fn set_discovery_issuer(&self, issuer: Option<&str>) {
        self.shared.state().discovery_issuer = issuer.map(str::to_owned);
    }

    /// Replace members of the discovery document (a `null` member removes it), for
    /// tests of a broken document; `None` restores it.
    ///
    /// ```no_run
    /// # async fn f(idp: auth_core::testkit::TestIssuer) {
    /// idp.set_discovery_members(Some(serde_json::json!({ "jwks_uri": null })));
    /// # }
    /// ```
    pub fn set_discovery_members(&self, members: Option<Value>) {
        self.shared.state().discovery_members = members;
    }

    /// JWKS requests received so far.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_hits.load(Ordering::SeqCst)
    }

    /// Discovery requests received so far.
    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_hits.load(Ordering::SeqCst)
    }

    /// `{issuer}/token`: the client-credentials grant for the clients registered with
    /// [`TestIssuer::register_client`].
    pub fn token_endpoint(&self) -> String {
        format!("{}/token", self.shared.issuer)
    }

    /// Registers a client of the token endpoint (replacing one with the same id).
    pub fn register_client(&self, client: TestClient) {
        let mut state = self.shared.state();
        state.tokens.clients.retain(|c| c.id != client.id);
        state.tokens.clients.push(client);
    }

    /// The lifetime of the tokens the endpoint issues (default 300 s).
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.state().tokens.lifetime = lifetime;
    }

    /// How the endpoint writes `expires_in` (default: a number).
    pub fn set_expires_in(&self, style: ExpiresIn) {
        self.shared.state().tokens.expires_in = style;
    }

    /// Answer every token request with this status and JSON body instead (or, with
    /// `None`, grant normally). Requests are still recorded and counted.
    pub fn set_token_answer(&self, answer: Option<(u16, Value)>) {
        self.shared.state().tokens.answer = answer;
    }

    /// Misbehave at the token endpoint only (or, with `None`, recover). `Refuse` drops
    /// each token request's connection without an answer.
    pub fn set_token_outage(&self, outage: Option<Outage>) {
        self.shared.state().token_outage = outage;
    }

    /// Token requests received so far (counted on arrival, whatever the answer).
    pub fn token_requests(&self) -> usize {
        self.shared.token_hits.load(Ordering::SeqCst)
    }

    /// The token requests answered so far, oldest first.
    pub fn seen_token_requests(&self) -> Vec<SeenTokenRequest> {
        self.shared.state().tokens.seen.clone()
    }
}

impl std::fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIssuer").field("issuer", &self.shared.issuer).finish_non_exhaustive()
    }
}

/// Builds and signs a token; see [`TestIssuer::token`].
#[must_use]
pub struct TokenBuilder {
    key: Option<Arc<TestKey>>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl std::fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The header and claims are test data, safe to show; the key is not shown.
        f.debug_struct("TokenBuilder")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder {
    fn new(issuer: &str, key: Option<Arc<TestKey>>) -> Self {
        let now = unix_now();
        let mut header = Map::new();
        if let Some(key) = &key {
            header.insert("alg".into(), key.algorithm().as_str().into());
            header.insert("kid".into(), key.kid().into());
        }
        header.insert("typ".into(), "at+jwt".into());
        let claims = json!({
            "iss": issuer,
            "sub": DEFAULT_CLIENT,
            "client_id": DEFAULT_CLIENT,
            "aud": DEFAULT_AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "jti": format!("{:016x}", fastrand::u64(..)),
        });
        let Value::Object(claims) = claims else { unreachable!("a json! object literal") };
        TokenBuilder { key, header, claims }
    }

    /// Sign with this key instead (sets `alg` and `kid` from it).
    pub fn key(mut self, key: Arc<TestKey>) -> Self {
        self.header.insert("alg".into(), key.algorithm().as_str().into());
        self.header.insert("kid".into(), key.kid().into());
        self.key = Some(key);
        self
    }

    /// Set a header member.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.into(), value.into());
        self
    }

    /// Remove a header member.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Set a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Remove a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// `aud`.
    pub fn audience(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// `scope` (space-delimited).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// `exp` = now + `secs` (negative: already expired).
    pub fn expires_in(self, secs: i64) -> Self {
        self.claim("exp", unix_now() + secs)
    }

    /// The header and claims as JSON text, signed with the key (or an empty signature
    /// when there is no key).
    pub fn sign(self) -> String {
        let header = Value::Object(self.header).to_string();
        let claims = Value::Object(self.claims).to_string();
        sign_raw(self.key.as_deref(), &header, &claims)
    }
}

/// `base64url(header).base64url(claims).base64url(signature)` over exactly these JSON
/// texts, for tokens no serializer would write (duplicate members, odd spacing).
pub fn sign_raw(key: Option<&TestKey>, header_json: &str, claims_json: &str) -> String {
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header_json), URL_SAFE_NO_PAD.encode(claims_json));
    let signature = key.map(|k| k.sign(input.as_bytes())).unwrap_or_default();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
