//! The calling side for tower clients (feature `client`): hyper-util's client, tonic's
//! `Channel`, any `Service<http::Request<_>>`.

use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use auth_core::client::{TargetToken, TokenSourceError, says_invalid_token};
use http::header::AUTHORIZATION;
use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

/// A boxed error, as tower and tonic use.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Attaches the service's own token (from a [`TargetToken`]) to every outbound request.
///
/// When the downstream answers `401` with `error="invalid_token"` (gRPC: status 16), the
/// token is dropped if it is still the cached one (at most once per cooldown) and the
/// request is sent once more with a new token, when its body can be replayed
/// ([`ReplayBody`]: no body or a buffered one, never a stream). Without a token, the
/// request is not sent and the error is [`NoToken`] (for tonic, status `UNAVAILABLE`).
///
/// ```no_run
/// use auth_core::client::{ClientAuth, TokenSource, TokenTarget};
/// use auth_tower::client::AttachTokenLayer;
/// use tower::ServiceBuilder;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = TokenSource::builder("orders-service")
///     .issuer("https://idp.example.com")
///     .client_auth(ClientAuth::client_secret_basic("s3cret"))
///     .build()?;
/// let billing = tokens.target(TokenTarget::resource("https://billing.internal"))?;
/// let channel = tonic::transport::Channel::from_static("https://billing.internal").connect().await?;
/// let channel = ServiceBuilder::new().layer(AttachTokenLayer::new(billing)).service(channel);
/// // `channel` goes where a generated tonic client takes a `Channel`.
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AttachTokenLayer {
    token: TargetToken,
}

impl AttachTokenLayer {
    /// Attaches `token`'s target's token.
    pub fn new(token: TargetToken) -> Self {
        AttachTokenLayer { token }
    }
}

impl<S> Layer<S> for AttachTokenLayer {
    type Service = AttachToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AttachToken { inner, token: self.token.clone() }
    }
}

/// The service of [`AttachTokenLayer`].
#[derive(Debug, Clone)]
pub struct AttachToken<S> {
    inner: S,
    token: TargetToken,
}

impl<S> AttachToken<S> {
    inner_service_accessors!();
}

/// The response future of [`AttachToken`].
pub type AttachTokenFuture<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AttachToken<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqBody: ReplayBody + Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = AttachTokenFuture<Response<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let mut inner = crate::take_ready(&mut self.inner);
        let token = self.token.clone();
        let cached = token.cached_header();
        Box::pin(async move {
            let header = match cached {
                Some(header) => header,
                None => token.header().await.map_err(NoToken::boxed)?,
            };
            let replay = replayable(&request);
            request.headers_mut().insert(AUTHORIZATION, header.clone());
            let response = inner.call(request).await.map_err(Into::into)?;
            if !says_invalid_token(response.status(), response.headers()) {
                return Ok(response);
            }
            // The token is dropped whether or not this request can be sent again.
            let dropped = token.reject(&header);
            let Some(mut again) = replay.filter(|_| dropped) else { return Ok(response) };
            // No new token yet (a backoff, the floor after the last request): the
            // downstream's answer stands.
            let Ok(header) = token.header().await else { return Ok(response) };
            again.headers_mut().insert(AUTHORIZATION, header);
            poll_fn(|cx| inner.poll_ready(cx)).await.map_err(Into::into)?;
            inner.call(again).await.map_err(Into::into)
        })
    }
}

/// A copy of `request` for a second attempt, if its body can be replayed.
fn replayable<B: ReplayBody>(request: &Request<B>) -> Option<Request<B>> {
    let body = request.body().replay()?;
    let mut copy = Request::new(body);
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    Some(copy)
}

/// A request body that can be sent a second time (after the downstream refused the
/// token): buffered bodies can, streams cannot. Implement it for your own body type;
/// return `None` to never replay.
pub trait ReplayBody: Sized {
    /// A copy of the body, if it can be sent again.
    fn replay(&self) -> Option<Self>;
}

