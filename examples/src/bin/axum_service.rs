//! The orders service on axum. Configure with AUTH_ISSUER, AUTH_AUDIENCE,
//! AUTH_JWKS_URL (optional) and BIND_ADDR (default 127.0.0.1:8080); HTTPS with
//! AUTH_TLS_CERT and AUTH_TLS_KEY (+ AUTH_TLS_CLIENT_CA to request client certificates),
//! certificate-bound tokens with AUTH_CERT_BINDING and AUTH_TRUSTED_PROXIES, an issuer
//! CA with AUTH_CA_CERT; for the invoice route's downstream call, BILLING_URL,
//! BILLING_RESOURCE, AUTH_CLIENT_ID, and AUTH_CLIENT_SECRET or AUTH_CLIENT_KEY (+
//! AUTH_CLIENT_KEY_ID, AUTH_CLIENT_KEY_ALG), AUTH_TOKEN_SCOPE (optional). See the README.

use examples::config::ServiceConfig;

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("axum_service: {err}");
        std::process::exit(2);
    }
}

async fn run() -> Result<(), String> {
    let config = ServiceConfig::from_env()?;
    let validator = config.validator()?;
    let billing = config.billing_client()?;
    let app = examples::axum_app::router_with_billing(&validator, billing).map_err(|e| e.to_string())?;
    let listener =
        tokio::net::TcpListener::bind(config.bind).await.map_err(|e| format!("BIND_ADDR {}: {e}", config.bind))?;
    println!("axum_service listening on {}://{}", config.scheme(), config.bind);
    let tls = config.tls.as_ref().map(|tls| tls.server_config());
    examples::axum_app::serve(listener, app, tls).await.map_err(|e| e.to_string())
}
