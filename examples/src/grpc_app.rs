//! A gRPC service (tonic's standard health service) behind `auth-tower`, answering
//! rejections the gRPC way: `UNAUTHENTICATED` (16), `PERMISSION_DENIED` (7),
//! `UNAVAILABLE` (14).

use std::net::SocketAddr;

use auth_core::{ConfigError, Validator};
use auth_tower::{AuthLayer, GrpcRejection};

/// Serves the gRPC health service on a loopback port, requiring scope `health:read`.
/// Returns the address; the server runs on the current tokio runtime.
pub async fn start(validator: &Validator) -> Result<SocketAddr, String> {
    let layer = grpc_layer(validator).map_err(|e| e.to_string())?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>>().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(async move {
        let _keep = reporter;
        let served = tonic::transport::Server::builder().layer(layer).add_service(health).serve_with_incoming(incoming);
        if let Err(err) = served.await {
            eprintln!("grpc service stopped: {err}");
        }
    });
    Ok(addr)
}

/// The layer: a valid token with `health:read`, rejections as gRPC statuses.
pub fn grpc_layer(validator: &Validator) -> Result<AuthLayer<GrpcRejection>, ConfigError> {
    Ok(AuthLayer::require_scopes(validator, ["health:read"])?.on_rejection(GrpcRejection))
}
