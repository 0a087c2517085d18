//! Harness for the interop suite: runs a real, third-party OpenID provider
//! ([panva/oidc-provider](https://github.com/panva/node-oidc-provider), pinned in
//! `interop/package-lock.json`) under Node.js on loopback, and talks to it over real HTTP.
//!
//! [`Provider::start`] installs the pinned npm packages when needed (`npm ci`), starts
//! `interop/provider.mjs` on a free port, and waits until it listens. A [`Provider`] then
//! mints client-credentials tokens at the provider's token endpoint ([`Provider::token`]),
//! rotates and drops signing keys on the running provider ([`Provider::rotate`],
//! [`Provider::drop_key`]), and can be stopped and restarted on the same port with the same
//! keys ([`Provider::stop`], [`Provider::restart`]). The node process is killed when the
//! `Provider` is dropped (also on panic), and exits by itself if this process dies (it
//! watches its stdin).
//!
//! [`Provider::start_with`] adds the launcher's optional modes ([`ProviderOptions`]): a
//! `private_key_jwt` client (`pkjwt-client`) whose public keys come from a
//! [`ClientJwtKey`], and https with client certificates (RFC 8705 `mtls-client`,
//! `mtls-bound-client`) from a [`TestCa`]: the calling side's test material, made here with
//! `rcgen`. [`Provider::token_over_mtls`] asks for a token over a connection that presents
//! a client certificate: `mtls-bound-client`'s tokens are then bound to it (RFC 8705 §3).
//!
//! Node.js and npm are required. When they are missing, or `npm ci` fails, starting fails
//! with the reason; [`start_or_skip`] turns that into a panic unless the developer opted
//! out with `AUTH_SKIP_INTEROP=1` (CI never sets it).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;

/// The environment variable that lets a developer without Node.js skip the suite locally.
pub const SKIP_ENV: &str = "AUTH_SKIP_INTEROP";

/// Lowest Node.js version the launcher and oidc-provider 9 need (`URL.parse`, `crypto.hash`).
pub const MIN_NODE: (u32, u32) = (20, 19);

