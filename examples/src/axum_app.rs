//! The orders service on axum with `auth-tower`.

use auth_core::{ConfigError, Validator};
use auth_tower::{AuthLayer, Authenticated};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// The router: `GET /health` open, `GET /orders` needs `orders:read`, `POST /orders`
/// needs `orders:write`.
pub fn router(validator: &Validator) -> Result<Router, ConfigError> {
    let read = AuthLayer::require_scopes(validator, ["orders:read"])?;
    let write = AuthLayer::require_scopes(validator, ["orders:write"])?;
    Ok(Router::new()
        .route("/health", get(|| async { "ok" }))
        // Each method gets its own requirement: a layer added with `route_layer` covers
        // the methods registered before it, so the two are built apart and merged.
        .route("/orders", get(list_orders).route_layer(read).merge(post(create_order).route_layer(write))))
}

async fn list_orders(Authenticated(caller): Authenticated) -> Json<Value> {
    Json(json!({ "caller": caller.claims().client(), "orders": [{ "id": 1, "item": "coffee" }] }))
}

async fn create_order(Authenticated(caller): Authenticated) -> (StatusCode, Json<Value>) {
    (StatusCode::CREATED, Json(json!({ "caller": caller.claims().client(), "id": 2 })))
}
