//! The middleware: [`AuthMiddleware`] (a [`Transform`]) and the service it wraps
//! around a route, [`AuthMiddlewareService`].

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header;
use actix_web::{Error, HttpMessage, HttpResponse};

use auth_core::{
    AccessPolicy, Admission, AuthError, ClientCertificate, Decision, Headers, Principal, Refusal, Rejection,
    RequestContext,
};
use futures_util::future::LocalBoxFuture;
use pin_project_lite::pin_project;

use crate::rejection::{ErrorHandler, rejection_response};

/// actix-web middleware that authenticates every request against an [`AccessPolicy`].
///
/// It hands the request (method, target, headers, peer and, when the connection has one,
/// its client certificate: an `Arc<ClientCertificate>` in the connection data, put there
/// by [`client_certificate`](crate::client_certificate) with the `rustls` feature) to
/// [`AccessPolicy::decide`] and then either
///
/// - passes the request on, with the verified [`Principal`] (or, for an
///   [optional](AccessPolicy::optional) policy without a token, its absence) stored for
///   the [`Authenticated`](crate::Authenticated), [`MaybeAuthenticated`](crate::MaybeAuthenticated)
///   and [`TypedClaims`](crate::TypedClaims) extractors, or
/// - answers at once, without calling the route: 400, 401, 403 or 503 with a
///   `WWW-Authenticate: Bearer ...` challenge and a JSON body (see
///   [`rejection_response`](crate::rejection_response)), or what your
///   [`on_rejection`](Self::on_rejection) handler returns.
///
/// Wrap an [`App`](actix_web::App), a [`web::scope`](actix_web::web::scope), a
/// [`web::resource`](actix_web::web::resource) or a single [`Route`](actix_web::Route).
/// Routes with different scope requirements get middlewares built from different
/// policies; for one path with different requirements per method, wrap the routes:
///
/// ```no_run
/// use actix_web::{App, HttpResponse, HttpServer, web};
/// use auth_actix::{AccessPolicy, AuthMiddleware, Authenticated, Issuer, Validator};
///
/// async fn list_orders(caller: Authenticated) -> HttpResponse {
///     HttpResponse::Ok().body(format!("orders for {:?}", caller.claims().client()))
/// }
///
/// async fn create_order(_caller: Authenticated) -> HttpResponse {
///     HttpResponse::Created().finish()
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let validator = Validator::builder()
///     .issuer(Issuer::discovery("https://idp.example.com").audience("orders-api"))
///     .build()?;
/// let read = AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:read"])?);
/// let write = AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:write"])?);
/// let admin = AuthMiddleware::new(AccessPolicy::new(validator).require_scopes(["admin"])?);
///
/// HttpServer::new(move || {
///     App::new()
///         // GET /orders needs orders:read, POST /orders needs orders:write.
///         .service(
///             web::resource("/orders")
///                 .route(web::get().to(list_orders).wrap(read.clone()))
///                 .route(web::post().to(create_order).wrap(write.clone())),
///         )
///         // Everything under /admin needs admin.
///         .service(web::scope("/admin").wrap(admin.clone()).route("/stats", web::get().to(list_orders)))
/// })
/// .bind(("127.0.0.1", 8080))?
/// .run()
/// .await?;
/// # Ok(()) }
/// ```
///
/// Nested middlewares each decide on their own (a request passes only if every one lets
/// it through); the extractors see what the innermost one found.
#[derive(Clone)]
pub struct AuthMiddleware {
    policy: AccessPolicy,
    on_rejection: Option<ErrorHandler>,
}

impl AuthMiddleware {
    /// A middleware that enforces `policy`, answering rejections with
    /// [`rejection_response`](crate::rejection_response).
    ///
    /// ```
    /// # fn f(validator: auth_actix::Validator) -> Result<(), auth_actix::ConfigError> {
    /// use auth_actix::{AccessPolicy, AuthMiddleware};
    ///
    /// let orders = AuthMiddleware::new(AccessPolicy::new(validator).require_scopes(["orders:read"])?);
    /// # Ok(()) }
    /// ```
    pub fn new(policy: AccessPolicy) -> Self {
        AuthMiddleware { policy, on_rejection: None }
    }

    auth_core::scope_constructors!();

    /// Answers rejected requests with `handler`'s response instead of the default JSON
    /// one. The handler gets the error and the default response parts (status,
    /// `WWW-Authenticate` value, JSON body, `Retry-After`), and is also used by the
    /// extractors when they reject a request that passed this middleware (a missing token
    /// behind an optional policy, claims that do not fit [`TypedClaims`](crate::TypedClaims)).
    ///
    /// Keep the `WWW-Authenticate` header for 401 responses: RFC 7235 requires it.
    ///
    /// ```
    /// # fn f(policy: auth_actix::AccessPolicy) {
    /// use actix_web::HttpResponse;
    /// use actix_web::http::StatusCode;
    /// use auth_actix::{AuthError, AuthMiddleware, Rejection};
    ///
    /// let middleware = AuthMiddleware::new(policy).on_rejection(|err: &AuthError, rejection: &Rejection| {
    ///     HttpResponse::build(StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED))
    ///         .insert_header(("WWW-Authenticate", rejection.www_authenticate()))
    ///         .body(format!("denied: {}", err.body_code()))
    /// });
    /// # }
    /// ```
    pub fn on_rejection<F>(mut self, handler: F) -> Self
    where
        F: Fn(&AuthError, &Rejection) -> HttpResponse + Send + Sync + 'static,
    {
        self.on_rejection = Some(Arc::new(handler));
        self
    }

    /// The policy this middleware enforces.
    pub fn policy(&self) -> &AccessPolicy {
        &self.policy
    }
}