// Generous: the suites start providers from many tests at once on a 2-core machine, and
// each generates keys at start-up (one run here took over 20 s under that load).
/// How long one node process may take to print its ready line (about 0.5 s normally).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Node processes tried before a start is reported as failed: a clean-clone CI run once saw
/// a single process never print its ready line while every other start took under a second.
const STARTUP_ATTEMPTS: u32 = 3;
const NPM_CI_TIMEOUT: Duration = Duration::from_secs(300);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A client registered at the provider (client_credentials grant, `client_secret_basic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCredentials {
    /// `client_id`.
    pub id: &'static str,
    /// `client_secret`.
    pub secret: &'static str,
}

/// Allowed scopes `orders:read orders:write`; access tokens live 300 s.
pub const ORDERS_CLIENT: ClientCredentials = ClientCredentials { id: "orders-client", secret: "orders-client-secret" };
/// Allowed scope `orders:read` only.
pub const READER_CLIENT: ClientCredentials = ClientCredentials { id: "reader-client", secret: "reader-client-secret" };
/// Like [`ORDERS_CLIENT`], but its access tokens live [`SHORT_TTL_SECS`].
pub const SHORT_LIVED_CLIENT: ClientCredentials =
    ClientCredentials { id: "short-lived-client", secret: "short-lived-client-secret" };
/// Allowed scope `billing:read`, for the `billing-api`.
pub const BILLING_CLIENT: ClientCredentials =
    ClientCredentials { id: "billing-client", secret: "billing-client-secret" };

/// Registered only with [`ProviderOptions::https`]: `client_secret_basic`, allowed scope
/// `orders:read`, its tokens bound to the client certificate of the connection (`cnf`).
pub const MTLS_BOUND_CLIENT: ClientCredentials =
    ClientCredentials { id: "mtls-bound-client", secret: "mtls-bound-client-secret" };

/// Registered only with [`ProviderOptions::client_jwks`]: `private_key_jwt` with the given
/// public keys, allowed scopes `billing:read orders:read`.
pub const PKJWT_CLIENT_ID: &str = "pkjwt-client";

/// Registered only with [`ProviderOptions::https`]: `tls_client_auth`, subject DN exactly
/// `CN=mtls-client`, allowed scopes `billing:read orders:read`.
pub const MTLS_CLIENT_ID: &str = "mtls-client";

/// Lifetime of [`SHORT_LIVED_CLIENT`]'s access tokens.
pub const SHORT_TTL_SECS: u64 = 2;

/// A resource server known to the provider (RFC 8707 resource indicator and audience).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `urn:interop:orders-api`, audience `orders-api`, scopes `orders:read orders:write`.
    Orders,
    /// `urn:interop:billing-api`, audience `billing-api`, scope `billing:read`.
    Billing,
}

impl Api {
    /// The resource indicator sent as `resource` in the token request.
    pub fn resource(self) -> &'static str {
        match self {
            Api::Orders => "urn:interop:orders-api",
            Api::Billing => "urn:interop:billing-api",
        }
    }

    /// The `aud` the provider puts in tokens for this API.
    pub fn audience(self) -> &'static str {
        match self {
            Api::Orders => "orders-api",
            Api::Billing => "billing-api",
        }
    }
}

/// The signing algorithms the provider has keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SigningAlg {
    /// RSA 2048, PKCS#1 v1.5, SHA-256.
    RS256,
    /// ECDSA P-256, SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// All of them.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    /// The same algorithm as `auth-core` names it.
    pub fn to_core(self) -> auth_core::Algorithm {
        match self {
            SigningAlg::RS256 => auth_core::Algorithm::RS256,
            SigningAlg::ES256 => auth_core::Algorithm::ES256,
            SigningAlg::EdDSA => auth_core::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client-credentials token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Who asks.
    pub client: ClientCredentials,
    /// For which API (`resource`).
    pub api: Api,
    /// Space-separated scopes; `None` sends no `scope` parameter.
    pub scope: Option<String>,
    /// Signing algorithm (sent as the launcher's `x-interop-alg` header).
    pub alg: SigningAlg,
}

impl TokenRequest {
    /// `client` asks for `api` with `scope`, RS256.
    pub fn new(client: ClientCredentials, api: Api, scope: &str) -> Self {
        TokenRequest { client, api, scope: Some(scope.to_owned()), alg: SigningAlg::RS256 }
    }

    /// The signing algorithm.
    #[must_use]
    pub fn alg(mut self, alg: SigningAlg) -> Self {
        self.alg = alg;
        self
    }
}

/// A token endpoint response.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The JWT.
    pub access_token: String,
    /// `expires_in`, seconds.
    pub expires_in: u64,
    /// The granted `scope`, if the response names one.
    pub scope: Option<String>,
    /// `token_type` (`Bearer`).
    pub token_type: String,
}

impl Minted {
    /// The decoded (unverified) JOSE header and claims.
    pub fn decoded(&self) -> (Value, Value) {
        decode_unverified(&self.access_token)
    }
}

/// The provider's signing keys, as its admin API reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysState {
    /// The `kid` each algorithm currently signs with.
    pub active: BTreeMap<String, String>,
    /// Every published `kid`, newest first.
    pub kids: Vec<String>,
}

impl KeysState {
    /// The `kid` that signs `alg` tokens now.
    pub fn active(&self, alg: SigningAlg) -> Option<&str> {
        self.active.get(alg.as_str()).map(String::as_str)
    }
}

/// Why the harness could not do what was asked.
#[derive(Debug)]
pub enum HarnessError {
    /// Node.js or npm is missing or too old, or `npm ci` failed: the suite cannot run.
    Unavailable(String),
    /// The provider process failed to start or died.
    Process(String),
    /// An HTTP exchange with the provider failed.
    Http(String),
    /// Keys or certificates could not be made or written.
    Pki(String),
    /// The token endpoint refused the request (an OAuth error response).
    TokenRefused {
        /// HTTP status.
        status: u16,
        /// The response body (`{"error": ..., "error_description": ...}`).
        body: String,
    },
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Unavailable(reason) => write!(f, "the interop suite cannot run: {reason}"),
            HarnessError::Process(reason) => write!(f, "oidc-provider process: {reason}"),
            HarnessError::Http(reason) => write!(f, "HTTP to oidc-provider: {reason}"),
            HarnessError::Pki(reason) => write!(f, "test keys and certificates: {reason}"),
            HarnessError::TokenRefused { status, body } => write!(f, "token endpoint said {status}: {body}"),
        }
    }
}

impl std::error::Error for HarnessError {}

/// Whether the developer opted out of the suite (`AUTH_SKIP_INTEROP=1`).
pub fn skip_requested() -> bool {
    std::env::var(SKIP_ENV).is_ok_and(|v| v == "1")
}

/// Starts a provider; when that is impossible, panics with the reason, or (only with
/// `AUTH_SKIP_INTEROP=1`) prints loudly that the suite was skipped and returns `None`.
pub fn start_or_skip(test: &str) -> Option<Provider> {
    start_or_skip_with(test, ProviderOptions::default())
}

/// [`start_or_skip`] with the launcher's optional modes.
pub fn start_or_skip_with(test: &str, options: ProviderOptions) -> Option<Provider> {
    match Provider::start_with(options) {
        Ok(provider) => Some(provider),
        Err(err @ HarnessError::Unavailable(_)) if skip_requested() => {
            // Straight to the process's stderr, past the test harness's output capture.
            let banner = "!".repeat(78);
            let _ = writeln!(
                std::io::stderr(),
                "{banner}\n!! INTEROP SKIPPED ({test}): {SKIP_ENV}=1 is set and {err}\n{banner}"
            );
            None
        }
        Err(err) => panic!(
            "{err}\n(the interop suite needs Node.js >= {}.{} and npm; a developer without them may set \
             {SKIP_ENV}=1 to skip it locally; CI never does)",
            MIN_NODE.0, MIN_NODE.1
        ),
    }
}

/// The folder holding `package.json`, `package-lock.json` and `provider.mjs`.
pub fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// A running (or stopped) oidc-provider on `127.0.0.1`.
pub struct Provider {
    dir: PathBuf,
    state_dir: PathBuf,
    /// The launcher's optional arguments (`--client-jwks`, `--tls-*`), kept for restarts.
    extra_args: Vec<String>,
    /// In https mode: the CA that made the server certificate (and anchors client certificates).
    ca_pem: Option<String>,
    port: u16,
    admin_port: u16,
    issuer: String,
    version: String,
    child: Option<(Child, ChildStdin)>,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.issuer)
            .field("admin_port", &self.admin_port)
            .field("version", &self.version)
            .field("running", &self.child.is_some())
            .field("https", &self.ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Installs the pinned packages if needed, starts the provider on a free port, and
    /// waits until it listens. Blocks (typically for well under a second once installed).
    pub fn start() -> Result<Provider, HarnessError> {
        Self::start_with(ProviderOptions::default())
    }

    /// [`start`](Self::start) with the launcher's optional modes: the files they need are
    /// written to the provider's state folder.
    pub fn start_with(options: ProviderOptions) -> Result<Provider, HarnessError> {
        let dir = node_dir();
        ensure_installed(&dir)?;
        let state_dir = unique_temp_dir()?;
        let write = |name: &str, contents: &str| -> Result<String, HarnessError> {
            let path = state_dir.join(name);
            std::fs::write(&path, contents)
                .map_err(|e| HarnessError::Pki(format!("cannot write {}: {e}", path.display())))?;
            Ok(path.to_string_lossy().into_owned())
        };
        let mut extra_args = Vec::new();
        if let Some(jwks) = &options.client_jwks {
            extra_args.extend(["--client-jwks".to_owned(), write("client-jwks.json", &jwks.to_string())?]);
        }
        let mut http = reqwest::Client::builder().no_proxy().timeout(HTTP_TIMEOUT);
        let ca_pem = match &options.tls {
            Some(tls) => {
                extra_args.extend([
                    "--tls-cert".to_owned(),
                    write("tls-cert.pem", &tls.server.cert_pem)?,
                    "--tls-key".to_owned(),
                    write("tls-key.pem", &tls.server.key_pem)?,
                    "--tls-ca".to_owned(),
                    write("tls-ca.pem", &tls.ca_pem)?,
                ]);
                let root = reqwest::Certificate::from_pem(tls.ca_pem.as_bytes())
                    .map_err(|e| HarnessError::Pki(format!("CA certificate: {e}")))?;
                http = http.add_root_certificate(root);
                Some(tls.ca_pem.clone())
            }
            None => None,
        };
        let http = http.build().map_err(|e| HarnessError::Http(e.to_string()))?;
        let mut provider = Provider {
            dir,
            state_dir,
            extra_args,
            ca_pem,
            port: 0,
            admin_port: 0,
            issuer: String::new(),
            version: String::new(),
            child: None,
            log: Arc::default(),
            http,
        };
        provider.spawn(0)?;
        Ok(provider)
    }

    /// The issuer identifier, `http://127.0.0.1:PORT` (no trailing slash), or
    /// `https://localhost:PORT` in https mode.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// In https mode, the CA certificate (PEM) that the server certificate chains to.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// An HTTP client that trusts the provider (its CA in https mode), for a validator
    /// (`ValidatorBuilder::http_client`). No client certificate.
    pub fn http_client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// A validator for `api`'s audience configured with the issuer URL (OIDC discovery),
    /// trusting the provider's CA in https mode: the receiving side of a suite.
    pub fn validator(&self, api: Api) -> Result<auth_core::Validator, auth_core::ConfigError> {
        auth_core::Validator::builder()
            .issuer(auth_core::Issuer::discovery(self.issuer()).audience(api.audience()))
            .http_client(self.http_client())
            .build()
    }

    /// The port of the OpenID endpoints; stable across [`restart`](Self::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The oidc-provider version that runs (from its installed `package.json`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the node process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some((child, _)) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// What the provider printed on stderr so far (its notices and errors).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Kills the provider (SIGKILL: an abrupt outage). Its keys stay in the state file.
    pub fn stop(&mut self) {
        if let Some((mut child, stdin)) = self.child.take() {
            drop(stdin);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the provider again on the same port, with the same keys (including any
    /// rotated since the first start).
    pub fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        let port = self.port;
        // The port was just released; another process could grab it, so retry briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn(port) {
                Ok(()) => return Ok(()),
                Err(err) if Instant::now() < deadline && self.log().iter().any(|l| l.contains("EADDRINUSE")) => {
                    let _ = err;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Asks the token endpoint for a client-credentials access token.
    pub async fn token(&self, request: &TokenRequest) -> Result<Minted, HarnessError> {
        self.token_at(&self.http, &format!("{}/token", self.issuer), request).await
    }

    /// https mode: asks the mutual-TLS token endpoint (discovery's
    /// `mtls_endpoint_aliases.token_endpoint`, RFC 8705 §5) for a client-credentials token
    /// over a connection presenting `certificate` (with its key) as the client
    /// certificate; the client still authenticates as `request.client` says
    /// (`client_secret_basic`). For [`MTLS_BOUND_CLIENT`] the token is bound to that
    /// certificate: `cnf["x5t#S256"]` is its thumbprint.
    pub async fn token_over_mtls(
        &self,
        request: &TokenRequest,
        certificate: &IssuedCertificate,
    ) -> Result<Minted, HarnessError> {
        let ca_pem =
            self.ca_pem.as_deref().ok_or_else(|| HarnessError::Http("the provider is not in https mode".into()))?;
        let discovery = self.get_json(&format!("{}/.well-known/openid-configuration", self.issuer)).await?;
        let endpoint = discovery["mtls_endpoint_aliases"]["token_endpoint"]
            .as_str()
            .ok_or_else(|| {
                HarnessError::Http(format!("discovery has no mtls_endpoint_aliases.token_endpoint: {discovery}"))
            })?
            .to_owned();
        let root = reqwest::Certificate::from_pem(ca_pem.as_bytes())
            .map_err(|e| HarnessError::Pki(format!("CA certificate: {e}")))?;
        let identity =
            reqwest::Identity::from_pem(format!("{}\n{}", certificate.cert_pem, certificate.key_pem).as_bytes())
                .map_err(|e| HarnessError::Pki(format!("client certificate: {e}")))?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(HTTP_TIMEOUT)
            .tls_certs_only([root])
            .identity(identity)
            .build()
            .map_err(|e| HarnessError::Http(e.to_string()))?;
        self.token_at(&client, &endpoint, request).await
    }

    async fn token_at(
        &self,
        http: &reqwest::Client,
        url: &str,
        request: &TokenRequest,
    ) -> Result<Minted, HarnessError> {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials");
        form.append_pair("resource", request.api.resource());
        if let Some(scope) = &request.scope {
            form.append_pair("scope", scope);
        }
        let response = http
            .post(url)
            .basic_auth(request.client.id, Some(request.client.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-interop-alg", request.alg.as_str())
            .body(form.finish())
            .send()
            .await
            .map_err(|e| HarnessError::Http(format!("token request: {e}")))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| HarnessError::Http(format!("token response: {e}")))?;
        if status != 200 {
            return Err(HarnessError::TokenRefused { status, body });
        }
        let json: Value =
            serde_json::from_str(&body).map_err(|e| HarnessError::Http(format!("token response is not JSON: {e}")))?;
        let access_token = json["access_token"]
            .as_str()
            .ok_or_else(|| HarnessError::Http(format!("no access_token in {body}")))?
            .to_owned();
        Ok(Minted {
            access_token,
            expires_in: json["expires_in"].as_u64().unwrap_or(0),
            scope: json["scope"].as_str().map(str::to_owned),
            token_type: json["token_type"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Mints a token and returns only the JWT.
    pub async fn access_token(&self, request: &TokenRequest) -> Result<String, HarnessError> {
        Ok(self.token(request).await?.access_token)
    }

    /// The current signing keys.
    pub async fn keys(&self) -> Result<KeysState, HarnessError> {
        let json = self.admin(reqwest::Method::GET, "/keys").await?;
        Ok(keys_state(&json))
    }

    /// Publishes a new key for `alg` that signs every later `alg` token; returns its `kid`.
    /// The older keys stay published until [`drop_key`](Self::drop_key).
    pub async fn rotate(&self, alg: SigningAlg) -> Result<String, HarnessError> {
        let json = self.admin(reqwest::Method::POST, &format!("/rotate?alg={alg}")).await?;
        json["kid"].as_str().map(str::to_owned).ok_or_else(|| HarnessError::Http(format!("rotate: {json}")))
    }

    /// Removes a key from the provider's JWKS (and from signing).
    pub async fn drop_key(&self, kid: &str) -> Result<KeysState, HarnessError> {
        let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("kid", kid).finish();
        let json = self.admin(reqwest::Method::POST, &format!("/drop?{query}")).await?;
        Ok(keys_state(&json))
    }

    /// The `kid`s the provider's public JWKS endpoint serves now (via discovery's `jwks_uri`).
    pub async fn published_kids(&self) -> Result<Vec<String>, HarnessError> {
        let discovery = self.get_json(&format!("{}/.well-known/openid-configuration", self.issuer)).await?;
        let jwks_uri =
            discovery["jwks_uri"].as_str().ok_or_else(|| HarnessError::Http("discovery has no jwks_uri".into()))?;
        let jwks = self.get_json(jwks_uri).await?;
        Ok(jwks["keys"]
            .as_array()
            .map(|keys| keys.iter().filter_map(|k| k["kid"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    async fn get_json(&self, url: &str) -> Result<Value, HarnessError> {
        let response = self.http.get(url).send().await.map_err(|e| HarnessError::Http(format!("GET {url}: {e}")))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| HarnessError::Http(format!("GET {url}: {e}")))?;
        if !status.is_success() {
            return Err(HarnessError::Http(format!("GET {url}: {status}: {body}")));
        }
        serde_json::from_str(&body).map_err(|e| HarnessError::Http(format!("GET {url}: not JSON: {e}")))
    }

    async fn admin(&self, method: reqwest::Method, path_and_query: &str) -> Result<Value, HarnessError> {
        let url = format!("http://127.0.0.1:{}{path_and_query}", self.admin_port);
        let response = self
            .http
            .request(method, &url)
            .send()
            .await
            .map_err(|e| HarnessError::Http(format!("admin {path_and_query}: {e}")))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| HarnessError::Http(format!("admin {path_and_query}: {e}")))?;
        if !status.is_success() {
            return Err(HarnessError::Http(format!("admin {path_and_query}: {status}: {body}")));
        }
        serde_json::from_str(&body).map_err(|e| HarnessError::Http(format!("admin {path_and_query}: {e}")))
    }

    /// Starts the node process, trying a fresh one when a start hangs (see
    /// [`STARTUP_ATTEMPTS`]); a process that exits is not retried.
    fn spawn(&mut self, port: u16) -> Result<(), HarnessError> {
        let mut failures = Vec::new();
        for attempt in 1..=STARTUP_ATTEMPTS {
            match self.spawn_once(port) {
                Ok(()) => {
                    if !failures.is_empty() {
                        eprintln!("interop: oidc-provider started on attempt {attempt}; before: {failures:?}");
                    }
                    return Ok(());
                }
                Err(Start::Hung(reason)) => {
                    eprintln!("interop: oidc-provider start attempt {attempt} hung: {reason}");
                    failures.push(reason);
                }
                Err(Start::Failed(err)) => return Err(err),
            }
        }
        Err(HarnessError::Process(format!(
            "{STARTUP_ATTEMPTS} node processes in a row printed no ready line within {STARTUP_TIMEOUT:?}:\n{}",
            failures.join("\n")
        )))
    }

    fn spawn_once(&mut self, port: u16) -> Result<(), Start> {
        let state_file = self.state_dir.join("keys.json");
        let mut child = Command::new("node")
            .arg("provider.mjs")
            .arg("--port")
            .arg(port.to_string())
            .arg("--admin-port")
            .arg("0")
            .arg("--state")
            .arg(&state_file)
            .args(&self.extra_args)
            .current_dir(&self.dir)
            .env("NODE_ENV", "test")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Start::Failed(HarnessError::Unavailable(format!("cannot run `node`: {e}"))))?;
        let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Start::Failed(HarnessError::Process("no pipes to the node process".into())));
        };
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[oidc-provider] {line}");
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            if let Some(first) = lines.next() {
                let _ = ready_tx.send(first);
            }
            for line in lines {
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        });
        let ready = match ready_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                let state = process_state(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(Start::Hung(format!(
                    "no ready line within {STARTUP_TIMEOUT:?} ({state}); stderr:\n{}",
                    self.log().join("\n")
                )));
            }
            Err(RecvTimeoutError::Disconnected) => {
                // stdout closed without a line: the process exited (or is exiting).
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                // Give the stderr reader a moment to collect the reason.
                std::thread::sleep(Duration::from_millis(100));
                return Err(Start::Failed(HarnessError::Process(format!(
                    "exited before it was ready ({status}); stderr:\n{}",
                    self.log().join("\n")
                ))));
            }
        };
        let json: Value = serde_json::from_str(&ready).unwrap_or(Value::Null);
        let (Some(true), Some(issuer), Some(actual_port), Some(admin_port)) = (
            json["ready"].as_bool(),
            json["issuer"].as_str(),
            json["port"].as_u64().and_then(|p| u16::try_from(p).ok()),
            json["admin_port"].as_u64().and_then(|p| u16::try_from(p).ok()),
        ) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Start::Failed(HarnessError::Process(format!("unexpected first line on stdout: {ready}"))));
        };
        if port != 0 && actual_port != port {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Start::Failed(HarnessError::Process(format!("asked for port {port}, got {actual_port}"))));
        }
        self.port = actual_port;
        self.admin_port = admin_port;
        self.issuer = issuer.to_owned();
        self.version = json["oidc_provider_version"].as_str().unwrap_or_default().to_owned();
        self.child = Some((child, stdin));
        Ok(())
    }
}

/// Why one node process did not start.
enum Start {
    /// It printed nothing within [`STARTUP_TIMEOUT`] and was killed: worth another process.
    Hung(String),
    /// It exited or said something unexpected: another process would do the same.
    Failed(HarnessError),
}

/// The scheduler state of a process and its threads (`R`, `S`, `D`, ...) and where the
/// main thread sleeps, from `/proc`, so that a hung start says what it was doing.
fn process_state(pid: u32) -> String {
    let field = |path: String| std::fs::read_to_string(path).unwrap_or_default();
    let state_of = |stat: String| {
        // `pid (comm) S ...`: the state follows the last `)`.
        stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next().map(str::to_owned))
    };
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|task| state_of(field(format!("{}/stat", task.path().display()))))
                .collect()
        })
        .unwrap_or_default();
    format!(
        "pid {pid}, main thread waiting in {:?}, thread states {}",
        field(format!("/proc/{pid}/wchan")),
        threads.join("")
    )
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Decodes a JWT's header and claims without verifying anything (for logs and assertions).
pub fn decode_unverified(token: &str) -> (Value, Value) {
    let (header, claims) = decode_unverified_raw(token);
    let parse = |s: &str| serde_json::from_str(s).unwrap_or(Value::Null);
    (parse(&header), parse(&claims))
}

/// A JWT's header and claims JSON exactly as the issuer wrote them (member order kept).
pub fn decode_unverified_raw(token: &str) -> (String, String) {
    let part = |i: usize| -> String {
        token
            .split('.')
            .nth(i)
            .and_then(|s| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    (part(0), part(1))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn keys_state(json: &Value) -> KeysState {
    let active = json["active"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let kids = json["kids"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    KeysState { active, kids }
}

fn unique_temp_dir() -> Result<PathBuf, HarnessError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "auth-interop-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::Process(format!("temp dir {}: {e}", dir.display())))?;
    Ok(dir)
}

// ---- the launcher's optional modes, and their keys and certificates ------------------

/// The launcher's optional modes, for [`Provider::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    client_jwks: Option<Value>,
    tls: Option<ServerTls>,
}

#[derive(Debug, Clone)]
struct ServerTls {
    server: IssuedCertificate,
    ca_pem: String,
}

impl ProviderOptions {
    /// Nothing but the built-in `client_secret_basic` clients, plain http.
    pub fn new() -> Self {
        ProviderOptions::default()
    }

    /// Registers `pkjwt-client` ([`PKJWT_CLIENT_ID`], `private_key_jwt`) with these public
    /// keys (`--client-jwks`).
    #[must_use]
    pub fn client_jwks(mut self, keys: &[&ClientJwtKey]) -> Self {
        self.client_jwks = Some(ClientJwtKey::jwks(keys));
        self
    }

    /// https mode (`--tls-cert/--tls-key/--tls-ca`): a server certificate for `localhost`
    /// and `127.0.0.1` made by `ca`, which is also the only trust anchor for client
    /// certificates. Registers `mtls-client` and `mtls-bound-client`.
    pub fn https(mut self, ca: &TestCa) -> Result<Self, HarnessError> {
        self.tls = Some(ServerTls {
            server: ca.server_certificate().map_err(|e| HarnessError::Pki(e.to_string()))?,
            ca_pem: ca.cert_pem().to_owned(),
        });
        Ok(self)
    }
}

/// Test certificates come from auth-core's test kit (one implementation for both suites).
pub use auth_core::testkit::{IssuedCertificate, TestCa};

fn pki(what: &str) -> impl Fn(rcgen::Error) -> HarnessError + '_ {
    move |e| HarnessError::Pki(format!("{what}: {e}"))
}

/// A `private_key_jwt` client key (ES256, P-256): the private key for auth-core's
/// `ClientKey` and the public JWK for the provider's registration.
#[derive(Clone)]
pub struct ClientJwtKey {
    kid: String,
    private_pem: String,
    public_jwk: Value,
}

impl fmt::Debug for ClientJwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientJwtKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl ClientJwtKey {
    /// A new ES256 key with this `kid`.
    pub fn generate_es256(kid: &str) -> Result<ClientJwtKey, HarnessError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(pki("client key"))?;
        // The uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = key.public_key_raw();
        if point.len() != 65 || point[0] != 4 {
            return Err(HarnessError::Pki(format!("unexpected P-256 public key ({} bytes)", point.len())));
        }
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let public_jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": b64(&point[1..33]),
            "y": b64(&point[33..]),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        });
        Ok(ClientJwtKey { kid: kid.to_owned(), private_pem: key.serialize_pem(), public_jwk })
    }

    /// The `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> auth_core::Algorithm {
        auth_core::Algorithm::ES256
    }

    /// The private key, PKCS#8 PEM.
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// The public JWK.
    pub fn public_jwk(&self) -> &Value {
        &self.public_jwk
    }

    /// A JWK Set of these keys' public halves.
    pub fn jwks(keys: &[&ClientJwtKey]) -> Value {
        serde_json::json!({ "keys": keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>() })
    }

    /// auth-core's signing key for it, with its `kid`.
    pub fn client_key(&self) -> Result<auth_core::client::ClientKey, auth_core::ConfigError> {
        Ok(auth_core::client::ClientKey::from_pem(self.algorithm(), self.private_pem.as_bytes())?.key_id(&self.kid))
    }
}

