//! Certificates for tests (rcgen, EC P-256): a CA, server certificates for loopback, and
//! client certificates for `tls_client_auth` and certificate-bound tokens.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A test certificate authority: `basicConstraints CA:TRUE`, `keyCertSign`.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    cert_pem: String,
}

/// A certificate issued by a [`TestCa`], with its private key.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The certificate (DER).
    pub der: Vec<u8>,
}

impl IssuedCertificate {
    /// The RFC 8705 §3.1 thumbprint: unpadded base64url of SHA-256 over the DER.
    pub fn thumbprint(&self) -> String {
        thumbprint(&self.der)
    }
}

/// The RFC 8705 §3.1 thumbprint of a DER certificate (`cnf.x5t#S256`).
pub fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

impl fmt::Debug for TestCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate").field("thumbprint", &self.thumbprint()).finish_non_exhaustive()
    }
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
#[error("test certificate: {0}")]
pub struct PkiError(String);

fn pki(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |e| PkiError(format!("{what}: {e}"))
}

impl TestCa {
    /// A new CA with subject `CN=<common_name>`.
    pub fn new(common_name: &str) -> Result<TestCa, PkiError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(pki("CA key"))?;
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).map_err(pki("CA certificate"))?;
        Ok(TestCa { issuer: rcgen::Issuer::new(params, key), cert_pem: cert.pem() })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate: `CN=localhost`, SAN `DNS:localhost`, `IP:127.0.0.1`, EKU
    /// `serverAuth`.
    pub fn server_certificate(&self) -> Result<IssuedCertificate, PkiError> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(pki("server certificate"))?;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        self.leaf(params, "localhost")
    }

    /// A client certificate whose subject is exactly `CN=<common_name>` (no SAN), EKU
    /// `clientAuth`.
    pub fn client_certificate(&self, common_name: &str) -> Result<IssuedCertificate, PkiError> {
        let mut params = rcgen::CertificateParams::default();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(params, common_name)
    }

    /// A client certificate with a URI SAN (a SPIFFE ID such as
    /// `spiffe://example.org/ns/orders/sa/api`), EKU `clientAuth`.
    pub fn workload_certificate(&self, common_name: &str, uri: &str) -> Result<IssuedCertificate, PkiError> {
        let mut params = rcgen::CertificateParams::default();
        let uri = uri.try_into().map_err(pki("URI SAN"))?;
        params.subject_alt_names = vec![rcgen::SanType::URI(uri)];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.leaf(params, common_name)
    }

    fn leaf(&self, mut params: rcgen::CertificateParams, common_name: &str) -> Result<IssuedCertificate, PkiError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(pki("leaf key"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer).map_err(pki("leaf certificate"))?;
        Ok(IssuedCertificate { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() })
    }
}