impl From<AccessPolicy> for AuthMiddleware {
    fn from(policy: AccessPolicy) -> Self {
        AuthMiddleware::new(policy)
    }
}

impl fmt::Debug for AuthMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("custom_error_handler", &self.on_rejection.is_some())
            .finish_non_exhaustive()
    }
}

impl<S, B> Transform<S, ServiceRequest> for AuthMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = AuthMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let shared = Rc::new(MiddlewareShared { policy: self.policy.clone(), on_rejection: self.on_rejection.clone() });
        ready(Ok(AuthMiddlewareService { service: Rc::new(service), shared }))
    }
}

/// The service [`AuthMiddleware`] puts in front of a route; built by actix-web, not by you.
pub struct AuthMiddlewareService<S> {
    service: Rc<S>,
    shared: Rc<MiddlewareShared>,
}

impl<S> fmt::Debug for AuthMiddlewareService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddlewareService").finish_non_exhaustive()
    }
}

/// actix-web's header map, as the core reads headers.
struct ActixHeaders<'a>(&'a actix_web::http::header::HeaderMap);

impl Headers for ActixHeaders<'_> {
    fn values<'h>(&'h self, name: &'static str) -> impl Iterator<Item = &'h [u8]> + 'h {
        self.0.get_all(name).map(|value| value.as_bytes())
    }
}

impl<S, B> Service<ServiceRequest> for AuthMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let decision = {
            let headers = ActixHeaders(req.headers());
            let target = req.uri().path_and_query().map_or("/", |target| target.as_str());
            let context = RequestContext::new(req.method().as_str(), target, &headers);
            let context = match req.peer_addr() {
                Some(peer) => context.peer_addr(peer),
                None => context,
            };
            // Put there once per connection by `client_certificate` (or your own
            // `on_connect`); without one, a lookup in an absent or tiny map.
            let context = match req.conn_data::<Arc<ClientCertificate>>() {
                Some(certificate) => context.client_certificate(certificate),
                None => context,
            };
            self.shared.policy.decide(&context)
        };
        match decision {
            // Decided without I/O (a cached token, or a refusal): no boxed future.
            Decision::Admit(admission) => {
                let headers = admit(&req, admission, &self.shared);
                ResponseFuture { state: State::Inner { future: self.service.call(req), headers } }
            }
            Decision::Refuse(refusal) => {
                let response = req.into_response(self.shared.respond(&refusal)).map_into_right_body();
                ResponseFuture { state: State::Rejected { response: Some(response) } }
            }
            Decision::Verify(verification) => {
                let (service, shared) = (Rc::clone(&self.service), Rc::clone(&self.shared));
                let future = Box::pin(async move {
                    match verification.run().await {
                        Ok(admission) => {
                            let headers = admit(&req, admission, &shared);
                            let response = service.call(req).await?;
                            Ok(with_headers(response.map_into_left_body(), headers))
                        }
                        Err(refusal) => Ok(req.into_response(shared.respond(&refusal)).map_into_right_body()),
                    }
                });
                ResponseFuture { state: State::Verifying { future } }
            }
        }
    }
}

/// Stores the outcome for the extractors; returns the headers the response gets.
fn admit(req: &ServiceRequest, admission: Admission, shared: &Rc<MiddlewareShared>) -> Vec<(&'static str, String)> {
    let mut extensions = req.extensions_mut();
    if let Some(inbound) = admission.inbound_token {
        // For the calling side's token exchange (`web::ReqData<InboundToken>`).
        extensions.insert(inbound);
    }
    extensions.insert(AuthOutcome { principal: admission.principal, shared: Rc::clone(shared) });
    admission.response_headers
}

fn with_headers<B>(mut response: ServiceResponse<B>, headers: Vec<(&'static str, String)>) -> ServiceResponse<B> {
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (header::HeaderName::try_from(name), header::HeaderValue::from_str(&value)) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

pin_project! {
    /// The response future of [`AuthMiddlewareService`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        /// Admitted without I/O: the route's future.
        Inner { #[pin] future: F, headers: Vec<(&'static str, String)> },
        /// Refused without calling the route.
        Rejected { response: Option<ServiceResponse<EitherBody<B>>> },
        /// The token is being verified, then the route runs.
        Verifying { future: LocalBoxFuture<'static, Result<ServiceResponse<EitherBody<B>>, Error>> },
    }
}

impl<F, B> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = Result<ServiceResponse<EitherBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Inner { future, headers } => {
                future.poll(cx).map_ok(|response| with_headers(response.map_into_left_body(), std::mem::take(headers)))
            }
            StateProj::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Ready(Err(actix_web::error::ErrorInternalServerError("polled after completion"))),
            },
            StateProj::Verifying { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// One middleware's policy and error handler, shared with the extractors of the
/// requests it let through.
pub(crate) struct MiddlewareShared {
    pub(crate) policy: AccessPolicy,
    on_rejection: Option<ErrorHandler>,
}

impl MiddlewareShared {
    /// The response to a refusal: the user's handler's, else the default.
    pub(crate) fn respond(&self, refusal: &Refusal) -> HttpResponse {
        match &self.on_rejection {
            Some(handler) => handler(&refusal.error, &refusal.rejection),
            None => rejection_response(&refusal.rejection),
        }
    }
}

/// Proof, in request extensions, that an [`AuthMiddleware`] let the request through, and
/// with whom: `None` only for an optional policy and a request without a token.
///
/// When middlewares are nested, the innermost one (closest to the route) writes last.
#[derive(Clone)]
pub(crate) struct AuthOutcome {
    pub(crate) principal: Option<Principal>,
    pub(crate) shared: Rc<MiddlewareShared>,
}
