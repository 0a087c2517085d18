//! Where the token endpoint is (given, or from the authorization server's metadata) and
//! one token request to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;

use super::client_auth::ClientAuth;
use super::error::TokenSourceError;
use super::response::{self, Issued};
use super::target::TokenTarget;
use crate::discovery::IssuerMetadata;
use crate::fetch::{Fetcher, require_https};

/// Which metadata document names the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Metadata {
    /// OpenID Connect Discovery: `{issuer}/.well-known/openid-configuration`.
    #[default]
    OpenIdConfiguration,
    /// RFC 8414: `/.well-known/oauth-authorization-server` inserted before the issuer's
    /// path (§3.1).
    OAuthAuthorizationServer,
}

impl Metadata {
    /// The metadata URL of `issuer`.
    pub(crate) fn url(self, issuer: &Url) -> Url {
        let mut url = issuer.clone();
        url.set_query(None);
        url.set_fragment(None);
        let path = issuer.path().trim_end_matches('/');
        match self {
            Metadata::OpenIdConfiguration => url.set_path(&format!("{path}/.well-known/openid-configuration")),
            Metadata::OAuthAuthorizationServer => {
                url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
            }
        }
        url
    }
}

/// The token endpoint in use, and the issuer identifier client assertions name.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) token_endpoint: Url,
    pub(crate) issuer: Option<String>,
}

pub(crate) enum Origin {
    Given(Arc<Resolved>),
    /// From the issuer's metadata (perhaps shared with a validator's key source).
    Discovered(Arc<IssuerMetadata>),
}

/// The token endpoint: given, or read from the metadata (kept until a request fails).
pub(crate) struct Endpoint {
    origin: Origin,
    /// Use `mtls_endpoint_aliases.token_endpoint` when the metadata has one (RFC 8705 §5).
    mtls: bool,
}

impl Endpoint {
    pub(crate) fn new(origin: Origin, mtls: bool) -> Self {
        Endpoint { origin, mtls }
    }

    /// The URL a configured endpoint or the metadata is read from (for `Debug`).
    pub(crate) fn describe(&self) -> String {
        match &self.origin {
            Origin::Given(resolved) => resolved.token_endpoint.to_string(),
            Origin::Discovered(metadata) => metadata.url().to_string(),
        }
    }

    pub(crate) async fn resolve(&self, fetcher: &Fetcher) -> Result<Arc<Resolved>, TokenSourceError> {
        let metadata = match &self.origin {
            Origin::Given(resolved) => return Ok(resolved.clone()),
            Origin::Discovered(metadata) => metadata,
        };
        let unavailable = |cause: String| TokenSourceError::Unavailable { cause, retry_after: None };
        let (document, _) = metadata.document(fetcher).await.map_err(|e| unavailable(format!("metadata: {e}")))?;
        let alias = document.mtls_endpoint_aliases.as_ref().and_then(|a| a.token_endpoint.as_deref());
        let endpoint = alias
            .filter(|_| self.mtls)
            .or(document.token_endpoint.as_deref())
            .ok_or_else(|| unavailable("metadata: no token_endpoint".into()))?;
        let token_endpoint =
            Url::parse(endpoint).map_err(|_| unavailable("metadata: token_endpoint is not a URL".into()))?;
        require_https(&token_endpoint, fetcher.allow_http).map_err(|e| unavailable(format!("metadata: {e}")))?;
        Ok(Arc::new(Resolved { token_endpoint, issuer: Some(document.issuer.clone()) }))
    }

    /// After a failed request: read the metadata again next time (the endpoint may have moved).
    pub(crate) fn forget(&self) {
        if let Origin::Discovered(metadata) = &self.origin {
            metadata.forget();
        }
    }
}

/// What one successful token request produced.
pub(crate) struct Answer {
    pub(crate) issued: Issued,
    /// When the response arrived: the token's lifetime counts from here.
    pub(crate) arrived: Instant,
}

/// RFC 8693 §3: the token type of access tokens.
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What a token request asks for.
pub(crate) enum Grant<'a> {
    /// RFC 6749 §4.4: the client's own token.
    ClientCredentials,
    /// RFC 8693 §2.1: a token for `subject` (an access token), acted for by `actor`.
    TokenExchange { subject: &'a str, actor: Option<&'a str> },
}

