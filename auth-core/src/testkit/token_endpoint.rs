//! The issuer's token endpoint: the client-credentials grant (RFC 6749 §4.4) for the
//! clients a test registers, with `client_secret_basic`, `client_secret_post` and
//! `private_key_jwt` (RFC 7523) client authentication and RFC 8707 resources.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::server::PeerCertificate;
use super::{IssuedCertificate, Shared, TestKey};
use crate::clock::unix_now;

/// RFC 8693 §2.1.
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A subject or actor token of a token exchange: one of this issuer's access tokens,
/// signed by a published key and unexpired. Its claims.
fn exchanged_token(shared: &Shared, req: &SeenTokenRequest, name: &str) -> Result<Value, (u16, Value)> {
    let invalid = |why: &str| error(400, "invalid_grant", &format!("{name}: {why}"));
    let type_name = format!("{name}_type");
    if req.param(&type_name) != Some(ACCESS_TOKEN_TYPE) {
        return Err(error(400, "invalid_request", &format!("{type_name} must be the access token type")));
    }
    let token = req.param(name).ok_or_else(|| invalid("missing"))?;
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
    let key = {
        let state = shared.state();
        header
            .kid
            .as_deref()
            .filter(|kid| state.published.iter().any(|p| p == kid))
            .and_then(|kid| state.keys.get(kid).cloned())
    }
    .ok_or_else(|| invalid("not signed by a published key"))?;
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk()).map_err(|_| invalid("key"))?;
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|_| invalid("key"))?;
    let mut validation = jsonwebtoken::Validation::new(key.algorithm().to_jsonwebtoken());
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_issuer(&[shared.issuer.as_str()]);
    crate::crypto::provider().map_err(|_| invalid("crypto"))?;
    jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|e| invalid(&e.to_string()))
}

/// RFC 7523 §2.2.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client of the test issuer's token endpoint.
///
/// ```
/// use auth_core::testkit::TestClient;
///
/// let client = TestClient::secret("orders", "orders-secret")
///     .scopes("invoices:read invoices:write")
///     .resources(["https://billing.test"]);
/// ```
#[derive(Debug, Clone)]
pub struct TestClient {
    pub(crate) id: String,
    pub(crate) auth: TestClientAuth,
    pub(crate) scopes: Vec<String>,
    pub(crate) resources: Option<Vec<String>>,
    pub(crate) bound: bool,
}

#[derive(Clone)]
pub(crate) enum TestClientAuth {
    Secret(String),
    PrivateKeyJwt(Arc<TestKey>),
    /// The leaf certificate (DER) the client presents on the connection.
    TlsClientAuth(Vec<u8>),
}

impl std::fmt::Debug for TestClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestClientAuth::Secret(_) => f.write_str("Secret"),
            TestClientAuth::PrivateKeyJwt(key) => write!(f, "PrivateKeyJwt({})", key.kid()),
            TestClientAuth::TlsClientAuth(_) => f.write_str("TlsClientAuth"),
        }
    }
}

impl TestClient {
    /// A client with a secret (accepted by `client_secret_basic` and `client_secret_post`).
    pub fn secret(id: &str, secret: &str) -> Self {
        TestClient::with(id, TestClientAuth::Secret(secret.into()))
    }

    /// A `private_key_jwt` client whose assertions `key` (its public half) verifies.
    pub fn private_key_jwt(id: &str, key: Arc<TestKey>) -> Self {
        TestClient::with(id, TestClientAuth::PrivateKeyJwt(key))
    }

    /// A `tls_client_auth` client (RFC 8705 §2.1): it presents `certificate` on the
    /// connection to an https issuer's mutual-TLS token endpoint.
    pub fn tls_client_auth(id: &str, certificate: &IssuedCertificate) -> Self {
        TestClient::with(id, TestClientAuth::TlsClientAuth(certificate.der.clone()))
    }

    fn with(id: &str, auth: TestClientAuth) -> Self {
        TestClient { id: id.into(), auth, scopes: Vec::new(), resources: None, bound: false }
    }

    /// Its tokens are bound to the client certificate of the connection they were asked
    /// on (`cnf.x5t#S256`, RFC 8705 §3); asked without one, they are refused.
    #[must_use]
    pub fn certificate_bound(mut self) -> Self {
        self.bound = true;
        self
    }

    /// The scopes it may be granted (space-separated).
    #[must_use]
    pub fn scopes(mut self, scopes: &str) -> Self {
        self.scopes = scopes.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect();
        self
    }

    /// The resources (RFC 8707) it may ask for; without this call, any.
    #[must_use]
    pub fn resources<I, S>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resources = Some(resources.into_iter().map(Into::into).collect());
        self
    }
}

/// How the token endpoint writes `expires_in`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExpiresIn {
    /// A JSON number (the default).
    #[default]
    Number,
    /// A decimal string, as some providers send it.
    String,
    /// Left out (the token's `exp` tells).
    Absent,
}

