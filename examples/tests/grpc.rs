//! gRPC through tonic: the same auth layer, rejections as gRPC status codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_core::Validator;
use auth_core::testkit::TestIssuer;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn check(addr: std::net::SocketAddr, token: Option<&str>) -> Result<i32, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut client = HealthClient::new(channel);
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    if let Some(token) = token {
        request.metadata_mut().insert("authorization", MetadataValue::try_from(format!("Bearer {token}")).unwrap());
    }
    client.check(request).await.map(|r| r.into_inner().status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_status_codes() {
    let idp = TestIssuer::start().await.unwrap();
    let validator = Validator::builder().issuer(idp.jwks_issuer()).build().unwrap();
    let addr = examples::grpc_app::start(&validator).await.unwrap();

    let ok = idp.token().scope("health:read").sign();
    assert_eq!(check(addr, Some(&ok)).await.unwrap(), 1, "SERVING");

    let status = check(addr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = check(addr, Some("garbage")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("malformed"), "{}", status.message());
    let expired = idp.token().scope("health:read").expires_in(-3600).sign();
    assert_eq!(check(addr, Some(&expired)).await.unwrap_err().code(), Code::Unauthenticated);
    let status = check(addr, Some(&idp.token().sign())).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "the token lacks the required scope: health:read");
}
