//! The orders service on actix-web. Configure with AUTH_ISSUER, AUTH_AUDIENCE,
//! AUTH_JWKS_URL (optional) and BIND_ADDR (default 127.0.0.1:8080); HTTPS with
//! AUTH_TLS_CERT and AUTH_TLS_KEY (+ AUTH_TLS_CLIENT_CA to request client certificates),
//! certificate-bound tokens with AUTH_CERT_BINDING and AUTH_TRUSTED_PROXIES, an issuer
//! CA with AUTH_CA_CERT; for the invoice route's downstream call, BILLING_URL,
//! BILLING_RESOURCE, AUTH_CLIENT_ID, and AUTH_CLIENT_SECRET or AUTH_CLIENT_KEY (+
//! AUTH_CLIENT_KEY_ID, AUTH_CLIENT_KEY_ALG), AUTH_TOKEN_SCOPE (optional). See the README.

use examples::config::ServiceConfig;

#[actix_web::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("actix_service: {err}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let config = ServiceConfig::from_env()?;
    let validator = config.validator()?;
    let billing = config.billing_client()?;
    let routes = examples::actix_app::routes_with_billing(&validator, billing).map_err(|e| e.to_string())?;
    let tls = config.tls.as_ref().map(|tls| tls.server_config());
    let (server, _) = examples::actix_app::server(routes, config.bind, tls.as_deref(), None, true)
        .map_err(|e| format!("BIND_ADDR {}: {e}", config.bind))?;
    println!("actix_service listening on {}://{}", config.scheme(), config.bind);
    server.await.map_err(|e| e.to_string())
}
