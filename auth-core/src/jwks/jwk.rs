//! JWK Set documents (RFC 7517 §5) parsed into [`KeySet`]s: which members are read, which
//! keys are usable here (type, curve, size, `use`, `key_ops`, `alg`), and why a whole
//! document is refused.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::keyset::{KeyId, KeySet, VerifyingKey};
use crate::algorithm::{Algorithm, AlgorithmSet, KeyKind};
use crate::crypto::{self, KeyVerifier};

/// RSA keys below this size are refused (NIST SP 800-131A; RFC 7518 §3.3 requires 2048).
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// aws-lc verifies up to 8192 bits; larger keys are a CPU-exhaustion lever.
pub(crate) const MAX_RSA_BITS: usize = 8192;

/// JWK parameters are base64url (RFC 7518 §6); tolerate padding some IdPs add.
const JWK_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a whole JWKS document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwksError {
    #[error("the JWKS is not a JSON object with a \"keys\" array")]
    NotAJwkSet,
    #[error("the JWKS has no usable signing key ({skipped} skipped)")]
    NoUsableKey { skipped: usize },
    #[error("the JWKS has more than {max} usable keys")]
    TooManyKeys { max: usize },
}

/// The members of a JWK this library reads (RFC 7517 §4, RFC 7518 §6).
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    /// Private parameters: a JWKS that publishes them is broken; such keys are refused.
    #[serde(default)]
    d: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    k: Option<serde::de::IgnoredAny>,
}

/// Parses a JWK Set leniently (RFC 7517 §5): a key that cannot be used for signature
/// verification is skipped and logged, and the rest of the set still works. A document
/// with more than `max_keys` usable keys is refused whole (parsing stops there): keeping
/// only a prefix could drop the very key the issuer signs with, while refusing keeps the
/// last good set in service and reports the failure.
pub(crate) fn parse_jwks(doc: &[u8], allowed: AlgorithmSet, max_keys: usize) -> Result<KeySet, JwksError> {
    #[derive(Deserialize)]
    struct Doc<'a> {
        #[serde(borrow)]
        keys: Vec<&'a RawValue>,
    }
    let doc: Doc<'_> = serde_json::from_slice(doc).map_err(|_| JwksError::NotAJwkSet)?;
    let mut set = KeySet::default();
    let mut skipped = 0;
    for (index, raw) in doc.keys.iter().enumerate() {
        match serde_json::from_str::<RawJwk>(raw.get())
            .map_err(|_| "not a JWK object")
            .and_then(|jwk| to_key(jwk, allowed))
        {
            Ok(_) if set.len() >= max_keys => return Err(JwksError::TooManyKeys { max: max_keys }),
            Ok(key) => set.insert(key),
            Err(reason) => {
                skipped += 1;
                tracing::info!(index, reason, "skipping a JWK that cannot verify signatures here");
            }
        }
    }
    if set.is_empty() {
        return Err(JwksError::NoUsableKey { skipped });
    }
    Ok(set)
}