// ---- installation -------------------------------------------------------------------

/// Checks Node.js and npm, and runs `npm ci` when `node_modules` is missing or was
/// installed from another lockfile. Done once per process; every caller gets the result.
fn ensure_installed(dir: &Path) -> Result<(), HarnessError> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED.get_or_init(|| install(dir)).clone().map_err(HarnessError::Unavailable)
}

fn install(dir: &Path) -> Result<(), String> {
    let node = tool_version("node")?;
    let version = node.trim_start_matches('v');
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < MIN_NODE {
        return Err(format!(
            "Node.js {node} is too old: oidc-provider 9 and the launcher need >= {}.{}",
            MIN_NODE.0, MIN_NODE.1
        ));
    }
    let npm = tool_version("npm")?;
    let lock = std::fs::read(dir.join("package-lock.json"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("package-lock.json").display()))?;
    let manifest = std::fs::read(dir.join("package.json"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("package.json").display()))?;
    let stamp = format!("{:016x}\n", fnv1a(&[lock.as_slice(), manifest.as_slice()]));
    let stamp_file = dir.join("node_modules").join(".interop-stamp");
    let installed = dir.join("node_modules").join("oidc-provider").join("package.json").is_file();
    if installed && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        return Ok(());
    }
    eprintln!("interop: node {node}, npm {npm}: running `npm ci` in {}", dir.display());
    let mut child = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `npm ci`: {e}"))?;
    let output = collect_output(&mut child);
    let deadline = Instant::now() + NPM_CI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("`npm ci` did not finish within {NPM_CI_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("`npm ci`: {e}")),
        }
    };
    let output = output.join().unwrap_or_default();
    if !status.success() {
        let tail: Vec<&str> = output.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("`npm ci` failed ({status}):\n{}", tail.join("\n")));
    }
    std::fs::File::create(&stamp_file)
        .and_then(|mut f| f.write_all(stamp.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", stamp_file.display()))?;
    Ok(())
}

fn tool_version(tool: &str) -> Result<String, String> {
    let output = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("`{tool}` was not found or cannot run ({e}); install Node.js >= 20.19 with npm"))?;
    if !output.status.success() {
        return Err(format!("`{tool} --version` failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Reads a child's stdout and stderr to the end on threads (so that it never blocks on a
/// full pipe); the handle yields both, interleaved by stream.
fn collect_output(child: &mut Child) -> std::thread::JoinHandle<String> {
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut e) = stderr {
                let _ = std::io::Read::read_to_string(&mut e, &mut s);
            }
            s
        });
        let mut out = String::new();
        if let Some(mut o) = stdout {
            let _ = std::io::Read::read_to_string(&mut o, &mut out);
        }
        out + &err.join().unwrap_or_default()
    })
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
