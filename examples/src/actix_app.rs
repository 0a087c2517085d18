//! The orders service on actix-web with `auth-actix`.

use actix_web::{HttpResponse, web};
use auth_actix::{AccessPolicy, AuthMiddleware, Authenticated};
use auth_core::{ConfigError, Validator};
use serde_json::json;

/// Registers the routes: `GET /health` open, `GET /orders` needs `orders:read`,
/// `POST /orders` needs `orders:write`. Use with `App::new().configure(...)`.
pub fn routes(validator: &Validator) -> Result<impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static, ConfigError> {
    let read = AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:read"])?);
    let write = AuthMiddleware::new(AccessPolicy::new(validator.clone()).require_scopes(["orders:write"])?);
    Ok(move |cfg: &mut web::ServiceConfig| {
        cfg.route("/health", web::get().to(|| async { "ok" })).service(
            web::resource("/orders")
                .route(web::get().to(list_orders).wrap(read.clone()))
                .route(web::post().to(create_order).wrap(write.clone())),
        );
    })
}

async fn list_orders(Authenticated(caller): Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "caller": caller.claims().client(), "orders": [{ "id": 1, "item": "coffee" }] }))
}

async fn create_order(Authenticated(caller): Authenticated) -> HttpResponse {
    HttpResponse::Created().json(json!({ "caller": caller.claims().client(), "id": 2 }))
}
