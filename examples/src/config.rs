//! Service configuration from environment variables.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use auth_core::client::{ClientAuth, ClientKey};
use auth_core::{Algorithm, BindingMode, Issuer, Validator};

/// What the example services read from the environment.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `AUTH_ISSUER` (required): the issuer; keys are found by OIDC discovery from it
    /// (whose document may spell it with or without a trailing slash).
    pub issuer: String,
    /// `AUTH_AUDIENCE` (required): this API's audience.
    pub audience: String,
    /// `AUTH_JWKS_URL` (optional): skip discovery and fetch keys here.
    pub jwks_url: Option<String>,
    /// `BIND_ADDR` (default `127.0.0.1:8080`).
    pub bind: SocketAddr,
    /// `BILLING_URL` and the client variables: the downstream call of
    /// `GET /orders/{id}/invoice` (`None` without `BILLING_URL`: the route answers 404).
    pub billing: Option<BillingConfig>,
    /// `AUTH_CERT_BINDING` (`off`, `if-present` or `required`; default `if-present`):
    /// how certificate-bound tokens (RFC 8705, `cnf.x5t#S256`) are treated.
    pub cert_binding: BindingMode,
    /// `AUTH_TRUSTED_PROXIES` (optional): comma-separated CIDRs (or addresses) of the
    /// proxies whose `Client-Cert` (RFC 9440) and `x-forwarded-client-cert` headers are
    /// believed. Default: none.
    pub trusted_proxies: Vec<String>,
    /// `AUTH_TLS_CERT`, `AUTH_TLS_KEY` and optionally `AUTH_TLS_CLIENT_CA`: serve HTTPS
    /// (`None`: plain HTTP).
    pub tls: Option<TlsConfig>,
    /// `AUTH_CA_CERT` (optional): CA certificates (PEM) trusted, besides the platform's,
    /// for the issuer's discovery, JWKS and token endpoints.
    pub ca_cert: Option<CaCert>,
}

/// HTTPS serving: the files, read and checked at start-up, and the rustls configuration
/// made of them. Its `Debug` shows the paths only.
#[derive(Clone)]
pub struct TlsConfig {
    /// `AUTH_TLS_CERT`: the server's certificate chain (PEM, leaf first).
    pub cert: String,
    /// `AUTH_TLS_KEY`: its private key (PEM).
    pub key: String,
    /// `AUTH_TLS_CLIENT_CA` (optional): the CAs whose client certificates are accepted;
    /// with it, client certificates are requested (not required).
    pub client_ca: Option<String>,
    server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("client_ca", &self.client_ca)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// The rustls server configuration (for `auth_tower::tls::serve`, actix-web's
    /// `bind_rustls_0_23`).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }
}

/// `AUTH_CA_CERT`: the file and its certificates.
#[derive(Clone)]
pub struct CaCert {
    /// The path.
    pub path: String,
    pem: Vec<u8>,
    certificates: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for CaCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCert").field("path", &self.path).field("certificates", &self.certificates.len()).finish()
    }
}

