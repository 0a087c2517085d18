//! The calling side for `reqwest-middleware` users (feature `reqwest-middleware`).

use http::HeaderValue;
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
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<reqwest::Response> {
        let header = self.token.header().await.map_err(reqwest_middleware::Error::middleware)?;
        let token = &self.token;
        // No new token yet (a backoff, the floor after the last request): the
        // downstream's answer stands.
        let renew = async || token.header().await.ok();
        send_once_more_after_invalid_token(request, extensions, next, header, |sent| token.reject(sent), renew).await
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
        request: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> Result<reqwest::Response> {
        let subject = extensions
            .get::<crate::InboundToken>()
            .cloned()
            .ok_or_else(|| reqwest_middleware::Error::middleware(TokenSourceError::MissingSubject))?;
        let token =
            self.exchange.token_for(&subject, &self.target).await.map_err(reqwest_middleware::Error::middleware)?;
        let (exchange, target) = (&self.exchange, &self.target);
        let reject = |sent: &HeaderValue| exchange.reject(&subject, target, sent);
        let renew = async || exchange.token_for(&subject, target).await.ok().map(|t| t.header_value().clone());
        send_once_more_after_invalid_token(request, extensions, next, token.header_value().clone(), reject, renew).await
    }
}

/// Sends `request` with `header`. After a `401` with `error="invalid_token"`, `reject`
/// drops the token (it says whether it did: at most once per cooldown), and when it did
/// and the request can be replayed (`None` for a streaming body), the request goes once
/// more with the header `renew` gives; without one, the first answer stands.
async fn send_once_more_after_invalid_token(
    mut request: reqwest::Request,
    extensions: &mut http::Extensions,
    next: Next<'_>,
    header: HeaderValue,
    reject: impl FnOnce(&HeaderValue) -> bool,
    renew: impl AsyncFnOnce() -> Option<HeaderValue>,
) -> Result<reqwest::Response> {
    let replay = request.try_clone();
    request.headers_mut().insert(AUTHORIZATION, header.clone());
    let response = next.clone().run(request, extensions).await?;
    if !says_invalid_token(response.status(), response.headers()) {
        return Ok(response);
    }
    // The token is dropped whether or not this request can be sent again.
    let dropped = reject(&header);
    let Some(mut again) = replay.filter(|_| dropped) else { return Ok(response) };
    let Some(header) = renew().await else { return Ok(response) };
    again.headers_mut().insert(AUTHORIZATION, header);
    next.run(again, extensions).await
}
