//! Choosing jsonwebtoken's crypto backend once, when a validator is built.

use jsonwebtoken::crypto::CryptoProvider;

use crate::error::ConfigError;

/// The provider this build verifies with: aws-lc-rs when its feature is on (also when
/// both are, as `--all-features` does), else RustCrypto.
///
/// It is also installed as jsonwebtoken's process default: jsonwebtoken 11 panics at the
/// first decode when zero or both of its backends are compiled in and none is installed.
/// We never rely on that default ourselves (verification calls this provider directly),
/// so an application that installed its own first keeps it for its own calls.
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
