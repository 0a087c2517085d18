//! [`AuthLayer`] and the [`AuthService`] it wraps services in.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use auth_core::{AccessPolicy, ConfigError, Validator};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, header};
use http_body_util::{Either, Full};
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
    type Future = ResponseFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Use the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        let on_rejection = self.on_rejection.clone();
        ResponseFuture(Box::pin(async move {
            let authorization = request.headers().get_all(header::AUTHORIZATION).iter().map(|v| v.as_bytes());
            let outcome = policy.check(authorization, request.uri().query()).await;
            match outcome {
                Ok(principal) => {
                    let extensions = request.extensions_mut();
                    if let Some(principal) = principal {
                        extensions.insert(principal);
                    }
                    extensions.insert(LayerRan { validator: policy.validator().clone() });
                    Ok(inner.call(request).await?.map(Either::Left))
                }
                Err(err) => {
                    let response = on_rejection.on_rejection(&err, &policy.rejection(&err));
                    Ok(response.map(|body| Either::Right(Full::new(body))))
                }
            }
        }))
    }
}

/// The response future of [`AuthService`].
pub struct ResponseFuture<T, E>(BoxFuture<'static, Result<T, E>>);

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}