fn to_key(jwk: RawJwk, allowed: AlgorithmSet) -> Result<VerifyingKey, &'static str> {
    if jwk.d.is_some() || jwk.k.is_some() {
        return Err("the JWK carries private or symmetric key material");
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("the JWK's use is not sig");
    }
    if jwk.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|op| op == "verify")) {
        return Err("the JWK's key_ops do not include verify");
    }
    let b64 = |v: Option<String>, what: &'static str| -> Result<Vec<u8>, &'static str> {
        JWK_B64.decode(v.ok_or(what)?).map_err(|_| what)
    };
    let (kind, material, decoding, public) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => {
            let n = b64(jwk.n, "the RSA JWK has no valid n")?;
            let e = b64(jwk.e, "the RSA JWK has no valid e")?;
            let bits = significant_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err("the RSA key is shorter than 2048 bits");
            }
            if bits > MAX_RSA_BITS {
                return Err("the RSA key is longer than 8192 bits");
            }
            if e.is_empty() || e.len() > 8 {
                return Err("the RSA exponent is out of range");
            }
            let decoding = DecodingKey::from_rsa_raw_components(&n, &e);
            let public = crypto::rsa_spki(&n, &e)?;
            (KeyKind::Rsa, [n, e].concat(), decoding, public)
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (kind, len) = if crv == "P-256" { (KeyKind::EcP256, 32) } else { (KeyKind::EcP384, 48) };
            let x = b64(jwk.x, "the EC JWK has no valid x")?;
            let y = b64(jwk.y, "the EC JWK has no valid y")?;
            if x.len() != len || y.len() != len {
                return Err("the EC coordinates do not match the curve");
            }
            let point = [&[0x04][..], &x, &y].concat();
            let decoding = DecodingKey::from_ec_der(&point);
            (kind, point.clone(), decoding, point)
        }
        ("EC", _) => return Err("the EC curve is not supported"),
        ("OKP", Some("Ed25519")) => {
            let x = b64(jwk.x, "the OKP JWK has no valid x")?;
            if x.len() != 32 {
                return Err("the Ed25519 key is not 32 bytes");
            }
            let decoding = DecodingKey::from_ed_der(&x);
            (KeyKind::Ed25519, x.clone(), decoding, x)
        }
        ("OKP", _) => return Err("the OKP curve is not supported"),
        ("oct", _) => return Err("symmetric keys are never used from a JWKS"),
        _ => return Err("the key type is not supported"),
    };
    let mut algorithms = AlgorithmSet::for_key(kind).intersect(allowed);
    if let Some(alg) = jwk.alg.as_deref() {
        // A JWK pins its key to one algorithm (RFC 7517 §4.4); an alg we do not know or
        // that does not fit the key type (e.g. RSA-OAEP) makes the key unusable here.
        let pinned = Algorithm::from_name(alg).ok_or("the JWK's alg is not a supported signature algorithm")?;
        if pinned.key_kind() != kind {
            return Err("the JWK's alg does not fit its key type");
        }
        algorithms = algorithms.intersect(AlgorithmSet::of([pinned]));
    }
    if algorithms.is_empty() {
        return Err("the key allows none of the issuer's algorithms");
    }
    let verifier = KeyVerifier::new(&public, algorithms, decoding)?;
    Ok(VerifyingKey {
        id: KeyId::next(),
        kid: jwk.kid.map(String::into_boxed_str),
        kind,
        algorithms,
        verifier,
        material: material.into(),
    })
}

