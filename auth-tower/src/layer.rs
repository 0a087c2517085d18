//! [`AuthLayer`] and the [`AuthService`] it wraps services in.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use auth_core::{AccessPolicy, ConfigError, Validator};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, header};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::LayerRan;
use crate::rejection::{JsonRejection, OnRejection};

/// The body of an [`AuthService`] response: the inner service's, or the rejection's.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// Authenticates requests with an [`AccessPolicy`] before they reach the inner service.
///
/// ```
/// use auth_core::{AccessPolicy, Issuer, Validator};
/// use auth_tower::{AuthLayer, GrpcRejection};
///
/// # fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let validator = Validator::builder()
///     .issuer(Issuer::discovery("https://idp.example.com").audience("orders-api"))
///     .build()?;
/// let read = AuthLayer::require_scopes(&validator, ["orders:read"])?;
/// let write = AuthLayer::require_scopes(&validator, ["orders:write"])?;
/// let anyone = AuthLayer::new(AccessPolicy::new(validator.clone()));
/// let optional = AuthLayer::new(AccessPolicy::new(validator.clone()).optional());
/// let grpc = AuthLayer::new(AccessPolicy::new(validator)).on_rejection(GrpcRejection);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AuthLayer<R = JsonRejection> {
    policy: AccessPolicy,
    on_rejection: R,
}

impl AuthLayer {
    /// A layer enforcing `policy`, answering rejections with [`JsonRejection`].
    pub fn new(policy: AccessPolicy) -> Self {
        AuthLayer { policy, on_rejection: JsonRejection }
    }

    /// A valid token carrying every one of `scopes`.
    pub fn require_scopes<I, S>(validator: &Validator, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::new(AccessPolicy::new(validator.clone()).require_scopes(scopes)?))
    }

    /// A valid token carrying at least one of `scopes`.
    pub fn require_any_scope<I, S>(validator: &Validator, scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(Self::new(AccessPolicy::new(validator.clone()).require_any_scope(scopes)?))
    }
}

impl<R> AuthLayer<R> {
    /// Shape rejection responses with `on_rejection` (for example [`GrpcRejection`](crate::GrpcRejection)).
    pub fn on_rejection<R2: OnRejection>(self, on_rejection: R2) -> AuthLayer<R2> {
        AuthLayer { policy: self.policy, on_rejection }
    }

    /// The policy this layer enforces.
    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }
}

impl<S, R: Clone> Layer<S> for AuthLayer<R> {
    type Service = AuthService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, policy: self.policy.clone(), on_rejection: self.on_rejection.clone() }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S, R = JsonRejection> {
    inner: S,
    policy: AccessPolicy,
    on_rejection: R,
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for AuthService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: OnRejection,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Use the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // Decided without I/O (a cached token, or a refusal from the headers alone): no
        // boxed future. Only a token that needs verifying takes the async path.
        let decided = {
            let authorization = request.headers().get_all(header::AUTHORIZATION).iter().map(|v| v.as_bytes());
            self.policy.check_cached(authorization, request.uri().query())
        };
        match decided {
            Some(Ok(principal)) => {
                admit(&mut request, principal, self.policy.validator());
                ResponseFuture { state: State::Inner { future: inner.call(request) } }
            }
            Some(Err(err)) => {
                let response = reject(&self.on_rejection, &self.policy, &err);
                ResponseFuture { state: State::Rejected { response: std::future::ready(Ok(response)) } }
            }
            None => {
                let policy = self.policy.clone();
                let on_rejection = self.on_rejection.clone();
                let future = Box::pin(async move {
                    let authorization = request.headers().get_all(header::AUTHORIZATION).iter().map(|v| v.as_bytes());
                    match policy.check(authorization, request.uri().query()).await {
                        Ok(principal) => {
                            admit(&mut request, principal, policy.validator());
                            Ok(inner.call(request).await?.map(Either::Left))
                        }
                        Err(err) => Ok(reject(&on_rejection, &policy, &err)),
                    }
                });
                ResponseFuture { state: State::Checking { future } }
            }
        }
    }
}

/// Hands the request's principal (and the proof the layer ran) to the extractors.
fn admit<B>(request: &mut Request<B>, principal: Option<auth_core::Principal>, validator: &Validator) {
    let extensions = request.extensions_mut();
    if let Some(principal) = principal {
        extensions.insert(principal);
    }
    extensions.insert(LayerRan { validator: validator.clone() });
}

fn reject<R: OnRejection, B>(
    on_rejection: &R,
    policy: &AccessPolicy,
    err: &auth_core::AuthError,
) -> Response<ResponseBody<B>> {
    on_rejection.on_rejection(err, &policy.rejection(err)).map(|body| Either::Right(Full::new(body)))
}

pin_project! {
    /// The response future of [`AuthService`].
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, E> {
        /// Admitted without I/O: the inner service's future.
        Inner { #[pin] future: F },
        /// Refused without calling the inner service.
        Rejected { response: Ready<Result<Response<ResponseBody<B>>, E>> },
        /// The token is being verified (a signature check, maybe a key fetch), then the
        /// inner service runs.
        Checking { future: BoxFuture<'static, Result<Response<ResponseBody<B>>, E>> },
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future } => future.poll(cx).map_ok(|response| response.map(Either::Left)),
            StateProj::Rejected { response } => Pin::new(response).poll(cx),
            StateProj::Checking { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> std::fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
