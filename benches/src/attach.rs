//! Set-up for the calling side's benches: a token source with a cached token, obtained
//! from the in-process issuer's token endpoint over loopback.
// Bench set-up: a failure here is a broken machine, and panicking is the clearest report.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use auth_core::client::{ClientAuth, TargetToken, TokenSource, TokenTarget};
use auth_core::testkit::{TestClient, TestIssuer};

/// A runtime (keeping the issuer and the source's tasks alive), the issuer, and a target
/// whose token is cached.
///
/// # Panics
/// If the issuer cannot start or the token cannot be had (the bench set-up is wrong).
pub fn cached_target() -> (tokio::runtime::Runtime, TestIssuer, TargetToken) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (idp, target) = runtime.block_on(async {
        let idp = TestIssuer::start().await.unwrap();
        idp.register_client(TestClient::secret("orders", "secret").scopes("invoices:read"));
        idp.set_token_lifetime(Duration::from_secs(3600));
        let tokens = TokenSource::builder("orders")
            .issuer(idp.issuer())
            .client_auth(ClientAuth::client_secret_basic("secret"))
            .build()
            .unwrap();
        let target = tokens.target(TokenTarget::resource("https://billing.test").scope("invoices:read")).unwrap();
        target.token().await.unwrap();
        (idp, target)
    });
    (runtime, idp, target)
}