fn significant_bits(n: &[u8]) -> usize {
    match n.iter().position(|&b| b != 0) {
        None => 0,
        Some(first) => (n.len() - first - 1) * 8 + (8 - n[first].leading_zeros() as usize),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testkit::TestKey;

    /// A real key's public JWK, with members set (or removed, for `null`).
    pub(crate) fn jwk(alg: Algorithm, kid: &str, changes: serde_json::Value) -> String {
        let mut jwk = TestKey::generate(alg, kid).public_jwk();
        for (name, value) in changes.as_object().into_iter().flatten() {
            match value {
                serde_json::Value::Null => drop(jwk.as_object_mut().map(|o| o.remove(name))),
                v => jwk[name] = v.clone(),
            }
        }
        jwk.to_string()
    }

    fn fake_rsa(kid: &str, bits: usize) -> String {
        let mut n = vec![0xffu8; bits / 8];
        n[0] = 0x80;
        format!(r#"{{"kty":"RSA","kid":"{kid}","n":"{}","e":"AQAB"}}"#, JWK_B64.encode(n))
    }

    pub(crate) fn all() -> AlgorithmSet {
        AlgorithmSet::of(Algorithm::ALL)
    }

    #[test]
    fn bad_keys_are_skipped_not_fatal() {
        let short = JWK_B64.encode([7u8; 31]);
        let off_curve = JWK_B64.encode([7u8; 32]);
        let keys = [
            fake_rsa("small", 1024),
            jwk(Algorithm::RS256, "enc", serde_json::json!({"use": "enc"})),
            jwk(Algorithm::RS256, "oaep", serde_json::json!({"alg": "RSA-OAEP"})),
            jwk(Algorithm::RS256, "ops", serde_json::json!({"key_ops": ["encrypt"]})),
            jwk(Algorithm::RS256, "priv", serde_json::json!({"d": "AQAB"})),
            jwk(Algorithm::RS256, "wrongalg", serde_json::json!({"alg": "ES256"})),
            r#"{"kty":"oct","kid":"hmac","k":"c2VjcmV0"}"#.to_string(),
            r#"{"kty":"EC","kid":"p521","crv":"P-521","x":"AA","y":"AA"}"#.to_string(),
            format!(r#"{{"kty":"EC","kid":"short","crv":"P-256","x":"{short}","y":"{short}"}}"#),
            format!(r#"{{"kty":"EC","kid":"off-curve","crv":"P-256","x":"{off_curve}","y":"{off_curve}"}}"#),
            r#"{"kty":"OKP","kid":"x448","crv":"Ed448","x":"AA"}"#.to_string(),
            r#"{"kty":"RSA","kid":"no-n","e":"AQAB"}"#.to_string(),
            r#"{"kty":"RSA","kid":"bad-b64","n":"***","e":"AQAB"}"#.to_string(),
            r#"{"kid":"no-kty"}"#.to_string(),
            r#"{"kty":"RSA","kid":5}"#.to_string(),
            r#""junk""#.to_string(),
            jwk(Algorithm::ES256, "good", serde_json::json!({})),
        ];
        let doc = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
        let set = parse_jwks(doc.as_bytes(), all(), 100).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.find(Some("good"), Algorithm::ES256).is_ok());
    }

    #[test]
    fn whole_document_errors() {
        assert_eq!(parse_jwks(b"not json", all(), 10).unwrap_err(), JwksError::NotAJwkSet);
        assert_eq!(parse_jwks(br#"{"keys":{}}"#, all(), 10).unwrap_err(), JwksError::NotAJwkSet);
        assert_eq!(parse_jwks(br#"{"keys":[]}"#, all(), 10).unwrap_err(), JwksError::NoUsableKey { skipped: 0 });
    }

    #[test]
    fn issuer_allow_list_applies_to_keys() {
        let doc = format!(r#"{{"keys":[{}]}}"#, jwk(Algorithm::RS256, "rs", serde_json::json!({"alg": null})));
        let set = parse_jwks(doc.as_bytes(), AlgorithmSet::of([Algorithm::PS256]), 10).unwrap();
        assert!(set.find(Some("rs"), Algorithm::PS256).is_ok());
        assert!(set.find(Some("rs"), Algorithm::RS256).is_err());
        assert!(parse_jwks(doc.as_bytes(), AlgorithmSet::of([Algorithm::ES256]), 10).is_err());
    }

    #[test]
    fn too_many_keys_refuse_the_document() {
        let keys: Vec<String> =
            (0..11).map(|i| jwk(Algorithm::EdDSA, &format!("k{i}"), serde_json::json!({}))).collect();
        let doc = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
        assert_eq!(parse_jwks(doc.as_bytes(), all(), 10).unwrap_err(), JwksError::TooManyKeys { max: 10 });
        assert_eq!(parse_jwks(doc.as_bytes(), all(), 11).unwrap().len(), 11);
    }

    #[test]
    fn rsa_bit_length() {
        assert_eq!(significant_bits(&[0, 0, 1]), 1);
        assert_eq!(significant_bits(&[0x80, 0]), 16);
        assert_eq!(significant_bits(&[]), 0);
        // 2047-bit modulus with a leading zero byte is refused.
        let mut n = vec![0u8; 257];
        n[1] = 0x7f;
        assert_eq!(significant_bits(&n), 2047);
    }
}
