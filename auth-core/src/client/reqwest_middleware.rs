//! The calling side for `reqwest-middleware` users (feature `reqwest-middleware`).

use http::header::AUTHORIZATION;
use reqwest_middleware::{Middleware, Next, Result};

use super::{TargetToken, TokenExchange, TokenSourceError, TokenTarget, says_invalid_token};

/// Attaches the target's token to every request, and when the downstream answers `401`
/// with `error="invalid_token"`, drops that token (at most once per cooldown) and sends
/// the request once more with a new one, if its body can be replayed (not a stream).
///
/// ```no_run
/// use auth_core::client::reqwest_middleware::AttachToken;
/// use auth_core::client::{ClientAuth, TokenSource, TokenTarget};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenSource::builder("orders-service")
///     .issuer("https://idp.example.com")
///     .client_auth(ClientAuth::client_secret_basic("s3cret"))
///     .build()?;
/// let billing = tokens.target(TokenTarget::resource("https://billing.internal"))?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(AttachToken::new(billing))
///     .build();
/// let invoice = client.get("https://billing.internal/invoices/42").send().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AttachToken {
    token: TargetToken,
}

impl AttachToken {
    /// Attaches `token`'s target's token.
    pub fn new(token: TargetToken) -> Self {
        AttachToken { token }
    }
}

#[async_trait::async_trait]
impl Middleware for AttachToken {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<reqwest::Response> {
        let header = self.token.header().await.map_err(reqwest_middleware::Error::middleware)?;
        // `None` for a streaming body: such a request is never sent twice.
        let replay = request.try_clone();
        request.headers_mut().insert(AUTHORIZATION, header.clone());
        let response = next.clone().run(request, extensions).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED || !says_invalid_token(response.headers()) {
            return Ok(response);
        }
        // The token is dropped whether or not this request can be sent again.
        let dropped = self.token.reject(&header);
        let Some(mut again) = replay.filter(|_| dropped) else { return Ok(response) };
        // No new token yet (a backoff, the floor after the last request): the
        // downstream's answer stands.
        let Ok(header) = self.token.header().await else { return Ok(response) };
        again.headers_mut().insert(AUTHORIZATION, header);
        next.run(again, extensions).await
    }
}

/// Attaches a token exchanged for the caller (RFC 8693) to each request that carries the
/// caller's [`InboundToken`](crate::InboundToken) as a request extension
/// (`.with_extension(inbound)`); a request without one is not sent
/// ([`TokenSourceError::MissingSubject`]). The caller's token itself is never forwarded.
/// After a `401 invalid_token` the exchanged token is dropped (once per cooldown) and a
/// replayable request sent once more with a new one.
///
/// ```no_run
/// use auth_core::client::reqwest_middleware::ExchangeToken;
/// use auth_core::client::{TokenExchange, TokenTarget};
///
/// # async fn run(exchange: TokenExchange, caller: auth_core::InboundToken) -> Result<(), Box<dyn std::error::Error>> {
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ExchangeToken::new(exchange, TokenTarget::resource("https://billing.internal")))
///     .build();
/// let invoice = client.get("https://billing.internal/invoices/42").with_extension(caller).send().await?;
/// # drop(invoice);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ExchangeToken {
    exchange: TokenExchange,
    target: TokenTarget,
}

impl ExchangeToken {
    /// Exchanges for `target` with `exchange`.
    pub fn new(exchange: TokenExchange, target: TokenTarget) -> Self {
        ExchangeToken { exchange, target }
    }
}

#[async_trait::async_trait]
impl Middleware for ExchangeToken {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<reqwest::Response> {
        let subject = extensions
            .get::<crate::InboundToken>()
            .cloned()
            .ok_or_else(|| reqwest_middleware::Error::middleware(TokenSourceError::MissingSubject))?;
        let token =
            self.exchange.token_for(&subject, &self.target).await.map_err(reqwest_middleware::Error::middleware)?;
        let replay = request.try_clone();
        request.headers_mut().insert(AUTHORIZATION, token.header_value().clone());
        let response = next.clone().run(request, extensions).await?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED || !says_invalid_token(response.headers()) {
            return Ok(response);
        }
        // Dropped whether or not this request can be sent again; then once more.
        let dropped = self.exchange.reject(&subject, &self.target, token.header_value());
        let Some(mut again) = replay.filter(|_| dropped) else { return Ok(response) };
        let Ok(token) = self.exchange.token_for(&subject, &self.target).await else { return Ok(response) };
        again.headers_mut().insert(AUTHORIZATION, token.header_value().clone());
        next.run(again, extensions).await
    }
}
