//! The orders service on actix-web with `auth-actix`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER};
use std::net::SocketAddr;

use actix_web::dev::Server;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, web};
use auth_actix::{AccessPolicy, AuthMiddleware, Authenticated};
use auth_core::{ConfigError, InboundToken, Validator};
use serde_json::json;

use crate::billing::{BillingClient, InvoiceReply};

/// Registers the routes: `GET /health` open, `GET /orders` needs `orders:read`,
/// `POST /orders` needs `orders:write`. Use with `App::new().configure(...)`. No billing
/// client: `GET /orders/{id}/invoice` answers 404.
pub fn routes(validator: &Validator) -> Result<impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static, ConfigError> {
    routes_with_billing(validator, None)
}

/// [`routes`], plus `GET /orders/{id}/invoice` (needs `orders:read`) calling the billing
/// service through `billing` when there is one: with the service's own token, or with
/// `?as=caller` with a token exchanged for the caller's (the route keeps the verified
/// inbound token for that; see [`crate::billing`]).
pub fn routes_with_billing(
    validator: &Validator,
    billing: Option<BillingClient>,
) -> Result<impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static, ConfigError> {
    let read = AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:read"])?);
    let write = AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:write"])?);
    // The verified token stays with the request, as the subject of `?as=caller`'s exchange.
    let invoice_read =
        AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:read"])?.keep_inbound_token());
    Ok(move |cfg: &mut web::ServiceConfig| {
        cfg.route("/health", web::get().to(|| async { "ok" })).service(
            web::resource("/orders")
                .route(web::get().to(list_orders).wrap(read.clone()))
                .route(web::post().to(create_order).wrap(write.clone())),
        );
        if let Some(billing) = &billing {
            let billing = billing.clone();
            // The raw path and query, as the axum app reads them: the id is checked as sent.
            let invoice = move |req: HttpRequest| {
                let billing = billing.clone();
                async move {
                    let caller = req.extensions().get::<InboundToken>().cloned();
                    let query = Some(req.query_string()).filter(|q| !q.is_empty());
                    reply(billing.answer(req.path(), query, caller.as_ref()).await)
                }
            };
            cfg.service(web::resource("/orders/{id}/invoice").route(web::get().to(invoice).wrap(invoice_read.clone())));
        }
    })
}

async fn list_orders(Authenticated(caller): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(crate::orders_listing(&caller))
}

async fn create_order(Authenticated(caller): Authenticated) -> HttpResponse {
    HttpResponse::Created().json(json!({ "caller": caller.claims().client(), "id": 2 }))
}

/// An actix-web server of `routes` bound to `addr`, and its bound addresses: over HTTPS
/// with `tls` (each connection's client certificate read once, at the handshake, by
/// `auth_actix::client_certificate`, for certificate-bound tokens), else plain HTTP.
/// `workers` as actix-web's (`None`: its default); `signals: false` leaves SIGINT and
/// SIGTERM alone (servers inside tests).
pub fn server<R>(
    routes: R,
    addr: SocketAddr,
    tls: Option<&rustls::ServerConfig>,
    workers: Option<usize>,
    signals: bool,
) -> std::io::Result<(Server, Vec<SocketAddr>)>
where
    R: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let mut server =
        HttpServer::new(move || App::new().configure(routes.clone())).on_connect(auth_actix::client_certificate);
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    let server = match tls {
        Some(config) => server.bind_rustls_0_23(addr, config.clone())?,
        None => server.bind(addr)?,
    };
    let addrs = server.addrs();
    let server = if signals { server } else { server.disable_signals() };
    Ok((server.run(), addrs))
}

fn reply(reply: InvoiceReply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((CONTENT_TYPE, "application/json"));
    if let Some(secs) = reply.retry_after {
        response.insert_header((RETRY_AFTER, secs.to_string()));
    }
    response.body(reply.body)
}
