//! How the service proves who it is to the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2,
//! RFC 8705 §2).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::EncodingKey;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

use crate::algorithm::{Algorithm, KeyKind};
use crate::clock::unix_now;
use crate::config::ConfigError;

/// RFC 7523 §2.2.
pub(crate) const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// draft-ietf-oauth-rfc7523bis: the `typ` of a client assertion addressed to the issuer.
pub(crate) const ASSERTION_TYP: &str = "client-authentication+jwt";
/// The longest a client assertion may live (`exp` − `iat`).
pub(crate) const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// The client authentication method (the registered `token_endpoint_auth_method`).
///
/// ```
/// use auth_core::client::ClientAuth;
///
/// let auth = ClientAuth::client_secret_basic("s3cret");
/// // The secret never shows.
/// assert_eq!(format!("{auth:?}"), "ClientAuth::ClientSecretBasic");
/// ```
#[derive(Clone)]
pub struct ClientAuth {
    pub(crate) method: Method,
}

#[derive(Clone)]
pub(crate) enum Method {
    SecretBasic(Secret),
    SecretPost(Secret),
    PrivateKeyJwt { key: Arc<dyn ClientKeyProvider>, audience: AssertionAudience },
    TlsClientAuth(TlsIdentity),
}

/// A client secret: never printed.
#[derive(Clone)]
pub(crate) struct Secret(Arc<str>);

impl ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the id and secret form-encoded first
    /// (RFC 6749 §2.3.1), so that a `:` or non-ASCII character in either survives.
    pub fn client_secret_basic(secret: impl Into<String>) -> Self {
        ClientAuth { method: Method::SecretBasic(Secret(secret.into().into())) }
    }

    /// `client_secret_post`: the id and secret in the form body.
    pub fn client_secret_post(secret: impl Into<String>) -> Self {
        ClientAuth { method: Method::SecretPost(Secret(secret.into().into())) }
    }

    /// `private_key_jwt` (RFC 7523 §2.2) with one key. For keys that rotate without a
    /// restart, see [`ClientAuth::private_key_jwt_from`] and [`RotatingClientKey`].
    pub fn private_key_jwt(key: ClientKey) -> Self {
        Self::private_key_jwt_from(RotatingClientKey::new(key))
    }

    /// `private_key_jwt` with the signing key read from `keys` for every assertion.
    pub fn private_key_jwt_from(keys: impl ClientKeyProvider) -> Self {
        ClientAuth { method: Method::PrivateKeyJwt { key: Arc::new(keys), audience: AssertionAudience::Issuer } }
    }

    /// `tls_client_auth` (RFC 8705 §2.1): the service's certificate on the TLS connection
    /// to the token endpoint (its `mtls_endpoint_aliases` entry when discovery has one).
    pub fn tls_client_auth(identity: TlsIdentity) -> Self {
        ClientAuth { method: Method::TlsClientAuth(identity) }
    }

    /// For `private_key_jwt`: what the assertion's `aud` names (default:
    /// [`AssertionAudience::Issuer`]). No effect on other methods.
    #[must_use]
    pub fn assertion_audience(mut self, audience: AssertionAudience) -> Self {
        if let Method::PrivateKeyJwt { audience: current, .. } = &mut self.method {
            *current = audience;
        }
        self
    }

    /// The registered name of the method.
    pub fn name(&self) -> &'static str {
        match self.method {
            Method::SecretBasic(_) => "client_secret_basic",
            Method::SecretPost(_) => "client_secret_post",
            Method::PrivateKeyJwt { .. } => "private_key_jwt",
            Method::TlsClientAuth(_) => "tls_client_auth",
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Method::SecretBasic(_) => f.write_str("ClientAuth::ClientSecretBasic"),
            Method::SecretPost(_) => f.write_str("ClientAuth::ClientSecretPost"),
            Method::PrivateKeyJwt { audience, .. } => write!(f, "ClientAuth::PrivateKeyJwt({audience:?})"),
            Method::TlsClientAuth(_) => f.write_str("ClientAuth::TlsClientAuth"),
        }
    }
}

/// What a `private_key_jwt` assertion's `aud` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The authorization server's issuer identifier, as a single string, with the header
    /// `typ: client-authentication+jwt` (draft-ietf-oauth-rfc7523bis: an assertion made for
    /// one server cannot be replayed at another that shares the token endpoint's host).
    #[default]
    Issuer,
    /// The token endpoint URL and no `typ`, for servers that want that (Microsoft Entra ID).
    TokenEndpoint,
}

/// A private key that signs client assertions, with its algorithm and `kid`.
///
/// ```
/// # fn run(pem: &[u8]) -> Result<(), auth_core::ConfigError> {
/// use auth_core::Algorithm;
/// use auth_core::client::ClientKey;
///
/// let key = ClientKey::from_pem(Algorithm::ES256, pem)?.key_id("orders-2026-11");
/// # Ok(()) }
/// ```
pub struct ClientKey {
    alg: Algorithm,
    kid: Option<String>,
    key: EncodingKey,
}

impl ClientKey {
    /// A PEM private key (PKCS#8, or PKCS#1 for RSA) for `alg`. The key is tried once
    /// here, so that a key of the wrong type fails at start-up rather than at the first
    /// token request.
    pub fn from_pem(alg: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::ClientKey(reason);
        let key = match alg.key_kind() {
            KeyKind::Rsa => EncodingKey::from_rsa_pem(pem),
            KeyKind::EcP256 | KeyKind::EcP384 => EncodingKey::from_ec_pem(pem),
            KeyKind::Ed25519 => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|e| invalid(e.to_string()))?;
        let key = ClientKey { alg, kid: None, key };
        key.sign(b"{}", b"{}").map_err(|e| invalid(format!("the key cannot sign {alg}: {e}")))?;
        Ok(key)
    }

