//! Service configuration from environment variables.

use std::net::SocketAddr;

use auth_core::{Issuer, Validator};

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
        Ok(ServiceConfig { issuer, audience, jwks_url, bind })
    }

    /// The validator, everything else at the library defaults.
    pub fn validator(&self) -> Result<Validator, String> {
        let issuer = match &self.jwks_url {
            Some(url) => Issuer::jwks_url(&self.issuer, url),
            None => Issuer::discovery(&self.issuer),
        };
        let var = if self.jwks_url.is_some() { "AUTH_ISSUER or AUTH_JWKS_URL" } else { "AUTH_ISSUER" };
        Validator::builder().issuer(issuer.audience(&self.audience)).build().map_err(|e| format!("{var}: {e}"))
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

    #[test]
    fn defaults() {
        let c = ServiceConfig::from_lookup(lookup(&[("AUTH_ISSUER", "https://i/"), ("AUTH_AUDIENCE", "a")])).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert!(c.jwks_url.is_none());
        assert!(c.validator().is_ok());
    }
}