impl CaCert {
    /// The PEM text as read.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

/// The downstream billing service and how the service gets its own tokens for it
/// (client credentials; the token endpoint is found by discovery of `AUTH_ISSUER`).
#[derive(Debug, Clone)]
pub struct BillingConfig {
    /// `BILLING_URL`: the billing service's base URL (https, or plain http to loopback),
    /// without a trailing slash.
    pub url: String,
    /// `AUTH_CLIENT_ID` (required with `BILLING_URL`): this service's client id.
    pub client_id: String,
    /// `AUTH_CLIENT_SECRET` (`client_secret_basic`) or `AUTH_CLIENT_KEY` (+
    /// `AUTH_CLIENT_KEY_ID`, `AUTH_CLIENT_KEY_ALG`: `private_key_jwt`), exactly one. Its
    /// `Debug` shows the method only.
    pub client_auth: ClientAuth,
    /// `BILLING_RESOURCE` (required with `BILLING_URL`): the RFC 8707 resource tokens are
    /// requested for (the billing service's audience).
    pub resource: String,
    /// `AUTH_TOKEN_SCOPE` (optional): the scopes requested, space-separated.
    pub scope: Option<String>,
}

impl ServiceConfig {
    /// Reads the variables; the error is one line naming the variable.
    pub fn from_env() -> Result<ServiceConfig, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same, from any lookup (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ServiceConfig, String> {
        let required = |name: &str| match get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_owned()),
            _ => Err(format!("{name} is required (see README: configuration)")),
        };
        let issuer = required("AUTH_ISSUER")?;
        let audience = required("AUTH_AUDIENCE")?;
        let jwks_url = get("AUTH_JWKS_URL").filter(|v| !v.trim().is_empty());
        let bind = match get("BIND_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v.parse().map_err(|_| format!("BIND_ADDR {v:?} is not an address like 127.0.0.1:8080"))?,
        };
        let billing = BillingConfig::from_lookup(&get)?;
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty()).map(|v| v.trim().to_owned());
        let cert_binding = match set("AUTH_CERT_BINDING") {
            None => BindingMode::default(),
            Some(name) => BindingMode::from_name(&name)
                .ok_or_else(|| format!("AUTH_CERT_BINDING {name:?} is not one of off, if-present, required"))?,
        };
        let trusted_proxies = match set("AUTH_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => trusted_proxies(&list)?,
        };
        let tls = TlsConfig::from_lookup(&set)?;
        let ca_cert = set("AUTH_CA_CERT").map(|path| CaCert::read(&path)).transpose()?;
        Ok(ServiceConfig { issuer, audience, jwks_url, bind, billing, cert_binding, trusted_proxies, tls, ca_cert })
    }

    /// The client of the billing service, if `BILLING_URL` is set.
    pub fn billing_client(&self) -> Result<Option<crate::billing::BillingClient>, String> {
        let roots = self.ca_cert.as_ref().map(CaCert::pem);
        self.billing
            .as_ref()
            .map(|billing| crate::billing::BillingClient::from_config(&self.issuer, billing, roots))
            .transpose()
    }

    /// The validator: the binding mode and trusted proxies as configured, the key fetches
    /// trusting `AUTH_CA_CERT` too when set, everything else at the library defaults.
    pub fn validator(&self) -> Result<Validator, String> {
        let issuer = match &self.jwks_url {
            Some(url) => Issuer::jwks_url(&self.issuer, url),
            None => Issuer::discovery(&self.issuer),
        };
        let var = if self.jwks_url.is_some() { "AUTH_ISSUER or AUTH_JWKS_URL" } else { "AUTH_ISSUER" };
        let mut builder = Validator::builder()
            .issuer(issuer.audience(&self.audience))
            .certificate_binding(self.cert_binding)
            .trusted_proxies(self.trusted_proxies.iter().cloned());
        if let Some(ca) = &self.ca_cert {
            builder =
                builder.extra_root_certificates(ca.pem()).map_err(|e| format!("AUTH_CA_CERT {:?}: {e}", ca.path))?;
        }
        builder.build().map_err(|e| match e {
            auth_core::ConfigError::InvalidSetting { name: "trusted_proxies", .. } => {
                format!("AUTH_TRUSTED_PROXIES: {e}")
            }
            e => format!("{var}: {e}"),
        })
    }

    /// `http` or `https`, as the services serve.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// `AUTH_TRUSTED_PROXIES`: comma-separated CIDRs (`10.0.0.0/8`, `::1/128`) or addresses.
fn trusted_proxies(list: &str) -> Result<Vec<String>, String> {
    let mut ranges = Vec::new();
    for range in list.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let valid = match range.split_once('/') {
            None => range.parse::<IpAddr>().is_ok(),
            Some((addr, prefix)) => match (addr.parse::<IpAddr>(), prefix.parse::<u8>()) {
                (Ok(IpAddr::V4(_)), Ok(bits)) => bits <= 32,
                (Ok(IpAddr::V6(_)), Ok(bits)) => bits <= 128,
                _ => false,
            },
        };
        if !valid {
            return Err(format!("AUTH_TRUSTED_PROXIES: {range:?} is not a CIDR such as 10.0.0.0/8 or an IP address"));
        }
        ranges.push(range.to_owned());
    }
    Ok(ranges)
}