    /// The `kid` header of the assertions (the key's id in the JWKS registered for the client).
    #[must_use]
    pub fn key_id(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn sign(&self, header: &[u8], claims: &[u8]) -> Result<String, String> {
        crate::crypto::sign_jwt(self.alg, &self.key, header, claims)
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// Where `private_key_jwt` finds its signing key, read for every assertion: implement it
/// to take keys from a secret store; [`RotatingClientKey`] is the in-memory one.
pub trait ClientKeyProvider: Send + Sync + 'static {
    /// The key to sign the next assertion with.
    fn current_key(&self) -> Arc<ClientKey>;
}

/// A client key that can be replaced while the service runs (rotation without a restart).
/// Clones share the key.
///
/// ```
/// # fn run(old: auth_core::client::ClientKey, new: auth_core::client::ClientKey) {
/// use auth_core::client::{ClientAuth, RotatingClientKey};
///
/// let keys = RotatingClientKey::new(old);
/// let auth = ClientAuth::private_key_jwt_from(keys.clone());
/// // Later, once the new public key is registered with the authorization server:
/// keys.rotate(new);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct RotatingClientKey(Arc<ArcSwap<ClientKey>>);

impl RotatingClientKey {
    /// Starts with `key`.
    pub fn new(key: ClientKey) -> Self {
        RotatingClientKey(Arc::new(ArcSwap::from_pointee(key)))
    }

    /// Signs from now on with `key`.
    pub fn rotate(&self, key: ClientKey) {
        self.0.store(Arc::new(key));
    }
}

impl ClientKeyProvider for RotatingClientKey {
    fn current_key(&self) -> Arc<ClientKey> {
        self.0.load_full()
    }
}

/// A client certificate chain (leaf first) and its private key, for `tls_client_auth`.
#[derive(Clone)]
pub struct TlsIdentity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: Arc<PrivateKeyDer<'static>>,
}

impl TlsIdentity {
    /// From PEM: the certificate chain (leaf first) and the private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, ConfigError> {
        let chain = crate::crypto::pem_certificates(chain_pem, "client certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| ConfigError::ClientKey(format!("client certificate key: {e}")))?;
        Ok(TlsIdentity { chain, key: Arc::new(key) })
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity").field("certificates", &self.chain.len()).finish_non_exhaustive()
    }
}

/// What client authentication adds to one token request.
pub(crate) struct Authenticated {
    /// `Authorization: Basic …`, for `client_secret_basic`.
    pub(crate) authorization: Option<String>,
    /// Form parameters.
    pub(crate) params: Vec<(&'static str, String)>,
}

impl ClientAuth {
    /// The credentials of one token request. `issuer` is the authorization server's
    /// identifier (when known) and `endpoint` the URL the request goes to.
    pub(crate) fn authenticate(
        &self,
        client_id: &str,
        issuer: Option<&str>,
        endpoint: &str,
    ) -> Result<Authenticated, String> {
        let mut params = vec![("client_id", client_id.to_owned())];
        let authorization = match &self.method {
            Method::SecretBasic(secret) => {
                params.clear();
                let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", encode(client_id), encode(&secret.0));
                Some(format!("Basic {}", STANDARD.encode(pair)))
            }
            Method::SecretPost(secret) => {
                params.push(("client_secret", secret.0.to_string()));
                None
            }
            Method::PrivateKeyJwt { key, audience } => {
                let assertion = assertion(&key.current_key(), client_id, *audience, issuer, endpoint)?;
                params.push(("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()));
                params.push(("client_assertion", assertion));
                None
            }
            Method::TlsClientAuth(_) => None,
        };
        Ok(Authenticated { authorization, params })
    }

    pub(crate) fn tls_identity(&self) -> Option<&TlsIdentity> {
        match &self.method {
            Method::TlsClientAuth(identity) => Some(identity),
            _ => None,
        }
    }

    pub(crate) fn needs_issuer(&self) -> bool {
        matches!(self.method, Method::PrivateKeyJwt { audience: AssertionAudience::Issuer, .. })
    }
}

fn assertion(
    key: &ClientKey,
    client_id: &str,
    audience: AssertionAudience,
    issuer: Option<&str>,
    endpoint: &str,
) -> Result<String, String> {
    let mut header = json!({ "alg": key.alg.as_str() });
    if let Some(kid) = &key.kid {
        header["kid"] = kid.as_str().into();
    }
    let aud = match audience {
        AssertionAudience::Issuer => {
            header["typ"] = ASSERTION_TYP.into();
            issuer.ok_or("the issuer identifier is unknown (configure it, or use the token endpoint audience)")?
        }
        AssertionAudience::TokenEndpoint => endpoint,
    };
    let now = unix_now();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "iat": now,
        "exp": now + MAX_ASSERTION_LIFETIME.as_secs() as i64,
        // 128 random bits: a replayed assertion is refused by the server.
        "jti": format!("{:032x}", fastrand::u128(..)),
    });
    key.sign(header.to_string().as_bytes(), claims.to_string().as_bytes())
}
