//! [`AuthLayer`] and the [`AuthService`] it wraps services in.

use std::future::{Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;

use auth_core::{AccessPolicy, Admission, Decision, Refusal, RequestContext};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::rejection::{JsonRejection, OnRejection};
use crate::{LayerRan, LayerShared};

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
#[derive(Clone, Debug)]
pub struct AuthLayer<R = JsonRejection> {
    policy: AccessPolicy,
    on_rejection: R,
}

impl AuthLayer {
    /// A layer enforcing `policy`, answering rejections with [`JsonRejection`].
    pub fn new(policy: AccessPolicy) -> Self {
        AuthLayer { policy, on_rejection: JsonRejection }
    }

    auth_core::scope_constructors!();
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

impl<S, R: OnRejection> Layer<S> for AuthLayer<R> {
    type Service = AuthService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        let on_rejection = self.on_rejection.clone();
        let shared = Arc::new(LayerShared {
            validator: self.policy.validator().clone(),
            render: Box::new(move |refusal: &Refusal| on_rejection.on_rejection(&refusal.error, &refusal.rejection)),
        });
        AuthService { inner, policy: self.policy.clone(), on_rejection: self.on_rejection.clone(), shared }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S, R = JsonRejection> {
    inner: S,
    policy: AccessPolicy,
    on_rejection: R,
    shared: Arc<LayerShared>,
}

impl<S, R> AuthService<S, R> {
    inner_service_accessors!();
}

impl<S, R> std::fmt::Debug for AuthService<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
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
        let mut inner = crate::take_ready(&mut self.inner);
        #[cfg(feature = "tonic-tls")]
        crate::certificate::from_tonic(&mut request);
        let decision = self.policy.decide(&context(&request));
        match decision {
            Decision::Admit(admission) => {
                let headers = admit(&mut request, admission, &self.shared);
                ResponseFuture { state: State::Inner { future: inner.call(request), headers } }
            }
            Decision::Refuse(refusal) => {
                let response = render(&self.on_rejection, &refusal);
                ResponseFuture { state: State::Rejected { response: std::future::ready(Ok(response)) } }
            }
            Decision::Verify(verification) => {
                // Only a token that needs verifying takes the boxed, asynchronous path.
                let (shared, on_rejection) = (self.shared.clone(), self.on_rejection.clone());
                let future = Box::pin(async move {
                    match verification.run().await {
                        Ok(admission) => {
                            let headers = admit(&mut request, admission, &shared);
                            let response = inner.call(request).await?;
                            Ok(with_headers(response.map(Either::Left), headers))
                        }
                        Err(refusal) => Ok(render(&on_rejection, &refusal)),
                    }
                });
                ResponseFuture { state: State::Checking { future } }
            }
        }
    }
}

/// What the core needs to know of the request: method, target (with the `original-uri`
/// feature, the one before axum's `Router::nest` rewrote it), headers, and the peer when
/// axum's `ConnectInfo` is there.
fn context<B>(request: &Request<B>) -> RequestContext<'_, http::HeaderMap> {
    let target = request.uri().path_and_query().map_or("/", |target| target.as_str());
    let context = RequestContext::new(request.method().as_str(), target, request.headers());
    #[cfg(feature = "original-uri")]
    let context = match request.extensions().get::<axum::extract::OriginalUri>() {
        Some(original) => context.original_target(original.0.path_and_query().map_or("/", |target| target.as_str())),
        None => context,
    };
    #[cfg(feature = "axum")]
    let context = match request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
        Some(peer) => context.peer_addr(peer.0),
        None => context,
    };
    // The connection's client certificate and peer, as the serving helper
    // (`auth_tower::tls`) or the tonic support put them in the extensions.
    let extensions = request.extensions();
    match extensions.get::<crate::certificate::Connection>() {
        Some(connection) => match &connection.certificate {
            Some(certificate) => context.peer_addr(connection.peer).client_certificate(certificate),
            None => context.peer_addr(connection.peer),
        },
        None => context,
    }
}

/// Hands the request's principal (and the proof the layer ran) to the extractors;
/// returns the headers the response gets.
fn admit<B>(request: &mut Request<B>, admission: Admission, shared: &Arc<LayerShared>) -> Vec<(&'static str, String)> {
    let extensions = request.extensions_mut();
    if let Some(principal) = admission.principal {
        extensions.insert(principal);
    }
    if let Some(inbound) = admission.inbound_token {
        // For the calling side's token exchange (`auth_tower::client::OnBehalfOfLayer`).
        extensions.insert(inbound);
    }
    extensions.insert(LayerRan(shared.clone()));
    admission.response_headers
}

fn with_headers<B>(mut response: Response<B>, headers: Vec<(&'static str, String)>) -> Response<B> {
    for (name, value) in headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn render<R: OnRejection, B>(on_rejection: &R, refusal: &Refusal) -> Response<ResponseBody<B>> {
    on_rejection.on_rejection(&refusal.error, &refusal.rejection).map(|body| Either::Right(Full::new(body)))
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
        Inner { #[pin] future: F, headers: Vec<(&'static str, String)> },
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
            StateProj::Inner { future, headers } => {
                future.poll(cx).map_ok(|response| with_headers(response.map(Either::Left), std::mem::take(headers)))
            }
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