impl TlsConfig {
    /// `AUTH_TLS_CERT` and `AUTH_TLS_KEY` (both or neither), `AUTH_TLS_CLIENT_CA` only with
    /// them; the files are read and the configuration built here.
    fn from_lookup(set: &impl Fn(&str) -> Option<String>) -> Result<Option<TlsConfig>, String> {
        let (cert, key, client_ca) = (set("AUTH_TLS_CERT"), set("AUTH_TLS_KEY"), set("AUTH_TLS_CLIENT_CA"));
        let (cert, key) = match (cert, key) {
            (None, None) if client_ca.is_some() => {
                return Err("AUTH_TLS_CLIENT_CA is set without AUTH_TLS_CERT and AUTH_TLS_KEY".into());
            }
            (None, None) => return Ok(None),
            (Some(_), None) => return Err("AUTH_TLS_KEY is required with AUTH_TLS_CERT".into()),
            (None, Some(_)) => return Err("AUTH_TLS_CERT is required with AUTH_TLS_KEY".into()),
            (Some(cert), Some(key)) => (cert, key),
        };
        let read =
            |name: &str, path: &str| std::fs::read(path).map_err(|e| format!("{name} {path:?} cannot be read: {e}"));
        let chain_pem = read("AUTH_TLS_CERT", &cert)?;
        let key_pem = read("AUTH_TLS_KEY", &key)?;
        let ca_pem = client_ca.as_deref().map(|path| read("AUTH_TLS_CLIENT_CA", path)).transpose()?;
        let server = auth_core::tls_server_config(&chain_pem, &key_pem, ca_pem.as_deref()).map_err(|e| {
            // The core names the part ("server certificate", "server key", "client CA").
            let text = e.to_string();
            let name = if text.contains("server key") {
                format!("AUTH_TLS_KEY {key:?}")
            } else if text.contains("client CA") {
                format!("AUTH_TLS_CLIENT_CA {:?}", client_ca.as_deref().unwrap_or_default())
            } else {
                format!("AUTH_TLS_CERT {cert:?} or AUTH_TLS_KEY {key:?}")
            };
            format!("{name}: {text}")
        })?;
        Ok(Some(TlsConfig { cert, key, client_ca, server: Arc::new(server) }))
    }
}

impl CaCert {
    /// `AUTH_CA_CERT`: at least one PEM certificate.
    fn read(path: &str) -> Result<CaCert, String> {
        let pem = std::fs::read(path).map_err(|e| format!("AUTH_CA_CERT {path:?} cannot be read: {e}"))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("AUTH_CA_CERT {path:?} is not PEM certificates: {e}"))?;
        if certificates.is_empty() {
            return Err(format!("AUTH_CA_CERT {path:?} has no CERTIFICATE"));
        }
        Ok(CaCert { path: path.to_owned(), pem, certificates })
    }
}