impl<D: Clone> ReplayBody for http_body_util::Full<D> {
    fn replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for http_body_util::Empty<D> {
    fn replay(&self) -> Option<Self> {
        Some(http_body_util::Empty::new())
    }
}

impl ReplayBody for bytes::Bytes {
    fn replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl ReplayBody for String {
    fn replay(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D, E> ReplayBody for http_body_util::combinators::BoxBody<D, E> {
    fn replay(&self) -> Option<Self> {
        None
    }
}

impl<D, E> ReplayBody for http_body_util::combinators::UnsyncBoxBody<D, E> {
    fn replay(&self) -> Option<Self> {
        None
    }
}

#[cfg(feature = "axum")]
impl ReplayBody for axum::body::Body {
    fn replay(&self) -> Option<Self> {
        None
    }
}

#[cfg(feature = "tonic")]
impl ReplayBody for tonic::body::Body {
    /// gRPC bodies are streams: never replayed.
    fn replay(&self) -> Option<Self> {
        None
    }
}

/// The request was not sent: no token could be had. For tonic (feature `tonic`), its
/// source is a `tonic::Status` with code `UNAVAILABLE`, which tonic clients report.
pub struct NoToken {
    error: TokenSourceError,
    #[cfg(feature = "tonic")]
    status: tonic::Status,
}

impl NoToken {
    fn boxed(error: TokenSourceError) -> BoxError {
        Box::new(NoToken {
            #[cfg(feature = "tonic")]
            status: tonic::Status::unavailable(format!("no access token for the call: {error}")),
            error,
        })
    }

    /// Why there is no token (its `retry_after` tells when to try again).
    pub fn token_error(&self) -> &TokenSourceError {
        &self.error
    }
}

impl fmt::Debug for NoToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoToken").field("error", &self.error).finish()
    }
}

impl fmt::Display for NoToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no access token for the call: {}", self.error)
    }
}

impl StdError for NoToken {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        #[cfg(feature = "tonic")]
        return Some(&self.status);
        #[cfg(not(feature = "tonic"))]
        Some(&self.error)
    }
}

/// Attaches a token exchanged for the caller (RFC 8693) to each outbound request that
/// carries the caller's [`InboundToken`](auth_core::InboundToken) in its extensions (from
/// the inbound request, whose policy keeps it); a request without one is not sent
/// ([`NoToken`] with `TokenSourceError::MissingSubject`). The caller's token itself is
/// never forwarded, and the service's own token is never used in its place.
///
/// ```no_run
/// use auth_core::client::{TokenExchange, TokenTarget};
/// use auth_tower::client::OnBehalfOfLayer;
/// use tower::ServiceBuilder;
///
/// # fn run(exchange: TokenExchange) {
/// let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
///     .build_http::<http_body_util::Full<bytes::Bytes>>();
/// let billing = ServiceBuilder::new()
///     .layer(OnBehalfOfLayer::new(exchange, TokenTarget::resource("https://billing.internal")))
///     .service(client);
/// // Per call: request.extensions_mut().insert(inbound_token.clone());
/// # drop(billing);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct OnBehalfOfLayer {
    exchange: auth_core::client::TokenExchange,
    target: auth_core::client::TokenTarget,
}

impl OnBehalfOfLayer {
    /// Exchanges for `target` with `exchange`.
    pub fn new(exchange: auth_core::client::TokenExchange, target: auth_core::client::TokenTarget) -> Self {
        OnBehalfOfLayer { exchange, target }
    }
}

impl<S> Layer<S> for OnBehalfOfLayer {
    type Service = OnBehalfOf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OnBehalfOf { inner, exchange: self.exchange.clone(), target: self.target.clone() }
    }
}

/// The service of [`OnBehalfOfLayer`].
#[derive(Debug, Clone)]
pub struct OnBehalfOf<S> {
    inner: S,
    exchange: auth_core::client::TokenExchange,
    target: auth_core::client::TokenTarget,
}

impl<S> OnBehalfOf<S> {
    inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OnBehalfOf<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = AttachTokenFuture<Response<ResBody>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let mut inner = crate::take_ready(&mut self.inner);
        let (exchange, target) = (self.exchange.clone(), self.target.clone());
        Box::pin(async move {
            let subject = request
                .extensions_mut()
                .remove::<auth_core::InboundToken>()
                .ok_or_else(|| NoToken::boxed(TokenSourceError::MissingSubject))?;
            let token = exchange.token_for(&subject, &target).await.map_err(NoToken::boxed)?;
            request.headers_mut().insert(AUTHORIZATION, token.header_value().clone());
            let response = inner.call(request).await.map_err(Into::into)?;
            if says_invalid_token(response.status(), response.headers()) {
                // The next call on this caller's behalf gets a new exchanged token.
                exchange.reject(&subject, &target, token.header_value());
            }
            Ok(response)
        })
    }
}