/// A token request the endpoint received, for assertions on what a client sent.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SeenTokenRequest {
    /// The form parameters, in order.
    pub params: Vec<(String, String)>,
    /// The path it was sent to (`/token`, or `/mtls/token` for the mutual-TLS alias).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Whether the connection carried a client certificate.
    pub client_certificate: bool,
    /// For `private_key_jwt`: the assertion's JOSE header and claims (decoded, whether or
    /// not they verified).
    pub assertion: Option<(Value, Value)>,
}

impl SeenTokenRequest {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of parameter `name`.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// The token endpoint's own settings and records.
#[derive(Debug)]
pub(crate) struct TokenEndpointState {
    pub(crate) clients: Vec<TestClient>,
    pub(crate) lifetime: Duration,
    pub(crate) expires_in: ExpiresIn,
    pub(crate) seen: Vec<SeenTokenRequest>,
    pub(crate) jtis: HashSet<String>,
    pub(crate) answer: Option<(u16, Value)>,
}

impl Default for TokenEndpointState {
    fn default() -> Self {
        TokenEndpointState {
            clients: Vec::new(),
            lifetime: Duration::from_secs(300),
            expires_in: ExpiresIn::Number,
            seen: Vec::new(),
            jtis: HashSet::new(),
            answer: None,
        }
    }
}

fn error(status: u16, code: &str, description: &str) -> (u16, Value) {
    (status, json!({ "error": code, "error_description": description }))
}

/// Answers one token request: (status, JSON body).
pub(crate) fn answer(
    shared: &Shared,
    path: &str,
    authorization: Option<&str>,
    body: &[u8],
    peer: PeerCertificate,
) -> (u16, Value) {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let mut seen = SeenTokenRequest {
        params,
        path: path.to_owned(),
        authorization: authorization.map(str::to_owned),
        client_certificate: peer.is_some(),
        assertion: None,
    };
    if let Some(assertion) = seen.param("client_assertion") {
        seen.assertion = decode_unverified(assertion);
    }
    let result = grant(shared, &seen, peer.as_deref().map(Vec::as_slice));
    let mut state = shared.state();
    state.tokens.seen.push(seen);
    if let Some(forced) = state.tokens.answer.clone() {
        return forced;
    }
    result.unwrap_or_else(|e| e)
}

fn grant(shared: &Shared, req: &SeenTokenRequest, peer: Option<&[u8]>) -> Result<(u16, Value), (u16, Value)> {
    let exchange = match req.param("grant_type") {
        Some("client_credentials") => false,
        Some(TOKEN_EXCHANGE) => true,
        _ => return Err(error(400, "unsupported_grant_type", "client_credentials or token exchange")),
    };
    let client = authenticate(shared, req, peer)?;
    // RFC 8693: who the token is for (the subject's sub and client_id) and who acts.
    let (subject, client_id, act, subject_exp) = if exchange {
        let subject = exchanged_token(shared, req, "subject_token")?;
        let actor = match req.param("actor_token") {
            Some(_) => Some(exchanged_token(shared, req, "actor_token")?),
            None => None,
        };
        let mut act = match &actor {
            Some(actor) => json!({ "sub": actor["sub"], "client_id": actor["client_id"] }),
            None => json!({ "sub": client.id }),
        };
        if let Some(previous) = subject.get("act") {
            act["act"] = previous.clone();
        }
        let sub = subject["sub"].as_str().unwrap_or_default().to_owned();
        let subject_client = subject["client_id"].as_str().unwrap_or_default().to_owned();
        (sub, subject_client, Some(act), subject["exp"].as_i64())
    } else {
        (client.id.clone(), client.id.clone(), None, None)
    };
    let binding = match (client.bound, peer) {
        (false, _) => None,
        (true, Some(der)) => Some(super::thumbprint(der)),
        (true, None) => return Err(error(400, "invalid_grant", "this client's tokens need a client certificate")),
    };
    let requested: Vec<&str> =
        req.param("scope").map(|s| s.split(' ').filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    if let Some(unknown) = requested.iter().find(|s| !client.scopes.iter().any(|a| a == *s)) {
        return Err(error(400, "invalid_scope", &format!("scope {unknown} is not allowed for this client")));
    }
    let granted: Vec<&str> =
        if requested.is_empty() { client.scopes.iter().map(String::as_str).collect() } else { requested };
    let resources = req.params("resource");
    if let Some(allowed) = &client.resources
        && let Some(bad) = resources.iter().find(|r| !allowed.iter().any(|a| a == *r))
    {
        return Err(error(400, "invalid_target", &format!("resource {bad} is not allowed for this client")));
    }
    let aud: Value = match (resources.as_slice(), req.param("audience")) {
        ([], None) => super::DEFAULT_AUDIENCE.into(),
        ([], Some(audience)) => audience.into(),
        ([one], _) => (*one).into(),
        (many, _) => many.to_vec().into(),
    };
    let (key, lifetime, style) = {
        let state = shared.state();
        (state.keys.get(&state.signing).cloned(), state.tokens.lifetime, state.tokens.expires_in)
    };
    // An exchanged token never outlives the caller's.
    let secs = (lifetime.as_secs() as i64).min(subject_exp.map_or(i64::MAX, |exp| exp - unix_now()));
    let mut token = super::TokenBuilder::new(&shared.issuer, key);
    if let Some(thumbprint) = binding {
        token = token.claim("cnf", json!({ "x5t#S256": thumbprint }));
    }
    if let Some(act) = act {
        token = token.claim("act", act);
    }
    let token = token
        .claim("sub", subject.as_str())
        .claim("client_id", client_id.as_str())
        .claim("aud", aud)
        .claim("scope", granted.join(" "))
        .claim("exp", unix_now() + secs)
        .sign();
    let mut body = json!({ "access_token": token, "token_type": "Bearer", "scope": granted.join(" ") });
    if exchange {
        body["issued_token_type"] = ACCESS_TOKEN_TYPE.into();
    }
    match style {
        ExpiresIn::Number => body["expires_in"] = secs.into(),
        ExpiresIn::String => body["expires_in"] = secs.to_string().into(),
        ExpiresIn::Absent => {}
    }
    Ok((200, body))
}

fn authenticate(shared: &Shared, req: &SeenTokenRequest, peer: Option<&[u8]>) -> Result<TestClient, (u16, Value)> {
    let invalid = |why: &str| error(401, "invalid_client", why);
    let basic = req.authorization.as_deref().and_then(|h| h.strip_prefix("Basic "));
    let post_secret = req.param("client_secret");
    let assertion = req.param("client_assertion");
    // RFC 6749 §2.3: one method per request.
    let methods = [basic.is_some(), post_secret.is_some(), assertion.is_some()].iter().filter(|m| **m).count();
    if methods == 0 {
        // RFC 8705 §2: only the certificate on the connection, at the mutual-TLS alias.
        let id = req.param("client_id").ok_or_else(|| invalid("no client authentication"))?;
        let client = shared.state().tokens.clients.iter().find(|c| c.id == id).cloned();
        return match client {
            Some(client @ TestClient { auth: TestClientAuth::TlsClientAuth(_), .. })
                if req.path == "/mtls/token"
                    && matches!(&client.auth, TestClientAuth::TlsClientAuth(der) if Some(der.as_slice()) == peer) =>
            {
                Ok(client)
            }
            _ => Err(invalid("client authentication failed")),
        };
    }
    if methods != 1 {
        return Err(error(400, "invalid_request", "exactly one client authentication method"));
    }
    let (id, secret) = match basic {
        Some(encoded) => {
            let decoded = STANDARD.decode(encoded).map_err(|_| invalid("Basic credentials are not base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid("Basic credentials are not UTF-8"))?;
            let (id, secret) = decoded.split_once(':').ok_or_else(|| invalid("no ':' in Basic credentials"))?;
            // RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
            let unform = |s: &str| -> String {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (unform(id), Some(unform(secret)))
        }
        None => {
            let id = req.param("client_id").ok_or_else(|| invalid("no client_id"))?.to_owned();
            (id, post_secret.map(str::to_owned))
        }
    };
    let client =
        shared.state().tokens.clients.iter().find(|c| c.id == id).cloned().ok_or_else(|| invalid("unknown client"))?;
    match (&client.auth, secret, assertion) {
        (TestClientAuth::Secret(expected), Some(secret), None) if *expected == secret => Ok(client),
        (TestClientAuth::PrivateKeyJwt(key), None, Some(assertion)) => {
            if req.param("client_assertion_type") != Some(JWT_BEARER) {
                return Err(invalid("client_assertion_type is not jwt-bearer"));
            }
            verify_assertion(shared, key, &client.id, assertion).map_err(|why| invalid(&why))?;
            Ok(client)
        }
        _ => Err(invalid("client authentication failed")),
    }
}

fn verify_assertion(shared: &Shared, key: &TestKey, client_id: &str, assertion: &str) -> Result<(), String> {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk()).map_err(|e| e.to_string())?;
    let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(key.algorithm().to_jsonwebtoken());
    let token_endpoint = format!("{}/token", shared.issuer);
    validation.set_audience(&[shared.issuer.as_str(), token_endpoint.as_str()]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_owned());
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    crate::crypto::provider().map_err(|e| e.to_string())?;
    let data =
        jsonwebtoken::decode::<Value>(assertion, &decoding, &validation).map_err(|e| format!("assertion: {e}"))?;
    let claims = data.claims;
    let (iat, exp) = (claims["iat"].as_i64().unwrap_or(0), claims["exp"].as_i64().unwrap_or(i64::MAX));
    if exp - iat > 60 {
        return Err("the assertion lives longer than 60 s".into());
    }
    let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
    if !shared.state().tokens.jtis.insert(jti) {
        return Err("the assertion's jti was used before".into());
    }
    Ok(())
}

fn decode_unverified(jwt: &str) -> Option<(Value, Value)> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = jwt.split('.');
    let mut part = || -> Option<Value> { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok() };
    Some((part()?, part()?))
}