impl BillingConfig {
    /// The billing variables: `None` without `BILLING_URL`; with it, the error is one line
    /// naming the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<BillingConfig>, String> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let Some(url) = set("BILLING_URL") else { return Ok(None) };
        let url = billing_url(url.trim())?;
        let required = |name: &str| {
            set(name).map(|v| v.trim().to_owned()).ok_or_else(|| format!("{name} is required with BILLING_URL"))
        };
        let client_id = required("AUTH_CLIENT_ID")?;
        let resource = required("BILLING_RESOURCE")?;
        match reqwest::Url::parse(&resource) {
            Ok(parsed) if parsed.fragment().is_none() => {}
            _ => return Err(format!("BILLING_RESOURCE {resource:?} is not an absolute URI without a fragment")),
        }
        let scope = set("AUTH_TOKEN_SCOPE").map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "));
        if let Some(bad) = scope.as_deref().and_then(|s| s.split(' ').find(|name| !is_scope_token(name))) {
            return Err(format!("AUTH_TOKEN_SCOPE: {bad:?} is not a scope name"));
        }
        // The secret is taken as given (not trimmed): it is compared byte for byte.
        let secret = get("AUTH_CLIENT_SECRET").filter(|v| !v.is_empty());
        let key_path = set("AUTH_CLIENT_KEY");
        let client_auth = match (secret, key_path) {
            (Some(_), Some(_)) => {
                return Err("AUTH_CLIENT_SECRET and AUTH_CLIENT_KEY are both set: use one of them".into());
            }
            (None, None) => return Err("AUTH_CLIENT_SECRET or AUTH_CLIENT_KEY is required with BILLING_URL".into()),
            (Some(secret), None) => {
                for name in ["AUTH_CLIENT_KEY_ID", "AUTH_CLIENT_KEY_ALG"] {
                    if set(name).is_some() {
                        return Err(format!("{name} is set without AUTH_CLIENT_KEY"));
                    }
                }
                ClientAuth::client_secret_basic(secret)
            }
            (None, Some(path)) => {
                let alg = match set("AUTH_CLIENT_KEY_ALG") {
                    None => None,
                    Some(name) => Some(Algorithm::from_name(name.trim()).ok_or_else(|| {
                        format!("AUTH_CLIENT_KEY_ALG {name:?} is not an algorithm like RS256 or ES256")
                    })?),
                };
                let key = client_key(path.trim(), alg)?;
                let key = match set("AUTH_CLIENT_KEY_ID") {
                    Some(kid) => key.key_id(kid.trim()),
                    None => key,
                };
                ClientAuth::private_key_jwt(key)
            }
        };
        Ok(Some(BillingConfig { url, client_id, client_auth, resource, scope }))
    }
}

