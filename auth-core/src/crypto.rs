//! The crypto backend, chosen once per build: aws-lc-rs (the default), or RustCrypto for
//! signatures with ring for TLS. This is the one module with backend `cfg`s: signature
//! verification ([`KeyVerifier`]) and the key fetcher's TLS both come from here; neither
//! provider is installed as rustls' process default, so an application's own rustls
//! provider is left alone.

use std::sync::Arc;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::crypto::CryptoProvider;

use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::config::ConfigError;

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

/// The TLS configuration of the default clients (key fetching, token requests): this
/// build's rustls provider, the platform's trust store (as reqwest's own configuration
/// uses) and `extra_roots`, HTTP/1.1, and a client certificate when `identity` is given
/// (RFC 8705 `tls_client_auth`).
pub(crate) fn tls_client_config_with(
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    identity: Option<(Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>)>,
) -> Result<rustls::ClientConfig, ConfigError> {
    let provider = Arc::new(tls_provider()?);
    let error = |e: rustls::Error| ConfigError::HttpClient(e.to_string());
    let verifier = if extra_roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
    }
    .map_err(error)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(error)?
        // "dangerous" is rustls' name for any verifier of one's own; this one is the
        // platform's full certificate verification.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(error)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// SHA-256 of a certificate's DER (its RFC 8705 §3.1 thumbprint, before base64url).
pub(crate) fn sha256(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    #[cfg(feature = "aws-lc-rs")]
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    out.copy_from_slice(&<sha2::Sha256 as sha2::Digest>::digest(der));
    #[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
    let _ = der;
    out
}

/// Whether two SHA-256 digests are equal, in time independent of where they differ
/// (four word comparisons with `subtle`, not thirty-two byte ones: this runs on every
/// request with a bound token).
pub(crate) fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq as _;
    let word = |d: &[u8; 32], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&d[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    let equal = (0..4).fold(subtle::Choice::from(1), |acc, i| acc & word(a, i).ct_eq(&word(b, i)));
    equal.into()
}

/// Signs `header.claims` (both JSON texts) with this build's provider: client assertions
/// (RFC 7523). The caller checked that `key` fits `alg`'s family.
#[cfg(feature = "client")]
pub(crate) fn sign_jwt(
    alg: Algorithm,
    key: &jsonwebtoken::EncodingKey,
    header_json: &[u8],
    claims_json: &[u8],
) -> Result<String, String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let provider = provider().map_err(|e| e.to_string())?;
    let signer = (provider.signer_factory)(&alg.to_jsonwebtoken(), key).map_err(|e| e.to_string())?;
    let mut message = URL_SAFE_NO_PAD.encode(header_json);
    message.push('.');
    message.push_str(&URL_SAFE_NO_PAD.encode(claims_json));
    let signature = signer.try_sign(message.as_bytes()).map_err(|e| e.to_string())?;
    message.push('.');
    message.push_str(&URL_SAFE_NO_PAD.encode(signature));
    Ok(message)
}

/// The certificates of a PEM text (at least one): `what` names them in the error.
pub(crate) fn pem_certificates(
    pem: &[u8],
    what: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::pem::PemObject as _;
    let certificates = rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::ClientKey(format!("{what}: {e}")))?;
    if certificates.is_empty() {
        return Err(ConfigError::ClientKey(format!("{what}: no CERTIFICATE in the PEM")));
    }
    Ok(certificates)
}

