//! The middleware: [`AuthMiddleware`] (a [`Transform`]) and the service it wraps
//! around a route, [`AuthMiddlewareService`].

use std::fmt;
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header;
use actix_web::{Error, HttpMessage, HttpResponse};
use auth_core::{AccessPolicy, AuthError, Principal, Rejection};
use futures_util::future::LocalBoxFuture;

use crate::response::{ErrorHandler, rejection_response};

/// actix-web middleware that authenticates every request against an [`AccessPolicy`].
///
/// It reads every `Authorization` header and the query string, asks
/// [`AccessPolicy::check`] for the decision, and then either
///
/// - passes the request on, with the verified [`Principal`] (or, for an
///   [optional](AccessPolicy::optional) policy without a token, its absence) stored for
///   the [`Authenticated`](crate::Authenticated), [`MaybeAuthenticated`](crate::MaybeAuthenticated)
///   and [`TypedClaims`](crate::TypedClaims) extractors, or
/// - answers at once, without calling the route: 400, 401, 403 or 503 with a
///   `WWW-Authenticate: Bearer ...` challenge and a JSON body (see
///   [`rejection_response`](crate::rejection_response)), or what your
///   [`on_error`](Self::on_error) handler returns.
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
    on_error: Option<ErrorHandler>,
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
        AuthMiddleware { policy, on_error: None }
    }

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
    /// let middleware = AuthMiddleware::new(policy).on_error(|err: &AuthError, rejection: &Rejection| {
    ///     HttpResponse::build(StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::UNAUTHORIZED))
    ///         .insert_header(("WWW-Authenticate", rejection.www_authenticate.as_str()))
    ///         .body(format!("denied: {}", err.body_code()))
    /// });
    /// # }
    /// ```
    pub fn on_error<F>(mut self, handler: F) -> Self
    where
        F: Fn(&AuthError, &Rejection) -> HttpResponse + Send + Sync + 'static,
    {
        self.on_error = Some(Arc::new(handler));
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
        f.debug_struct("AuthMiddleware").field("custom_error_handler", &self.on_error.is_some()).finish_non_exhaustive()
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
        let guard = Rc::new(Guard { policy: self.policy.clone(), on_error: self.on_error.clone() });
        ready(Ok(AuthMiddlewareService { service: Rc::new(service), guard }))
    }
}

/// The service [`AuthMiddleware`] puts in front of a route; built by actix-web, not by you.
pub struct AuthMiddlewareService<S> {
    service: Rc<S>,
    guard: Rc<Guard>,
}

impl<S> fmt::Debug for AuthMiddlewareService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthMiddlewareService").finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for AuthMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let guard = Rc::clone(&self.guard);
        Box::pin(async move {
            let decision = {
                let authorization = req.headers().get_all(header::AUTHORIZATION).map(|value| value.as_bytes());
                let query = Some(req.query_string()).filter(|query| !query.is_empty());
                guard.policy.check(authorization, query).await
            };
            match decision {
                Ok(principal) => {
                    req.extensions_mut().insert(AuthOutcome { principal, guard });
                    let response = service.call(req).await?;
                    Ok(response.map_into_left_body())
                }
                Err(err) => {
                    tracing::debug!(
                        reason = err.reason().as_str(),
                        status = err.status(),
                        method = %req.method(),
                        "request rejected by the authentication middleware"
                    );
                    let response = guard.respond(&err);
                    Ok(req.into_response(response).map_into_right_body())
                }
            }
        })
    }
}

/// One middleware's policy and error handler, shared with the extractors of the
/// requests it let through.
pub(crate) struct Guard {
    pub(crate) policy: AccessPolicy,
    on_error: Option<ErrorHandler>,
}

impl Guard {
    /// The response to `err`: the user's handler's, else the default.
    pub(crate) fn respond(&self, err: &AuthError) -> HttpResponse {
        let rejection = self.policy.rejection(err);
        match &self.on_error {
            Some(handler) => handler(err, &rejection),
            None => rejection_response(&rejection),
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
    pub(crate) guard: Rc<Guard>,
}