/// `BILLING_URL`: absolute http(s), plain http only to loopback (the service's token
/// travels with every call), no query or fragment; the trailing slash dropped.
fn billing_url(url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("BILLING_URL {url:?} is not a URL: {e}"))?;
    let host = parsed.host_str().unwrap_or("");
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(format!("BILLING_URL {url:?} is plain http to a non-loopback host: use https")),
        _ => return Err(format!("BILLING_URL {url:?} is not an http(s) URL")),
    }
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(format!("BILLING_URL {url:?} must be a base URL (no credentials, query or fragment)"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// RFC 6749 §3.3 `scope-token`.
fn is_scope_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// `AUTH_CLIENT_KEY`: the PEM file, for `alg`, or (without `AUTH_CLIENT_KEY_ALG`) RS256
/// for an RSA key and ES256 for a P-256 key.
fn client_key(path: &str, alg: Option<Algorithm>) -> Result<ClientKey, String> {
    let pem = std::fs::read(path).map_err(|e| format!("AUTH_CLIENT_KEY {path:?} cannot be read: {e}"))?;
    match alg {
        Some(alg) => ClientKey::from_pem(alg, &pem).map_err(|e| format!("AUTH_CLIENT_KEY {path:?} ({alg}): {e}")),
        None => ClientKey::from_pem(Algorithm::RS256, &pem)
            .or_else(|_| ClientKey::from_pem(Algorithm::ES256, &pem))
            .map_err(|e| {
                format!(
                    "AUTH_CLIENT_KEY {path:?} is neither an RSA (RS256) nor a P-256 (ES256) private key in PEM \
                     (or set AUTH_CLIENT_KEY_ALG): {e}"
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn errors_name_the_variable() {
        assert!(ServiceConfig::from_lookup(lookup(&[])).unwrap_err().starts_with("AUTH_ISSUER"));
        assert!(
            ServiceConfig::from_lookup(lookup(&[("AUTH_ISSUER", "https://i")]))
                .unwrap_err()
                .starts_with("AUTH_AUDIENCE")
        );
        let bad_bind = [("AUTH_ISSUER", "https://i"), ("AUTH_AUDIENCE", "a"), ("BIND_ADDR", "nope")];
        assert!(
            ServiceConfig::from_lookup(lookup(Box::leak(Box::new(bad_bind)))).unwrap_err().starts_with("BIND_ADDR")
        );
        let bad_issuer =
            ServiceConfig::from_lookup(lookup(&[("AUTH_ISSUER", "http://remote.example"), ("AUTH_AUDIENCE", "a")]))
                .unwrap()
                .validator()
                .err()
                .unwrap();
        assert!(bad_issuer.starts_with("AUTH_ISSUER"), "{bad_issuer}");
    }

    /// The services never loosen issuer matching: with an explicit JWKS URL, a token
    /// whose `iss` lacks the configured trailing slash is refused.
    #[tokio::test]
    async fn item11_the_services_match_the_issuer_exactly() {
        let idp = auth_core::testkit::TestIssuer::start().await.unwrap();
        let (issuer, jwks) = (format!("{}/", idp.issuer()), idp.jwks_url());
        let config = ServiceConfig::from_lookup(|name| match name {
            "AUTH_ISSUER" => Some(issuer.clone()),
            "AUTH_AUDIENCE" => Some(auth_core::testkit::DEFAULT_AUDIENCE.into()),
            "AUTH_JWKS_URL" => Some(jwks.clone()),
            _ => None,
        })
        .unwrap();
        let validator = config.validator().unwrap();
        let err = validator.validate(&idp.token().sign()).await.unwrap_err();
        assert_eq!(err.reason(), auth_core::RejectReason::UnknownIssuer);
        validator.validate(&idp.token().claim("iss", issuer.clone()).sign()).await.unwrap();
    }

    /// The base variables plus `extra`.
    fn with_billing(extra: &[(&str, &str)]) -> Result<ServiceConfig, String> {
        let mut pairs: Vec<(String, String)> =
            vec![("AUTH_ISSUER".into(), "https://idp.example".into()), ("AUTH_AUDIENCE".into(), "orders-api".into())];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        ServiceConfig::from_lookup(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    const BILLING: [(&str, &str); 3] = [
        ("BILLING_URL", "https://billing.example/"),
        ("BILLING_RESOURCE", "https://billing.example"),
        ("AUTH_CLIENT_ID", "orders-service"),
    ];

    /// [`BILLING`] with `extra` added or replacing its entries.
    fn billing_with(extra: &[(&str, &str)]) -> Result<ServiceConfig, String> {
        let mut all: Vec<(&str, &str)> =
            BILLING.iter().copied().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).collect();
        all.extend_from_slice(extra);
        with_billing(&all)
    }

    fn err(result: Result<ServiceConfig, String>) -> String {
        result.expect_err("an error")
    }

    /// A PEM file of `key` in the temp directory, removed on drop.
    struct KeyFile(std::path::PathBuf);

    impl KeyFile {
        fn new(name: &str, contents: &str) -> KeyFile {
            let path = std::env::temp_dir().join(format!("examples-config-{}-{name}.pem", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            KeyFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for KeyFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn billing_is_off_without_billing_url() {
        let c = with_billing(&[("AUTH_CLIENT_ID", "x"), ("AUTH_CLIENT_SECRET", "s")]).unwrap();
        assert!(c.billing.is_none());
        assert!(c.billing_client().unwrap().is_none());
        assert!(with_billing(&[("BILLING_URL", "  ")]).unwrap().billing.is_none());
    }

    #[test]
    fn billing_with_a_secret() {
        let c = billing_with(&[("AUTH_CLIENT_SECRET", "s3cret value"), ("AUTH_TOKEN_SCOPE", " invoices:read   a:b ")])
            .unwrap();
        let billing = c.billing.as_ref().unwrap();
        assert_eq!(billing.url, "https://billing.example");
        assert_eq!(billing.client_id, "orders-service");
        assert_eq!(billing.resource, "https://billing.example");
        assert_eq!(billing.scope.as_deref(), Some("invoices:read a:b"));
        assert_eq!(billing.client_auth.name(), "client_secret_basic");
        assert!(!format!("{c:?}").contains("s3cret"), "the secret shows in {c:?}");
        assert!(c.billing_client().unwrap().is_some());
        let loopback = billing_with(&[("BILLING_URL", "http://127.0.0.1:9000"), ("AUTH_CLIENT_SECRET", "s")]).unwrap();
        assert_eq!(loopback.billing.unwrap().url, "http://127.0.0.1:9000");
        assert!(billing_with(&[("BILLING_URL", "http://[::1]:9000/"), ("AUTH_CLIENT_SECRET", "s")]).is_ok());
        assert!(billing_with(&[("BILLING_URL", "http://localhost:9000/"), ("AUTH_CLIENT_SECRET", "s")]).is_ok());
    }

    #[test]
    fn billing_errors_name_the_variable() {
        let secret = ("AUTH_CLIENT_SECRET", "s");
        let url = ("BILLING_URL", "https://billing.example");
        let resource = ("BILLING_RESOURCE", "https://billing.example");
        let message = err(with_billing(&[url, resource, secret]));
        assert!(message.starts_with("AUTH_CLIENT_ID is required with BILLING_URL"), "{message}");
        let message = err(with_billing(&[url, ("AUTH_CLIENT_ID", "x"), secret]));
        assert!(message.starts_with("BILLING_RESOURCE is required with BILLING_URL"), "{message}");
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("BILLING_RESOURCE", "not a uri"), secret], "BILLING_RESOURCE"),
            (vec![("BILLING_RESOURCE", "https://billing.example/#x"), secret], "BILLING_RESOURCE"),
            (vec![("BILLING_URL", "billing.example"), secret], "BILLING_URL"),
            (vec![("BILLING_URL", "ftp://billing.example"), secret], "BILLING_URL"),
            (vec![("BILLING_URL", "http://billing.example"), secret], "BILLING_URL"),
            (vec![("BILLING_URL", "https://billing.example/?a=b"), secret], "BILLING_URL"),
            (vec![("BILLING_URL", "https://u:p@billing.example/"), secret], "BILLING_URL"),
            (vec![], "AUTH_CLIENT_SECRET or AUTH_CLIENT_KEY"),
            (vec![secret, ("AUTH_CLIENT_KEY", "/some/key.pem")], "AUTH_CLIENT_SECRET and AUTH_CLIENT_KEY"),
            (vec![secret, ("AUTH_CLIENT_KEY_ID", "k1")], "AUTH_CLIENT_KEY_ID"),
            (vec![secret, ("AUTH_CLIENT_KEY_ALG", "RS256")], "AUTH_CLIENT_KEY_ALG"),
            (vec![secret, ("AUTH_TOKEN_SCOPE", "a\"b")], "AUTH_TOKEN_SCOPE"),
            (vec![("AUTH_CLIENT_KEY", "/nonexistent/examples-key.pem")], "AUTH_CLIENT_KEY"),
            (vec![("AUTH_CLIENT_KEY", "/nonexistent/k.pem"), ("AUTH_CLIENT_KEY_ALG", "rs256")], "AUTH_CLIENT_KEY_ALG"),
        ];
        for (extra, variable) in cases {
            let message = err(billing_with(&extra));
            assert!(message.starts_with(variable), "{extra:?}: {message}");
            assert!(!message.contains('\n'), "{extra:?}: not one line: {message}");
        }
    }

    #[test]
    fn billing_with_a_key_file() {
        use auth_core::testkit::TestKey;
        let rsa = KeyFile::new("rsa", &TestKey::generate(Algorithm::RS256, "k").private_key_pem());
        let ec = KeyFile::new("ec", &TestKey::generate(Algorithm::ES256, "k").private_key_pem());
        let p384 = KeyFile::new("p384", &TestKey::generate(Algorithm::ES384, "k").private_key_pem());
        let garbage = KeyFile::new("garbage", "not a key");
        // Chosen by trying: RS256 for RSA, ES256 for P-256; or as AUTH_CLIENT_KEY_ALG says.
        assert_eq!(client_key(rsa.path(), None).unwrap().algorithm(), Algorithm::RS256);
        assert_eq!(client_key(ec.path(), None).unwrap().algorithm(), Algorithm::ES256);
        assert_eq!(client_key(rsa.path(), Some(Algorithm::PS256)).unwrap().algorithm(), Algorithm::PS256);
        assert_eq!(client_key(p384.path(), Some(Algorithm::ES384)).unwrap().algorithm(), Algorithm::ES384);
        let c = billing_with(&[("AUTH_CLIENT_KEY", rsa.path()), ("AUTH_CLIENT_KEY_ID", "orders-1")]).unwrap();
        assert_eq!(c.billing.as_ref().unwrap().client_auth.name(), "private_key_jwt");
        assert!(c.billing_client().unwrap().is_some());
        let c = billing_with(&[("AUTH_CLIENT_KEY", ec.path())]).unwrap();
        assert_eq!(c.billing.unwrap().client_auth.name(), "private_key_jwt");
        for extra in [
            vec![("AUTH_CLIENT_KEY", garbage.path())],
            vec![("AUTH_CLIENT_KEY", p384.path())],
            vec![("AUTH_CLIENT_KEY", rsa.path()), ("AUTH_CLIENT_KEY_ALG", "ES256")],
        ] {
            let message = err(billing_with(&extra));
            assert!(message.starts_with("AUTH_CLIENT_KEY "), "{extra:?}: {message}");
        }
    }

    #[test]
    fn defaults() {
        let c = ServiceConfig::from_lookup(lookup(&[("AUTH_ISSUER", "https://i/"), ("AUTH_AUDIENCE", "a")])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert!(c.jwks_url.is_none());
        assert_eq!(c.cert_binding, BindingMode::IfPresent);
        assert!(c.trusted_proxies.is_empty());
        assert!(c.tls.is_none() && c.ca_cert.is_none());
        assert_eq!(c.scheme(), "http");
        assert!(c.validator().is_ok());
    }

    #[test]
    fn binding_mode_and_trusted_proxies() {
        for (name, mode) in
            [("off", BindingMode::Off), (" if-present ", BindingMode::IfPresent), ("required", BindingMode::Required)]
        {
            assert_eq!(with_billing(&[("AUTH_CERT_BINDING", name)]).unwrap().cert_binding, mode, "{name}");
        }
        let c = with_billing(&[("AUTH_TRUSTED_PROXIES", " 10.0.0.0/8, 192.168.1.7 ,::1/128,,")]).unwrap();
        assert_eq!(c.trusted_proxies, ["10.0.0.0/8", "192.168.1.7", "::1/128"]);
        assert!(c.validator().is_ok());
        for (extra, variable) in [
            (("AUTH_CERT_BINDING", "Required"), "AUTH_CERT_BINDING"),
            (("AUTH_CERT_BINDING", "on"), "AUTH_CERT_BINDING"),
            (("AUTH_TRUSTED_PROXIES", "10.0.0.0/33"), "AUTH_TRUSTED_PROXIES"),
            (("AUTH_TRUSTED_PROXIES", "::1/129"), "AUTH_TRUSTED_PROXIES"),
            (("AUTH_TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal"), "AUTH_TRUSTED_PROXIES"),
            (("AUTH_TRUSTED_PROXIES", "10.0.0.0/x"), "AUTH_TRUSTED_PROXIES"),
        ] {
            let message = err(with_billing(&[extra]));
            assert!(message.starts_with(variable), "{extra:?}: {message}");
            assert!(!message.contains('\n'), "{extra:?}: not one line: {message}");
        }
    }

    #[test]
    fn tls_files() {
        let ca = auth_core::testkit::TestCa::new("examples config CA").unwrap();
        let server = ca.server_certificate().unwrap();
        let cert = KeyFile::new("tls-cert", &server.cert_pem);
        let key = KeyFile::new("tls-key", &server.key_pem);
        let client_ca = KeyFile::new("tls-client-ca", ca.cert_pem());
        let garbage = KeyFile::new("tls-garbage", "not PEM");
        let c = with_billing(&[("AUTH_TLS_CERT", cert.path()), ("AUTH_TLS_KEY", key.path())]).unwrap();
        let tls = c.tls.as_ref().unwrap();
        assert!(tls.client_ca.is_none());
        assert_eq!(c.scheme(), "https");
        assert!(!format!("{c:?}").contains("PRIVATE KEY"), "{c:?}");
        assert!(tls.server_config().alpn_protocols.contains(&b"http/1.1".to_vec()));
        let c = with_billing(&[
            ("AUTH_TLS_CERT", cert.path()),
            ("AUTH_TLS_KEY", key.path()),
            ("AUTH_TLS_CLIENT_CA", client_ca.path()),
        ])
        .unwrap();
        assert_eq!(c.tls.unwrap().client_ca.as_deref(), Some(client_ca.path()));
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("AUTH_TLS_CERT", cert.path())], "AUTH_TLS_KEY is required with AUTH_TLS_CERT"),
            (vec![("AUTH_TLS_KEY", key.path())], "AUTH_TLS_CERT is required with AUTH_TLS_KEY"),
            (vec![("AUTH_TLS_CLIENT_CA", client_ca.path())], "AUTH_TLS_CLIENT_CA is set without"),
            (
                vec![("AUTH_TLS_CERT", cert.path()), ("AUTH_TLS_CLIENT_CA", client_ca.path())],
                "AUTH_TLS_KEY is required",
            ),
            (vec![("AUTH_TLS_CERT", "/nonexistent/cert.pem"), ("AUTH_TLS_KEY", key.path())], "AUTH_TLS_CERT "),
            (vec![("AUTH_TLS_CERT", cert.path()), ("AUTH_TLS_KEY", "/nonexistent/key.pem")], "AUTH_TLS_KEY "),
            (vec![("AUTH_TLS_CERT", cert.path()), ("AUTH_TLS_KEY", garbage.path())], "AUTH_TLS_KEY "),
            (vec![("AUTH_TLS_CERT", garbage.path()), ("AUTH_TLS_KEY", key.path())], "AUTH_TLS_CERT "),
            (
                vec![
                    ("AUTH_TLS_CERT", cert.path()),
                    ("AUTH_TLS_KEY", key.path()),
                    ("AUTH_TLS_CLIENT_CA", garbage.path()),
                ],
                "AUTH_TLS_CLIENT_CA ",
            ),
            (
                vec![
                    ("AUTH_TLS_CERT", cert.path()),
                    ("AUTH_TLS_KEY", key.path()),
                    ("AUTH_TLS_CLIENT_CA", "/nonexistent/ca.pem"),
                ],
                "AUTH_TLS_CLIENT_CA ",
            ),
        ];
        for (extra, start) in cases {
            let message = err(with_billing(&extra));
            assert!(message.starts_with(start), "{extra:?}: {message}");
            assert!(!message.contains('\n'), "{extra:?}: not one line: {message}");
        }
    }

    #[test]
    fn issuer_ca() {
        let ca = auth_core::testkit::TestCa::new("examples issuer CA").unwrap();
        let file = KeyFile::new("issuer-ca", ca.cert_pem());
        let garbage = KeyFile::new("issuer-ca-garbage", "no certificate here");
        let c = billing_with(&[("AUTH_CA_CERT", file.path()), ("AUTH_CLIENT_SECRET", "s")]).unwrap();
        assert_eq!(c.ca_cert.as_ref().unwrap().path, file.path());
        assert!(c.validator().is_ok());
        assert!(c.billing_client().unwrap().is_some());
        for path in ["/nonexistent/ca.pem", garbage.path()] {
            let message = err(with_billing(&[("AUTH_CA_CERT", path)]));
            assert!(message.starts_with("AUTH_CA_CERT "), "{path}: {message}");
        }
    }

    /// With `AUTH_CA_CERT`, the validator fetches keys from an https issuer whose
    /// certificate chains to that CA (and without it, cannot).
    #[tokio::test]
    async fn the_validator_trusts_the_issuer_ca() {
        let idp = auth_core::testkit::TestIssuer::start_tls().await.unwrap();
        let file = KeyFile::new("https-issuer-ca", idp.ca_pem());
        let issuer = idp.issuer().to_owned();
        let config = |ca: Option<&str>| {
            let (issuer, ca) = (issuer.clone(), ca.map(str::to_owned));
            ServiceConfig::from_lookup(move |name| match name {
                "AUTH_ISSUER" => Some(issuer.clone()),
                "AUTH_AUDIENCE" => Some(auth_core::testkit::DEFAULT_AUDIENCE.into()),
                "AUTH_CA_CERT" => ca.clone(),
                _ => None,
            })
            .unwrap()
        };
        let token = idp.token().sign();
        config(Some(file.path())).validator().unwrap().validate(&token).await.unwrap();
        let err = config(None).validator().unwrap().validate(&token).await.unwrap_err();
        assert_eq!(err.reason(), auth_core::RejectReason::KeysUnavailable, "{err:?}");
    }
}
