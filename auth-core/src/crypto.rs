//! The crypto backend, chosen once per build: aws-lc-rs (the default), or RustCrypto for
//! signatures with ring for TLS. Both the JWT verifier and the key fetcher's TLS take
//! their provider from here; neither is installed as rustls' process default, so an
//! application's own rustls provider is left alone.

use std::sync::Arc;

use jsonwebtoken::crypto::CryptoProvider;

use crate::error::ConfigError;

/// The provider this build verifies with: aws-lc-rs when its feature is on (also when
/// both are, as `--all-features` does), else RustCrypto.
///
/// It is also installed as jsonwebtoken's process default if none is: jsonwebtoken 11
/// panics at the first decode when zero or both of its backends are compiled in and none
/// is installed. We never rely on that default ourselves (verification calls this
/// provider directly), and an application that installed its own first keeps it.
pub(crate) fn provider() -> Result<&'static CryptoProvider, ConfigError> {
    #[cfg(feature = "aws-lc-rs")]
    let provider: &'static CryptoProvider = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let provider: &'static CryptoProvider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    return Err(ConfigError::NoCryptoBackend);

    #[cfg(any(feature = "aws-lc-rs", feature = "rust-crypto"))]
    {
        let _ = provider.install_default();
        Ok(provider)
    }
}

/// The TLS configuration of the default key-fetching client: this build's rustls
/// provider, the platform's trust store (as reqwest's own configuration uses), HTTP/1.1.
pub(crate) fn tls_client_config() -> Result<rustls::ClientConfig, ConfigError> {
    let provider = Arc::new(tls_provider()?);
    let error = |e: rustls::Error| ConfigError::HttpClient(e.to_string());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(error)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(error)?
        // "dangerous" is rustls' name for any verifier of one's own; this one is the
        // platform's full certificate verification.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn tls_provider() -> Result<rustls::crypto::CryptoProvider, ConfigError> {
    #[cfg(feature = "aws-lc-rs")]
    return Ok(rustls::crypto::aws_lc_rs::default_provider());
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    return Ok(rustls::crypto::ring::default_provider());
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    Err(ConfigError::NoCryptoBackend)
}