/// A TLS server configuration on this build's rustls provider: `chain_pem` (leaf first)
/// and `key_pem`, and with `client_ca_pem`, client certificates requested (not required:
/// a request without one is an unbound caller) and verified against those CAs.
pub(crate) fn tls_server_config(
    chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<rustls::ServerConfig, ConfigError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject as _;
    let invalid = |what: &str, e: &dyn std::fmt::Display| ConfigError::ClientKey(format!("{what}: {e}"));
    let provider = Arc::new(tls_provider()?);
    let chain = pem_certificates(chain_pem, "server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| invalid("server key", &e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", &e))?;
    let builder = match client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in pem_certificates(pem, "client CA")? {
                roots.add(ca).map_err(|e| invalid("client CA", &e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| invalid("client CA", &e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| invalid("server certificate", &e))?;
    // HTTP/1.1 only: `auth_tower::tls::serve` speaks nothing else, and actix-web puts its
    // own protocols (h2 first) in front of these.
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

/// One public key, parsed once when its key set is loaded, for the algorithms it may
/// verify. With aws-lc-rs, one pre-parsed key per algorithm (jsonwebtoken's provider would
/// re-parse and clone the key on every call, about 2 µs per RSA verification; these are the
/// same aws-lc-rs verification algorithms its aws-lc backend uses). With RustCrypto alone,
/// jsonwebtoken's provider verifies.
pub(crate) struct KeyVerifier(Backend);

enum Backend {
    #[cfg(feature = "aws-lc-rs")]
    AwsLc(Vec<(Algorithm, aws_lc_rs::signature::ParsedPublicKey)>),
    #[cfg_attr(feature = "aws-lc-rs", allow(dead_code))]
    Provider(&'static CryptoProvider, DecodingKey),
}

impl KeyVerifier {
    /// `public` is what aws-lc-rs parses: an RSA SubjectPublicKeyInfo ([`rsa_spki`]), an
    /// uncompressed EC point, or the Ed25519 key bytes; `decoding` is the same key for
    /// jsonwebtoken. Fails when the key does not parse for one of `algorithms`, so that a
    /// bad key is skipped at load on either backend (RustCrypto parses when a verifier is
    /// made: one is made per algorithm now).
    #[cfg(feature = "aws-lc-rs")]
    pub(crate) fn new(public: &[u8], algorithms: AlgorithmSet, _decoding: DecodingKey) -> Result<Self, &'static str> {
        let parsed = algorithms
            .iter()
            .map(|alg| aws_lc_rs::signature::ParsedPublicKey::new(aws_lc_algorithm(alg), public).map(|key| (alg, key)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "the public key does not parse")?;
        Ok(KeyVerifier(Backend::AwsLc(parsed)))
    }

    #[cfg(not(feature = "aws-lc-rs"))]
    pub(crate) fn new(_public: &[u8], algorithms: AlgorithmSet, decoding: DecodingKey) -> Result<Self, &'static str> {
        let provider = provider().map_err(|_| "no crypto backend")?;
        for alg in algorithms.iter() {
            (provider.verifier_factory)(&alg.to_jsonwebtoken(), &decoding)
                .map_err(|_| "the public key does not parse")?;
        }
        Ok(KeyVerifier(Backend::Provider(provider, decoding)))
    }

    /// Verifies `signature` over `message` with `alg` (one of the key's algorithms).
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match &self.0 {
            #[cfg(feature = "aws-lc-rs")]
            Backend::AwsLc(keys) => {
                keys.iter().find(|(a, _)| *a == alg).is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
            }
            Backend::Provider(provider, decoding) => {
                match (provider.verifier_factory)(&alg.to_jsonwebtoken(), decoding) {
                    Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
                    Err(_) => false,
                }
            }
        }
    }
}

#[cfg(feature = "aws-lc-rs")]
fn aws_lc_algorithm(alg: Algorithm) -> &'static dyn aws_lc_rs::signature::VerificationAlgorithm {
    use aws_lc_rs::signature as s;
    match alg {
        Algorithm::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &s::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &s::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &s::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &s::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &s::RSA_PSS_2048_8192_SHA512,
        Algorithm::ES256 => &s::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &s::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &s::ED25519,
    }
}

/// The RSA key as a SubjectPublicKeyInfo, encoded by aws-lc-rs (not by hand); RustCrypto
/// builds need none (jsonwebtoken takes the raw components).
#[cfg(feature = "aws-lc-rs")]
pub(crate) fn rsa_spki(n: &[u8], e: &[u8]) -> Result<Vec<u8>, &'static str> {
    use aws_lc_rs::encoding::AsDer as _;
    aws_lc_rs::rsa::PublicKeyComponents { n, e }
        .as_der()
        .map(|der| der.as_ref().to_vec())
        .map_err(|_| "the RSA key does not parse")
}

#[cfg(not(feature = "aws-lc-rs"))]
pub(crate) fn rsa_spki(_n: &[u8], _e: &[u8]) -> Result<Vec<u8>, &'static str> {
    Ok(Vec::new())
}