/// One token request to `endpoint`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn request_token(
    fetcher: &Fetcher,
    endpoint: &Resolved,
    client_id: &str,
    auth: &ClientAuth,
    grant: &Grant<'_>,
    target: &TokenTarget,
    max_token: usize,
    default_lifetime: Duration,
) -> Result<Answer, TokenSourceError> {
    let client = fetcher
        .client
        .as_ref()
        .ok_or_else(|| TokenSourceError::Unavailable { cause: "no HTTP client".into(), retry_after: None })?;
    let url = &endpoint.token_endpoint;
    require_https(url, fetcher.allow_http)
        .map_err(|cause| TokenSourceError::Unavailable { cause, retry_after: None })?;
    let credentials =
        auth.authenticate(client_id, endpoint.issuer.as_deref(), url.as_str()).map_err(TokenSourceError::Assertion)?;
    let form = {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        match grant {
            Grant::ClientCredentials => {
                form.append_pair("grant_type", "client_credentials");
            }
            Grant::TokenExchange { subject, actor } => {
                form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
                form.append_pair("subject_token", subject);
                form.append_pair("subject_token_type", ACCESS_TOKEN_TYPE);
                if let Some(actor) = actor {
                    form.append_pair("actor_token", actor);
                    form.append_pair("actor_token_type", ACCESS_TOKEN_TYPE);
                }
                form.append_pair("requested_token_type", ACCESS_TOKEN_TYPE);
            }
        }
        for (name, value) in &credentials.params {
            form.append_pair(name, value);
        }
        if let Some(scope) = target.scope_param() {
            form.append_pair("scope", &scope);
        }
        for resource in target.resources() {
            form.append_pair("resource", resource);
        }
        if let Some(audience) = target.audience_param() {
            form.append_pair("audience", audience);
        }
        form.finish()
    };
    let mut request = client
        .post(url.clone())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json")
        .body(form);
    if let Some(authorization) = credentials.authorization {
        let mut value = http::HeaderValue::try_from(authorization).map_err(|_| {
            TokenSourceError::Assertion("the client credentials do not fit an Authorization header".into())
        })?;
        value.set_sensitive(true);
        request = request.header(AUTHORIZATION, value);
    }
    let max_body = fetcher.max_body;
    let exchange = async move {
        let mut response = request.send().await.map_err(transport)?;
        let arrived = Instant::now();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let declared =
            response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > max_body as u64) {
            return Err(too_large(max_body));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > max_body {
                return Err(too_large(max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, retry_after, body, arrived))
    };
    let (status, retry_after, body, arrived) = match tokio::time::timeout(fetcher.timeout, exchange).await {
        Ok(result) => result?,
        Err(_) => return Err(TokenSourceError::Unavailable { cause: "timed out".into(), retry_after: None }),
    };
    if !(200..300).contains(&status) {
        return Err(response::failure(status, &body, retry_after));
    }
    let exchange = matches!(grant, Grant::TokenExchange { .. });
    let issued = response::success(&body, max_token, default_lifetime, exchange)?;
    Ok(Answer { issued, arrived })
}

fn transport(err: reqwest::Error) -> TokenSourceError {
    let cause = if err.is_timeout() { "timed out".to_owned() } else { err.without_url().to_string() };
    TokenSourceError::Unavailable { cause, retry_after: None }
}

fn too_large(max: usize) -> TokenSourceError {
    TokenSourceError::InvalidResponse(format!("the response exceeds {max} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls() {
        let url = |s: &str| Url::parse(s).unwrap();
        let oidc = Metadata::OpenIdConfiguration;
        let oauth = Metadata::OAuthAuthorizationServer;
        assert_eq!(
            oidc.url(&url("https://as.example")).as_str(),
            "https://as.example/.well-known/openid-configuration"
        );
        assert_eq!(
            oidc.url(&url("https://as.example/realms/x/")).as_str(),
            "https://as.example/realms/x/.well-known/openid-configuration"
        );
        assert_eq!(
            oauth.url(&url("https://as.example")).as_str(),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        // RFC 8414 §3.1: inserted between the host and the path.
        assert_eq!(
            oauth.url(&url("https://as.example/tenant1")).as_str(),
            "https://as.example/.well-known/oauth-authorization-server/tenant1"
        );
    }
}
