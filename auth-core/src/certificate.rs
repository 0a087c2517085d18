//! Certificate-bound access tokens (RFC 8705 §3): the client certificate a request comes
//! with, the binding modes, and the certificates a trusted proxy forwards (RFC 9440
//! `Client-Cert`, Envoy's `x-forwarded-client-cert`).

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// How a token's sender binding is enforced. One vocabulary for certificate binding
/// (RFC 8705) and, later, DPoP (RFC 9449).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BindingMode {
    /// Bindings are not checked, so a bound token is refused: never accepted as a plain
    /// bearer token.
    Off,
    /// A bound token must match the request's certificate; an unbound token passes (the
    /// default).
    #[default]
    IfPresent,
    /// Every token must be bound, and match.
    Required,
}

impl BindingMode {
    /// `off`, `if-present` or `required` (as in configuration files).
    pub fn from_name(name: &str) -> Option<BindingMode> {
        match name {
            "off" => Some(BindingMode::Off),
            "if-present" => Some(BindingMode::IfPresent),
            "required" => Some(BindingMode::Required),
            _ => None,
        }
    }
}

/// The client certificate of a request: its RFC 8705 §3.1 thumbprint (unpadded base64url
/// of SHA-256 over the leaf's DER) and, when its URI SAN is one, the SPIFFE ID of the
/// workload. Computed once per connection by the serving helpers.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    digest: [u8; 32],
    thumbprint: Box<str>,
    spiffe_id: Option<Box<str>>,
}

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid client certificate: {0}")]
pub struct CertificateError(&'static str);

impl ClientCertificate {
    /// From the leaf certificate's DER.
    pub fn from_der(der: &[u8]) -> Result<ClientCertificate, CertificateError> {
        let (rest, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| CertificateError("not an X.509 certificate"))?;
        if !rest.is_empty() {
            return Err(CertificateError("trailing bytes after the certificate"));
        }
        let spiffe_id = cert.subject_alternative_name().ok().flatten().and_then(|san| {
            san.value.general_names.iter().find_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).into()),
                _ => None,
            })
        });
        Ok(ClientCertificate::of_digest(crate::crypto::sha256(der), spiffe_id))
    }

    /// From a thumbprint a proxy computed (Envoy's `Hash=`, hex SHA-256), with the SPIFFE
    /// ID it names (`URI=`), if any.
    pub fn from_sha256_hex(hex: &str, spiffe_id: Option<&str>) -> Result<ClientCertificate, CertificateError> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CertificateError("the hash is not a hex SHA-256"));
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| CertificateError("bad hex"))?;
        }
        let spiffe_id = spiffe_id.filter(|uri| uri.starts_with("spiffe://")).map(Into::into);
        Ok(ClientCertificate::of_digest(digest, spiffe_id))
    }

    fn of_digest(digest: [u8; 32], spiffe_id: Option<Box<str>>) -> ClientCertificate {
        let thumbprint = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest).into();
        ClientCertificate { digest, thumbprint, spiffe_id }
    }

    /// The RFC 8705 thumbprint (`cnf.x5t#S256` of tokens bound to this certificate).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The SPIFFE ID in the certificate's URI SAN (`spiffe://trust-domain/path`), if any.
    pub fn spiffe_id(&self) -> Option<&str> {
        self.spiffe_id.as_deref()
    }

    /// Whether a token bound to the certificate with this SHA-256 digest belongs to this
    /// certificate (constant time).
    pub(crate) fn matches(&self, digest: &[u8; 32]) -> bool {
        crate::crypto::digests_equal(&self.digest, digest)
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A thumbprint is not secret, but it identifies a workload: show the SPIFFE ID only.
        f.debug_struct("ClientCertificate").field("spiffe_id", &self.spiffe_id).finish_non_exhaustive()
    }
}

/// A rustls server configuration for serving HTTPS that asks for client certificates:
/// the server's `chain_pem` (leaf first) and `key_pem`, and with `client_ca_pem`, client
/// certificates requested (not required: an unbound caller may still connect) and
/// verified against those CAs. On this build's crypto backend; for the adapters' serving
/// (`auth_tower::tls::serve`, actix-web's `bind_rustls_0_23`).
///
/// ```no_run
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let config = auth_core::tls_server_config(
///     &std::fs::read("server.pem")?,
///     &std::fs::read("server.key")?,
///     Some(&std::fs::read("clients-ca.pem")?),
/// )?;
/// # Ok(()) }
/// ```
pub fn tls_server_config(
    chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<rustls::ServerConfig, crate::ConfigError> {
    crate::crypto::tls_server_config(chain_pem, key_pem, client_ca_pem)
}

/// The address ranges whose forwarded-certificate headers are believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// CIDRs (`10.0.0.0/8`, `::1/128`); a bare address is a single host.
    pub(crate) fn parse<I, S>(ranges: I) -> Result<TrustedProxies, crate::ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nets = Vec::new();
        for range in ranges {
            let range = range.as_ref().trim();
            let net = range
                .parse::<ipnet::IpNet>()
                .or_else(|_| range.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| crate::ConfigError::InvalidSetting {
                    name: "trusted_proxies",
                    reason: "each range must be a CIDR such as 10.0.0.0/8 or an IP address",
                })?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&addr))
    }
}

/// `Client-Cert` (RFC 9440 §2): a structured-field byte sequence, `:` base64 DER `:`.
pub(crate) fn from_client_cert_header(value: &[u8]) -> Result<ClientCertificate, CertificateError> {
    let value = std::str::from_utf8(value).map_err(|_| CertificateError("Client-Cert is not ASCII"))?.trim();
    let inner = value
        .strip_prefix(':')
        .and_then(|v| v.strip_suffix(':'))
        .ok_or(CertificateError("Client-Cert is not a byte sequence (:base64:)"))?;
    let der = STANDARD.decode(inner).map_err(|_| CertificateError("Client-Cert is not base64"))?;
    ClientCertificate::from_der(&der)
}

/// `x-forwarded-client-cert` (Envoy): one element per hop, the nearest (the proxy that
/// connected to us) last; `Cert=` (URL-encoded PEM) preferred over `Hash=` (hex SHA-256).
pub(crate) fn from_xfcc_header(value: &[u8]) -> Result<ClientCertificate, CertificateError> {
    let value = std::str::from_utf8(value).map_err(|_| CertificateError("x-forwarded-client-cert is not ASCII"))?;
    let elements = split_outside_quotes(value, ',');
    let nearest = elements.last().ok_or(CertificateError("x-forwarded-client-cert is empty"))?;
    let (mut cert, mut hash, mut uri) = (None, None, None);
    for pair in split_outside_quotes(nearest, ';') {
        let Some((key, raw)) = pair.split_once('=') else { continue };
        let raw = raw.trim();
        let unquoted = raw.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(raw);
        match key.trim().to_ascii_lowercase().as_str() {
            "cert" => cert = Some(unquoted.to_owned()),
            "hash" => hash = Some(unquoted.to_owned()),
            "uri" => uri = Some(unquoted.to_owned()),
            _ => {}
        }
    }
    if let Some(cert) = cert {
        let pem: String = url::form_urlencoded::parse(format!("p={}", cert.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| CertificateError("x-forwarded-client-cert Cert= is not a PEM certificate"))?;
        return ClientCertificate::from_der(&der);
    }
    match hash {
        Some(hash) => ClientCertificate::from_sha256_hex(&hash, uri.as_deref()),
        None => Err(CertificateError("x-forwarded-client-cert has neither Cert= nor Hash=")),
    }
}

/// Splits at `sep` where it is not inside a quoted string.
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_by_name() {
        assert_eq!(BindingMode::from_name("if-present"), Some(BindingMode::IfPresent));
        assert_eq!(BindingMode::from_name("required"), Some(BindingMode::Required));
        assert_eq!(BindingMode::from_name("off"), Some(BindingMode::Off));
        assert_eq!(BindingMode::from_name("Required"), None);
        assert_eq!(BindingMode::default(), BindingMode::IfPresent);
    }

    #[test]
    fn trusted_ranges() {
        let trusted = TrustedProxies::parse(["10.0.0.0/8", "192.168.1.7", "::1/128"]).unwrap();
        for yes in ["10.1.2.3", "192.168.1.7", "::1", "::ffff:10.0.0.1"] {
            assert!(trusted.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["11.0.0.1", "192.168.1.8", "::2", "127.0.0.1"] {
            assert!(!trusted.contains(no.parse().unwrap()), "{no}");
        }
        assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse(["proxy.internal"]).is_err());
    }

    #[test]
    fn xfcc_takes_the_nearest_hop_and_hashes() {
        let hash_a = "a".repeat(64);
        let hash_b = "b".repeat(64);
        let value = format!(
            "By=spiffe://mesh/a;Hash={hash_a};URI=spiffe://mesh/far,By=spiffe://mesh/b;Hash={hash_b};Subject=\"CN=x,O=y\";URI=spiffe://mesh/near"
        );
        let cert = from_xfcc_header(value.as_bytes()).unwrap();
        assert_eq!(cert.spiffe_id(), Some("spiffe://mesh/near"));
        let expected = ClientCertificate::from_sha256_hex(&hash_b, None).unwrap();
        assert_eq!(cert.thumbprint(), expected.thumbprint());
        assert!(from_xfcc_header(b"By=x;Subject=\"a\"").is_err());
        assert!(from_xfcc_header(b"Hash=zz").is_err());
        assert!(from_client_cert_header(b"not-a-byte-sequence").is_err());
        assert!(from_client_cert_header(b":bm90IGEgY2VydA==:").is_err());
    }

    #[test]
    fn quotes_protect_separators() {
        assert_eq!(split_outside_quotes(r#"a="x,y",b"#, ','), vec![r#"a="x,y""#, "b"]);
        assert_eq!(split_outside_quotes(r#"a="x\"",b"#, ','), vec![r#"a="x\"""#, "b"]);
    }
}
